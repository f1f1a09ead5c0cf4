// Which provider a request is for. Envoy's per-route context_extensions win; otherwise the
// first rule whose authority, path prefix, method and headers all fit.
//
// First match without scanning every rule: rules are bucketed by how they match the host
// (exact host, `*.suffix`, any host) and, inside a large bucket, by path prefix; every list
// keeps config order. A request consults its exact-host bucket, the bucket of each of its own
// dot-suffixes and the any-host bucket, and inside each the lists its path can match; the rule
// with the lowest config index that fits wins, exactly what a linear scan would pick. A list is
// left as soon as its next rule comes after the best fit found so far.
import type { RouteConfig } from '../config/types.js';

/** The part of Envoy's AttributeContext.HttpRequest that routing reads (decoded, keepCase). */
export interface HttpRequestView {
  readonly host?: string;
  readonly path?: string;
  readonly method?: string;
  readonly headers?: Readonly<Record<string, string>>;
}

interface CompiledRoute {
  /** Position in the config: the lower one wins. */
  readonly index: number;
  readonly provider: string;
  readonly pathPrefix?: string;
  readonly method?: string;
  readonly headers?: readonly (readonly [string, string])[];
}

type Headers = Readonly<Record<string, string>> | undefined;

/** Up to this many rules a bucket is scanned; above, its path prefixes are indexed. */
const SCAN_LIMIT = 8;

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

function fits(r: CompiledRoute, path: string, method: string, headers: Headers): boolean {
  if (r.pathPrefix !== undefined && !path.startsWith(r.pathPrefix)) return false;
  if (r.method !== undefined && r.method !== method) return false;
  if (r.headers !== undefined) {
    for (const [k, v] of r.headers) if (headers?.[k] !== v) return false;
  }
  return true;
}

/** The first rule of `rules` (config order) that fits and comes before `best`; else `best`. */
function firstFit(rules: readonly CompiledRoute[] | undefined, best: CompiledRoute | undefined, path: string, method: string, headers: Headers): CompiledRoute | undefined {
  if (rules === undefined) return best;
  const limit = best === undefined ? Number.POSITIVE_INFINITY : best.index;
  for (let i = 0; i < rules.length; i++) {
    const r = rules[i]!;
    if (r.index >= limit) break;
    if (fits(r, path, method, headers)) return r;
  }
  return best;
}

/** A small bucket's `lengths`: one shared empty list rather than one per bucket. */
const NO_LENGTHS: readonly number[] = Object.freeze([]);

/** The rules that share one way of matching the host, in config order. */
class Bucket {
  private all: CompiledRoute[] = [];
  /** Built when the bucket is large: rules without a path prefix, and the rest by prefix. */
  private noPrefix: CompiledRoute[] | undefined;
  private byPrefix: Map<string, CompiledRoute[]> | undefined;
  /** Distinct prefix lengths, ascending: the slices of a path worth looking up. */
  private lengths: readonly number[] = NO_LENGTHS;

  add(r: CompiledRoute): void {
    this.all.push(r);
  }

  seal(): void {
    if (this.all.length <= SCAN_LIMIT) {
      // A list grown by push keeps room for 17 rules: an exact copy is ~130 B less for each of
      // ten thousand one-rule buckets (one host a route).
      this.all = this.all.slice();
      return;
    }
    this.noPrefix = [];
    this.byPrefix = new Map();
    const lengths = new Set<number>();
    for (const r of this.all) {
      if (r.pathPrefix === undefined) {
        this.noPrefix.push(r);
        continue;
      }
      push(this.byPrefix, r.pathPrefix, r);
      lengths.add(r.pathPrefix.length);
    }
    this.lengths = [...lengths].sort((a, b) => a - b);
  }

  firstFit(best: CompiledRoute | undefined, path: string, method: string, headers: Headers): CompiledRoute | undefined {
    if (this.byPrefix === undefined) return firstFit(this.all, best, path, method, headers);
    best = firstFit(this.noPrefix, best, path, method, headers);
    for (const len of this.lengths) {
      if (len > path.length) break;
      best = firstFit(this.byPrefix.get(path.slice(0, len)), best, path, method, headers);
    }
    return best;
  }
}

