// The replica holding the refresh lock dies mid-refresh (SIGKILL while the IdP is slow): no one
// else calls the IdP while its lock stands, and another replica refreshes once it lapses.
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DemoTokenServer } from '../../demo/token-server.js';
import { ccSource } from '../support/world.js';
import { REDIS_URL, redisAvailable } from '../support/redis.js';
import { burst, deleteKeys, merge, newEncryptionKey, newKeyPrefix, removeTmpDir, Replica, replicaYaml, sleep, tmpDir, type BurstResult } from '../support/replicas.js';
import { until } from '../support/until.js';

// resilience.timeout 4s → lock TTL = timeout + 2 s. The timeout is how long the holder stays
// stuck in its IdP call: the test must find and kill it within that time, or the holder's own
// retry (alive, still holding the lock) is taken for the take-over. The test's part (the wait,
// two Redis round trips, the kill) runs in a process as starved as the replicas: 4 s leaves it
// room (not seen failing at 2 s; a margin, not a measured fix).
const LOCK_TTL_MS = 6_000;

describe.skipIf(!(await redisAvailable()))('lock holder crash', () => {
  let idp: DemoTokenServer;
  let replicas: Replica[] = [];
  let redis: Redis;
  const keyPrefix = newKeyPrefix('crash');
  const dir = tmpDir('crash');

  beforeAll(async () => {
    redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
    // 20 s tokens refreshed 15 s before expiry: the refresh starts 2.5–4 s after a fetch, hard
    // expiry at 19 s. The lock lapses at most ~LOCK_TTL_MS + the time to kill after the refresh
    // starts, and the survivors serve the old token until someone takes over, well before 19 s.
    idp = new DemoTokenServer({ tokenTtlSeconds: 20 });
    await idp.start();
    const yaml = replicaYaml({
      redisUrl: REDIS_URL, keyPrefix, encryptionKey: newEncryptionKey(),
      source: ccSource(idp),
      refresh: '{ waitBudget: 3s, before: 15s }',
      resilience: '{ timeout: 4s, retries: 1, backoff: { base: 100ms, max: 500ms } }',
      // What this suite pins is the lock lapsing after a crash, through a working store. With the
      // 50 ms default a replica starting on a loaded machine saw its first read time out (the
      // command was sent, then the event loop was busy for longer) and, holding no token yet,
      // fetched its own as designed for an outage (test/replicas/redis-outage covers that path):
      // two token requests before the test began.
      // connectTimeout likewise: at load 7-10 one replica's connect to the local Redis timed out at
      // the 1 s default while it was starting, and it started without the store (an outage).
      redisExtra: 'commandTimeout: 1s, connectTimeout: 5s',
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
    await idp.waitForRequests(2, 15_000);
    const [lockKey] = (await redis.keys(`${keyPrefix}*`)).filter((k) => k.endsWith(':lock'));
    expect(lockKey).toBeDefined();
    // The lock stands until (when Redis answered PTTL) + pttl: at least until pttlSentAt + pttl,
    // at most until pttlReadAt + pttl.
    const pttlSentAt = Date.now();
    const [owner, pttl] = await Promise.all([redis.get(lockKey!), redis.pttl(lockKey!)]);
    const pttlReadAt = Date.now();
    // Lock values name their holder: host:pid:random.
    const pid = Number(owner!.split(':').at(-2));
    const holder = replicas.find((r) => r.pid === pid);
    expect(holder).toBeDefined();
    await holder!.kill('SIGKILL');
    const killedAfterMs = Date.now() - pttlReadAt;
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
    const [, , takeOver] = await idp.waitForRequests(3, LOCK_TTL_MS + 10_000);
    // A second request for this refresh would come within a poll interval of the first.
    await sleep(1_000);
    running = false;
    await load;

    const newest = `Bearer ${idp.issuedAccessTokens.at(-1)}`;
    const all = merge(results);
    // Measured from the PTTL read, not from the kill: the kill lands later (10-40 ms here at
    // load 6-14, more when the test process is starved) while the lock's clock already runs, so
    // counted from the kill a take-over right when the lock lapsed looked early (one run before
    // this change: 3925 ms after the kill for a PTTL of 3943, inside the 150 ms allowance only
    // by chance).
    const sinceSent = takeOver!.at - pttlSentAt;
    const sinceRead = takeOver!.at - pttlReadAt;
    console.log(`lock holder crash: lock PTTL ${pttl} ms when read, holder killed ${killedAfterMs} ms after the read, next token request ${sinceRead}-${sinceSent} ms after it; ${idp.tokenRequestCount} requests in all; Checks ${all.ok} ok / ${all.failed} failed`);
    // Nobody called the IdP while the dead holder's lock stood, and someone did soon after it lapsed.
    expect(sinceSent).toBeGreaterThanOrEqual(pttl - 50);
    expect(sinceRead).toBeLessThan(pttl + 2_000);
    expect(pttl).toBeLessThanOrEqual(LOCK_TTL_MS);
    expect(idp.tokenRequestCount).toBe(3);
    expect(all.failures.slice(0, 5)).toEqual([]);
    // The replica that did not refresh learns of the new token from its event (or the store).
    await until(async () => (await Promise.all(survivors.map((r) => burst(r.client, 1)))).every((r) => r.ok === 1 && r.tokens.has(newest)), 5_000, 'both survivors serving the new token');
  }, 60_000);
});
