// Issue #12, findings 5 and 6: whatever a token endpoint answers, the request rate to it stays
// bounded and no byte it sends reaches Envoy's header unless it is a valid header value. Real
// gRPC, a loopback IdP, the memory store and a real Redis; time is a ManualClock.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import { ConfigError } from '../../src/config/errors.js';
import { parseConfig } from '../../src/config/load.js';
import type { Behaviour } from '../../demo/behaviour.js';
import { startTestApp, type TestApp } from '../support/app.js';
import { ccSource, startIdp, type IdpWorld } from '../support/world.js';
import { deniedBody, envoyRequest, injected, metadata } from '../support/envoy-request.js';
import { REDIS_URL, redisAvailable } from '../support/redis.js';
import { deleteKeys, newEncryptionKey, newKeyPrefix } from '../support/replicas.js';

const hasRedis = await redisAvailable();
const DAY_S = 86_400;

/** Moves the manual clock in steps, letting real I/O (the IdP, Redis) and promise chains settle. */
async function advance(clock: ManualClock, ms: number, stepMs = 250): Promise<void> {
  for (let done = 0; done < ms; done += stepMs) {
    clock.advance(Math.min(stepMs, ms - done));
    await new Promise((r) => setTimeout(r, 5));
  }
}

const answer = (body: Record<string, unknown>): Behaviour => ({ kind: 'status', status: 200, body });

interface StoreCase {
  readonly name: 'memory' | 'redis';
  /** The store section, and the key prefix to clean up (redis). */
  store(): { yaml: string; prefix?: string };
}

const stores: StoreCase[] = [{ name: 'memory', store: () => ({ yaml: '' }) }];
if (hasRedis) {
  stores.push({
    name: 'redis',
    store: () => {
      const prefix = newKeyPrefix('idp-answers');
      return { prefix, yaml: `store: { type: redis, redis: { url: "${REDIS_URL}", keyPrefix: "${prefix}" }, encryptionKey: "${newEncryptionKey()}" }\n` };
    },
  });
}

