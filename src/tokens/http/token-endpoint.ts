// One OAuth2 token endpoint: client authentication (RFC 6749 §2.3, RFC 7523 §2.2), the POST,
// and the checked interpretation of the answer. Shared by client_credentials, refresh_token
// and jwt_bearer.
import fs from 'node:fs';
import type { TokenEndpointConfig } from '../../config/types.js';
import { TokenError } from '../errors.js';
import { JwtSigner } from '../signer.js';
import { interpretTokenResponse, type TokenResponse } from './token-response.js';
import { classifyNetworkError, createNodeTransport, type HttpTransport } from './transport.js';

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

export class TokenEndpoint {
  readonly url: URL;
  private readonly transport: HttpTransport & { close?(): void };
  private readonly assertionSigner: JwtSigner | undefined;

  /** `keepAlive: false`: a new connection per request (rotating refresh tokens). */
  constructor(private readonly config: TokenEndpointConfig, transport?: HttpTransport, opts: { keepAlive?: boolean } = {}) {
    this.url = new URL(config.tokenUrl);
    if (transport) {
      this.transport = transport;
    } else {
      let ca: Buffer | undefined;
      if (config.tls?.caFile) {
        try {
          ca = fs.readFileSync(config.tls.caFile);
        } catch (err) {
          throw new TokenError('ERR_SOURCE_CONFIG', `cannot read tls.caFile ${config.tls.caFile}`, { cause: err });
        }
      }
      this.transport = createNodeTransport({
        ...(ca ? { ca } : {}), ...(config.tls?.pinSha256 ? { pinSha256: config.tls.pinSha256 } : {}),
        ...(opts.keepAlive !== undefined ? { keepAlive: opts.keepAlive } : {}),
      });
    }
    this.assertionSigner = config.authMethod === 'private_key_jwt' && config.privateKey
      ? new JwtSigner({ algorithm: config.assertionAlgorithm, key: config.privateKey, ...(config.keyId ? { keyId: config.keyId } : {}) })
      : undefined;
  }

  /**
   * Posts `grant` plus client authentication and the configured scope/audience/params; a grant
   * parameter replaces a configured one of the same name. A list value repeats the parameter
   * (RFC 8693 audience/resource).
   */
  async request(grant: Readonly<Record<string, string | readonly string[]>>, ctx: EndpointRequestContext): Promise<TokenResponse> {
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
    if (c.authMethod === 'private_key_jwt' && this.assertionSigner && c.clientId) {
      const { jwt } = await this.assertionSigner.sign({
        claims: { iss: c.clientId, sub: c.clientId, aud: c.tokenUrl },
        nowMs: ctx.now,
        ttlMs: ASSERTION_TTL_MS,
      });
      form.set('client_id', c.clientId);
      form.set('client_assertion_type', CLIENT_ASSERTION_TYPE);
      form.set('client_assertion', jwt);
    } else if (c.clientId && c.clientSecret !== undefined && c.authMethod === 'client_secret_basic') {
      headers.authorization = basicAuth(c.clientId, c.clientSecret);
    } else if (c.clientId) {
      form.set('client_id', c.clientId);
      if (c.clientSecret !== undefined) form.set('client_secret', c.clientSecret);
    }
    let res;
    try {
      res = await this.transport({ url: this.url, headers, body: form.toString(), signal: ctx.signal });
    } catch (err) {
      throw markIfCarriedOut(classifyNetworkError(err, ctx.signal));
    }
    const sent: string[] = [];
    for (const k of CREDENTIAL_PARAMS) for (const v of form.getAll(k)) sent.push(...wireForms(v));
    if (c.clientSecret !== undefined) sent.push(...wireForms(c.clientSecret));
    if (headers.authorization) sent.push(headers.authorization, headers.authorization.slice('Basic '.length));
    try {
      return interpretTokenResponse(res, ctx.now, sent);
    } catch (err) {
      throw err instanceof TokenError ? markIfCarriedOut(err) : err;
    }
  }

  close(): void {
    this.transport.close?.();
  }
}
