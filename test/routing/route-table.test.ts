// The route table indexes rules by host and path prefix; these tests pin that it still answers
// exactly what a first-match scan over the rules in config order answers.
import { describe, expect, it } from 'vitest';
import type { RouteConfig, RouteMatch } from '../../src/config/types.js';
import { RouteTable, type HttpRequestView } from '../../src/routing/route-table.js';

const rule = (provider: string, match: RouteMatch = {}): RouteConfig => ({ provider, match });
const req = (host: string, path = '/', method = 'GET', headers: Record<string, string> = {}): HttpRequestView => ({
  host,
  path,
  method,
  headers: { ':authority': host, ':path': path, ':method': method, ...headers },
});

/** The specification: the first rule, in config order, whose every condition fits. */
function linearMatch(routes: readonly RouteConfig[], http: HttpRequestView | undefined): string | undefined {
  if (!http) return undefined;
  const headers = http.headers;
  const hostOf = (a: string) => {
    let h = a;
    if (h.startsWith('[')) {
      const end = h.indexOf(']');
      h = end === -1 ? h : h.slice(0, end + 1);
    } else if (h.lastIndexOf(':') !== -1) h = h.slice(0, h.lastIndexOf(':'));
    return h.toLowerCase();
  };
  const host = hostOf(http.host || headers?.[':authority'] || headers?.host || '');
  const path = http.path ?? headers?.[':path'] ?? '';
  const method = (http.method ?? headers?.[':method'] ?? '').toUpperCase();
  for (const r of routes) {
    const a = r.match.authority;
    const rh = a === undefined || a === '*' ? undefined : hostOf(a);
    if (rh?.startsWith('*.')) {
      const suffix = rh.slice(1);
      if (!(host.endsWith(suffix) && host.length > suffix.length)) continue;
    } else if (rh && rh !== host) continue;
    if (r.match.pathPrefix && !path.startsWith(r.match.pathPrefix)) continue;
    if (r.match.method && r.match.method !== method) continue;
    if (r.match.headers && !Object.entries(r.match.headers).every(([k, v]) => headers?.[k] === v)) continue;
    return r.provider;
  }
  return undefined;
}

