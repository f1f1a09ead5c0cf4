// oidc-provider 8 (OpenID-certified, from npm) as a second opinion beside our own fake IdPs: the
// README example's server (examples/oidc-provider/idp.mjs, with its RFC 8693 grant) on port 0,
// plus the clients the interop tests authenticate as, and a record of every token request so
// tests can count what reached the IdP.
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import type { ClientMetadata } from 'oidc-provider';
import { startIdp, type Idp, type TokenRequestRecord } from '../../examples/oidc-provider/idp.mjs';
import { pemBlock } from './keys.js';

export const TOKEN_EXCHANGE_GRANT = 'urn:ietf:params:oauth:grant-type:token-exchange';

/**
 * A secret that RFC 6749 §2.3.1's form-encoding changes (':', '+', '%', '/', '&', space). Only
 * printable ASCII: Appendix A allows nothing else in a client secret, and oidc-provider refuses
 * anything else in Basic with invalid_request.
 */
export const AWKWARD_SECRET = 'pa:ss+wo%rd/ with spaces=&?~';

export interface OidcProviderIdp extends Idp {
  /** Every token request oidc-provider answered, in order. */
  readonly requests: TokenRequestRecord[];
  /** Errors oidc-provider answered 500 with (a test expects none). */
  readonly serverErrors: unknown[];
  /** The private key of client `gateway-pkjwt` (its public JWK is registered with oidc-provider). */
  readonly clientKeyPem: string;
  /** Token-exchange requests that reached the token endpoint (answered or refused). */
  exchanges(): TokenRequestRecord[];
  /** Forget recorded requests and server errors; restore the default accounts. */
  reset(): void;
}

const exchangeClient = (over: Partial<ClientMetadata> & { client_id: string }): ClientMetadata => ({
  grant_types: [TOKEN_EXCHANGE_GRANT, 'client_credentials'],
  response_types: [],
  redirect_uris: [],
  ...over,
});

export async function startOidcProviderIdp(): Promise<OidcProviderIdp> {
  const requests: TokenRequestRecord[] = [];
  const serverErrors: unknown[] = [];
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = { ...(publicKey as KeyObject).export({ format: 'jwk' }), kid: 'gateway-pkjwt-1', alg: 'RS256', use: 'sig' };
  // The callers' tokens are issued to `gateway`; these clients stand in for the same gateway
  // authenticating differently, so their audience resource names them instead.
  const idp = await startIdp({
    clients: [
      exchangeClient({ client_id: 'gateway-post', client_secret: 'gateway-post-secret', token_endpoint_auth_method: 'client_secret_post' }),
      exchangeClient({ client_id: 'gateway-awkward', client_secret: AWKWARD_SECRET, token_endpoint_auth_method: 'client_secret_basic' }),
      exchangeClient({ client_id: 'gateway-pkjwt', token_endpoint_auth_method: 'private_key_jwt', jwks: { keys: [jwk] } }),
    ],
    onTokenRequest: (r) => requests.push(r),
    onServerError: (err) => serverErrors.push(err),
  });
  const initialAccounts = [...idp.accounts];
  return Object.assign(idp, {
    requests,
    serverErrors,
    clientKeyPem: privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(),
    exchanges: () => requests.filter((r) => r.grantType === TOKEN_EXCHANGE_GRANT),
    reset() {
      requests.length = 0;
      serverErrors.length = 0;
      idp.accounts.clear();
      for (const a of initialAccounts) idp.accounts.add(a);
    },
  });
}

export type ClientAuth = 'client_secret_basic' | 'client_secret_post' | 'private_key_jwt' | 'awkward_secret_basic';

/**
 * The client lines of a source authenticating to oidc-provider with `auth` (YAML, 6-space
 * indent); `keyPem` replaces gateway-pkjwt's registered key (an assertion oidc-provider refuses).
 */
export function clientAuthYaml(idp: OidcProviderIdp, auth: ClientAuth, keyPem = idp.clientKeyPem): string {
  switch (auth) {
    case 'client_secret_basic':
      return 'clientId: gateway\n      clientSecret: gateway-secret';
    case 'client_secret_post':
      return 'clientId: gateway-post\n      clientSecret: gateway-post-secret\n      authMethod: client_secret_post';
    case 'awkward_secret_basic':
      return `clientId: gateway-awkward\n      clientSecret: ${JSON.stringify(AWKWARD_SECRET)}`;
    case 'private_key_jwt':
      return `clientId: gateway-pkjwt\n      authMethod: private_key_jwt\n      privateKey: ${pemBlock(keyPem, 8)}`;
  }
}

/** The audience each client's callers' tokens carry (the client id the exchange authenticates as). */
export function clientIdOf(auth: ClientAuth): string {
  return { client_secret_basic: 'gateway', client_secret_post: 'gateway-post', awkward_secret_basic: 'gateway-awkward', private_key_jwt: 'gateway-pkjwt' }[auth];
}
