// Regression: a SUBSCRIBE that failed while the events connection stayed up was never tried
// again until the next reconnect, so the replica missed every store event (new tokens,
// upstream refusals) for as long as the connection lived. A failure now retries with the
// reconnect backoff until it succeeds. Uses its own redis-server (ACLs are changed).
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Metrics } from '../../src/observability/metrics.js';
import { storeKey, type StoreEvent } from '../../src/store/store.js';
import { redisAvailable } from '../support/redis.js';
import { RedisServer } from '../support/redis-server.js';
import { until } from '../support/until.js';
import { connect, storeConfig } from './helpers.js';

describe.skipIf(!(await redisAvailable()))('RedisStore subscribe retry', () => {
  const encryptionKey = randomBytes(32);
  const prefix = 'tgtest-subretry:';
  let redis: RedisServer;
  let admin: Redis;

  beforeAll(async () => {
    redis = await RedisServer.start();
    admin = new Redis(redis.url, { lazyConnect: true });
    await admin.connect();
    // A user that may run every command on every key but may not use any channel yet: its
    // SUBSCRIBE fails with NOPERM while the connection itself stays ready.
    await admin.call('ACL', 'SETUSER', 'replica', 'on', '>pw', '~*', 'resetchannels', '+@all');
  });

  afterAll(async () => {
    admin?.disconnect();
    await redis?.stop();
  });

  it('a subscribe refused on a live connection is retried until it succeeds, without a reconnect', async () => {
    const logs: string[] = [];
    const metrics = new Metrics();
    const url = `redis://replica:pw@127.0.0.1:${redis.port}/0`;
    const store = await connect(storeConfig(url, prefix, encryptionKey, { commandTimeout: 200 }), logs, metrics);
    const publisher = await connect(storeConfig(redis.url, prefix, encryptionKey, { commandTimeout: 200 }));
    try {
      expect(store.healthy()).toBe(true);
      expect(logs.some((l) => l.includes('redis subscribe failed'))).toBe(true);
      await until(() => metrics.storeErrors.get({ op: 'subscribe' }) >= 4, 5_000);

      // The operator fixes the ACL; Redis keeps the connection (permissions were added).
      const clientsBefore = Number((await admin.call('INFO', 'clients') as string).match(/connected_clients:(\d+)/)![1]);
      await admin.call('ACL', 'SETUSER', 'replica', 'allchannels');

      const got: StoreEvent[] = [];
      store.subscribe((e) => got.push(e));
      const event: StoreEvent = { provider: 'p', key: storeKey(prefix, 'p', '0000000000000000'), token_id: 't1', kind: 'updated', origin: 'other' };
      await until(async () => {
        await publisher.publish(event);
        return got.length > 0;
      }, 8_000);
      expect(got[0]).toMatchObject({ token_id: 't1', kind: 'updated' });
      // It was the retry on the same connection, not a reconnect, that subscribed.
      const clientsAfter = Number((await admin.call('INFO', 'clients') as string).match(/connected_clients:(\d+)/)![1]);
      expect(clientsAfter).toBe(clientsBefore);
      expect(logs.some((l) => l.includes('redis subscribed after failures'))).toBe(true);
    } finally {
      await store.close();
      await publisher.close();
    }
  });
});
