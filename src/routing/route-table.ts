// Which provider a request is for. Envoy's per-route context_extensions win; otherwise the
// first rule whose authority, path prefix, method and headers all fit.
import type { RouteConfig } from '../config/types.js';

/** The part of Envoy's AttributeContext.HttpRequest that routing reads (decoded, keepCase). */
export interface HttpRequestView {
  readonly host?: string;
  readonly path?: string;
  readonly method?: string;
  readonly headers?: Readonly<Record<string, string>>;
}

interface CompiledRoute {
  readonly provider: string;
  readonly exactHost?: string;
  /** ".example.com" for "*.example.com". */
  readonly hostSuffix?: string;
  readonly anyHost: boolean;
  readonly pathPrefix?: string;
  readonly method?: string;
  readonly headers?: readonly (readonly [string, string])[];
}

/** Envoy sends authority with a port sometimes; ports are ignored, case never matters. */
function hostOf(authority: string): string {
  let h = authority;
  if (h.startsWith('[')) {
    const end = h.indexOf(']');
    h = end === -1 ? h : h.slice(0, end + 1);
  } else {
    const colon = h.lastIndexOf(':');
    if (colon !== -1) h = h.slice(0, colon);
  }
  return h.toLowerCase();
}

export class RouteTable {
  private readonly routes: readonly CompiledRoute[];

  constructor(routes: readonly RouteConfig[]) {
    this.routes = routes.map((r) => {
      const a = r.match.authority;
      const host = a === undefined || a === '*' ? undefined : hostOf(a);
      return {
        provider: r.provider,
        anyHost: host === undefined,
        ...(host?.startsWith('*.') ? { hostSuffix: host.slice(1) } : host ? { exactHost: host } : {}),
        ...(r.match.pathPrefix ? { pathPrefix: r.match.pathPrefix } : {}),
        ...(r.match.method ? { method: r.match.method } : {}),
        ...(r.match.headers ? { headers: Object.entries(r.match.headers) } : {}),
      };
    });
  }

  get size(): number {
    return this.routes.length;
  }

  /** The provider of the first matching rule, or undefined. */
  match(http: HttpRequestView | undefined): string | undefined {
    if (!http || this.routes.length === 0) return undefined;
    const headers = http.headers;
    const authority = http.host || headers?.[':authority'] || headers?.host || '';
    const host = hostOf(authority);
    const path = http.path ?? headers?.[':path'] ?? '';
    const method = (http.method ?? headers?.[':method'] ?? '').toUpperCase();
    for (const r of this.routes) {
      if (r.exactHost !== undefined && r.exactHost !== host) continue;
      if (r.hostSuffix !== undefined && !(host.endsWith(r.hostSuffix) && host.length > r.hostSuffix.length)) continue;
      if (r.pathPrefix !== undefined && !path.startsWith(r.pathPrefix)) continue;
      if (r.method !== undefined && r.method !== method) continue;
      if (r.headers && !r.headers.every(([k, v]) => headers?.[k] === v)) continue;
      return r.provider;
    }
    return undefined;
  }
}