function push<T>(map: Map<string, T[]>, key: string, value: T): void {
  const list = map.get(key);
  if (list) list.push(value);
  else map.set(key, [value]);
}

export class RouteTable {
  private readonly count: number;
  /** Exact host → its rules. */
  private readonly byHost = new Map<string, Bucket>();
  /** ".example.com" (from "*.example.com") → its rules. */
  private readonly bySuffix = new Map<string, Bucket>();
  /** Rules without an authority (or `*`, or an empty one): they apply to every host. */
  private readonly anyHost = new Bucket();
  /** Every header name `match` may read, for a request reader that reads only those. */
  readonly headerNames: readonly string[];
  /**
   * Those of `headerNames` that `match` reads only when `host`, `path` or `method` is missing
   * (no rule names them): a reader may leave them unread when the field is there.
   */
  readonly fallbackOnlyHeaderNames: readonly string[];
  /**
   * The last authority and method seen and what they normalise to: consecutive Checks mostly
   * share them (and a reader that remembers its strings hands over the same string, so the
   * compare is one pointer test), sparing a port strip, a case conversion and a new string.
   */
  private lastAuthority = '';
  private lastHost = '';
  private lastMethod = '';
  private lastMethodUpper = '';

  constructor(routes: readonly RouteConfig[]) {
    this.count = routes.length;
    const fallbacks = [':authority', 'host', ':path', ':method'];
    const ruleNames = new Set<string>();
    for (const r of routes) for (const k of Object.keys(r.match.headers ?? {})) ruleNames.add(k);
    this.headerNames = [...new Set([...fallbacks, ...ruleNames])];
    this.fallbackOnlyHeaderNames = fallbacks.filter((n) => !ruleNames.has(n));
    const bucket = (map: Map<string, Bucket>, key: string): Bucket => {
      let b = map.get(key);
      if (!b) map.set(key, (b = new Bucket()));
      return b;
    };
    routes.forEach((r, index) => {
      const a = r.match.authority;
      const host = a === undefined || a === '*' ? undefined : hostOf(a);
      const compiled: CompiledRoute = {
        index,
        provider: r.provider,
        ...(r.match.pathPrefix ? { pathPrefix: r.match.pathPrefix } : {}),
        ...(r.match.method ? { method: r.match.method } : {}),
        ...(r.match.headers ? { headers: Object.entries(r.match.headers) } : {}),
      };
      if (host?.startsWith('*.')) bucket(this.bySuffix, host.slice(1)).add(compiled);
      else if (host) bucket(this.byHost, host).add(compiled);
      else this.anyHost.add(compiled);
    });
    for (const b of this.byHost.values()) b.seal();
    for (const b of this.bySuffix.values()) b.seal();
    this.anyHost.seal();
  }

  get size(): number {
    return this.count;
  }

  /** The provider of the first matching rule, or undefined. */
  match(http: HttpRequestView | undefined): string | undefined {
    if (!http || this.count === 0) return undefined;
    const headers = http.headers;
    const authority = http.host || headers?.[':authority'] || headers?.host || '';
    if (authority !== this.lastAuthority) {
      this.lastHost = hostOf(authority);
      this.lastAuthority = authority;
    }
    const host = this.lastHost;
    const path = http.path ?? headers?.[':path'] ?? '';
    const rawMethod = http.method ?? headers?.[':method'] ?? '';
    if (rawMethod !== this.lastMethod) {
      this.lastMethodUpper = rawMethod.toUpperCase();
      this.lastMethod = rawMethod;
    }
    const method = this.lastMethodUpper;
    let best = this.byHost.get(host)?.firstFit(undefined, path, method, headers);
    if (this.bySuffix.size !== 0) {
      // "*.example.com" matches "a.example.com" and "a.b.example.com", never "example.com":
      // the suffixes to look up start at each dot but the first character.
      for (let dot = host.indexOf('.', 1); dot !== -1; dot = host.indexOf('.', dot + 1)) {
        const b = this.bySuffix.get(host.slice(dot));
        if (b !== undefined) best = b.firstFit(best, path, method, headers);
      }
    }
    return this.anyHost.firstFit(best, path, method, headers)?.provider;
  }
}
