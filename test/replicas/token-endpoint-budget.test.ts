// Replicas sharing one token-endpoint budget through real Redis: the IdP sees at most
// `burst + maxRate × W` requests in any window W, all replicas together; a 429 one replica gets
// slows every replica; and while Redis is unreachable each replica keeps to its fallbackShare.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { systemClock } from '../../src/clock.js';
import { parseConfig } from '../../src/config/load.js';
import { silentLogger } from '../../src/observability/logger.js';
import { Metrics } from '../../src/observability/metrics.js';
import { createStore } from '../../src/store/create-store.js';
import { TokenManager } from '../../src/tokens/manager.js';
import { REDIS_URL, redisAvailable } from '../support/redis.js';
import { RedisServer } from '../support/redis-server.js';
import { deleteKeys, newEncryptionKey, newKeyPrefix, sleep } from '../support/replicas.js';

const haveRedis = await redisAvailable();

/** A loopback IdP that records who asked when (real time); `throttleNext` answers one request 429. */
class RecordingIdp {
  readonly seen: { at: number; client: string; status: number }[] = [];
  /** The next request from a client whose id starts with this gets 429 with Retry-After: 1. */
  throttleNext: string | undefined;
  private server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      const client = new URLSearchParams(body).get('client_id') ?? '?';
      const throttle = this.throttleNext !== undefined && client.startsWith(this.throttleNext);
      if (throttle) this.throttleNext = undefined;
      this.seen.push({ at: Date.now(), client, status: throttle ? 429 : 200 });
      if (throttle) {
        res.writeHead(429, { 'content-type': 'application/json', 'retry-after': '1' });
        return res.end(JSON.stringify({ error: 'rate_limited' }));
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ access_token: randomBytes(12).toString('hex'), token_type: 'Bearer', expires_in: 3600 }));
    });
  });
  url = '';

  async start(): Promise<void> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise((resolve) => this.server.close(resolve));
  }

  /** Most requests (from clients starting with `prefix`) in any window of `ms` within [from, to). */
  maxIn(ms: number, opts: { prefix?: string; from?: number; to?: number } = {}): number {
    const at = this.seen.filter((r) => r.client.startsWith(opts.prefix ?? '') && r.at >= (opts.from ?? 0) && r.at < (opts.to ?? Infinity)).map((r) => r.at);
    let best = 0;
    for (let i = 0, j = 0; j < at.length; j++) {
      while (at[j]! - at[i]! >= ms) i++;
      best = Math.max(best, j - i + 1);
    }
    return best;
  }

  count(opts: { prefix?: string; from?: number; to?: number }): number {
    return this.seen.filter((r) => r.client.startsWith(opts.prefix ?? '') && r.at >= (opts.from ?? 0) && r.at < (opts.to ?? Infinity)).length;
  }
}

/** One replica: its own store connection and manager, `n` providers named `<name><i>`. */
async function replica(idp: RecordingIdp, name: string, n: number, o: { redisUrl: string; keyPrefix: string; key: string; budget: string }): Promise<TokenManager> {
  const providers = Array.from({ length: n }, (_, i) =>
    `  ${name}${i}: { source: { type: client_credentials, tokenUrl: "${idp.url}/token", clientId: ${name}${i}, clientSecret: s, authMethod: client_secret_post } }`);
  const config = parseConfig([
    // A 1 s command timeout: on this shared, loaded machine the 50 ms default makes a slow answer
    // count as "unreachable", and these tests are about a Redis that answers or is gone.
    `store: { type: redis, redis: { url: "${o.redisUrl}", keyPrefix: "${o.keyPrefix}", commandTimeout: 1s }, encryptionKey: "${o.key}" }`,
    `tokenEndpoints: { "${idp.url}": ${o.budget} }`,
    'providers:', ...providers,
  ].join('\n'), { env: {} });
  const metrics = new Metrics();
  const store = await createStore(config.store, { clock: systemClock, logger: silentLogger, metrics });
  return new TokenManager(config.providers.values(), {
    store, metrics, keyPrefix: o.keyPrefix, ...(config.tokenEndpoints ? { tokenEndpoints: config.tokenEndpoints } : {}),
  });
}

