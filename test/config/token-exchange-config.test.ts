// token_exchange config: what is accepted, and the `path: problem` lines for what is not.
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/config/errors.js';
import { parseConfig } from '../../src/config/load.js';

function problems(yaml: string): string[] {
  try {
    parseConfig(yaml, { env: {} });
    return [];
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    return err.problems.map((p) => `${p.path}: ${p.problem}`);
  }
}

const base = (source: string, extra = '') => `
providers:
  gw: { source: { type: static, token: gw-token } }
  x:
    source:
      type: token_exchange
      tokenUrl: https://idp.example/token
      clientId: gateway
      clientSecret: s
${source.split('\n').map((l) => `      ${l}`).join('\n')}
${extra}`;

describe('token_exchange config', () => {
  it('accepts the contract example and fills defaults', () => {
    const c = parseConfig(base(`subjectToken:
  request: { header: authorization, scheme: Bearer }
  verify: { issuer: https://idp.example, audience: gateway }
actorToken: { provider: gw }
audience: https://orders.example
resource: [https://orders.example/a, https://orders.example/b]
scope: orders.read
requestedTokenType: urn:ietf:params:oauth:token-type:access_token`, '    cache: { maxEntries: 5, negativeTtl: 10s, shared: false }'), { env: {} });
    const p = c.providers.get('x')!;
    expect(p.source).toMatchObject({
      type: 'token_exchange', style: 'rfc8693', audience: 'https://orders.example', resource: ['https://orders.example/a', 'https://orders.example/b'],
      subjectToken: { request: { header: 'authorization', scheme: 'Bearer', maxBytes: 16384 }, type: 'urn:ietf:params:oauth:token-type:access_token', verify: { issuer: 'https://idp.example', audience: ['gateway'], leeway: 0 } },
      actorToken: { provider: 'gw', type: 'urn:ietf:params:oauth:token-type:access_token' },
    });
    expect(p.cache).toEqual({ maxEntries: 5, maxBytes: 64 * 1024 * 1024, negativeTtl: 10_000, shared: false });
  });

  it.each([
    ['entra_obo with RFC 8693 parameters', base('style: entra_obo\nsubjectToken: { request: {} }\naudience: a\nscope: s'), 'providers.x.source.audience: is an RFC 8693 parameter'],
    ['entra_obo without scope', base('style: entra_obo\nsubjectToken: { request: {} }'), 'providers.x.source.scope: is required with style entra_obo'],
    ['no subject at all', base('subjectToken: { type: urn:ietf:params:oauth:token-type:jwt }'), 'providers.x.source.subjectToken: needs exactly one of file, env or provider'],
    ['alg none allowed', base('subjectToken: { request: {}, verify: { issuer: https://idp.example, algorithms: [none] } }'), 'providers.x.source.subjectToken.verify.algorithms: none is not allowed'],
    ['plain http jwks', base('subjectToken: { request: {}, verify: { issuer: https://idp.example, jwksUri: "http://keys.example/jwks" } }'), 'providers.x.source.subjectToken.verify.jwksUri: must be https'],
    ['unknown actor', base('subjectToken: { request: {} }\nactorToken: { provider: nope }'), 'providers.x.source.actorToken.provider: names no configured provider'],
    ['serveExpiredFor per caller', base('subjectToken: { request: {} }', '    resilience: { serveExpiredFor: 1m }'), 'providers.x.resilience.serveExpiredFor: does not apply to per-caller tokens'],
    ['emergencyToken per caller', base('subjectToken: { request: {} }', '    resilience: { emergencyToken: abc }'), 'providers.x.resilience.emergencyToken: does not apply to per-caller tokens'],
    ['cache elsewhere', `providers:\n  s: { source: { type: static, token: t }, cache: { maxEntries: 1 } }`, 'providers.s.cache: is for token_exchange providers'],
    ['bad token type', base('subjectToken: { request: {}, type: access_token }'), 'providers.x.source.subjectToken.type: expected a token type URI'],
  ])('%s', (_name, yaml, expected) => {
    const got = problems(yaml);
    expect(got.some((p) => p.startsWith(expected)), got.join('\n')).toBe(true);
  });
  it('regression: a null audience, algorithms or resource is absent, not an unknown key', () => {
    // `audience: ~` means "not set" everywhere else in the config; these three list-or-one
    // fields returned early without reading the key, so the leftover-key check named it unknown.
    expect(problems(base('subjectToken: { request: {}, verify: { issuer: https://idp.example, audience: ~, algorithms: ~ } }\nresource: ~'))).toEqual([]);
  });
});
