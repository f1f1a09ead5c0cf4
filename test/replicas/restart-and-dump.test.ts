// What Redis holds is unreadable without store.encryptionKey, and it is enough for a replica
// that restarts: it adopts the stored token without asking the IdP.
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DemoTokenServer } from '../../demo/token-server.js';
import { REDIS_URL, redisAvailable } from '../support/redis.js';
import { rtSource } from '../support/world.js';
import { burst, deleteKeys, merge, newEncryptionKey, newKeyPrefix, removeTmpDir, Replica, replicaYaml, tmpDir } from '../support/replicas.js';

const CLIENT_SECRET = 'demo-secret-for-the-dump-test';
const INITIAL_REFRESH_TOKEN = 'rt-initial-for-the-dump-test';

describe.skipIf(!(await redisAvailable()))('what Redis holds', () => {
  let idp: DemoTokenServer;
  let replicas: Replica[] = [];
  let redis: Redis;
  let subscriber: Redis;
  const messages: string[] = [];
  const keyPrefix = newKeyPrefix('dump');
  const dir = tmpDir('dump');
  let yaml: string;

  beforeAll(async () => {
    redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
    subscriber = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
    subscriber.on('message', (_channel: string, message: string) => messages.push(message));
    await subscriber.subscribe(`${keyPrefix}events`);
    idp = new DemoTokenServer({ tokenTtlSeconds: 300, refreshTokens: [INITIAL_REFRESH_TOKEN], clients: { 'demo-client': { secret: CLIENT_SECRET } } });
    await idp.start();
    yaml = replicaYaml({
      redisUrl: REDIS_URL, keyPrefix, encryptionKey: newEncryptionKey(),
      source: rtSource(idp, INITIAL_REFRESH_TOKEN, { clientSecret: CLIENT_SECRET }),
      // This suite pins what Redis holds and what a restart adopts from it, through a working
      // store. With the 50 ms default, a replica starting on a loaded machine saw its first read
      // time out (its own event loop was busy past the timeout) and, as designed for an outage,
      // did not present the rotating refresh token without the store: warm-up ended with no
      // token, health went SERVING, and for the next second (the minimum refresh interval after
      // a failure) its Checks were denied - the restart test's burst came within that second.
      // test/replicas/redis-outage covers the outage path.
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
    subscriber?.disconnect();
    await deleteKeys(REDIS_URL, keyPrefix);
    removeTmpDir(dir);
  });

  it('a dump of every key contains no token, refresh token or client secret', async () => {
    expect(idp.tokenRequestCount).toBe(1);
    const keys = await redis.keys(`${keyPrefix}*`);
    expect(keys.some((k) => k.endsWith(':token'))).toBe(true);
    const parts: Buffer[] = [];
    for (const key of keys) {
      parts.push(Buffer.from(key));
      const type = await redis.type(key);
      if (type === 'string') parts.push((await redis.getBuffer(key)) ?? Buffer.alloc(0));
      else if (type === 'hash') for (const [f, v] of Object.entries(await redis.hgetallBuffer(key))) parts.push(Buffer.from(f), v);
      else throw new Error(`unexpected ${type} key ${key}`);
    }
    parts.push(...messages.map((m) => Buffer.from(m)));
    const dump = Buffer.concat(parts);
    const secrets = [...idp.issuedAccessTokens, ...idp.issuedRefreshTokens, INITIAL_REFRESH_TOKEN, CLIENT_SECRET];
    expect(secrets.length).toBeGreaterThanOrEqual(4);
    for (const s of secrets) {
      expect(dump.includes(Buffer.from(s))).toBe(false);
      expect(dump.includes(Buffer.from(Buffer.from(s).toString('base64')))).toBe(false);
    }
    // The channel carried the update, by token id only.
    expect(messages.length).toBeGreaterThanOrEqual(1);
    expect(JSON.parse(messages[0]!)).toMatchObject({ provider: 'p', kind: 'updated' });
  });

  it('restarting every replica reuses the stored token: zero extra IdP calls', async () => {
    const before = merge(await Promise.all(replicas.map((r) => burst(r.client, 20))));
    expect(before.tokens.size).toBe(1);
    await Promise.all(replicas.map((r) => r.stop()));
    replicas = await Promise.all(['r4', 'r5', 'r6'].map((n) => Replica.start(n, yaml, dir)));
    await Promise.all(replicas.map((r) => r.ready));
    const after = merge(await Promise.all(replicas.map((r) => burst(r.client, 100))));
    expect(after.failures.slice(0, 5)).toEqual([]);
    expect([...after.tokens]).toEqual([...before.tokens]);
    expect(idp.tokenRequestCount).toBe(1);
  });
});
