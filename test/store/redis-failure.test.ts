// Redis trouble never blocks: with Redis down, hung or not there yet, every store call fails
// within about the command timeout, startup takes at most the connect timeout, and the store
// rejoins (events included) once Redis is back. Uses its own redis-server, never the shared one.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Metrics } from '../../src/observability/metrics.js';
import { storeKey, type StoreEvent, type TokenStore } from '../../src/store/store.js';
import { redisAvailable } from '../support/redis.js';
import { freePort, RedisServer } from '../support/redis-server.js';
import { connect, record, storeConfig } from './helpers.js';
import { until } from '../support/until.js';

const COMMAND_TIMEOUT = 50;
const CONNECT_TIMEOUT = 300;
/**
 * "Fails fast" means well under a second, against ioredis's defaults of ~73 s (refused) or
 * forever (hung). The bound is loose on purpose: this machine is shared and noisy.
 */
const FAST_MS = 1_000;

/** How long `p` takes to settle, and whether it rejected. */
async function timed(p: Promise<unknown>): Promise<{ ms: number; rejected: boolean }> {
  const t0 = performance.now();
  try {
    await p;
    return { ms: performance.now() - t0, rejected: false };
  } catch {
    return { ms: performance.now() - t0, rejected: true };
  }
}

function everyOp(store: TokenStore, key: string): Promise<unknown>[] {
  return [
    store.read(key),
    store.write(key, record()),
    store.remove(key, 'x'),
    store.tryLock(`${key}:lock`, 1_000),
    store.claimRefresh!(key, 'me'),
    store.publish({ provider: 'p', key, token_id: 't', kind: 'updated', origin: 'me' }),
  ];
}

describe.skipIf(!(await redisAvailable()))('RedisStore when Redis is in trouble', () => {
  const encryptionKey = randomBytes(32);
  const prefix = 'tgtest-failure:';
  const key = storeKey(prefix, 'p', '0000000000000000');
  let redis: RedisServer;

  beforeAll(async () => {
    redis = await RedisServer.start();
  });

  afterAll(async () => {
    await redis?.stop();
  });

  it('Redis killed: every operation rejects at once; the store rejoins (and resubscribes) when it returns', async () => {
    const metrics = new Metrics();
    const store = await connect(storeConfig(redis.url, prefix, encryptionKey, { commandTimeout: COMMAND_TIMEOUT, connectTimeout: CONNECT_TIMEOUT }), [], metrics);
    const listener = await connect(storeConfig(redis.url, prefix, encryptionKey, { commandTimeout: COMMAND_TIMEOUT, connectTimeout: CONNECT_TIMEOUT }));
    try {
      expect(store.healthy()).toBe(true);
      await redis.stop('SIGKILL');
      await until(() => !store.healthy());
      for (const r of await Promise.all(everyOp(store, key).map(timed))) {
        expect(r.rejected).toBe(true);
        expect(r.ms).toBeLessThan(FAST_MS);
      }
      expect(metrics.storeErrors.get({ op: 'connection' })).toBeGreaterThanOrEqual(1);

      await redis.start();
      // Reconnect backoff is capped at 1 s.
      await until(() => store.healthy() && listener.healthy(), 3_000);
      const rec = record();
      expect(await store.write(key, rec)).toBe(true);
      expect((await store.read(key))?.tokenId).toBe(rec.tokenId);
      // The dedicated subscriber connection subscribed again by itself.
      const got: StoreEvent[] = [];
      listener.subscribe((e) => got.push(e));
      const event: StoreEvent = { provider: 'p', key, token_id: rec.tokenId, kind: 'updated', origin: 'me' };
      await until(() => {
        void store.publish(event).catch(() => undefined);
        return got.length > 0;
      }, 3_000);
      expect(got[0]).toEqual(event);
    } finally {
      await store.close();
      await listener.close();
    }
  }, 20_000);

  it('Redis hung (SIGSTOP): operations time out after about commandTimeout, never hang', async () => {
    const store = await connect(storeConfig(redis.url, prefix, encryptionKey, { commandTimeout: COMMAND_TIMEOUT, connectTimeout: CONNECT_TIMEOUT }));
    try {
      expect(store.healthy()).toBe(true);
      redis.pause();
      for (const r of await Promise.all(everyOp(store, key).map(timed))) {
        expect(r.rejected).toBe(true);
        expect(r.ms).toBeGreaterThanOrEqual(COMMAND_TIMEOUT - 5);
        expect(r.ms).toBeLessThan(FAST_MS);
      }
    } finally {
      redis.resume();
      await store.close();
    }
    // And the server is fine afterwards.
    const again = await connect(storeConfig(redis.url, prefix, encryptionKey));
    expect(again.healthy()).toBe(true);
    await again.close();
  }, 20_000);

  it('regression: a lock whose SET timed out (but ran later) is released, not left to block every replica', async () => {
    const store = await connect(storeConfig(redis.url, prefix, encryptionKey, { commandTimeout: COMMAND_TIMEOUT }));
    const lockKey = `${key.replace(/:token$/, '')}:lock`;
    try {
      redis.pause();
      await expect(store.tryLock(lockKey, 30_000)).rejects.toThrow(/timed out/);
      redis.resume(); // Redis now runs the SET it had buffered, then our compare-and-delete
      await until(() => store.healthy(), 2_000);
      await new Promise((r) => setTimeout(r, 100));
      const lock = await store.tryLock(lockKey, 1_000);
      expect(lock).toBeDefined();
      await lock!.release();
    } finally {
      redis.resume();
      await store.close();
    }
  }, 20_000);

  it('Redis not there at startup: connect returns within connectTimeout, counts the error, and joins later', async () => {
    const port = await freePort();
    const url = `redis://127.0.0.1:${port}/0`;
    const metrics = new Metrics();
    const logs: string[] = [];
    const t0 = performance.now();
    const store = await connect(storeConfig(url, prefix, encryptionKey, { commandTimeout: COMMAND_TIMEOUT, connectTimeout: CONNECT_TIMEOUT }), logs, metrics);
    const took = performance.now() - t0;
    let late: RedisServer | undefined;
    try {
      expect(took).toBeLessThan(CONNECT_TIMEOUT + FAST_MS);
      expect(store.healthy()).toBe(false);
      expect(metrics.storeErrors.get({ op: 'connect' })).toBe(1);
      expect(logs.some((l) => l.includes('starting without the shared store'))).toBe(true);
      for (const r of await Promise.all(everyOp(store, key).map(timed))) {
        expect(r.rejected).toBe(true);
        expect(r.ms).toBeLessThan(FAST_MS);
      }
      late = await RedisServer.start(port);
      await until(() => store.healthy(), 3_000);
      expect(await store.write(key, record())).toBe(true);
      // The subscription that could not be made at startup is made on `ready`.
      const got: StoreEvent[] = [];
      store.subscribe((e) => got.push(e));
      await until(() => {
        void store.publish({ provider: 'p', key, token_id: 't', kind: 'updated', origin: 'x' }).catch(() => undefined);
        return got.length > 0;
      }, 3_000);
    } finally {
      await store.close();
      await late?.stop();
    }
  }, 20_000);
});