/** Until every replica uses the shared bucket (before its store connects, a replica uses its fallback share). */
async function allShared(replicas: TokenManager[], origin: string, want = true): Promise<boolean[]> {
  const shared = () => replicas.map((m) => m.budgetStatus().find((s) => s.origin === origin)!.shared);
  for (let i = 0; i < 300 && !shared().every((x) => x === want); i++) await sleep(20);
  return shared();
}

/** Starts a refresh of every provider of `m` (warm-up order, through the budget). */
function refreshAll(m: TokenManager): Promise<unknown> {
  return Promise.all(m.names().map((n) => m.provider(n)!.refresh('warm_up').catch(() => undefined)));
}

describe.skipIf(!haveRedis)('token-endpoint budget shared by replicas (Redis)', () => {
  let idp: RecordingIdp;
  const keyPrefix = newKeyPrefix('budget');
  const key = newEncryptionKey();

  beforeAll(async () => {
    idp = new RecordingIdp();
    await idp.start();
  });

  beforeEach(() => {
    idp.seen.length = 0;
  });

  afterAll(async () => {
    await idp.stop();
    await deleteKeys(REDIS_URL, keyPrefix);
  });

  it('three replicas with maxRate 5/s: at most 5/s in total (plus the burst)', async () => {
    const o = { redisUrl: REDIS_URL, keyPrefix: `${keyPrefix}a:`, key, budget: '{ maxRate: 5/s, burst: 5, maxConcurrent: 4 }' };
    const replicas = await Promise.all(['r0p', 'r1p', 'r2p'].map((n) => replica(idp, n, 8, o)));
    try {
      expect(await allShared(replicas, idp.url)).toEqual([true, true, true]);
      const started = Date.now();
      await Promise.all(replicas.map(refreshAll));
      const took = Date.now() - started;
      expect(idp.seen.length).toBe(24);
      // 24 requests, 5 at once, then 5 a second: at least ~3.8 s, whichever replica sends them.
      expect(took).toBeGreaterThanOrEqual(3_400);
      expect(idp.maxIn(1_000)).toBeLessThanOrEqual(5 + 5);
      expect(idp.maxIn(2_000)).toBeLessThanOrEqual(5 + 10);
    } finally {
      await Promise.all(replicas.map((m) => m.close(0)));
    }
  }, 30_000);

  it('a 429 one replica gets halves the rate for both, and its Retry-After holds both back', async () => {
    // maxRate 4/s; A's first request is answered 429 (Retry-After: 1). B never sees a 429.
    const o = { redisUrl: REDIS_URL, keyPrefix: `${keyPrefix}b:`, key, budget: '{ maxRate: 4/s, burst: 2, maxConcurrent: 4 }' };
    const [a, b] = await Promise.all([replica(idp, 'a', 20, o), replica(idp, 'b', 20, o)]);
    const rateOf = (m: TokenManager) => m.budgetStatus().find((s) => s.origin === idp.url)!;
    try {
      expect(await allShared([a, b], idp.url)).toEqual([true, true]);
      idp.throttleNext = 'a';
      const done = Promise.all([refreshAll(a), refreshAll(b)]);
      let lowestB = Infinity;
      let t429 = 0;
      for (let i = 0; i < 60 && t429 === 0; i++) {
        await sleep(50);
        t429 = idp.seen.find((r) => r.status === 429)?.at ?? 0;
      }
      expect(t429).toBeGreaterThan(0);
      for (let i = 0; i < 40; i++) {
        await sleep(100);
        lowestB = Math.min(lowestB, rateOf(b).effectiveRate);
      }
      await done;
      // B took over the halving from Redis: 4/s → 2/s, recovering by 0.4/s a second.
      expect(rateOf(b).throttled).toBe(0);
      expect(lowestB).toBeLessThanOrEqual(2.8);
      expect(rateOf(a).throttled).toBe(1);
      // Retry-After: 1 held both replicas (requests granted just before the 429 may still land early on).
      expect(idp.count({ from: t429 + 300, to: t429 + 950 })).toBe(0);
      // After it: no more than burst + the halved, recovering rate (2.4/s → 3.6/s over 3 s: 9).
      // Per replica at 4/s, as without the shared halving, it would be some 12 from B alone.
      expect(idp.count({ from: t429 + 1_000, to: t429 + 4_000 })).toBeLessThanOrEqual(2 + 9 + 1);
      expect(idp.seen.filter((r) => r.status === 200).length).toBe(40);
      // Recovery: from 2/s by 0.4/s a second, back at 4/s within 5 s of the 429, on both.
      await sleep(Math.max(0, t429 + 5_500 - Date.now()));
      expect([rateOf(a).effectiveRate, rateOf(b).effectiveRate]).toEqual([4, 4]);
    } finally {
      await Promise.all([a, b].map((m) => m.close(0)));
    }
  }, 40_000);
});

