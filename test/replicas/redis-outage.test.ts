// Redis dies under load: Checks keep succeeding (each replica serves its L1 and refreshes on its
// own), and when Redis comes back the replicas converge on one shared token again.
// Uses its own redis-server: it is killed and restarted.
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DemoTokenServer } from '../../demo/token-server.js';
import { ccSource } from '../support/world.js';
import { RecordCipher } from '../../src/store/crypto.js';
import { redisAvailable } from '../support/redis.js';
import { RedisServer } from '../support/redis-server.js';
import { burst, merge, newEncryptionKey, newKeyPrefix, removeTmpDir, Replica, replicaYaml, sleep, tmpDir, type BurstResult } from '../support/replicas.js';
import { envoyRequest, injected } from '../support/envoy-request.js';

describe.skipIf(!(await redisAvailable()))('Redis outage under load', () => {
  let idp: DemoTokenServer;
  let redis: RedisServer;
  let replicas: Replica[] = [];
  const keyPrefix = newKeyPrefix('outage');
  const dir = tmpDir('outage');
  const encryptionKey = newEncryptionKey();

  beforeAll(async () => {
    redis = await RedisServer.start();
    idp = new DemoTokenServer({ tokenTtlSeconds: 3 });
    await idp.start();
    const yaml = replicaYaml({
      redisUrl: redis.url, keyPrefix, encryptionKey,
      source: ccSource(idp),
    });
    replicas = await Promise.all(['r1', 'r2', 'r3'].map((n) => Replica.start(n, yaml, dir)));
    await Promise.all(replicas.map((r) => r.ready));
  });

  afterAll(async () => {
    await Promise.all(replicas.map((r) => r.stop()));
    await idp?.stop();
    await redis?.stop();
    removeTmpDir(dir);
  });

  /** The token each replica serves right now. */
  async function served(): Promise<string[]> {
    return Promise.all(replicas.map(async (r) => injected(await r.client.check(envoyRequest({ authority: 'api.example.com' })))?.header?.value ?? '(none)'));
  }

  /** The access token stored in Redis (decrypted), if any. */
  async function storedToken(): Promise<string | undefined> {
    const client = new Redis(redis.url, { lazyConnect: true, maxRetriesPerRequest: 0 });
    try {
      await client.connect();
      const [key] = (await client.keys(`${keyPrefix}*`)).filter((k) => k.endsWith(':token'));
      if (!key) return undefined;
      const sealed = await client.hgetBuffer(key, 'v');
      if (!sealed) return undefined;
      return (JSON.parse(new RecordCipher(Buffer.from(encryptionKey, 'base64')).open(sealed, key).toString('utf8')) as { accessToken: string }).accessToken;
    } finally {
      client.disconnect();
    }
  }

  it('zero failed Checks while Redis is down; one shared token again once it is back', async () => {
    const results: BurstResult[] = [];
    let running = true;
    const load = (async () => {
      while (running) {
        results.push(...(await Promise.all(replicas.map((r) => burst(r.client, 50)))));
        await sleep(100);
      }
    })();

    await sleep(1_500);
    const beforeOutage = idp.tokenRequestCount;
    await redis.stop('SIGKILL');
    const outageStarted = Date.now();
    await sleep(5_000); // ~4 refresh cycles without Redis
    const duringOutage = idp.tokenRequestCount - beforeOutage;
    const outageMs = Date.now() - outageStarted;
    expect(results.reduce((n, r) => n + r.failed, 0)).toBe(0);

    await redis.start(); // empty: no persistence
    const back = Date.now();
    let converged: string | undefined;
    while (Date.now() - back < 10_000) {
      const tokens = await served();
      const stored = await storedToken().catch(() => undefined);
      if (stored && tokens.every((t) => t === `Bearer ${stored}`)) {
        converged = stored;
        break;
      }
      await sleep(200);
    }
    const convergedAfterMs = Date.now() - back;
    expect(converged).toBeDefined();

    // Back to one request per cycle.
    const afterReturn = idp.tokenRequestCount;
    const since = Date.now();
    await sleep(4_000);
    running = false;
    await load;
    const cycles = idp.requests.filter((r) => r.at >= since);
    const gaps = cycles.slice(1).map((r, i) => r.at - cycles[i]!.at);
    const all = merge(results);
    console.log(`redis outage: ${duringOutage} token requests in ${outageMs} ms without Redis (3 replicas on their own), converged ${convergedAfterMs} ms after Redis returned, then ${idp.tokenRequestCount - afterReturn} requests in 4 s (gaps ${gaps.join(',')} ms); Checks ${all.ok} ok / ${all.failed} failed`);
    expect(all.failures.slice(0, 5)).toEqual([]);
    expect(all.failed).toBe(0);
    // Without Redis each replica refreshed on its own: more than one request per cycle.
    expect(duringOutage).toBeGreaterThan(3);
    if (gaps.length) expect(Math.min(...gaps)).toBeGreaterThan(900);
    const logs = replicas.flatMap((r) => r.logs);
    expect(logs.some((l) => l.msg === 'redis connection lost; retrying in the background')).toBe(true);
    expect(logs.some((l) => l.msg === 'redis connection restored')).toBe(true);
  }, 60_000);
});
