// Config strings are flat, pooled copies (src/config/string-pool.ts; bench/FINDINGS.md, "A
// provider's heap, again"): none keeps the YAML text alive, and providers repeating a value
// share one string. What JavaScript cannot see is asked of V8 (test/support/v8-strings.ts).
import { describe, expect, it, vi } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { flatString, StringPool } from '../../src/config/string-pool.js';
import type { Config, JwtSource } from '../../src/config/types.js';
import { referencesOtherStrings, sameObject } from '../support/v8-strings.js';

const KEY = 'k'.repeat(40);

function jwtProvider(i: number): string {
  return `  provider-number-${i}: { source: { type: jwt, algorithm: HS256, key: "\${env:JWT_KEY}", claims: { iss: issuer-of-provider-${i}, aud: audience-of-provider-${i} }, ttl: 30m } }`;
}

function config(): Config {
  const yaml = [
    'providers:',
    jwtProvider(1),
    jwtProvider(2),
    'routes:',
    '  - { match: { authority: service-one.bench.example, pathPrefix: /v1/some/long/prefix/ }, provider: provider-number-1 }',
    '  - { match: { authority: service-two.bench.example, pathPrefix: /v1/some/long/prefix/ }, provider: provider-number-2 }',
  ].join('\n');
  // Like process.env, every read makes a new string.
  const env = new Proxy({} as Record<string, string | undefined>, { get: (_t, name) => (name === 'JWT_KEY' ? JSON.parse(JSON.stringify(KEY)) as string : undefined) });
  return parseConfig(yaml, { env });
}

function strings(value: unknown, out: string[] = []): string[] {
  if (typeof value === 'string') out.push(value);
  else if (value instanceof Map) for (const [k, v] of value) strings(v, strings(k, out));
  else if (value && typeof value === 'object') for (const v of Object.values(value)) strings(v, out);
  return out;
}

describe('config strings', () => {
  it('no config string is a slice of the YAML text or a concatenation (each would keep its parts alive)', () => {
    const all = strings(config()).filter((s) => s.length >= 13);
    expect(all).toContain('audience-of-provider-1');
    expect(all).toContain('service-two.bench.example');
    expect(all.filter(referencesOtherStrings)).toEqual([]);
  });

  it('providers that repeat a value share one string: a substituted secret, a type, a path prefix; a route names its provider with the provider\'s own name', () => {
    const c = config();
    const [a, b] = [c.providers.get('provider-number-1')!, c.providers.get('provider-number-2')!];
    const [sa, sb] = [a.source as JwtSource, b.source as JwtSource];
    expect(sa.key).toBe(KEY);
    expect(sameObject(sa.key, sb.key)).toBe(true); // process.env-style lookups make a copy each
    expect(sameObject(sa.type, sb.type)).toBe(true);
    expect(sameObject(c.routes[0]!.match.pathPrefix, c.routes[1]!.match.pathPrefix)).toBe(true);
    expect(sameObject(c.routes[1]!.provider, b.name)).toBe(true);
    expect(sameObject(sa.claims.aud, sb.claims.aud)).toBe(false); // different values stay apart
  });

  it('flatString keeps every code unit, lone surrogates included', () => {
    const s = `\ud800${'x'.repeat(20)}\udfff`;
    expect(flatString(s)).toBe(s);
    expect(referencesOtherStrings(flatString('y'.repeat(100).slice(3, 60)))).toBe(false);
  });

  it('walks a node that YAML aliases reach many times only once (aliases can nest exponentially)', () => {
    let dag: unknown = ['leaf-string-value'];
    for (let i = 0; i < 12; i++) dag = { a: dag, b: [dag, dag] };
    const pool = new StringPool();
    const intern = vi.spyOn(pool, 'intern');
    pool.internTree(dag);
    expect(intern).toHaveBeenCalledTimes(1);
  });
});
