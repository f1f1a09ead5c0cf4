// The ReplicaCoordinator on its own: a slot, a fetcher, a store and a loopback token endpoint,
// no provider. With the memory store: fetch, store, adopt; the newest stored refresh token is
// the one presented; an ambiguous rotation spends it for good; invalidation's store half. With
// real Redis (a unique key prefix): several "replicas" (a slot + coordinator + store connection
// each, one store key) make one IdP request between them and end up with the same token; a
// fresh stored token is adopted without a fetch; an invalidation reaches the other slots.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import { parseConfig } from '../../src/config/load.js';
import type { ProviderConfig } from '../../src/config/types.js';
import { silentLogger } from '../../src/observability/logger.js';
import { Metrics } from '../../src/observability/metrics.js';
import { RetryAfterGate } from '../../src/resilience/retry-after-gate.js';
import { MemoryStore } from '../../src/store/memory-store.js';
import { storeKey, type StoreEvent, type TokenRecord, type TokenStore } from '../../src/store/store.js';
import { TokenError } from '../../src/tokens/errors.js';
import { Fetcher } from '../../src/tokens/fetcher.js';
import { ReplicaCoordinator } from '../../src/tokens/replica-coordinator.js';
import { createSource } from '../../src/tokens/sources/index.js';
import { tokenId } from '../../src/tokens/token-id.js';
import { TokenSlot } from '../../src/tokens/token-slot.js';
import { REDIS_URL, redisAvailable } from '../support/redis.js';
import { deleteKeys, newEncryptionKey, newKeyPrefix } from '../support/replicas.js';
import { ScriptedIdp, settle } from './support/scripted-idp.js';
import { until } from '../support/until.js';

const SECRET = 'coordinator-test-secret';
const CONFIGURED_RT = 'rt-configured';

function providerConfig(tokenUrl: string, type: 'client_credentials' | 'refresh_token' = 'client_credentials'): ProviderConfig {
  const rt = type === 'refresh_token' ? `, refreshToken: "\${env:RT}"` : '';
  const yaml = `
providers:
  p:
    source: { type: ${type}, tokenUrl: "${tokenUrl}", clientId: c, clientSecret: "\${env:S}"${rt} }
    resilience: { retries: 0, timeout: 2s }
`;
  return parseConfig(yaml, { env: { S: SECRET, RT: CONFIGURED_RT } }).providers.get('p')!;
}

/** One replica's token life for one key: a slot, its coordinator, a fetcher, on a store. */
class Replica {
  readonly slot: TokenSlot;
  readonly coordinator: ReplicaCoordinator;
  readonly events: StoreEvent[] = [];
  private readonly fetcher: Fetcher;
  private readonly closeSource: () => void;
  private readonly unsubscribe: () => void;

  constructor(config: ProviderConfig, readonly store: TokenStore, key: string, clock: ManualClock, readonly id: string, readonly metrics = new Metrics()) {
    this.slot = new TokenSlot({ storeKey: key, label: 'p' }, config, clock, () => 0);
    const source = createSource(config.source);
    this.closeSource = () => source.close?.();
    this.fetcher = new Fetcher(config, { clock, gate: new RetryAfterGate(), logger: silentLogger, metrics }, () => 0.5);
    this.coordinator = new ReplicaCoordinator(this.slot, { config, source }, this.fetcher, { clock, store, logger: silentLogger, metrics, replicaId: id });
    this.unsubscribe = store.subscribe((event) => {
      this.events.push(event);
      void this.coordinator.onStoreEvent(event);
    });
  }

  close(): void {
    this.unsubscribe();
    this.coordinator.quiesce();
    this.fetcher.close();
    this.closeSource();
  }
}

async function rejection(p: Promise<unknown>): Promise<TokenError> {
  const err = await p.then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(TokenError);
  return err as TokenError;
}

function record(clock: ManualClock, fields: Partial<TokenRecord> & { accessToken: string }): TokenRecord {
  const now = clock.now();
  return { tokenType: 'Bearer', tokenId: tokenId(fields.accessToken), obtainedAt: now, expiresAt: now + 600_000, lifetimeMs: 600_000, ...fields };
}