describe('RouteTable: first match in config order', () => {
  it('an earlier wildcard beats a later exact host, and the other way round', () => {
    expect(new RouteTable([rule('wild', { authority: '*.example.com' }), rule('exact', { authority: 'api.example.com' })]).match(req('api.example.com'))).toBe('wild');
    expect(new RouteTable([rule('exact', { authority: 'api.example.com' }), rule('wild', { authority: '*.example.com' })]).match(req('api.example.com'))).toBe('exact');
  });

  it('an earlier any-host rule beats later host rules, and a later one only catches what they miss', () => {
    const early = new RouteTable([rule('any', { pathPrefix: '/v1/' }), rule('exact', { authority: 'api.example.com' })]);
    expect(early.match(req('api.example.com', '/v1/x'))).toBe('any');
    expect(early.match(req('api.example.com', '/v2/x'))).toBe('exact');
    const late = new RouteTable([rule('exact', { authority: 'api.example.com', pathPrefix: '/v1/' }), rule('any')]);
    expect(late.match(req('api.example.com', '/v1/x'))).toBe('exact');
    expect(late.match(req('api.example.com', '/v2/x'))).toBe('any');
    expect(late.match(req('other.example.com', '/v1/x'))).toBe('any');
  });

  it('a host rule whose path, method or header does not fit falls through to the next fitting rule', () => {
    const t = new RouteTable([
      rule('post-only', { authority: 'api.example.com', method: 'POST' }),
      rule('tenant-a', { authority: 'api.example.com', headers: { 'x-tenant': 'a' } }),
      rule('v1', { authority: 'api.example.com', pathPrefix: '/v1/' }),
      rule('wild', { authority: '*.example.com' }),
    ]);
    expect(t.match(req('api.example.com', '/v1/x', 'POST'))).toBe('post-only');
    expect(t.match(req('api.example.com', '/v1/x', 'GET', { 'x-tenant': 'a' }))).toBe('tenant-a');
    expect(t.match(req('api.example.com', '/v1/x', 'GET', { 'x-tenant': 'b' }))).toBe('v1');
    expect(t.match(req('api.example.com', '/v2/x'))).toBe('wild');
  });

  it('nested wildcards are decided by order, not by the longest suffix', () => {
    const t = new RouteTable([rule('broad', { authority: '*.example.com' }), rule('narrow', { authority: '*.eu.example.com' })]);
    expect(t.match(req('a.eu.example.com'))).toBe('broad');
    const u = new RouteTable([rule('narrow', { authority: '*.eu.example.com' }), rule('broad', { authority: '*.example.com' })]);
    expect(u.match(req('a.eu.example.com'))).toBe('narrow');
    expect(u.match(req('a.us.example.com'))).toBe('broad');
  });

  it('a wildcard matches any depth below its domain but never the bare domain', () => {
    const t = new RouteTable([rule('wild', { authority: '*.example.com' })]);
    expect(t.match(req('a.example.com'))).toBe('wild');
    expect(t.match(req('a.b.example.com'))).toBe('wild');
    expect(t.match(req('example.com'))).toBeUndefined();
    expect(t.match(req('badexample.com'))).toBeUndefined();
    expect(t.match(req('.example.com'))).toBeUndefined();
  });

  it('ignores ports and case, and finds the authority in host, :authority or the host header', () => {
    const t = new RouteTable([rule('api', { authority: 'API.Example.com:8443' }), rule('v6', { authority: '[::1]' })]);
    expect(t.match(req('api.example.COM:443'))).toBe('api');
    expect(t.match({ headers: { ':authority': 'api.example.com' } })).toBe('api');
    expect(t.match({ headers: { host: 'api.example.com:80' } })).toBe('api');
    expect(t.match(req('[::1]:9000'))).toBe('v6');
    expect(t.match(undefined)).toBeUndefined();
    expect(new RouteTable([]).match(req('api.example.com'))).toBeUndefined();
  });

  it('`*` and an absent authority match every host, including none', () => {
    const t = new RouteTable([rule('star', { authority: '*', pathPrefix: '/a/' }), rule('none', { pathPrefix: '/b/' })]);
    expect(t.match(req('x.example.com', '/a/1'))).toBe('star');
    expect(t.match(req('', '/b/1'))).toBe('none');
    expect(t.match(req('x.example.com', '/c/1'))).toBeUndefined();
  });

  it('large buckets (indexed by path prefix) keep config order across prefixes of different lengths', () => {
    const rules: RouteConfig[] = [];
    for (let i = 0; i < 50; i++) rules.push(rule(`svc${i}`, { authority: 'api.example.com', pathPrefix: `/svc-${i}/` }));
    rules.splice(10, 0, rule('short-first', { authority: 'api.example.com', pathPrefix: '/svc' }));
    rules.push(rule('catch-all', { authority: 'api.example.com' }));
    const t = new RouteTable(rules);
    expect(t.match(req('api.example.com', '/svc-3/x'))).toBe('svc3');
    expect(t.match(req('api.example.com', '/svc-30/x'))).toBe('short-first');
    expect(t.match(req('api.example.com', '/other'))).toBe('catch-all');
    expect(t.match(req('api.example.com', '/sv'))).toBe('catch-all');
  });

  it('10 000 exact hosts: the last one is found, a miss is a miss', () => {
    const routes = Array.from({ length: 10_000 }, (_, i) => rule(`p${i}`, { authority: `svc-${i}.example.com`, pathPrefix: '/v1/' }));
    const t = new RouteTable(routes);
    expect(t.size).toBe(10_000);
    expect(t.match(req('svc-9999.example.com', '/v1/x'))).toBe('p9999');
    expect(t.match(req('svc-9999.example.com', '/v2/x'))).toBeUndefined();
    expect(t.match(req('svc-10000.example.com', '/v1/x'))).toBeUndefined();
  });

  it('normalises each request\'s own authority and method, whatever the request before it sent', () => {
    const t = new RouteTable([rule('get-a', { authority: 'a.example.com', method: 'GET' }), rule('b', { authority: 'b.example.com' })]);
    const seq: [string, string, string | undefined][] = [
      ['A.example.com:8443', 'get', 'get-a'],
      ['a.example.com', 'GET', 'get-a'],
      ['b.example.com:1', 'get', 'b'],
      ['a.example.com', 'put', undefined],
      ['a.example.com', 'GeT', 'get-a'],
      ['a.example.co', 'GET', undefined],
      ['A.EXAMPLE.COM', 'GET', 'get-a'],
    ];
    for (const [authority, method, want] of seq) expect(t.match(req(authority, '/', method)), `${authority} ${method}`).toBe(want);
  });

  it('agrees with a linear first-match scan on thousands of random tables and requests', () => {
    let seed = 0x2545f491;
    const rnd = (n: number) => {
      seed ^= seed << 13;
      seed ^= seed >>> 17;
      seed ^= seed << 5;
      return (seed >>> 0) % n;
    };
    const pick = <T>(xs: readonly T[]): T => xs[rnd(xs.length)]!;
    const hosts = ['a.example.com', 'b.example.com', 'x.a.example.com', 'example.com', 'other.org', 'A.EXAMPLE.COM:8080', '[::1]'];
    const patterns = ['*.example.com', '*.a.example.com', '*.org', 'a.example.com', 'example.com', 'other.org', '*', '[::1]', undefined];
    const prefixes = ['/', '/v1', '/v1/', '/v1/things', '/v2/', '/a', undefined];
    const paths = ['/', '/v1', '/v1/', '/v1/things?x=1', '/v2/x', '/a/b', '/b', ''];
    for (let round = 0; round < 400; round++) {
      const routes: RouteConfig[] = [];
      const n = 1 + rnd(round % 4 === 0 ? 40 : 12); // some tables large enough to index prefixes
      for (let i = 0; i < n; i++) {
        const match: { -readonly [K in keyof RouteMatch]: RouteMatch[K] } = {};
        const a = pick(patterns);
        if (a !== undefined) match.authority = a;
        const p = pick(prefixes);
        if (p !== undefined) match.pathPrefix = p;
        if (rnd(4) === 0) match.method = pick(['GET', 'POST']);
        if (rnd(5) === 0) match.headers = { 'x-tenant': pick(['a', 'b']) };
        routes.push(rule(`r${i}`, match));
      }
      const table = new RouteTable(routes);
      for (let k = 0; k < 25; k++) {
        const headers: Record<string, string> = rnd(2) ? { 'x-tenant': pick(['a', 'b']) } : {};
        const http = req(pick(hosts), pick(paths), pick(['GET', 'post', 'POST']), headers);
        expect(table.match(http), JSON.stringify({ routes, http })).toBe(linearMatch(routes, http));
      }
    }
  });
});