describe.skipIf(!haveRedis)('token-endpoint budget while Redis is unreachable', () => {
  let idp: RecordingIdp;
  let redis: RedisServer;
  const keyPrefix = newKeyPrefix('budget-down');
  const key = newEncryptionKey();

  beforeAll(async () => {
    redis = await RedisServer.start();
    idp = new RecordingIdp();
    await idp.start();
  });

  afterAll(async () => {
    await idp.stop();
    await redis.stop();
  });

  it('each replica falls back to fallbackShare × maxRate (not to no limit); the shared bucket takes over again when Redis is back', async () => {
    // maxRate 8/s, fallbackShare 1/4: 2/s per replica (burst 8 × 1/4 = 2) while Redis is away.
    const o = { redisUrl: redis.url, keyPrefix, key, budget: '{ maxRate: 8/s, burst: 8, maxConcurrent: 8, fallbackShare: 1/4 }' };
    const names = ['x', 'y', 'z'];
    const replicas = await Promise.all(names.map((n) => replica(idp, n, 16, o)));
    const [x] = replicas as [TokenManager, ...TokenManager[]];
    try {
      expect(await allShared(replicas, idp.url)).toEqual([true, true, true]);
      await redis.stop();
      expect(await allShared(replicas, idp.url, false)).toEqual([false, false, false]);

      // Down: 16 refreshes wanted at once per replica. Each sends its burst share (2), then 2/s.
      const down = Date.now();
      const pending = Promise.all(replicas.map(refreshAll));
      await sleep(4_000);
      const downEnd = Date.now();
      for (const n of names) {
        const sent = idp.count({ prefix: n, from: down, to: downEnd });
        expect(sent).toBeGreaterThanOrEqual(4); // still sending: a fallback, not a stop
        expect(sent).toBeLessThanOrEqual(2 + 2 * 4 + 1); // burst share + share × rate × 4 s (not 16)
        expect(idp.maxIn(1_000, { prefix: n, from: down, to: downEnd })).toBeLessThanOrEqual(2 + 2 + 1);
      }
      // All together: 3 × 2/s, less than maxRate.
      expect(idp.maxIn(2_000, { from: down, to: downEnd })).toBeLessThanOrEqual(3 * (2 + 2 * 2) + 1);

      // Back: one shared bucket (8/s for all three together) again.
      await redis.start();
      expect(await allShared(replicas, idp.url)).toEqual([true, true, true]);
      await pending;
      expect(idp.seen.filter((r) => r.status === 200).length).toBe(48);
      // One replica alone may now use all of it: x refreshes its 16 providers again (invalidated:
      // no token in the store to adopt instead), far above its fallback share of 2/s.
      const up = Date.now();
      for (const n of x.names()) x.provider(n)!.invalidate();
      for (let i = 0; i < 200 && idp.count({ prefix: 'x', from: up }) < 16; i++) await sleep(20);
      const xAlone = idp.count({ prefix: 'x', from: up, to: up + 1_500 });
      expect(xAlone).toBeGreaterThan(2 + 2 * 1.5 + 1); // more than its fallback share could send
      expect(idp.maxIn(1_000, { from: up })).toBeLessThanOrEqual(8 + 8); // the shared burst + rate, no more
    } finally {
      await Promise.all(replicas.map((m) => m.close(0)));
    }
  }, 60_000);
});
