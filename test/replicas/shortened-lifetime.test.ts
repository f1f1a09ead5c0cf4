// Regression: the store's fenced write refused a newer token that expires sooner than the stored
// one (it fenced on expiry). An IdP that shortens lifetimes (a 30 s token, then 10 s ones) then
// had every replica read a stored token that was already due and refresh on its own, and with a
// rotating refresh token the rotated one was never stored: the record kept the spent refresh
// token under the lock holder's claim, and every other replica refused to refresh
// (ERR_REFRESH_UNSAFE) until the old token expired. The fence is now on when a token was obtained.
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { DemoTokenServer } from '../../demo/token-server.js';
import { connect, storeConfig } from '../store/helpers.js';
import { REDIS_URL, redisAvailable } from '../support/redis.js';
import { ccSource, rtSource } from '../support/world.js';
import { burst, deleteKeys, merge, newEncryptionKey, newKeyPrefix, removeTmpDir, Replica, replicaYaml, sleep, tmpDir, type BurstResult } from '../support/replicas.js';

// The first token lives 30 s: hard expiry 28.5 s after its request, refresh lead 15 s, so it is
// due 12-13.5 s in. Then 10 s tokens (expiry 9.5 s, lead 5 s: a refresh every 4-4.5 s), each
// expiring long before the first one: the window where the old fence refused them ends when the
// first token expires. Watched until then and a little after.
const FIRST_TTL_S = 30;
const LATER_TTL_S = 10;
/** No two refreshes of one chain after the drop start closer than this (4-4.5 s, see above). */
const MIN_CYCLE_MS = 3_500;

/** One replica set on its own key prefix, against `idp`. */
async function startReplicas(label: string, idp: DemoTokenServer, source: string): Promise<{ replicas: Replica[]; keyPrefix: string; encryptionKey: string; dir: string }> {
  const keyPrefix = newKeyPrefix(label);
  const encryptionKey = newEncryptionKey();
  const dir = tmpDir(label);
  const yaml = replicaYaml({
    redisUrl: REDIS_URL, keyPrefix, encryptionKey, source,
    // Coordination through a working store is what this pins; a loaded machine must not turn a
    // slow Redis round trip into an outage (see single-refresh.test.ts).
    redisExtra: 'commandTimeout: 1s, connectTimeout: 5s',
    resilience: '{ timeout: 5s, retries: 1, backoff: { base: 100ms, max: 500ms } }',
  });
  const replicas = await Promise.all(['r1', 'r2', 'r3'].map((n) => Replica.start(n, yaml, dir)));
  await Promise.all(replicas.map((r) => r.ready));
  return { replicas, keyPrefix, encryptionKey, dir };
}

/** Bursts of Checks on every replica until the first token has expired and `afterMs` more. */
async function watchPastFirstExpiry(idp: DemoTokenServer, replicas: Replica[], afterMs: number, each?: () => Promise<void>): Promise<BurstResult> {
  const firstAt = idp.requests[0]!.at;
  const until = firstAt + FIRST_TTL_S * 1_000 + afterMs;
  const bursts: BurstResult[] = [];
  while (Date.now() < until) {
    bursts.push(...(await Promise.all(replicas.map((r) => burst(r.client, 20)))));
    await each?.();
    await sleep(400);
  }
  return merge(bursts);
}

function gapsOf(idp: DemoTokenServer): number[] {
  const at = idp.requests.map((r) => r.at);
  return at.slice(1).map((t, i) => t - at[i]!);
}

