// RedisStore against a real Redis: record layout, fenced writes, compare-and-delete, the lock,
// refresh-token claims and the event channel.
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseEvent, REFRESH_RETENTION_MS } from '../../src/store/redis-store.js';
import { lockKeyFor, storeKey, type StoreEvent, type TokenStore } from '../../src/store/store.js';
import { REDIS_URL, redisAvailable } from '../support/redis.js';
import { connect, record, storeConfig } from './helpers.js';
import { until } from '../support/until.js';

describe.skipIf(!(await redisAvailable()))('RedisStore', () => {
  const prefix = `tgtest-store-${randomBytes(4).toString('hex')}:`;
  const encryptionKey = randomBytes(32);
  let a: TokenStore;
  let b: TokenStore;
  let raw: Redis;
  const key = storeKey(prefix, 'prov', 'cafebabe01234567');

  beforeAll(async () => {
    raw = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
    a = await connect(storeConfig(REDIS_URL, prefix, encryptionKey));
    b = await connect(storeConfig(REDIS_URL, prefix, encryptionKey));
  });

  afterAll(async () => {
    const keys = await raw.keys(`${prefix}*`);
    if (keys.length) await raw.del(...keys);
    await a?.close();
    await b?.close();
    raw?.disconnect();
  });

  it('connects, is shared and healthy', () => {
    expect(a.shared).toBe(true);
    expect(a.healthy()).toBe(true);
  });

  it('stores an encrypted hash: ciphertext, expiry and token id, nothing readable', async () => {
    const rec = record({ refreshToken: 'rt-plaintext-never-in-redis', scope: 'a b' });
    expect(await a.write(key, rec)).toBe(true);
    expect(await b.read(key)).toEqual(rec);
    const hash = await raw.hgetallBuffer(key);
    expect(Object.keys(hash).sort()).toEqual(['at', 'exp', 'rt', 'tid', 'v']);
    expect(hash.exp!.toString()).toBe(String(rec.expiresAt));
    expect(hash.tid!.toString()).toBe(rec.tokenId);
    const all = Buffer.concat(Object.values(hash));
    expect(all.includes(Buffer.from(rec.accessToken))).toBe(false);
    expect(all.includes(Buffer.from('rt-plaintext-never-in-redis'))).toBe(false);
    await raw.del(key);
  });

  it('TTL is the hard expiry; a record with a refresh token is kept for the refresh token', async () => {
    await a.write(key, record({ expiresAt: Date.now() + 20_000 }));
    const pttl = await raw.pttl(key);
    expect(pttl).toBeGreaterThan(19_000);
    expect(pttl).toBeLessThanOrEqual(20_000);
    await raw.del(key);
    await a.write(key, record({ expiresAt: Date.now() + 20_000, refreshToken: 'rt' }));
    expect(await raw.pttl(key)).toBeGreaterThan(REFRESH_RETENTION_MS - 5_000);
    await raw.del(key);
  });

  it('fenced write: only a later obtained token (or the same token) replaces the stored record', async () => {
    const now = Date.now();
    const first = record({ obtainedAt: now, expiresAt: now + 30_000 });
    const older = record({ obtainedAt: now - 10_000, expiresAt: now + 20_000 });
    const same = record({ obtainedAt: now, expiresAt: now + 30_000 });
    const newer = record({ obtainedAt: now + 10_000, expiresAt: now + 40_000 });
    expect(await a.write(key, first)).toBe(true);
    expect(await b.write(key, older)).toBe(false); // a paused former holder
    expect(await b.write(key, same)).toBe(false); // equal expiry, other token
    expect((await a.read(key))?.tokenId).toBe(first.tokenId);
    expect(await a.write(key, { ...first })).toBe(true); // same token: rewrite allowed
    expect(await b.write(key, newer)).toBe(true);
    expect((await a.read(key))?.tokenId).toBe(newer.tokenId);
    await raw.del(key);
  });

  it('fenced write on a shortened lifetime: a newer token that expires sooner replaces a live older one', async () => {
    const now = Date.now();
    const long = record({ obtainedAt: now - 25_000, expiresAt: now + 5_000, lifetimeMs: 30_000, refreshToken: 'rt-1' });
    const short = record({ obtainedAt: now, expiresAt: now + 1_000, lifetimeMs: 10_000, refreshToken: 'rt-2' });
    expect(await a.write(key, long)).toBe(true);
    expect(await b.write(key, short)).toBe(true);
    expect(await a.read(key)).toEqual(short);
    expect((await raw.hget(key, 'at'))).toBe(String(short.obtainedAt));
    await raw.del(key);
  });

  it('fenced write on a shortened lifetime: a late writer of an older token with a later expiry is still refused', async () => {
    const now = Date.now();
    const newer = record({ obtainedAt: now, expiresAt: now + 10_000, lifetimeMs: 10_000 });
    const late = record({ obtainedAt: now - 25_000, expiresAt: now + 5_000 + 30_000, lifetimeMs: 60_000 });
    expect(await a.write(key, newer)).toBe(true);
    expect(await b.write(key, late)).toBe(false);
    expect(await b.write(key, record({ obtainedAt: now, expiresAt: now + 60_000 }))).toBe(false); // obtained at the same ms
    expect((await a.read(key))?.tokenId).toBe(newer.tokenId);
    await raw.del(key);
  });

  it('fenced write on a shortened lifetime: a record of an earlier version (no `at`) keeps the expiry rule', async () => {
    const now = Date.now();
    const legacy = record({ obtainedAt: now - 25_000, expiresAt: now + 5_000 });
    expect(await a.write(key, legacy)).toBe(true);
    await raw.hdel(key, 'at'); // as an earlier version wrote it
    expect(await b.write(key, record({ obtainedAt: now, expiresAt: now + 1_000 }))).toBe(false);
    expect((await a.read(key))?.tokenId).toBe(legacy.tokenId);
    const later = record({ obtainedAt: now, expiresAt: now + 10_000 });
    expect(await b.write(key, later)).toBe(true);
    expect((await a.read(key))?.tokenId).toBe(later.tokenId);
    await raw.del(key);
  });

  it('fenced write on a shortened lifetime: the record the writer refreshed from is replaced whatever the rule', async () => {
    const now = Date.now();
    const legacy = record({ obtainedAt: now - 25_000, expiresAt: now + 5_000, refreshToken: 'rt-1' });
    expect(await a.write(key, legacy)).toBe(true);
    await raw.hdel(key, 'at');
    const rotated = record({ obtainedAt: now, expiresAt: now + 1_000, refreshToken: 'rt-2' });
    expect(await b.write(key, rotated, 'someone-else')).toBe(false);
    expect(await b.write(key, rotated, legacy.tokenId)).toBe(true);
    expect(await a.read(key)).toEqual(rotated);
    // Not a way around the fence: once another token is stored, naming the old one changes nothing.
    expect(await a.write(key, record({ obtainedAt: now - 30_000, expiresAt: now + 60_000 }), legacy.tokenId)).toBe(false);
    await raw.del(key);
  });

  it('fenced write: an expired stored record (kept for its refresh token) is replaced', async () => {
    const now = Date.now();
    await a.write(key, record({ expiresAt: now - 1_000, obtainedAt: now - 61_000, refreshToken: 'rt-old' }));
    const next = record({ expiresAt: now + 1_000 });
    expect(await a.write(key, next)).toBe(true);
    await raw.del(key);
  });

  it('remove is compare-and-delete on the token id', async () => {
    const rec = record();
    await a.write(key, rec);
    expect(await b.remove(key, 'someone-else')).toBe(false);
    expect((await a.read(key))?.tokenId).toBe(rec.tokenId);
    expect(await b.remove(key, rec.tokenId)).toBe(true);
    expect(await raw.exists(key)).toBe(0);
    expect(await a.read(key)).toBeUndefined();
  });

  it('remove keeps a refresh token: the record reads back expired, with its refresh token', async () => {
    const rec = record({ refreshToken: 'rt-newest' });
    await a.write(key, rec);
    expect(await a.remove(key, rec.tokenId)).toBe(true);
    expect(await a.remove(key, rec.tokenId)).toBe(false);
    const back = await b.read(key);
    expect(back).toMatchObject({ tokenId: rec.tokenId, refreshToken: 'rt-newest', expiresAt: 0 });
    // Any new token replaces it.
    expect(await a.write(key, record())).toBe(true);
    await raw.del(key);
  });

  it('a record copied to another key does not decrypt there', async () => {
    await a.write(key, record({ refreshToken: 'rt-x' }));
    const other = storeKey(prefix, 'other', 'cafebabe01234567');
    const hash = await raw.hgetallBuffer(key);
    await raw.hset(other, hash);
    await expect(a.read(other)).rejects.toThrow(/authentication/);
    await raw.del(key, other);
  });

  it('a store with another encryption key gets an error, not a token', async () => {
    await a.write(key, record({ refreshToken: 'rt-x' }));
    const logs: string[] = [];
    const stranger = await connect(storeConfig(REDIS_URL, prefix, randomBytes(32)), logs);
    try {
      // It may hold the newest refresh token: an error, never "absent".
      await expect(stranger.read(key)).rejects.toMatchObject({ code: 'ERR_RECORD_KEY_UNKNOWN' });
      // Without a refresh token nothing is lost by fetching again: absent, and said so.
      expect(await a.write(key, record())).toBe(true);
      expect(await stranger.read(key)).toBeUndefined();
      expect(logs.some((l) => l.includes('does not open with any configured encryption key'))).toBe(true);
    } finally {
      await stranger.close();
      await raw.del(key);
    }
  });

  it('lock: SET NX PX with a random owner; extend and release only by the owner', async () => {
    const lockKey = lockKeyFor(key);
    expect(lockKey).toBe(`${prefix}{prov:cafebabe01234567}:lock`);
    const l1 = await a.tryLock(lockKey, 150);
    expect(l1).toBeDefined();
    expect(await b.tryLock(lockKey, 150)).toBeUndefined();
    const owner1 = await raw.get(lockKey);
    expect(owner1).toMatch(new RegExp(`:${process.pid}:`));
    expect(await l1!.extend(300)).toBe(true);
    expect(await raw.pttl(lockKey)).toBeGreaterThan(150);
    await raw.pexpire(lockKey, 1); // it lapses (as when the holder stalls)
    await new Promise((r) => setTimeout(r, 10));
    const l2 = await b.tryLock(lockKey, 5_000);
    expect(l2).toBeDefined();
    const owner2 = await raw.get(lockKey);
    expect(owner2).not.toBe(owner1);
    // The former holder can neither extend nor release the new holder's lock.
    expect(await l1!.extend(10_000)).toBe(false);
    await l1!.release();
    expect(await raw.get(lockKey)).toBe(owner2);
    await l2!.release();
    expect(await raw.exists(lockKey)).toBe(0);
  });

  it('refresh claims: one owner at a time, given back explicitly, cleared by a write', async () => {
    await a.write(key, record({ refreshToken: 'rt-1' }));
    expect(await a.claimRefresh!(key, 'replica-a')).toBeUndefined();
    expect(await a.claimRefresh!(key, 'replica-a')).toBeUndefined(); // our own claim: may retry
    expect(await b.claimRefresh!(key, 'replica-b')).toBe('replica-a');
    await b.releaseRefreshClaim!(key, 'replica-b'); // not its claim: no effect
    expect(await b.claimRefresh!(key, 'replica-b')).toBe('replica-a');
    await a.releaseRefreshClaim!(key, 'replica-a');
    expect(await b.claimRefresh!(key, 'replica-b')).toBeUndefined();
    // The rotated token is stored: the claim on the spent one goes with it.
    expect(await b.write(key, record({ refreshToken: 'rt-2', expiresAt: Date.now() + 120_000 }))).toBe(true);
    expect(await a.claimRefresh!(key, 'replica-a')).toBeUndefined();
    await raw.del(key);
  });

  it('a claim with no record yet (first rotation) still blocks others', async () => {
    expect(await a.claimRefresh!(key, 'replica-a')).toBeUndefined();
    expect(await a.read(key)).toBeUndefined();
    expect(await b.claimRefresh!(key, 'replica-b')).toBe('replica-a');
    expect(await raw.pttl(key)).toBeGreaterThan(0);
    await raw.del(key);
  });

  it('events: published on <keyPrefix>events, delivered to subscribers; malformed ones ignored', async () => {
    const got: StoreEvent[] = [];
    const off = b.subscribe((e) => got.push(e));
    await raw.publish(`${prefix}events`, 'not json');
    await raw.publish(`${prefix}events`, JSON.stringify({ provider: 'prov', kind: 'updated' }));
    await raw.publish(`${prefix}events`, JSON.stringify({ provider: 'prov', key, token_id: 't', kind: 'exploded', origin: 'x' }));
    const event: StoreEvent = { provider: 'prov', key, token_id: 'tid-x', kind: 'updated', origin: 'replica-a' };
    await a.publish(event);
    await until(() => got.length > 0);
    await new Promise((r) => setTimeout(r, 50));
    expect(got).toEqual([event]);
    off();
  });

  it('parseEvent accepts exactly the event shape', () => {
    expect(parseEvent('{"provider":"p","key":"k","token_id":"t","kind":"invalidated","origin":"o","extra":1}')).toEqual({ provider: 'p', key: 'k', token_id: 't', kind: 'invalidated', origin: 'o' });
    expect(parseEvent('[]')).toBeUndefined();
    expect(parseEvent('{"provider":1,"key":"k","token_id":"t","kind":"updated","origin":"o"}')).toBeUndefined();
  });
});
