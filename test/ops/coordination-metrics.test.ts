// The replica-coordination series on a real Redis: two replicas (two TokenManagers, each with
// its own connections, replica id and registry) contending for one provider's refresh lock, a
// lock taken away mid-refresh (lost), one that lapses before release (expired), and a stale
// write the store refuses (fenced). Each registry is rendered and read back with the strict
// Prometheus text parser, the way a scraper would see /metrics.
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { DemoTokenServer } from '../../demo/token-server.js';
import { parseConfig } from '../../src/config/load.js';
import { Metrics } from '../../src/observability/metrics.js';
import type { TokenStore } from '../../src/store/store.js';
import { TokenManager } from '../../src/tokens/manager.js';
import { parsePrometheusText, type PromFamily } from '../support/prom-text.js';
import { REDIS_URL, redisAvailable } from '../support/redis.js';
import { deleteKeys, newKeyPrefix } from '../support/replicas.js';
import { connect, record, storeConfig } from '../store/helpers.js';

const encryptionKey = randomBytes(32);

function sample(families: Map<string, PromFamily>, name: string, labels: Record<string, string>): number {
  const fam = families.get(name) ?? families.get(name.replace(/_(count|sum|bucket)$/, ''));
  const s = fam?.samples.find((x) => x.name === name && Object.entries(labels).every(([k, v]) => x.labels[k] === v));
  return s?.value ?? 0;
}

function scrape(m: Metrics): Map<string, PromFamily> {
  return parsePrometheusText(m.render());
}

function lockCount(m: Metrics, outcome: string): number {
  return m.refreshLocks.get({ provider: 'api', outcome });
}