describe('with the memory store (one process)', () => {
  let clock: ManualClock;
  let idp: ScriptedIdp;
  let store: MemoryStore;
  const replicas: Replica[] = [];
  const KEY = storeKey('unit:', 'p', 'memory');

  const replica = (type: 'client_credentials' | 'refresh_token' = 'client_credentials') => {
    const r = new Replica(providerConfig(idp.tokenUrl, type), store, KEY, clock, 'local');
    replicas.push(r);
    return r;
  };

  beforeAll(async () => {
    clock = new ManualClock();
    idp = await new ScriptedIdp(clock).start();
  });
  afterEach(() => {
    replicas.splice(0).forEach((r) => r.close());
    idp.seen.length = 0;
  });
  afterAll(async () => {
    await idp.stop();
  });

  it('fetches, writes the store, and ends in slot.adopt', async () => {
    store = new MemoryStore(() => clock.now());
    const r = replica();
    idp.answers({ token: 'mem-1' });
    const entry = await r.coordinator.coordinate();
    expect(entry.record.accessToken).toBe('mem-1');
    expect(r.slot.peek()).toBe(entry);
    expect((await store.read(KEY))?.accessToken).toBe('mem-1');
    expect(idp.requests).toBe(1);
  });

  it('presents the newest refresh token the store holds, not the configured one, and stores the rotated one', async () => {
    store = new MemoryStore(() => clock.now());
    // An expired access token whose record carries a rotated refresh token.
    await store.write(KEY, record(clock, { accessToken: 'old', refreshToken: 'rt-newest', expiresAt: clock.now() - 1 }));
    const r = replica('refresh_token');
    idp.answers({ token: 'mem-rotated', refreshToken: 'rt-next' });
    const entry = await r.coordinator.coordinate();
    expect(idp.seen[0]!.body.get('refresh_token')).toBe('rt-newest');
    expect(entry.record.refreshToken).toBe('rt-next');
    expect((await store.read(KEY))?.refreshToken).toBe('rt-next');
  });

  it('an ambiguous answer spends the refresh token: it is never presented again', async () => {
    store = new MemoryStore(() => clock.now());
    const r = replica('refresh_token');
    idp.answers({ status: 502 });
    const first = await rejection(r.coordinator.coordinate());
    expect(first.code).toBe('ERR_GRANT_AMBIGUOUS');
    expect(idp.requests).toBe(1);
    expect((await store.read(KEY))?.spentRefreshId).toBe(tokenId(CONFIGURED_RT));
    // A fresh coordinator on the same store (a restart) learns it from the store's spent mark.
    const restarted = replica('refresh_token');
    idp.answers({ token: 'must-not-be-issued' });
    expect((await rejection(restarted.coordinator.coordinate())).code).toBe('ERR_GRANT_AMBIGUOUS');
    expect((await rejection(r.coordinator.coordinate())).code).toBe('ERR_GRANT_AMBIGUOUS');
    expect(idp.requests).toBe(1);
    expect(r.slot.peek()).toBeUndefined();
  });

  it('removeFromStore removes the token and announces it; an event from another replica makes the slot drop it', async () => {
    store = new MemoryStore(() => clock.now());
    const r = replica();
    idp.answers({ token: 'mem-doomed' }, { token: 'mem-next' });
    const entry = await r.coordinator.coordinate();
    // The owner's invalidate: the slot drops it, then the store half.
    expect(r.slot.drop(entry.tokenId)).toBe(true);
    await r.coordinator.removeFromStore(entry.tokenId);
    expect((await store.read(KEY))).toBeUndefined();
    expect(r.events).toEqual([{ provider: 'p', key: KEY, token_id: entry.tokenId, kind: 'invalidated', origin: 'local' }]);
    // Our own event changes nothing; another replica's drops the token it names.
    const next = await r.coordinator.coordinate();
    await r.coordinator.onStoreEvent({ provider: 'p', key: KEY, token_id: next.tokenId, kind: 'invalidated', origin: 'local' });
    expect(r.slot.peek()).toBe(next);
    await r.coordinator.onStoreEvent({ provider: 'p', key: 'some-other-key', token_id: next.tokenId, kind: 'invalidated', origin: 'elsewhere' });
    expect(r.slot.peek()).toBe(next);
    await r.coordinator.onStoreEvent({ provider: 'p', key: KEY, token_id: next.tokenId, kind: 'invalidated', origin: 'elsewhere' });
    expect(r.slot.peek()).toBeUndefined();
    expect(r.slot.wasDropped(next.tokenId)).toBe(true);
  });
});

