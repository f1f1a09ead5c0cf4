// The replica holding the refresh lock dies mid-refresh (SIGKILL while the IdP is slow): no one
// else calls the IdP while its lock stands, and another replica refreshes once it lapses.
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DemoTokenServer } from '../../demo/token-server.js';
import { ccSource } from '../support/world.js';
import { REDIS_URL, redisAvailable } from '../support/redis.js';
import { burst, deleteKeys, merge, newEncryptionKey, newKeyPrefix, removeTmpDir, Replica, replicaYaml, sleep, tmpDir, type BurstResult } from '../support/replicas.js';

// resilience.timeout 2s → lock TTL = timeout + 2 s.
const LOCK_TTL_MS = 4_000;

describe.skipIf(!(await redisAvailable()))('lock holder crash', () => {
  let idp: DemoTokenServer;
  let replicas: Replica[] = [];
  let redis: Redis;
  const keyPrefix = newKeyPrefix('crash');
  const dir = tmpDir('crash');

  beforeAll(async () => {
    redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
    // 10 s tokens: the refresh starts ~4–4.5 s after a fetch, hard expiry at ~9.5 s.
    idp = new DemoTokenServer({ tokenTtlSeconds: 10 });
    await idp.start();
    const yaml = replicaYaml({
      redisUrl: REDIS_URL, keyPrefix, encryptionKey: newEncryptionKey(),
      source: ccSource(idp),
      resilience: '{ timeout: 2s, retries: 1, backoff: { base: 100ms, max: 500ms } }',
    });
    replicas = await Promise.all(['r1', 'r2', 'r3'].map((n) => Replica.start(n, yaml, dir)));
    await Promise.all(replicas.map((r) => r.ready));
  });

  afterAll(async () => {
    await Promise.all(replicas.map((r) => r.stop()));
    await idp?.stop();
    redis?.disconnect();
    await deleteKeys(REDIS_URL, keyPrefix);
    removeTmpDir(dir);
  });

  it('SIGKILL the lock holder mid-refresh: another replica refreshes after the lock TTL', async () => {
    expect(idp.tokenRequestCount).toBe(1);
    // The next token request hangs: whoever takes the lock is stuck in the IdP call.
    idp.setBehaviour({ kind: 'delay', ms: 60_000 });
    await idp.waitForRequests(2, 8_000);
    const [lockKey] = (await redis.keys(`${keyPrefix}*`)).filter((k) => k.endsWith(':lock'));
    expect(lockKey).toBeDefined();
    const [owner, pttl] = await Promise.all([redis.get(lockKey!), redis.pttl(lockKey!)]);
    // Lock values name their holder: host:pid:random.
    const pid = Number(owner!.split(':').at(-2));
    const holder = replicas.find((r) => r.pid === pid);
    expect(holder).toBeDefined();
    await holder!.kill('SIGKILL');
    const killedAt = Date.now();
    idp.setBehaviour({ kind: 'ok' });
    const survivors = replicas.filter((r) => r !== holder);

    const results: BurstResult[] = [];
    let running = true;
    const load = (async () => {
      while (running) {
        results.push(...(await Promise.all(survivors.map((r) => burst(r.client, 50)))));
        await sleep(100);
      }
    })();
    await idp.waitForRequests(3, LOCK_TTL_MS + 5_000);
    const tookOverAfterMs = Date.now() - killedAt;
    await sleep(1_000);
    running = false;
    await load;

    const newest = `Bearer ${idp.issuedAccessTokens.at(-1)}`;
    const now = await Promise.all(survivors.map((r) => burst(r.client, 1)));
    const all = merge(results);
    console.log(`lock holder crash: lock PTTL ${pttl} ms at the kill, next token request ${tookOverAfterMs} ms after it; ${idp.tokenRequestCount} requests in all; Checks ${all.ok} ok / ${all.failed} failed`);
    // Nobody called the IdP while the dead holder's lock stood, and someone did soon after it lapsed.
    expect(tookOverAfterMs).toBeGreaterThanOrEqual(pttl - 150);
    expect(tookOverAfterMs).toBeLessThan(pttl + 2_000);
    expect(pttl).toBeLessThanOrEqual(LOCK_TTL_MS);
    expect(idp.tokenRequestCount).toBe(3);
    expect(all.failures.slice(0, 5)).toEqual([]);
    for (const r of now) expect([...r.tokens]).toEqual([newest]);
  }, 40_000);
});
