// Three tokengate processes on one Redis behave as one: one IdP request at a cold start, one
// per expiry after that, whatever the load on each replica.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DemoTokenServer } from '../../demo/token-server.js';
import { ccSource } from '../support/world.js';
import { REDIS_URL, redisAvailable } from '../support/redis.js';
import { burst, deleteKeys, merge, newEncryptionKey, newKeyPrefix, removeTmpDir, Replica, replicaYaml, sleep, tmpDir, type BurstResult } from '../support/replicas.js';

const CHECKS_PER_REPLICA = 300;
// 20 s tokens: hard expiry 19 s after the request was sent (5% skew), refresh lead 10 s, jitter
// up to 10% of it, so every refresh moment is 8-9 s after the previous request was sent. The
// lifetime counts from the send, so a token whose fetch a starved machine stretched arrives with
// less of it left. At load 11-16, the cold fetch (1 s at the IdP, while three replicas start
// and 900 Checks arrive) took 3-4 s end to end, steady-state fetches up to 2 s: 6 s tokens
// (window at 2.4-2.7 s) and 10 s tokens (4.0-4.5 s) arrived due and were refreshed at once
// by the next replica, as the rules say. An IdP shortening lifetimes mid-run (a 30 s token,
// then 10 s ones) is test/replicas/shortened-lifetime.test.ts.
const TOKEN_TTL_S = 20;
/** No two refreshes of one token chain can start closer than this (see TOKEN_TTL_S). */
const MIN_CYCLE_MS = 8_000;
/** Expiry cycles the second test watches, each one a chance for a second replica to refresh. */
const CYCLES = 4;

describe.skipIf(!(await redisAvailable()))('three replicas, one refresh', () => {
  let idp: DemoTokenServer;
  let replicas: Replica[] = [];
  const dir = tmpDir('single-refresh');
  const keyPrefix = newKeyPrefix('cold');

  beforeAll(async () => {
    idp = new DemoTokenServer({ tokenTtlSeconds: TOKEN_TTL_S });
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
      // What this suite pins is coordination through a working store. With the 50 ms default, a
      // loaded CI machine can make a Redis round trip count as an outage, and the designed
      // answer to an outage is a local fetch (test/replicas/redis-outage covers that path).
      // connectTimeout likewise: at load 7-10 one replica's connect to the local Redis timed out at
      // the 1 s default while it was starting, and it started without the store (an outage).
      redisExtra: 'commandTimeout: 1s, connectTimeout: 5s',
      // Likewise for the IdP: the first answer takes 1 s by design, and on a starved machine it
      // reached the replica after the 2 s default timeout, whose retry is a second token
      // request (fetcher.ts retries a timed-out client_credentials grant). The suite is not
      // about IdP timeouts; the lock TTL follows (timeout + 2 s) and no replica dies here.
      resilience: '{ timeout: 10s, retries: 1, backoff: { base: 100ms, max: 500ms } }',
      // Every Check waits for the one cold fetch; that fetch took up to 4 s at load 12-16, and the
      // Checks sent once all three listen waited up to ~2 s of the 3 s budget. 8 s stays under
      // the client's 10 s deadline; how long a Check may wait is not what this suite pins.
      refresh: '{ waitBudget: 8s }',
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
    // A burst of 300 concurrent Checks per replica every 500 ms until CYCLES refreshes have
    // happened (8-9 s apart, longer when the machine is starved), then for another 2 s (a
    // duplicate of the last refresh would come within that), bounded.
    let cyclesDoneAt: number | undefined;
    while (Date.now() - startedAt < 75_000 && (cyclesDoneAt === undefined || Date.now() - cyclesDoneAt < 2_000)) {
      bursts.push(...(await Promise.all(replicas.map((r) => burst(r.client, CHECKS_PER_REPLICA)))));
      await sleep(500);
      if (cyclesDoneAt === undefined && idp.tokenRequestCount - start >= CYCLES) cyclesDoneAt = Date.now();
    }
    const all = merge(bursts);
    expect(all.failures.slice(0, 5)).toEqual([]);
    const requests = idp.requests.slice(start);
    const gaps = requests.slice(1).map((r, i) => r.at - requests[i]!.at);
    const storeFailures = replicas.flatMap((r) => r.logs).filter((l) => l.msg === 'shared store operation failed; continuing without it').length;
    console.log(`expiry cycles: ${requests.length} token requests in ${Date.now() - startedAt} ms, gaps ${gaps.join(',')} ms, ${all.ok} Checks ok, ${all.tokens.size} distinct tokens served, ${storeFailures} store command failures`);
    expect(requests.length).toBeGreaterThanOrEqual(CYCLES);
    // Two replicas refreshing for one expiry would be milliseconds apart (both react to the same
    // moment); one per cycle is 8-9 s apart, less when a starved event loop delays a response.
    expect(Math.min(...gaps)).toBeGreaterThan(500);
    expect(requests.length).toBeLessThanOrEqual(Math.ceil((Date.now() - startedAt) / MIN_CYCLE_MS) + 1);
    expect(requests.every((r) => r.status === 200)).toBe(true);
    // Every token the IdP issued was served by the replicas, and nothing else was.
    const issued = new Set(idp.issuedAccessTokens.map((t) => `Bearer ${t}`));
    for (const t of all.tokens) expect(issued.has(t)).toBe(true);
  }, 120_000);
});
