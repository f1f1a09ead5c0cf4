// Types for idp.mjs (plain JavaScript so that `node` runs it without a build step).
import type Provider from 'oidc-provider';
import type { ClientMetadata } from 'oidc-provider';

export interface ResourceServerInfo {
  readonly audience?: string;
  readonly scope: string;
  readonly accessTokenFormat: 'jwt' | 'opaque';
  readonly accessTokenTTL?: number;
}

/** One token request as oidc-provider answered it. */
export interface TokenRequestRecord {
  readonly grantType: string | undefined;
  /** The client the request named (also on an invalid_client refusal). */
  readonly clientId: string | undefined;
  readonly status: number;
  /** The OAuth error code of a refusal (invalid_client, invalid_grant, …). */
  readonly error?: string;
}

export interface IdpOptions {
  readonly port?: number;
  readonly host?: string;
  /** Account ids findAccount knows (default alice and bob); the set stays mutable on the Idp. */
  readonly accounts?: Iterable<string>;
  /** More clients besides `gateway` (client_secret_basic) and `web-app`. */
  readonly clients?: readonly ClientMetadata[];
  /** More resource servers, or overrides of the defaults (by resource indicator). */
  readonly resourceServers?: Readonly<Record<string, ResourceServerInfo>>;
  readonly onTokenRequest?: (record: TokenRequestRecord) => void;
  readonly onServerError?: (err: unknown) => void;
}

export interface Idp {
  readonly issuer: string;
  readonly tokenEndpoint: string;
  readonly jwksUri: string;
  readonly provider: Provider;
  /** Accounts findAccount knows: delete one and its tokens can no longer be exchanged. */
  readonly accounts: Set<string>;
  /**
   * An access token for `sub`, as if they had signed in to `web-app`: audience `gateway` (the
   * client allowed to exchange it) unless `audience` names another; `expiresIn` in seconds
   * (negative: already expired).
   */
  callerToken(sub: string, opts?: { expiresIn?: number; audience?: string }): Promise<string>;
  close(): Promise<void>;
}

export const DEFAULT_RESOURCE_SERVERS: Readonly<Record<string, ResourceServerInfo>>;
export const GATEWAY_CLIENT: ClientMetadata;
export function startIdp(opts?: IdpOptions): Promise<Idp>;