describe.skipIf(!(await redisAvailable()))('fenced write on a shortened lifetime (30 s token, then 10 s ones)', () => {
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0)) await c();
  });
  afterAll(async () => {
    for (const c of cleanups.splice(0)) await c();
  });

  async function setUp(label: string, idp: DemoTokenServer, source: string) {
    const set = await startReplicas(label, idp, source);
    cleanups.push(async () => {
      await Promise.all(set.replicas.map((r) => r.stop()));
      await idp.stop();
      await deleteKeys(REDIS_URL, set.keyPrefix);
      removeTmpDir(set.dir);
    });
    return set;
  }

  it('client_credentials: exactly one IdP request per refresh cycle after the lifetime drops', async () => {
    const idp = new DemoTokenServer({ tokenTtlSeconds: FIRST_TTL_S });
    await idp.start();
    const { replicas } = await setUp('shortened-cc', idp, ccSource(idp));
    expect(idp.tokenRequestCount).toBe(1);
    idp.setTokenTtl(LATER_TTL_S);
    const startedAt = idp.requests[0]!.at;
    const all = await watchPastFirstExpiry(idp, replicas, 3_000);
    const gaps = gapsOf(idp);
    console.log(`shortened lifetime (cc): ${idp.tokenRequestCount} token requests, gaps ${gaps.join(',')} ms, ${all.ok} Checks ok / ${all.failed} failed`);
    expect(all.failures.slice(0, 5)).toEqual([]);
    // The first refresh after the drop, then at least two more 10 s cycles before the end.
    expect(idp.tokenRequestCount).toBeGreaterThanOrEqual(4);
    // Two replicas refreshing one cycle are milliseconds apart; one per cycle is 4-4.5 s apart.
    expect(Math.min(...gaps)).toBeGreaterThan(1_000);
    expect(idp.tokenRequestCount).toBeLessThanOrEqual(2 + Math.ceil((Date.now() - startedAt - 12_000) / MIN_CYCLE_MS));
    expect(idp.requests.every((r) => r.status === 200)).toBe(true);
  }, 90_000);

  it('rotating refresh token with reuse detection: every rotated refresh token is stored, none presented twice, the grant lives', async () => {
    const idp = new DemoTokenServer({ tokenTtlSeconds: FIRST_TTL_S, refreshTokens: ['rt-initial-grant'] });
    await idp.start();
    const { replicas, keyPrefix, encryptionKey } = await setUp('shortened-rt', idp, rtSource(idp, 'rt-initial-grant'));
    const store = await connect(storeConfig(REDIS_URL, keyPrefix, Buffer.from(encryptionKey, 'base64'), { commandTimeout: 1_000 }));
    cleanups.push(() => store.close());
    const key = await findTokenKey(keyPrefix);
    expect(idp.tokenRequestCount).toBe(1);
    idp.setTokenTtl(LATER_TTL_S);
    // After each rotation, the store holds the newest refresh token once the lock holder is done
    // (it is written before the lock is released; a Check burst and 400 ms pass between looks).
    const unstored: string[] = [];
    let seen = 1;
    const all = await watchPastFirstExpiry(idp, replicas, 3_000, async () => {
      const n = idp.issuedRefreshTokens.length;
      if (n === seen) return;
      await sleep(300);
      seen = idp.issuedRefreshTokens.length;
      const stored = await store.read(key);
      if (stored?.refreshToken !== idp.issuedRefreshTokens.at(-1)) unstored.push(`after request ${seen}: store holds rotation #${idp.issuedRefreshTokens.indexOf(stored?.refreshToken ?? '') + 1}`);
    });
    const gaps = gapsOf(idp);
    const unsafe = replicas.flatMap((r) => r.logs).filter((l) => JSON.stringify(l).includes('ERR_REFRESH_UNSAFE'));
    console.log(`shortened lifetime (rotating): ${idp.tokenRequestCount} token requests, gaps ${gaps.join(',')} ms, invalid_grant ${idp.invalidGrantCount}, ${unsafe.length} ERR_REFRESH_UNSAFE lines, ${all.ok} Checks ok / ${all.failed} failed`);
    expect(unstored).toEqual([]);
    expect(unsafe.slice(0, 3)).toEqual([]);
    expect(idp.maxPresentations).toBe(1);
    expect(idp.reuseDetectedCount).toBe(0);
    expect(idp.invalidGrantCount).toBe(0);
    expect(idp.anyFamilyRevoked).toBe(false);
    expect(idp.tokenRequestCount).toBeGreaterThanOrEqual(4);
    expect(Math.min(...gaps)).toBeGreaterThan(1_000);
    expect(idp.requests.every((r) => r.grantType === 'refresh_token' && r.status === 200)).toBe(true);
    expect(all.failures.slice(0, 5)).toEqual([]);
    // The grant is alive: the newest refresh token is still valid at the IdP.
    expect(idp.refreshTokenState(idp.issuedRefreshTokens.at(-1)!)).toBe('valid');
  }, 90_000);
});

/** The one token record under `keyPrefix` (the store key hashes the provider's config). */
async function findTokenKey(keyPrefix: string): Promise<string> {
  const { Redis } = await import('ioredis');
  const raw = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
  try {
    const keys = await raw.keys(`${keyPrefix}*:token`);
    expect(keys).toHaveLength(1);
    return keys[0]!;
  } finally {
    raw.disconnect();
  }
}
