// `routes`: which provider a request is for (its authority, path prefix, method and headers).
import { Reader } from '../reader.js';
import type { RouteConfig } from '../types.js';

export function readRoutes(r: Reader, declared: ReadonlySet<string>): RouteConfig[] {
  const routes: RouteConfig[] = [];
  for (const { value, path } of r.list('routes')) {
    const rr = Reader.of(value, path, r.ctx);
    if (!rr) continue;
    const provider = rr.str('provider', { required: true });
    if (provider && !declared.has(provider)) rr.problem('provider', `names no configured provider`);
    const m = rr.child('match');
    const authority = m?.str('authority', { pattern: /^(\*\.)?[A-Za-z0-9.-]+(:\d+)?$|^\*$/, patternHint: 'expected a host name or *.suffix' });
    const pathPrefix = m?.str('pathPrefix', { pattern: /^\//, patternHint: 'must start with /' });
    const method = m?.str('method')?.toUpperCase();
    const headers = m?.has('headers') ? m.stringMap('headers') : undefined;
    m?.done();
    rr.done();
    if (!provider) continue;
    routes.push({
      provider,
      // A plain literal (absent = undefined): with ten thousand routes, objects built from
      // several spreads each get hidden classes of their own on Node 20.
      match: {
        authority: authority ? authority.toLowerCase() : undefined,
        pathPrefix: pathPrefix || undefined,
        method: method || undefined,
        headers: headers ? Object.fromEntries(Object.entries(headers).map(([k, v]) => [k.toLowerCase(), v])) : undefined,
      },
    });
  }
  return routes;
}
