// One OAuth2 token endpoint: client authentication (RFC 6749 §2.3, RFC 7523 §2.2), the POST,
// and the checked interpretation of the answer. Shared by client_credentials, refresh_token
// and jwt_bearer.
import fs from 'node:fs';
import type { EndpointTlsConfig, TokenEndpointConfig } from '../../config/types.js';
import { TokenError } from '../errors.js';
import { JwtSigner } from '../signer.js';
import { readClientAssertion } from './client-assertion-file.js';
import { FileClientCertificate } from './client-certificate.js';
import { sharedDiscovery, type Discovery, type IssuerMetadata } from './discovery.js';
import { interpretTokenResponse, type TokenResponse } from './token-response.js';
import { classifyNetworkError, createNodeTransport, type HttpResponse, type HttpTransport } from './transport.js';

const CLIENT_ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
/** Client assertions are single-use and short-lived. */
const ASSERTION_TTL_MS = 60_000;

/** Sensitive form parameters: their values never survive into an error. */
const CREDENTIAL_PARAMS = ['client_secret', 'client_assertion', 'assertion', 'refresh_token', 'password', 'code', 'code_verifier', 'subject_token', 'actor_token'];

/** A credential as it may come back from an IdP: raw, url-encoded, form-encoded. */
function wireForms(value: string): string[] {
  return [value, encodeURIComponent(value), new URLSearchParams({ v: value }).toString().slice(2)];
}

/** RFC 6749 §2.3.1: id and secret are form-urlencoded before the Basic encoding. */
function basicAuth(id: string, secret: string): string {
  const enc = (s: string) => encodeURIComponent(s).replace(/%20/g, '+');
  return `Basic ${Buffer.from(`${enc(id)}:${enc(secret)}`).toString('base64')}`;
}

/** What one request needs of the fetch it serves (a source's FetchContext has it). */
export interface EndpointRequestContext {
  /** Aborts when this attempt's timeout passes or the refresh is cancelled. */
  readonly signal: AbortSignal;
  /** Milliseconds since the epoch on the injected clock. */
  readonly now: number;
}

/**
 * Answers after which the grant may have been carried out: a 2xx we cannot use (garbled,
 * oversized, no access_token) and the gateway-ish 500/502/504 (a proxy or the IdP failed after
 * the grant may have run). 503 and 429 say "not processed"; 4xx and OAuth errors are refusals.
 */
function markIfCarriedOut(err: TokenError): TokenError {
  const s = err.status;
  if (s === undefined || err.ambiguous) return err;
  const carriedOut = (s >= 200 && s < 300 && err.code === 'ERR_IDP_BAD_RESPONSE') || s === 500 || s === 502 || s === 504;
  return carriedOut ? err.asAmbiguous() : err;
}

export interface TokenEndpointOptions {
  /** false: a new connection per request (rotating refresh tokens). */
  readonly keepAlive?: boolean;
  /** Where `issuer:` metadata comes from (shared by every provider by default). */
  readonly discovery?: Discovery;
}

const MTLS_METHODS: ReadonlySet<string> = new Set(['tls_client_auth', 'self_signed_tls_client_auth']);

/** Builds the node transport for an endpoint's TLS settings (CA, pin, client certificate). */
export function transportFor(tls: EndpointTlsConfig | undefined, keepAlive?: boolean): HttpTransport & { close(): void } {
  let ca: Buffer | undefined;
  if (tls?.caFile) {
    try {
      ca = fs.readFileSync(tls.caFile);
    } catch (err) {
      throw new TokenError('ERR_SOURCE_CONFIG', `cannot read tls.caFile ${tls.caFile}`, { cause: err });
    }
  }
  return createNodeTransport({
    ...(ca ? { ca } : {}), ...(tls?.pinSha256 ? { pinSha256: tls.pinSha256 } : {}),
    ...(keepAlive !== undefined ? { keepAlive } : {}),
    ...(tls?.certFile && tls.keyFile ? { clientCertificate: new FileClientCertificate(tls.certFile, tls.keyFile) } : {}),
  });
}

export class TokenEndpoint {
  /** The configured token URL, or the issuer's until discovery has run. */
  readonly endpointId: string;
  private readonly transport: HttpTransport & { close?(): void };
  private readonly assertionSigner: JwtSigner | undefined;
  private readonly discovery: Discovery;

  constructor(private readonly config: TokenEndpointConfig, transport?: HttpTransport, opts: TokenEndpointOptions = {}) {
    this.endpointId = config.tokenUrl ?? config.issuer!;
    this.discovery = opts.discovery ?? sharedDiscovery;
    this.transport = transport ?? transportFor(config.tls, opts.keepAlive);
    this.assertionSigner = config.authMethod === 'private_key_jwt' && config.privateKey
      ? new JwtSigner({ algorithm: config.assertionAlgorithm, key: config.privateKey, ...(config.keyId ? { keyId: config.keyId } : {}) })
      : undefined;
  }

