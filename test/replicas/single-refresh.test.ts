// Three tokengate processes on one Redis behave as one: one IdP request at a cold start, one
// per expiry after that, whatever the load on each replica.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DemoTokenServer } from '../../demo/token-server.js';
import { ccSource } from '../support/world.js';
import { REDIS_URL, redisAvailable } from '../support/redis.js';
import { burst, deleteKeys, merge, newEncryptionKey, newKeyPrefix, removeTmpDir, Replica, replicaYaml, sleep, tmpDir, type BurstResult } from '../support/replicas.js';

const CHECKS_PER_REPLICA = 300;

describe.skipIf(!(await redisAvailable()))('three replicas, one refresh', () => {
  let idp: DemoTokenServer;
  let replicas: Replica[] = [];
  const dir = tmpDir('single-refresh');
  const keyPrefix = newKeyPrefix('cold');

  beforeAll(async () => {
    // 6 s tokens: the refresh window opens ~2.7 s after each fetch (minus up to 10% jitter of
    // the 3 s lead), hard expiry at ~5.7 s. Short enough for several cycles, long enough that a
    // busy 2-core machine does not push a fresh token into its refresh window on arrival.
    idp = new DemoTokenServer({ tokenTtlSeconds: 6 });
    await idp.start();
    // The IdP is slow at first, so all three replicas are up and asking before the first token
    // exists (and slow enough only that the token is not due for refresh when it arrives).
    idp.setBehaviourSequence([{ kind: 'delay', ms: 1_000 }]);
  });

  afterAll(async () => {
    await Promise.all(replicas.map((r) => r.stop()));
    await idp?.stop();
    await deleteKeys(REDIS_URL, keyPrefix);
    removeTmpDir(dir);
  });

  it('cold start: 300 concurrent Checks on each of three replicas → exactly one token request', async () => {
    const yaml = replicaYaml({
      redisUrl: REDIS_URL, keyPrefix, encryptionKey: newEncryptionKey(),
      source: ccSource(idp),
    });
    replicas = await Promise.all(['r1', 'r2', 'r3'].map((n) => Replica.start(n, yaml, dir)));
    // Listening, but the token is still being fetched: every Check waits for the one refresh.
    const results = await Promise.all(replicas.map((r) => burst(r.client, CHECKS_PER_REPLICA)));
    const all = merge(results);
    expect(all.failures.slice(0, 5)).toEqual([]);
    expect(all.ok).toBe(3 * CHECKS_PER_REPLICA);
    expect(all.tokens.size).toBe(1);
    expect(idp.tokenRequestCount).toBe(1);
    await Promise.all(replicas.map((r) => r.ready));
    expect(idp.tokenRequestCount).toBe(1);
  });

  it('at each expiry, over several cycles: exactly one token request per cycle', async () => {
    const start = idp.tokenRequestCount;
    const startedAt = Date.now();
    const bursts: BurstResult[] = [];
    // ~5 cycles of 2.4–2.7 s, with a burst of 300 concurrent Checks per replica every 500 ms.
    while (Date.now() - startedAt < 13_000) {
      bursts.push(...(await Promise.all(replicas.map((r) => burst(r.client, CHECKS_PER_REPLICA)))));
      await sleep(500);
    }
    const all = merge(bursts);
    expect(all.failures.slice(0, 5)).toEqual([]);
    const requests = idp.requests.slice(start);
    const gaps = requests.slice(1).map((r, i) => r.at - requests[i]!.at);
    const storeFailures = replicas.flatMap((r) => r.logs).filter((l) => l.msg === 'shared store operation failed; continuing without it').length;
    console.log(`expiry cycles: ${requests.length} token requests in ${Date.now() - startedAt} ms, gaps ${gaps.join(',')} ms, ${all.ok} Checks ok, ${all.tokens.size} distinct tokens served, ${storeFailures} store command failures`);
    expect(requests.length).toBeGreaterThanOrEqual(4);
    // Two replicas refreshing for one expiry would be milliseconds apart (both react to the same
    // moment); one per cycle is ~2.5 s apart, less when a starved event loop delays a response.
    expect(Math.min(...gaps)).toBeGreaterThan(500);
    expect(requests.length).toBeLessThanOrEqual(Math.ceil((Date.now() - startedAt) / 2_000) + 1);
    expect(requests.every((r) => r.status === 200)).toBe(true);
    // Every token the IdP issued was served by the replicas, and nothing else was.
    const issued = new Set(idp.issuedAccessTokens.map((t) => `Bearer ${t}`));
    for (const t of all.tokens) expect(issued.has(t)).toBe(true);
  }, 40_000);
});