describe.skipIf(!(await redisAvailable()))('with real Redis (several replicas on one key)', () => {
  const keyPrefix = newKeyPrefix('coordinator');
  const encryptionKey = newEncryptionKey();
  let clock: ManualClock;
  let idp: ScriptedIdp;
  const stores: TokenStore[] = [];
  const replicas: Replica[] = [];
  let n = 0;

  /** A fresh key per test: tests do not see each other's records. */
  const newKey = () => storeKey(keyPrefix, 'p', `case${++n}`);

  async function redisStore(): Promise<TokenStore> {
    const { RedisStore } = await import('../../src/store/redis-store.js');
    // A generous command timeout: the machine is shared and this test is about the protocol.
    const yaml = `
store:
  type: redis
  redis: { url: "${REDIS_URL}", keyPrefix: "${keyPrefix}", commandTimeout: 2s }
  encryptionKey: "${encryptionKey}"
providers:
  p: { source: { type: static, token: x } }
`;
    const store = await RedisStore.connect(parseConfig(yaml).store, { clock, logger: silentLogger, metrics: new Metrics() });
    stores.push(store);
    return store;
  }

  async function replicasOn(key: string, count: number): Promise<Replica[]> {
    const out: Replica[] = [];
    for (let i = 0; i < count; i++) {
      const r = new Replica(providerConfig(idp.tokenUrl), await redisStore(), key, clock, `replica-${i}`);
      replicas.push(r);
      out.push(r);
    }
    return out;
  }

  beforeAll(async () => {
    clock = new ManualClock(Date.now());
    idp = await new ScriptedIdp(clock).start();
  });
  afterEach(async () => {
    replicas.splice(0).forEach((r) => r.close());
    await Promise.all(stores.splice(0).map((s) => s.close()));
    idp.seen.length = 0;
  });
  afterAll(async () => {
    await idp?.stop();
    await deleteKeys(REDIS_URL, keyPrefix);
  });

  it('three replicas coordinating at once: one IdP request, one token in every slot', async () => {
    const key = newKey();
    const rs = await replicasOn(key, 3);
    idp.answers({ token: 'shared-1' });
    // A follower that missed the leader's event polls the store on the clock: keep it moving
    // (slowly: the lock deadline is 12 s of it away).
    const ticker = setInterval(() => clock.advance(100), 20);
    const entries = await Promise.all(rs.map((r) => r.coordinator.coordinate())).finally(() => clearInterval(ticker));
    expect(entries.map((e) => e.record.accessToken)).toEqual(['shared-1', 'shared-1', 'shared-1']);
    expect(rs.map((r) => r.slot.peek()?.record.accessToken)).toEqual(['shared-1', 'shared-1', 'shared-1']);
    expect(idp.requests).toBe(1);
    expect((await rs[0]!.store.read(key))?.accessToken).toBe('shared-1');
  });

  it('a fresh stored token is adopted without asking the IdP', async () => {
    const key = newKey();
    const [first] = await replicasOn(key, 1);
    idp.answers({ token: 'stored-once' });
    await first!.coordinator.coordinate();
    const [late] = await replicasOn(key, 1);
    const entry = await late!.coordinator.coordinate();
    expect(entry.record.accessToken).toBe('stored-once');
    expect(late!.slot.peek()).toBe(entry);
    expect(idp.requests).toBe(1);
  });

  it('fenced write on a shortened lifetime: a rotated refresh token replaces a record an earlier version wrote (no `at`) that expires later', async () => {
    const key = newKey();
    const store = await redisStore();
    const r = new Replica(providerConfig(idp.tokenUrl, 'refresh_token'), store, key, clock, 'replica-new');
    replicas.push(r);
    const now = clock.now();
    // An earlier version stored a 30 s token (hard expiry 28.5 s after its request), due now;
    // its record has no `at`, so the store fences on expiry for it.
    const legacy = record(clock, { accessToken: 'legacy-30s', refreshToken: 'rt-2', obtainedAt: now - 16_500, expiresAt: now + 12_000, lifetimeMs: 30_000 });
    expect(await store.write(key, legacy)).toBe(true);
    const { Redis } = await import('ioredis');
    const raw = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
    try {
      await raw.hdel(key, 'at');
    } finally {
      raw.disconnect();
    }
    const other = new Replica(providerConfig(idp.tokenUrl, 'refresh_token'), await redisStore(), key, clock, 'replica-other');
    replicas.push(other);
    // The IdP now issues 10 s tokens: the rotated one expires before the stored one.
    idp.answers({ token: 'short-10s', expiresIn: 10, refreshToken: 'rt-3' });
    const entry = await r.coordinator.coordinate();
    expect(entry.record.accessToken).toBe('short-10s');
    expect(idp.seen.map((q) => q.body.get('refresh_token'))).toEqual(['rt-2']);
    // Stored (claim cleared with it) and announced: the next lock holder presents rt-3.
    const stored = await store.read(key);
    expect(stored?.refreshToken).toBe('rt-3');
    expect(await store.claimRefresh!(key, 'replica-other')).toBeUndefined();
    await store.releaseRefreshClaim!(key, 'replica-other');
    await until(() => other.slot.peek()?.record.accessToken === 'short-10s');
    // Not even refused once: the write named the record it was refreshed from.
    expect(r.metrics.fencedWrites.get({ provider: 'p' })).toBe(0);
  });

  /** `store`, with `intruder` written (by "another replica") right before the first write. */
  function racing(store: TokenStore, key: string, intruder: TokenRecord, legacy: boolean): TokenStore {
    let raced = false;
    const wrapper = Object.create(store) as TokenStore;
    wrapper.write = async (k, rec, supersedes) => {
      if (!raced) {
        raced = true;
        expect(await store.write(key, intruder)).toBe(true);
        if (legacy) {
          const { Redis } = await import('ioredis');
          const raw = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
          await raw.hdel(key, 'at').finally(() => raw.disconnect());
        }
      }
      return store.write(k, rec, supersedes);
    };
    return wrapper;
  }

  it('fenced write on a shortened lifetime: a rotated refresh token refused by an older record (earlier version, later expiry) replaces it', async () => {
    const key = newKey();
    const now = clock.now();
    // Written behind a lock we lost, by an earlier version: obtained before ours, expires after it.
    const older = record(clock, { accessToken: 'older-30s', refreshToken: 'rt-older', obtainedAt: now - 16_500, expiresAt: now + 12_000, lifetimeMs: 30_000 });
    const store = racing(await redisStore(), key, older, true);
    const r = new Replica(providerConfig(idp.tokenUrl, 'refresh_token'), store, key, clock, 'replica-new');
    replicas.push(r);
    idp.answers({ token: 'short-10s', expiresIn: 10, refreshToken: 'rt-3' });
    const entry = await r.coordinator.coordinate();
    expect(entry.record.accessToken).toBe('short-10s');
    expect((await store.read(key))?.refreshToken).toBe('rt-3');
    expect(r.metrics.fencedWrites.get({ provider: 'p' })).toBe(1);
    await until(() => r.events.some((e) => e.kind === 'updated' && e.token_id === entry.tokenId));
  });

  it('fenced write on a shortened lifetime: a rotated refresh token refused by a record obtained after it is not "written": not announced, not retried', async () => {
    const key = newKey();
    const now = clock.now();
    const newer = record(clock, { accessToken: 'newer', refreshToken: 'rt-newer', obtainedAt: now + 1, expiresAt: now + 9_000, lifetimeMs: 10_000 });
    const store = racing(await redisStore(), key, newer, false);
    const r = new Replica(providerConfig(idp.tokenUrl, 'refresh_token'), store, key, clock, 'replica-new');
    replicas.push(r);
    idp.answers({ token: 'short-10s', expiresIn: 10, refreshToken: 'rt-3' });
    const entry = await r.coordinator.coordinate();
    expect(entry.record.accessToken).toBe('short-10s');
    expect(r.metrics.fencedWrites.get({ provider: 'p' })).toBe(1);
    clock.advance(2_000);
    await settle();
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect((await store.read(key))?.refreshToken).toBe('rt-newer');
    expect(r.events.filter((e) => e.token_id === entry.tokenId)).toEqual([]);
  });

  it("another replica's token arrives by event, and an invalidation reaches every slot", async () => {
    const key = newKey();
    const [a, b] = await replicasOn(key, 2);
    idp.answers({ token: 'evented' });
    const entry = await a!.coordinator.coordinate();
    // b never asked: the 'updated' event alone puts the token in its slot.
    await until(() => b!.slot.peek()?.tokenId === entry.tokenId);
    expect(idp.requests).toBe(1);
    // a invalidates: its slot drops the token, the store removes it, b drops it on the event.
    expect(a!.slot.drop(entry.tokenId)).toBe(true);
    await a!.coordinator.removeFromStore(entry.tokenId);
    await until(() => b!.slot.peek() === undefined);
    expect(await a!.store.read(key)).toBeUndefined();
    // b never adopts the invalidated token again, not even from a stale announcement.
    await b!.coordinator.onStoreEvent({ provider: 'p', key, token_id: entry.tokenId, kind: 'updated', origin: 'replica-0' });
    await settle();
    expect(b!.slot.peek()).toBeUndefined();
    expect(b!.slot.wasDropped(entry.tokenId)).toBe(true);
  });
});