  /** Where this request goes: the configured URL, or the discovered (mTLS alias) endpoint. */
  private async resolve(signal: AbortSignal): Promise<{ url: URL; metadata?: IssuerMetadata }> {
    const c = this.config;
    if (c.tokenUrl) return { url: new URL(c.tokenUrl) };
    const metadata = await this.discovery.get(c.issuer!, this.transport, signal);
    const mtls = MTLS_METHODS.has(c.authMethod) && metadata.mtlsTokenEndpoint;
    return { url: new URL(mtls || metadata.tokenEndpoint), metadata };
  }

  /**
   * `aud` for an assertion the source signs itself (jwt_bearer): the configured token URL, else
   * the issuer (RFC 7523bis), or the discovered token endpoint with `assertionAudience: tokenUrl`.
   */
  async assertionAudience(signal: AbortSignal): Promise<string> {
    const c = this.config;
    if (c.tokenUrl) return c.tokenUrl;
    if (c.assertionAudience !== 'tokenUrl') return c.issuer!;
    return (await this.resolve(signal)).url.href;
  }

  /**
   * Posts `grant` plus client authentication and the configured scope/audience/params; a grant
   * parameter replaces a configured one of the same name. A list value repeats the parameter
   * (RFC 8693 audience/resource).
   */
  async request(grant: Readonly<Record<string, string | readonly string[]>>, ctx: EndpointRequestContext): Promise<TokenResponse> {
    let target = await this.resolve(ctx.signal);
    let res = await this.send(grant, ctx, target);
    // A 404 from a discovered endpoint: the IdP may have moved it. Ask discovery again, once;
    // a 404 is a refusal before processing, so sending again spends nothing.
    if (res.response.status === 404 && target.metadata) {
      this.discovery.forget(this.config.issuer!, target.metadata);
      const again = await this.resolve(ctx.signal);
      if (again.url.href !== target.url.href) {
        target = again;
        res = await this.send(grant, ctx, target);
      }
    }
    try {
      return interpretTokenResponse(res.response, ctx.now, res.sent);
    } catch (err) {
      throw err instanceof TokenError ? markIfCarriedOut(err) : err;
    }
  }

  private async send(grant: Readonly<Record<string, string | readonly string[]>>, ctx: EndpointRequestContext, target: { url: URL; metadata?: IssuerMetadata }): Promise<{ response: HttpResponse; sent: string[] }> {
    const c = this.config;
    const form = new URLSearchParams();
    for (const [k, v] of Object.entries(c.params)) form.set(k, v);
    if (c.scope) form.set('scope', c.scope);
    if (c.audience) form.set('audience', c.audience);
    for (const [k, v] of Object.entries(grant)) {
      if (typeof v === 'string') {
        form.set(k, v);
      } else {
        form.delete(k);
        for (const one of v) form.append(k, one);
      }
    }
    const headers: Record<string, string> = {
      'content-type': 'application/x-www-form-urlencoded',
      accept: 'application/json',
      'user-agent': 'tokengate',
    };
    // RFC 7523bis: the issuer identifier is the audience a strict server accepts.
    const aud = c.assertionAudience !== 'tokenUrl' && target.metadata ? target.metadata.issuer : target.url.href;
    if (c.authMethod === 'private_key_jwt' && this.assertionSigner && c.clientId) {
      const { jwt } = await this.assertionSigner.sign({
        claims: { iss: c.clientId, sub: c.clientId, aud: c.tokenUrl ?? aud },
        nowMs: ctx.now,
        ttlMs: ASSERTION_TTL_MS,
      });
      form.set('client_id', c.clientId);
      form.set('client_assertion_type', CLIENT_ASSERTION_TYPE);
      form.set('client_assertion', jwt);
    } else if (c.authMethod === 'client_assertion') {
      const { jwt } = await readClientAssertion(c.clientAssertionFile!, ctx.now);
      if (c.clientId) form.set('client_id', c.clientId);
      form.set('client_assertion_type', CLIENT_ASSERTION_TYPE);
      form.set('client_assertion', jwt);
    } else if (c.clientId && c.clientSecret !== undefined && c.authMethod === 'client_secret_basic') {
      headers.authorization = basicAuth(c.clientId, c.clientSecret);
    } else if (c.clientId) {
      // client_secret_post, the RFC 8705 methods (the certificate is the credential) and none.
      form.set('client_id', c.clientId);
      if (c.clientSecret !== undefined && (c.authMethod === 'client_secret_post' || c.authMethod === 'client_secret_basic')) form.set('client_secret', c.clientSecret);
    }
    let response: HttpResponse;
    try {
      response = await this.transport({ url: target.url, headers, body: form.toString(), signal: ctx.signal });
    } catch (err) {
      throw markIfCarriedOut(classifyNetworkError(err, ctx.signal));
    }
    const sent: string[] = [];
    for (const k of CREDENTIAL_PARAMS) for (const v of form.getAll(k)) sent.push(...wireForms(v));
    if (c.clientSecret !== undefined) sent.push(...wireForms(c.clientSecret));
    if (headers.authorization) sent.push(headers.authorization, headers.authorization.slice('Basic '.length));
    return { response, sent };
  }

  close(): void {
    this.transport.close?.();
  }
}