describe.each(stores)('what an IdP answers cannot make tokengate hammer it ($name store)', (storeCase) => {
  const clock = new ManualClock();
  let w: IdpWorld;
  const apps: TestApp[] = [];
  const prefixes: string[] = [];

  const start = async (storeYaml: string, extra = '') => {
    const t = await w.startApp(({ cc }) => `
${storeYaml}providers:
  api:
    source: ${cc()}
    refresh: { waitBudget: 50ms, jitter: 0%${extra} }
    # The breaker keeps real time (opossum): kept shut here, so the bound comes from the backoff alone.
    resilience: { retries: 0, emergencyToken: break-glass-token, breaker: { volumeThreshold: 1000 } }
`, { clock });
    apps.push(t);
    return t;
  };
  const newStore = () => {
    const s = storeCase.store();
    if (s.prefix) prefixes.push(s.prefix);
    return s.yaml;
  };

  beforeAll(async () => {
    // 60 s tokens: skew 3 s → hard expiry 57 s after the fetch; refresh due at 27 s.
    w = await startIdp({ tokenTtlSeconds: 60, now: () => clock.now() });
  });
  afterEach(async () => {
    for (const t of apps.splice(0)) await t.close();
    w.idp.setBehaviour({ kind: 'ok' });
  });
  afterAll(async () => {
    await w?.close();
    for (const p of prefixes) await deleteKeys(REDIS_URL, p);
  });

  it('expires_in: 0 is refused as an IdP fault: no refresh loop, the cached token then the ladder serve, and the refresh schedule survives', async () => {
    const t = await start(newStore());
    const good = w.idp.issuedAccessTokens.at(-1)!;
    const check = () => t.client.check(envoyRequest({ contextExtensions: { provider: 'api' } }));
    expect(metadata(await check()).source).toBe('cache');

    w.idp.setBehaviour(answer({ access_token: 'zero-lifetime-token', token_type: 'Bearer', expires_in: 0 }));
    const before = w.idp.tokenRequestCount;
    await advance(clock, 50_000); // past the refresh moment (27 s), before hard expiry (57 s)
    const stale = await check();
    expect(metadata(stale).source).toBe('stale');
    expect(injected(stale)?.header?.value).toBe(`Bearer ${good}`);
    await advance(clock, 70_000); // 120 s of a zero-lifetime IdP, no traffic
    // Refresh due at 27 s, then the retry backoff: 1, 2, 4, 8, 16, 30, 30 s.
    expect(w.idp.tokenRequestCount - before).toBeLessThanOrEqual(10);
    const [status] = t.app.manager.stats();
    expect(status?.lastError?.code).toBe('ERR_IDP_BAD_RESPONSE');
    expect(String(status?.lastError?.message)).toMatch(/lifetime/);
    const emergency = await check();
    expect(metadata(emergency).source).toBe('emergency');
    expect(injected(emergency)?.header?.value).toBe('Bearer break-glass-token');
    expect(t.logs.some((l) => l.includes('zero-lifetime-token'))).toBe(false);

    // The IdP recovers: the schedule alone (no Check) gets a fresh token.
    w.idp.setBehaviour({ kind: 'ok' });
    await advance(clock, 60_000);
    const recovered = t.app.manager.stats()[0];
    expect(recovered?.state).toBe('valid');
    expect(recovered?.tokenId).not.toBe(status?.tokenId);
    expect(metadata(await check()).source).toBe('cache');
  });

  it('a tiny expires_in (2 s, below the 3 s floor) is refused the same way', async () => {
    w.idp.setBehaviour(answer({ access_token: 'tiny-lifetime-token', token_type: 'Bearer', expires_in: 2 }));
    const t = await start(newStore());
    const before = w.idp.tokenRequestCount;
    await advance(clock, 60_000);
    expect(w.idp.tokenRequestCount - before).toBeLessThanOrEqual(10);
    expect(t.app.manager.stats()[0]?.lastError?.code).toBe('ERR_IDP_BAD_RESPONSE');
    const res = await t.client.check(envoyRequest({ contextExtensions: { provider: 'api' } }));
    expect(metadata(res).source).toBe('emergency');
  });

  it('expires_in: 0 on a rotating refresh_token grant keeps the rotated refresh token (lifetime raised to the 3 s floor): no reuse, a bounded rate', async () => {
    const rotatingWorld = await startIdp({ refreshTokens: ['rt-initial'], tokenTtlSeconds: 0, now: () => clock.now() });
    const rotating = rotatingWorld.idp;
    try {
      const t = await rotatingWorld.startApp(({ rt }) => `
${newStore()}providers:
  r:
    source: ${rt('rt-initial')}
    refresh: { jitter: 0% }
`, { clock });
      await advance(clock, 20_000);
      expect(rotating.invalidGrantCount).toBe(0);
      expect(rotating.reuseDetectedCount).toBe(0);
      // A 3 s lifetime is refreshed every ~1.4 s: about 15 requests in 20 s, never a loop.
      expect(rotating.tokenRequestCount).toBeGreaterThan(2);
      expect(rotating.tokenRequestCount).toBeLessThanOrEqual(21);
      const res = await t.client.check(envoyRequest({ contextExtensions: { provider: 'r' } }));
      expect(injected(res)?.header?.value).toBe(`Bearer ${rotating.issuedAccessTokens.at(-1)}`);
    } finally {
      await rotatingWorld.close();
    }
  });

  it.each([1e12, 1e308])('expires_in: %d is clamped to 365 days, stored, and shared', async (expiresIn) => {
    w.idp.setBehaviour(answer({ access_token: `long-lived-${expiresIn}`, token_type: 'Bearer', expires_in: expiresIn }));
    const storeYaml = newStore();
    const a = await start(storeYaml);
    const [status] = a.app.manager.stats();
    expect(status?.state).toBe('valid');
    expect(status?.expiresIn).toBeGreaterThan(364 * DAY_S);
    expect(status?.expiresIn).toBeLessThanOrEqual(365 * DAY_S);
    // A second replica on the same store adopts the stored record instead of fetching.
    const before = w.idp.tokenRequestCount;
    const b = await start(storeYaml);
    const res = await b.client.check(envoyRequest({ contextExtensions: { provider: 'api' } }));
    expect(injected(res)?.header?.value).toBe(`Bearer long-lived-${expiresIn}`);
    if (storeCase.name === 'redis') expect(w.idp.tokenRequestCount).toBe(before);
  });

  it('refresh.before longer than the lifetime cannot make a provider refresh more than once a second', async () => {
    const t = await start(newStore(), ', before: 5m');
    const before = w.idp.tokenRequestCount;
    await advance(clock, 20_000);
    expect(w.idp.tokenRequestCount - before).toBeGreaterThan(0);
    expect(w.idp.tokenRequestCount - before).toBeLessThanOrEqual(21);
    expect(metadata(await t.client.check(envoyRequest({ contextExtensions: { provider: 'api' } }))).source).not.toBe('emergency');
  });

  it('a burst of invalidations (upstream 401s) at one instant refreshes the provider at most twice', async () => {
    const t = await start(newStore());
    const before = w.idp.tokenRequestCount;
    for (let i = 0; i < 20; i++) {
      t.app.manager.invalidate('api');
      await new Promise((r) => setTimeout(r, 10));
    }
    expect(w.idp.tokenRequestCount - before).toBeLessThanOrEqual(2);
    await advance(clock, 2_000);
    expect(t.app.manager.stats()[0]?.state).toBe('valid');
  });
});

