// IAM Credentials generateAccessToken: a short-lived token for a service account, authorised
// by another provider's token (`via`), e.g. the federated token from Google's STS.
import type { GcpImpersonationSource } from '../../config/types.js';
import { redactText } from '../../observability/redact.js';
import { TokenError } from '../errors.js';
import { transportFor } from '../http/token-endpoint.js';
import { parseRetryAfter } from '../http/retry-after.js';
import { classifyNetworkError, type HttpResponse, type HttpTransport } from '../http/transport.js';
import { capToLinks } from './chain.js';
import type { FetchContext, FetchedToken, LinkedTokens, TokenSource } from './source.js';

/** Google's error body: {"error": {"code": 403, "message": "...", "status": "PERMISSION_DENIED"}}. */
function googleError(body: string, sent: string): { status?: string; message?: string } {
  try {
    const e = (JSON.parse(body) as { error?: { status?: unknown; message?: unknown } }).error;
    const clip = (v: unknown) => (typeof v === 'string' ? redactText(v.split(sent).join('[REDACTED]')).slice(0, 300) : undefined);
    const status = clip(e?.status);
    const message = clip(e?.message);
    return { ...(status ? { status } : {}), ...(message ? { message } : {}) };
  } catch {
    return {};
  }
}

export class GcpImpersonation implements TokenSource {
  readonly type = 'gcp_impersonation';
  readonly rotates = false;
  readonly endpoint: string;
  readonly defaultTtlMs: number;
  private readonly transport: HttpTransport & { close?(): void };
  private readonly url: URL;
  private readonly body: string;

  constructor(private readonly config: GcpImpersonationSource, private readonly links: LinkedTokens | undefined, transport?: HttpTransport) {
    if (!links) throw new TokenError('ERR_SOURCE_CONFIG', 'gcp_impersonation needs the provider named in via (no provider links here)');
    this.transport = transport ?? transportFor(config.tls);
    this.url = new URL(`${config.endpoint.replace(/\/+$/, '')}/v1/projects/-/serviceAccounts/${encodeURIComponent(config.serviceAccount).replace('%40', '@')}:generateAccessToken`);
    this.endpoint = this.url.origin;
    this.defaultTtlMs = config.defaultTtl;
    this.body = JSON.stringify({
      scope: config.scopes,
      lifetime: `${Math.round(config.lifetime / 1000)}s`,
      ...(config.delegates.length ? { delegates: config.delegates.map((d) => (d.startsWith('projects/') ? d : `projects/-/serviceAccounts/${d}`)) } : {}),
    });
  }

  async fetch(ctx: FetchContext): Promise<FetchedToken> {
    const via = await this.links!.get(this.config.via, ctx.signal);
    let res: HttpResponse;
    try {
      res = await this.transport({
        url: this.url,
        headers: { authorization: `Bearer ${via.accessToken}`, 'content-type': 'application/json', accept: 'application/json', 'user-agent': 'tokengate' },
        body: this.body,
        signal: ctx.signal,
      });
    } catch (err) {
      // Minting a token twice costs nothing: no ambiguity to carry.
      const e = classifyNetworkError(err, ctx.signal, false);
      throw new TokenError(e.code, `IAM Credentials: ${e.message}`, { cause: e });
    }
    const fetched = this.interpret(res, ctx.now, via.accessToken);
    return capToLinks(fetched, [via], ctx.now, this.defaultTtlMs);
  }

  private interpret(res: HttpResponse, now: number, sent: string): FetchedToken {
    const s = res.status;
    const what = `IAM Credentials generateAccessToken for ${this.config.serviceAccount}`;
    if (s !== 200) {
      const g = googleError(res.body, sent);
      const detail = g.status || g.message ? `: ${[g.status, g.message].filter(Boolean).join(' ')}` : '';
      const retryAfterMs = parseRetryAfter(res.headers['retry-after'], now);
      const extra = { status: s, ...(g.status ? { oauthError: g.status } : {}), ...(g.message ? { oauthErrorDescription: g.message } : {}), ...(retryAfterMs !== undefined ? { retryAfterMs } : {}) };
      if (s >= 300 && s < 400) throw new TokenError('ERR_IDP_REDIRECT', `${what} answered ${s} redirect; not followed`, { status: s });
      if (s === 429) throw new TokenError('ERR_IDP_RATE_LIMITED', `${what} rate-limited (429)${detail}`, extra);
      if (s >= 500 || s === 408) throw new TokenError(s === 408 ? 'ERR_IDP_TIMEOUT' : 'ERR_IDP_UNAVAILABLE', `${what} answered ${s}${detail}`, extra);
      if (s >= 400) throw new TokenError('ERR_IDP_REJECTED', `${what} refused (${s})${detail}`, extra);
      throw new TokenError('ERR_IDP_BAD_RESPONSE', `${what} answered ${s}`, { status: s });
    }
    let o: Record<string, unknown> | undefined;
    try {
      const j = JSON.parse(res.body) as unknown;
      o = j && typeof j === 'object' && !Array.isArray(j) ? (j as Record<string, unknown>) : undefined;
    } catch {
      o = undefined;
    }
    if (!o) throw new TokenError('ERR_IDP_BAD_RESPONSE', `${what} answered 200 with a body that is not a JSON object`, { status: 200 });
    if (typeof o.accessToken !== 'string' || !o.accessToken) throw new TokenError('ERR_IDP_BAD_RESPONSE', `${what} answered 200 without an accessToken`, { status: 200 });
    // expireTime (RFC 3339) is the token's exact end: it drives expiry.
    const at = typeof o.expireTime === 'string' && /^\d{4}-\d\d-\d\dT/.test(o.expireTime) ? Date.parse(o.expireTime) : Number.NaN;
    if (!Number.isFinite(at)) throw new TokenError('ERR_IDP_BAD_RESPONSE', `${what} answered 200 without a valid expireTime (RFC 3339)`, { status: 200 });
    return { accessToken: o.accessToken, tokenType: 'Bearer', expiresAtMs: at };
  }

  close(): void {
    this.transport.close?.();
  }
}
