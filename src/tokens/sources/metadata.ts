// The platform's own identity endpoint: the GCP metadata server or Azure IMDS. Plain http to a
// link-local address by design (the endpoint is only reachable from the VM or pod itself).
import type { MetadataSource } from '../../config/types.js';
import { TokenError } from '../errors.js';
import { interpretTokenResponse } from '../http/token-response.js';
import { classifyNetworkError, createNodeTransport, type HttpResponse, type HttpTransport } from '../http/transport.js';
import type { FetchContext, FetchedToken, TokenSource } from './source.js';

const AZURE_API_VERSION = '2018-02-01';

function contentType(res: HttpResponse): string {
  const ct = res.headers['content-type'];
  return ((Array.isArray(ct) ? ct[0] : ct) ?? '').toLowerCase();
}

export class MetadataToken implements TokenSource {
  readonly type = 'metadata';
  readonly rotates = false;
  readonly endpoint: string;
  readonly defaultTtlMs: number;
  private readonly transport: HttpTransport & { close?(): void };
  private readonly url: URL;
  private readonly headers: Readonly<Record<string, string>>;

  constructor(private readonly config: MetadataSource, transport?: HttpTransport) {
    // No keep-alive: the metadata server is local and a fetch is rare.
    this.transport = transport ?? createNodeTransport({ keepAlive: false });
    this.defaultTtlMs = config.defaultTtl;
    const base = config.endpoint.replace(/\/+$/, '');
    if (config.flavor === 'gcp') {
      this.url = new URL(`${base}/computeMetadata/v1/instance/service-accounts/${encodeURIComponent(config.serviceAccount).replace('%40', '@')}/token`);
      if (config.scopes.length) this.url.searchParams.set('scopes', config.scopes.join(','));
      this.headers = { 'metadata-flavor': 'Google', accept: 'application/json', 'user-agent': 'tokengate' };
    } else {
      this.url = new URL(`${base}/metadata/identity/oauth2/token`);
      this.url.searchParams.set('api-version', AZURE_API_VERSION);
      this.url.searchParams.set('resource', config.resource!);
      if (config.clientId) this.url.searchParams.set('client_id', config.clientId);
      this.headers = { metadata: 'true', accept: 'application/json', 'user-agent': 'tokengate' };
    }
    this.endpoint = this.url.origin + this.url.pathname;
  }

  async fetch(ctx: FetchContext): Promise<FetchedToken> {
    let res: HttpResponse;
    try {
      res = await this.transport({ method: 'GET', url: this.url, headers: this.headers, body: '', signal: ctx.signal });
    } catch (err) {
      // A GET for a token spends nothing: never ambiguous.
      const e = classifyNetworkError(err, ctx.signal, false);
      throw new TokenError(e.code, `${this.config.flavor} metadata endpoint: ${e.message}`, { cause: e });
    }
    // A captive portal or a proxy's error page is not a token answer, whatever its status.
    if (res.status === 200 && !contentType(res).includes('json')) {
      throw new TokenError('ERR_IDP_BAD_RESPONSE', `${this.config.flavor} metadata endpoint answered 200 with content-type ${contentType(res) || 'none'}, not JSON (is ${this.url.origin} the metadata server?)`, { status: 200 });
    }
    // Azure IMDS says 404 "identity not found" while a managed identity is being assigned,
    // and 410 while IMDS itself is updating: both pass.
    if (res.status === 410) throw new TokenError('ERR_IDP_UNAVAILABLE', `${this.config.flavor} metadata endpoint answered 410 (updating)`, { status: 410 });
    try {
      const t = interpretTokenResponse(res, ctx.now);
      return { accessToken: t.accessToken, tokenType: t.tokenType, ...(t.expiresInMs !== undefined ? { expiresInMs: t.expiresInMs } : {}) };
    } catch (err) {
      if (!(err instanceof TokenError)) throw err;
      throw new TokenError(err.code, `${this.config.flavor} metadata endpoint: ${err.message.replace(/^token endpoint /, '')}`, {
        ...(err.status !== undefined ? { status: err.status } : {}), ...(err.oauthError ? { oauthError: err.oauthError } : {}),
        ...(err.oauthErrorDescription ? { oauthErrorDescription: err.oauthErrorDescription } : {}),
        ...(err.retryAfterMs !== undefined ? { retryAfterMs: err.retryAfterMs } : {}), cause: err,
      });
    }
  }

  close(): void {
    this.transport.close?.();
  }
}