describe('token bytes an IdP sends never reach the header unless they are a valid header value', () => {
  const clock = new ManualClock();
  /** IdPs (each closing the apps started against it) and apps that need no IdP. */
  const worlds: IdpWorld[] = [];
  const apps: TestApp[] = [];
  afterEach(async () => {
    for (const t of apps.splice(0)) await t.close();
    for (const w of worlds.splice(0)) await w.close();
  });
  const idp = async () => {
    const w = await startIdp({ tokenTtlSeconds: 60, now: () => clock.now() });
    worlds.push(w);
    return w;
  };

  const hostile: Array<[string, Record<string, unknown>, RegExp]> = [
    ['CRLF header injection', { access_token: 'abc\r\nx-injected: evil', token_type: 'Bearer', expires_in: 300 }, /[\r\n]|x-injected/],
    ['a bare LF', { access_token: 'abc\ndef', token_type: 'Bearer', expires_in: 300 }, /\n/],
    ['a NUL byte', { access_token: 'abc\u0000def', token_type: 'Bearer', expires_in: 300 }, /\u0000/],
    ['non-ASCII', { access_token: 'tökén', token_type: 'Bearer', expires_in: 300 }, /[^\x20-\x7e]/],
    ['a space in a bearer token', { access_token: 'abc def', token_type: 'Bearer', expires_in: 300 }, /abc def/],
    ['a 60 KB token', { access_token: 'a'.repeat(60_000), token_type: 'Bearer', expires_in: 300 }, /a{16385}/],
    ['a token_type with CRLF', { access_token: 'fine-token', token_type: 'Bearer\r\nx-injected: evil', expires_in: 300 }, /[\r\n]|x-injected/],
    ['a token_type that is not a token', { access_token: 'fine-token', token_type: 'Bearer evil', expires_in: 300 }, /evil/],
  ];

  it.each(hostile)('%s: refused with ERR_IDP_BAD_RESPONSE; the cached token keeps serving, a cold provider falls to the ladder', async (_label, body, bad) => {
    const warmWorld = await idp();
    const cold = (await idp()).idp;
    const warm = warmWorld.idp;
    cold.setBehaviour(answer(body));
    const provider = (name: string, url: string, resilience: string) => `
  ${name}:
    source: ${ccSource({ tokenUrl: url })}
    inject: { format: "{token_type} {token}" }
    refresh: { waitBudget: 50ms, jitter: 0% }
    resilience: { retries: 0${resilience} }`;
    const t = await warmWorld.startApp(`
providers:${provider('warm', warm.tokenUrl, '')}${provider('cold', cold.tokenUrl, '')}${provider('coldEmergency', cold.tokenUrl, ', emergencyToken: break-glass-token')}
`, { clock });
    const good = warm.issuedAccessTokens[0]!;
    warm.setBehaviour(answer(body));
    await advance(clock, 30_000); // the warm provider's refresh (due at 27 s) gets the hostile answer
    const check = (p: string) => t.client.check(envoyRequest({ contextExtensions: { provider: p } }));

    const stale = await check('warm');
    expect(metadata(stale).source).toBe('stale');
    expect(injected(stale)?.header?.value).toBe(`Bearer ${good}`);
    const denied = await check('cold');
    expect(injected(denied)).toBeUndefined();
    expect(deniedBody(denied)).toMatchObject({ error: 'token_unavailable', provider: 'cold', code: 'ERR_IDP_BAD_RESPONSE' });
    const emergency = await check('coldEmergency');
    expect(metadata(emergency).source).toBe('emergency');
    expect(injected(emergency)?.header?.value).toBe('Bearer break-glass-token');
    for (const res of [stale, denied, emergency]) expect(JSON.stringify(res)).not.toMatch(bad);
    for (const s of t.app.manager.stats()) expect(s.lastError?.code).toBe('ERR_IDP_BAD_RESPONSE');
    // The warm-up, the refresh at 27 s, its retries 1 s and 2 s later, one the Check starts in the refresh window.
    expect(warm.tokenRequestCount).toBeLessThanOrEqual(5);
    for (const l of t.logs) expect(l).not.toMatch(bad);
  });

  it('a static token file re-read with bad bytes is a source error; the previous token keeps serving', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tg-static-'));
    const file = path.join(dir, 'token');
    fs.writeFileSync(file, 'good-static-token\n');
    const t = await startTestApp(`
listen: { grpc: 127.0.0.1:0, admin: "off" }
providers:
  s: { source: { type: static, file: "${file}", pollInterval: 1s } }
`, { clock });
    apps.push(t);
    fs.writeFileSync(file, 'bad\r\nx-injected: evil\n');
    await advance(clock, 2_000, 500);
    const res = await t.client.check(envoyRequest({ contextExtensions: { provider: 's' } }));
    expect(injected(res)?.header?.value).toBe('Bearer good-static-token');
    expect(t.app.manager.stats()[0]?.lastError?.code).toBe('ERR_SOURCE_CONFIG');
    expect(JSON.stringify(t.app.manager.stats())).not.toMatch(/x-injected/);
    fs.rmSync(dir, { recursive: true });
  });

  it('a self-signed jwt over inject.maxTokenBytes is a source error', async () => {
    const t = await startTestApp(`
listen: { grpc: 127.0.0.1:0, admin: "off" }
providers:
  j:
    source: { type: jwt, key: "0123456789abcdef0123456789abcdef", claims: { iss: me } }
    inject: { maxTokenBytes: 64 }
`, { clock });
    apps.push(t);
    expect(t.app.manager.stats()[0]?.lastError?.code).toBe('ERR_SOURCE_CONFIG');
    expect(String(t.app.manager.stats()[0]?.lastError?.message)).toMatch(/maxTokenBytes/);
  });
});

