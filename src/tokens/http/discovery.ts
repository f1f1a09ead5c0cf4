// Authorization server metadata (OpenID Connect Discovery, RFC 8414) for `issuer:` sources:
// fetched once per issuer and shared by every provider naming it (single flight), kept in a
// bounded map, fetched again when a token endpoint answers 404/400 (the IdP moved it).
import { TokenError } from '../errors.js';
import { isLoopbackUrl } from './loopback.js';
import type { HttpTransport } from './transport.js';

export interface IssuerMetadata {
  readonly issuer: string;
  readonly tokenEndpoint: string;
  /** RFC 8705 §5: where mTLS-authenticated clients send token requests, when it differs. */
  readonly mtlsTokenEndpoint?: string;
}

const MAX_ISSUERS = 256;
/** The shared fetch has its own deadline: one caller's short timeout must not fail the others. */
const DISCOVERY_TIMEOUT_MS = 10_000;

/** Settles with `p`, or rejects when this caller's own signal aborts first. */
function within<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(new TokenError('ERR_IDP_TIMEOUT', 'discovery did not answer in time'));
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(new TokenError('ERR_IDP_TIMEOUT', 'discovery did not answer in time'));
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      (v) => { signal.removeEventListener('abort', onAbort); resolve(v); },
      (e: unknown) => { signal.removeEventListener('abort', onAbort); reject(e); },
    );
  });
}

/** The two well-known locations, in the order tried (RFC 8414 §3 inserts the suffix before the path). */
function wellKnownUrls(issuer: string): URL[] {
  const u = new URL(issuer);
  const path = u.pathname.replace(/\/$/, '');
  return [
    new URL(`${u.origin}${path}/.well-known/openid-configuration`),
    new URL(`${u.origin}/.well-known/oauth-authorization-server${path}`),
  ];
}

function endpointUrl(doc: Record<string, unknown>, field: string, issuer: string, from: string): string | undefined {
  const v = doc[field];
  if (v === undefined) return undefined;
  let url: URL | undefined;
  try {
    url = typeof v === 'string' ? new URL(v) : undefined;
  } catch {
    url = undefined;
  }
  if (!url) throw new TokenError('ERR_IDP_BAD_RESPONSE', `discovery document ${from} has no valid ${field}`);
  // The issuer is https (or loopback): a document may not send credentials to a plain-http endpoint.
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && isLoopbackUrl(url))) {
    throw new TokenError('ERR_SOURCE_CONFIG', `issuer ${issuer}: discovery gives a ${field} that is not https (${url.origin}); refused`);
  }
  return url.toString();
}

export class Discovery {
  private readonly entries = new Map<string, { readonly promise: Promise<IssuerMetadata>; value?: IssuerMetadata }>();

  constructor(private readonly maxIssuers = MAX_ISSUERS) {}

  /** The issuer's metadata, fetched (once, for all callers) if not known yet. */
  get(issuer: string, transport: HttpTransport, signal: AbortSignal): Promise<IssuerMetadata> {
    const hit = this.entries.get(issuer);
    if (hit) return hit.value ? Promise.resolve(hit.value) : within(hit.promise, signal);
    const p = this.fetch(issuer, transport, AbortSignal.timeout(DISCOVERY_TIMEOUT_MS));
    const entry: { readonly promise: Promise<IssuerMetadata>; value?: IssuerMetadata } = { promise: p };
    this.entries.set(issuer, entry);
    // A failure is not remembered: the next fetch asks again (its own retries and breaker bound it).
    p.then((m) => (entry.value = m), () => {
      if (this.entries.get(issuer) === entry) this.entries.delete(issuer);
    });
    while (this.entries.size > this.maxIssuers) this.entries.delete(this.entries.keys().next().value!);
    return within(p, signal);
  }

  /** Forgets what is known about the issuer, unless a newer fetch is already under way. */
  forget(issuer: string, stale: IssuerMetadata): void {
    if (this.entries.get(issuer)?.value === stale) this.entries.delete(issuer);
  }

  private async fetch(issuer: string, transport: HttpTransport, signal: AbortSignal): Promise<IssuerMetadata> {
    let last: TokenError | undefined;
    for (const url of wellKnownUrls(issuer)) {
      let res;
      try {
        res = await transport({ method: 'GET', url, headers: { accept: 'application/json', 'user-agent': 'tokengate' }, body: '', signal });
      } catch (err) {
        if (err instanceof TokenError) throw err;
        throw new TokenError(signal.aborted ? 'ERR_IDP_TIMEOUT' : 'ERR_IDP_UNAVAILABLE', `discovery for issuer ${issuer} failed`, { cause: err });
      }
      const from = url.toString();
      if (res.status === 404) {
        last = new TokenError('ERR_SOURCE_CONFIG', `issuer ${issuer} publishes no metadata (404 at ${from} and the RFC 8414 location)`, { status: 404 });
        continue;
      }
      if (res.status >= 500 || res.status === 429) throw new TokenError('ERR_IDP_UNAVAILABLE', `discovery document ${from} answered ${res.status}`, { status: res.status });
      if (res.status !== 200) throw new TokenError('ERR_IDP_BAD_RESPONSE', `discovery document ${from} answered ${res.status}`, { status: res.status });
      let doc: unknown;
      try {
        doc = JSON.parse(res.body) as unknown;
      } catch {
        doc = undefined;
      }
      if (!doc || typeof doc !== 'object' || Array.isArray(doc)) throw new TokenError('ERR_IDP_BAD_RESPONSE', `discovery document ${from} is not a JSON object`, { status: 200 });
      const o = doc as Record<string, unknown>;
      // OpenID Connect Discovery §4.3 / RFC 8414 §3.3: a document for another issuer is an attack or a mistake.
      if (o.issuer !== issuer) {
        throw new TokenError('ERR_SOURCE_CONFIG', `discovery document ${from} names issuer ${JSON.stringify(String(o.issuer).slice(0, 200))}, not the configured ${issuer}; refused`);
      }
      const tokenEndpoint = endpointUrl(o, 'token_endpoint', issuer, from);
      if (!tokenEndpoint) throw new TokenError('ERR_IDP_BAD_RESPONSE', `discovery document ${from} has no token_endpoint`);
      const aliases = o.mtls_endpoint_aliases;
      const mtls = aliases && typeof aliases === 'object' && !Array.isArray(aliases) ? endpointUrl(aliases as Record<string, unknown>, 'token_endpoint', issuer, from) : undefined;
      return { issuer, tokenEndpoint, ...(mtls ? { mtlsTokenEndpoint: mtls } : {}) };
    }
    throw last!;
  }
}

/** One per process: providers naming the same issuer share its metadata. */
export const sharedDiscovery = new Discovery();