describe.skipIf(!(await redisAvailable()))('coordination metrics on a real Redis', () => {
  let idp: DemoTokenServer;
  let admin: Redis;
  const prefixes: string[] = [];
  const open: { manager: TokenManager }[] = [];

  beforeAll(async () => {
    idp = new DemoTokenServer({ tokenTtlSeconds: 3600 });
    await idp.start();
    admin = new Redis(REDIS_URL);
  });

  afterEach(async () => {
    await Promise.all(open.splice(0).map((o) => o.manager.close(1_000)));
    idp.setBehaviour({ kind: 'ok' });
  });

  afterAll(async () => {
    await Promise.all(prefixes.map((p) => deleteKeys(REDIS_URL, p)));
    admin.disconnect();
    await idp.stop();
  });

  /** A replica: its own store connections, metrics and replica id, on the shared key prefix. */
  async function replica(keyPrefix: string, timeout = '2s'): Promise<{ manager: TokenManager; metrics: Metrics; store: TokenStore }> {
    const metrics = new Metrics();
    const store = await connect(storeConfig(REDIS_URL, keyPrefix, encryptionKey, { commandTimeout: 1_000 }), [], metrics);
    const config = parseConfig(`
providers:
  api:
    source: { type: client_credentials, tokenUrl: "${idp.tokenUrl}", clientId: demo-client, clientSecret: demo-secret }
    refresh: { waitBudget: 10s }
    resilience: { timeout: ${timeout}, retries: 0 }
`);
    const manager = new TokenManager(config.providers.values(), { store, metrics, keyPrefix });
    open.push({ manager });
    return { manager, metrics, store };
  }

  function prefix(label: string): string {
    const p = newKeyPrefix(label);
    prefixes.push(p);
    return p;
  }

  async function lockKey(keyPrefix: string): Promise<string> {
    let key: string | undefined;
    for (let i = 0; i < 200 && key === undefined; i++) {
      key = (await admin.keys(`${keyPrefix}*:lock`))[0];
      if (key === undefined) await new Promise((r) => setTimeout(r, 10));
    }
    if (key === undefined) throw new Error('no refresh lock appeared');
    return key;
  }

  it('two replicas asking at once: one acquires, the other is contended and waits for its token', async () => {
    const keyPrefix = prefix('contend');
    const [a, b] = await Promise.all([replica(keyPrefix), replica(keyPrefix)]);
    // Slow enough that the second replica finds the lock held while the first fetches.
    idp.setBehaviourSequence([{ kind: 'delay', ms: 600 }]);
    const before = idp.tokenRequestCount;
    const [ta, tb] = await Promise.all([a.manager.getToken('api'), b.manager.getToken('api')]);
    expect(ta.value).toBe(tb.value);
    expect(idp.tokenRequestCount - before).toBe(1);

    const acquired = lockCount(a.metrics, 'acquired') + lockCount(b.metrics, 'acquired');
    const contended = lockCount(a.metrics, 'contended') + lockCount(b.metrics, 'contended');
    expect(acquired).toBe(1);
    expect(contended).toBeGreaterThanOrEqual(1);
    // The follower is the one that was contended; it never held the lock.
    const follower = lockCount(a.metrics, 'acquired') === 1 ? b : a;
    expect(lockCount(follower.metrics, 'contended')).toBeGreaterThanOrEqual(1);
    expect(lockCount(follower.metrics, 'acquired')).toBe(0);

    // What a scraper sees: the families, typed, with the follower's wait covering the fetch.
    const fam = scrape(follower.metrics);
    expect(fam.get('tokengate_refresh_lock_total')?.type).toBe('counter');
    expect(fam.get('tokengate_refresh_lock_wait_seconds')?.type).toBe('histogram');
    expect(fam.get('tokengate_store_fenced_writes_total')?.type).toBe('counter');
    expect(sample(fam, 'tokengate_refresh_lock_total', { provider: 'api', outcome: 'contended' })).toBeGreaterThanOrEqual(1);
    expect(sample(fam, 'tokengate_refresh_lock_wait_seconds_count', { provider: 'api' })).toBe(1);
    expect(sample(fam, 'tokengate_refresh_lock_wait_seconds_sum', { provider: 'api' })).toBeGreaterThan(0.3);
    const leader = follower === a ? b : a;
    expect(sample(scrape(leader.metrics), 'tokengate_refresh_lock_wait_seconds_count', { provider: 'api' })).toBe(1);
    expect(lockCount(a.metrics, 'lost') + lockCount(b.metrics, 'lost') + lockCount(a.metrics, 'expired') + lockCount(b.metrics, 'expired')).toBe(0);
  });

  it('a lock taken away while the holder fetches is counted lost (once), not also expired', async () => {
    const keyPrefix = prefix('lost');
    // timeout 2s: lock TTL 4 s, renewed every ~1.3 s; the fetch outlasts the first renewal.
    const r = await replica(keyPrefix, '2s');
    idp.setBehaviourSequence([{ kind: 'delay', ms: 1_800 }]);
    const got = r.manager.getToken('api').catch((e: unknown) => e);
    await admin.del(await lockKey(keyPrefix));
    await got;
    expect(lockCount(r.metrics, 'acquired')).toBe(1);
    expect(lockCount(r.metrics, 'lost')).toBe(1);
    expect(lockCount(r.metrics, 'expired')).toBe(0);
  });

  it('a lock that lapsed before release (no renewal came in time) is counted expired', async () => {
    const keyPrefix = prefix('expired');
    const r = await replica(keyPrefix, '2s');
    // Shorter than the first renewal (~1.3 s): the lock is gone at release, never seen lost.
    idp.setBehaviourSequence([{ kind: 'delay', ms: 400 }]);
    const got = r.manager.getToken('api');
    await admin.del(await lockKey(keyPrefix));
    await got;
    expect(lockCount(r.metrics, 'expired')).toBe(1);
    expect(lockCount(r.metrics, 'lost')).toBe(0);
  });

  it('a stale writer: the store already holds a newer token, the write is refused and counted', async () => {
    const keyPrefix = prefix('fenced');
    const r = await replica(keyPrefix);
    const other = await connect(storeConfig(REDIS_URL, keyPrefix, encryptionKey, { commandTimeout: 1_000 }));
    try {
      idp.setBehaviourSequence([{ kind: 'delay', ms: 500 }]);
      const got = r.manager.getToken('api');
      // While this replica fetches, another one (paused, then back) stores a token that lives longer.
      const tokenKey = (await lockKey(keyPrefix)).replace(/:lock$/, ':token');
      expect(await other.write(tokenKey, record({ expiresAt: Date.now() + 7_200_000, lifetimeMs: 7_200_000 }))).toBe(true);
      await got;
      expect(r.metrics.fencedWrites.get({ provider: 'api' })).toBe(1);
      expect(sample(scrape(r.metrics), 'tokengate_store_fenced_writes_total', { provider: 'api' })).toBe(1);
    } finally {
      await other.close();
    }
  });
});
