// Turns a token endpoint's HTTP answer into a token or a coded error. The body is untrusted:
// status first, then shape, and nothing of it is echoed except the OAuth error fields.
import { REDACTED, redactText } from '../../observability/redact.js';
import { TokenError } from '../errors.js';
import type { HttpResponse } from './transport.js';
import { parseRetryAfter } from './retry-after.js';

export interface TokenResponse {
  readonly accessToken: string;
  readonly tokenType: string;
  readonly expiresInMs?: number;
  readonly refreshToken?: string;
  readonly scope?: string;
  /** RFC 8693 §2.2.1 issued_token_type, when the answer has one (token exchange). */
  readonly issuedTokenType?: string;
}

/** The OAuth errors that mean "this credential or grant is not accepted": retrying cannot help. */
const PERMANENT_OAUTH = new Set(['invalid_client', 'invalid_grant', 'unauthorized_client', 'unsupported_grant_type', 'invalid_scope', 'invalid_request', 'access_denied']);

function parseJson(body: string): unknown {
  try {
    return JSON.parse(body) as unknown;
  } catch {
    return undefined;
  }
}

/**
 * IdPs echo what they were sent ("client secret 'abc' is invalid"): every credential this
 * request carried is cut out before the text is kept, then credential-shaped text is redacted.
 */
function scrub(text: string, sent: readonly string[]): string {
  let out = text;
  for (const s of sent) if (s.length >= 4) out = out.split(s).join(REDACTED);
  return redactText(out);
}

function oauthFields(json: unknown, sent: readonly string[]): { oauthError?: string; oauthErrorDescription?: string } {
  if (!json || typeof json !== 'object') return {};
  const o = json as Record<string, unknown>;
  // Scrubbed first, then clipped (a clipped echo would hide a credential from the scrub): an
  // error description is shown in status pages and logs.
  const clip = (v: unknown) => (typeof v === 'string' ? scrub(v, sent).slice(0, 300) : undefined);
  const oauthError = clip(o.error);
  const oauthErrorDescription = clip(o.error_description);
  return { ...(oauthError ? { oauthError } : {}), ...(oauthErrorDescription ? { oauthErrorDescription } : {}) };
}

function contentType(res: HttpResponse): string {
  const ct = res.headers['content-type'];
  return (Array.isArray(ct) ? ct[0] : ct) ?? 'none';
}

/** `sent`: the credentials the request carried, in every form they took on the wire. */
export function interpretTokenResponse(res: HttpResponse, now: number, sent: readonly string[] = []): TokenResponse {
  const json = parseJson(res.body);
  const oauth = oauthFields(json, sent);
  const suffix = oauth.oauthError ? `: ${oauth.oauthError}${oauth.oauthErrorDescription ? ` (${oauth.oauthErrorDescription})` : ''}` : '';
  const status = res.status;
  if (status >= 300 && status < 400) {
    throw new TokenError('ERR_IDP_REDIRECT', `token endpoint answered ${status} redirect; redirects are not followed (fix tokenUrl)`, { status });
  }
  if (status === 429) {
    const retryAfterMs = parseRetryAfter(res.headers['retry-after'], now);
    throw new TokenError('ERR_IDP_RATE_LIMITED', `token endpoint rate-limited the request (429)${suffix}`, {
      status, ...oauth, ...(retryAfterMs !== undefined ? { retryAfterMs } : {}),
    });
  }
  if (status === 408) throw new TokenError('ERR_IDP_TIMEOUT', `token endpoint answered 408${suffix}`, { status, ...oauth });
  if (status >= 500) {
    const retryAfterMs = parseRetryAfter(res.headers['retry-after'], now);
    throw new TokenError('ERR_IDP_UNAVAILABLE', `token endpoint answered ${status}${suffix}`, { status, ...oauth, ...(retryAfterMs !== undefined ? { retryAfterMs } : {}) });
  }
  if (status >= 400) {
    const known = oauth.oauthError && PERMANENT_OAUTH.has(oauth.oauthError);
    throw new TokenError('ERR_IDP_REJECTED', `token endpoint rejected the request (${status})${suffix || (known ? '' : ' with no OAuth error body')}`, { status, ...oauth });
  }
  if (status < 200) throw new TokenError('ERR_IDP_BAD_RESPONSE', `token endpoint answered ${status}`, { status });
  if (json === undefined || typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new TokenError('ERR_IDP_BAD_RESPONSE', `token endpoint answered ${status} with a body that is not a JSON object (content-type ${contentType(res)})`, { status });
  }
  const o = json as Record<string, unknown>;
  if (typeof o.error === 'string') {
    throw new TokenError('ERR_IDP_REJECTED', `token endpoint answered ${status} with an OAuth error${suffix}`, { status, ...oauth });
  }
  if (typeof o.access_token !== 'string' || o.access_token.length === 0) {
    throw new TokenError('ERR_IDP_BAD_RESPONSE', `token endpoint answered ${status} without an access_token`, { status });
  }
  if (o.token_type !== undefined && typeof o.token_type !== 'string') {
    throw new TokenError('ERR_IDP_BAD_RESPONSE', 'token_type is not a string', { status });
  }
  let expiresInMs: number | undefined;
  if (o.expires_in !== undefined && o.expires_in !== null) {
    const n = typeof o.expires_in === 'string' ? Number(o.expires_in) : o.expires_in;
    if (typeof n !== 'number' || !Number.isFinite(n) || n < 0) throw new TokenError('ERR_IDP_BAD_RESPONSE', 'expires_in is not a non-negative number', { status });
    expiresInMs = n * 1000;
  }
  if (o.refresh_token !== undefined && (typeof o.refresh_token !== 'string' || o.refresh_token === '')) {
    throw new TokenError('ERR_IDP_BAD_RESPONSE', 'refresh_token is not a string', { status });
  }
  return {
    accessToken: o.access_token,
    // RFC 6749 requires token_type; some IdPs omit it for bearer tokens.
    tokenType: typeof o.token_type === 'string' && o.token_type ? o.token_type : 'Bearer',
    ...(expiresInMs !== undefined ? { expiresInMs } : {}),
    ...(typeof o.refresh_token === 'string' ? { refreshToken: o.refresh_token } : {}),
    ...(typeof o.scope === 'string' ? { scope: o.scope } : {}),
    ...(typeof o.issued_token_type === 'string' && o.issued_token_type ? { issuedTokenType: o.issued_token_type } : {}),
  };
}
