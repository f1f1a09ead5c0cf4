// A rotating refresh token shared by three replicas: each rotation is presented once, by one
// replica, and stored before the lock is released. The IdP revokes the whole grant on reuse,
// so a single double presentation would show up as invalid_grant.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DemoTokenServer } from '../../demo/token-server.js';
import { REDIS_URL, redisAvailable } from '../support/redis.js';
import { rtSource } from '../support/world.js';
import { burst, deleteKeys, merge, newEncryptionKey, newKeyPrefix, removeTmpDir, Replica, replicaYaml, sleep, tmpDir, type BurstResult } from '../support/replicas.js';

const CYCLES = 20;

describe.skipIf(!(await redisAvailable()))('refresh-token rotation across replicas', () => {
  let idp: DemoTokenServer;
  let replicas: Replica[] = [];
  const keyPrefix = newKeyPrefix('rotation');
  const dir = tmpDir('rotation');

  beforeAll(async () => {
    // 3 s tokens: a refresh every ~1.2–1.35 s.
    idp = new DemoTokenServer({ tokenTtlSeconds: 3, refreshTokens: ['rt-initial-grant'] });
    await idp.start();
    const yaml = replicaYaml({
      redisUrl: REDIS_URL, keyPrefix, encryptionKey: newEncryptionKey(),
      source: rtSource(idp, 'rt-initial-grant'),
    });
    replicas = await Promise.all(['r1', 'r2', 'r3'].map((n) => Replica.start(n, yaml, dir)));
    await Promise.all(replicas.map((r) => r.ready));
  });

  afterAll(async () => {
    await Promise.all(replicas.map((r) => r.stop()));
    await idp?.stop();
    await deleteKeys(REDIS_URL, keyPrefix);
    removeTmpDir(dir);
  });

  it(`${CYCLES} refresh cycles: one request per cycle, zero invalid_grant`, async () => {
    const bursts: BurstResult[] = [];
    const deadline = Date.now() + 50_000;
    while (idp.tokenRequestCount < CYCLES + 1 && Date.now() < deadline) {
      bursts.push(...(await Promise.all(replicas.map((r) => burst(r.client, 50)))));
      await sleep(300);
    }
    const all = merge(bursts);
    const requests = [...idp.requests];
    const gaps = requests.slice(1).map((r, i) => r.at - requests[i]!.at);
    console.log(`rotation: ${requests.length} token requests, gaps ${gaps.join(',')} ms, invalid_grant ${idp.invalidGrantCount}, ${all.ok} Checks ok / ${all.failed} failed`);
    expect(requests.length).toBeGreaterThanOrEqual(CYCLES + 1);
    expect(idp.invalidGrantCount).toBe(0);
    expect(idp.reuseDetectedCount).toBe(0);
    expect(requests.every((r) => r.grantType === 'refresh_token' && r.status === 200)).toBe(true);
    // One presentation per rotation: each request was answered with a new refresh token.
    expect(idp.issuedRefreshTokens.length).toBe(requests.length);
    expect(new Set(idp.issuedRefreshTokens).size).toBe(requests.length);
    // Two replicas racing for one cycle would be milliseconds apart.
    expect(Math.min(...gaps)).toBeGreaterThan(300);
    expect(all.failures.slice(0, 5)).toEqual([]);
    // The grant is alive: the newest refresh token is still valid at the IdP.
    expect(idp.refreshTokenState(idp.issuedRefreshTokens.at(-1)!)).toBe('valid');
  }, 75_000);
});
