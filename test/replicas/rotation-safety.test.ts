// The ways a rotating refresh token could be presented twice across replicas, each pinned.
// Replicas here are TokenManagers in this process, each on its own Redis connections: the
// protocol is the same as between processes, and each case can be staged exactly.
import { randomBytes } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { DemoTokenServer } from '../../demo/token-server.js';
import type { TokenStore } from '../../src/store/store.js';
import { TokenManager } from '../../src/tokens/manager.js';
import { REDIS_URL, redisAvailable } from '../support/redis.js';
import { RedisServer } from '../support/redis-server.js';
import { deleteKeys } from '../support/replicas.js';
import { connect, storeConfig } from '../store/helpers.js';
import { until } from '../support/until.js';
import { rtSource } from '../support/world.js';

const INITIAL = 'rt-configured-initial';

describe.skipIf(!(await redisAvailable()))('rotating refresh tokens: never presented twice', () => {
  let idp: DemoTokenServer;
  let prefix: string;
  const key = randomBytes(32);
  const managers: TokenManager[] = [];

  beforeEach(async () => {
    idp = new DemoTokenServer({ refreshTokens: [INITIAL], tokenTtlSeconds: 300 });
    await idp.start();
    prefix = `tgtest-rotsafe-${randomBytes(4).toString('hex')}:`;
  });

  afterEach(async () => {
    await Promise.all(managers.splice(0).map((m) => m.close(1_000)));
    await idp.stop();
    await deleteKeys(REDIS_URL, prefix);
  });

  async function replica(opts: { url?: string; wrap?: (s: TokenStore) => TokenStore } = {}): Promise<TokenManager> {
    const config = parseConfig(`
providers:
  p:
    source: ${rtSource(idp, INITIAL)}
    resilience: { timeout: 2s, retries: 0 }
`);
    const store = await connect(storeConfig(opts.url ?? REDIS_URL, prefix, key));
    const m = new TokenManager(config.providers.values(), { store: opts.wrap ? opts.wrap(store) : store, keyPrefix: prefix });
    managers.push(m);
    await m.warmUp();
    return m;
  }

  it('invalidating the access token keeps the refresh token: the next refresh presents the newest one', async () => {
    const [a, b, c] = [await replica(), await replica(), await replica()];
    expect(idp.tokenRequestCount).toBe(1);
    const first = await a.getToken('p');
    expect(a.invalidate('p', first.tokenId)).toBe(true);
    await until(() => idp.tokenRequestCount === 2);
    for (const m of [a, b, c]) {
      await until(() => m.provider('p')!.peek()?.record.accessToken === idp.issuedAccessTokens[1]);
    }
    expect(idp.invalidGrantCount).toBe(0);
    expect(idp.tokenRequestCount).toBe(2);
  });

  it('a replica starting after the access token expired presents the stored refresh token, not the configured one', async () => {
    idp.setTokenTtl(3); // the shortest lifetime tokengate accepts (a rotating answer's shorter one is raised to it)
    const a = await replica();
    expect(idp.tokenRequestCount).toBe(1);
    await a.close(1_000);
    await new Promise((r) => setTimeout(r, 3_000)); // the access token is past hard expiry (2.85 s)
    const b = await replica();
    expect(idp.tokenRequestCount).toBe(2);
    expect(idp.invalidGrantCount).toBe(0);
    expect((await b.getToken('p')).value).toBe(idp.issuedAccessTokens[1]);
  });

  it('a claim left by a replica that died mid-rotation stops every other replica from presenting it', async () => {
    const a = await replica();
    const store = a.store;
    // As if a replica took the lock, claimed the refresh token, called the IdP and was SIGKILLed.
    expect(await store.claimRefresh!(a.provider('p')!.storeKey, 'replica-that-died')).toBeUndefined();
    await expect(a.refresh('p')).rejects.toMatchObject({ code: 'ERR_REFRESH_UNSAFE' });
    expect(idp.tokenRequestCount).toBe(1);
    expect(idp.invalidGrantCount).toBe(0);
    // It keeps serving the token it has.
    expect((await a.getToken('p')).value).toBe(idp.issuedAccessTokens[0]);
  });

  it('a rotated refresh token the store did not take is held back from others, then stored when it can be', async () => {
    let failWrites = false;
    const flaky = (s: TokenStore): TokenStore => new Proxy(s, {
      get(target, prop, receiver) {
        if (prop === 'write') return (k: string, r: never) => (failWrites ? Promise.reject(new Error('write failed (test)')) : target.write(k, r));
        const v = Reflect.get(target, prop, receiver) as unknown;
        return typeof v === 'function' ? (v as (...args: unknown[]) => unknown).bind(target) : v;
      },
    });
    const a = await replica({ wrap: flaky });
    const b = await replica();
    expect(idp.tokenRequestCount).toBe(1);
    failWrites = true;
    await a.refresh('p'); // rotates RT1 → RT2 at the IdP; the store keeps RT1 (claimed by a)
    expect(idp.tokenRequestCount).toBe(2);
    // b must not present RT1: it is spent.
    await expect(b.refresh('p')).rejects.toMatchObject({ code: 'ERR_REFRESH_UNSAFE' });
    expect(idp.tokenRequestCount).toBe(2);
    failWrites = false;
    // a offers its record again until the store takes it; b learns of it from the channel.
    await until(() => b.provider('p')!.peek()?.record.accessToken === idp.issuedAccessTokens[1], 3_000);
    await b.refresh('p');
    expect(idp.tokenRequestCount).toBe(3);
    expect(idp.invalidGrantCount).toBe(0);
  });

  it('Redis unreachable: no refresh (ERR_REFRESH_UNSAFE), the cached token serves; back: refreshes with the newest token', async () => {
    const own = await RedisServer.start();
    try {
      const a = await replica({ url: own.url });
      await own.stop('SIGKILL');
      await expect(a.refresh('p')).rejects.toMatchObject({ code: 'ERR_REFRESH_UNSAFE' });
      expect((await a.getToken('p')).value).toBe(idp.issuedAccessTokens[0]);
      expect(idp.tokenRequestCount).toBe(1);
      await own.start(); // empty: the newest refresh token is the one this replica holds
      await until(() => a.store.healthy(), 3_000);
      await a.refresh('p');
      expect(idp.tokenRequestCount).toBe(2);
      expect(idp.invalidGrantCount).toBe(0);
    } finally {
      await Promise.all(managers.splice(0).map((m) => m.close(1_000)));
      await own.stop();
    }
  });
});