describe('configured tokens and formats that are not valid header values are config errors', () => {
  const problems = (yaml: string, env: Record<string, string>): string[] => {
    try {
      parseConfig(yaml, { env });
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      return (err as ConfigError).problems.map((p) => `${p.path}: ${p.problem}`);
    }
    throw new Error('config was accepted');
  };
  const EVIL = 'tok\r\nx-injected: evil';

  it.each([
    ['a static token with CRLF', 'source: { type: static, token: "${env:T}" }', 'providers.p.source.token'],
    ['a static token with non-ASCII', 'source: { type: static, token: "${env:U}" }', 'providers.p.source.token'],
    ['a static token over maxTokenBytes', 'source: { type: static, token: "${env:T2}" }\n    inject: { maxTokenBytes: 64 }', 'providers.p.source.token'],
    ['an emergency token with CRLF', 'source: { type: static, token: ok }\n    resilience: { emergencyToken: "${env:T}" }', 'providers.p.resilience.emergencyToken'],
    ['a format literal with a control character', 'source: { type: static, token: ok }\n    inject: { format: "${env:F}" }', 'providers.p.inject.format'],
  ])('%s', (_label, body, where) => {
    const out = problems(`providers:\n  p:\n    ${body}\n`, { T: EVIL, U: 'tökén', T2: 'x'.repeat(100), F: 'Bearer\u0001{token}' });
    expect(out.some((p) => p.startsWith(`${where}: `))).toBe(true);
    expect(out.join('\n')).not.toMatch(/x-injected|tökén|x{100}/);
  });

  it('inject.maxTokenBytes is bounded (64 B to 64 KiB)', () => {
    const yaml = (n: number) => `providers:\n  p:\n    source: { type: static, token: ok }\n    inject: { maxTokenBytes: ${n} }\n`;
    expect(problems(yaml(10), {})[0]).toMatch(/^providers\.p\.inject\.maxTokenBytes: .*64/);
    expect(problems(yaml(100_000), {})[0]).toMatch(/^providers\.p\.inject\.maxTokenBytes: .*65536/);
    expect(parseConfig(yaml(64), { env: {} }).providers.get('p')?.inject.maxTokenBytes).toBe(64);
    expect(parseConfig('providers:\n  p:\n    source: { type: static, token: ok }\n', { env: {} }).providers.get('p')?.inject.maxTokenBytes).toBe(16_384);
  });

  it('defaultTtl obeys the lifetime bounds', () => {
    const src = (ttl: string) => `providers:\n  p:\n    source: { type: client_credentials, tokenUrl: "http://127.0.0.1:1/t", clientId: c, clientSecret: s, defaultTtl: ${ttl} }\n`;
    expect(problems(src('2s'), {})[0]).toMatch(/^providers\.p\.source\.defaultTtl: /);
    expect(problems(src('400d'), {})[0]).toMatch(/^providers\.p\.source\.defaultTtl: /);
  });
});
