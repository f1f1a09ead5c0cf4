// The embedded store keeps the same promises as the Redis one where a single process needs them.
import { afterEach, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { DemoTokenServer } from '../../demo/token-server.js';
import { MemoryStore } from '../../src/store/memory-store.js';
import { TokenManager } from '../../src/tokens/manager.js';
import { record } from './helpers.js';
import { until } from '../support/until.js';
import { rtSource } from '../support/world.js';

describe('MemoryStore', () => {
  let idp: DemoTokenServer | undefined;
  afterEach(async () => {
    await idp?.stop();
    idp = undefined;
  });

  it('fenced write and compare-and-delete', async () => {
    const s = new MemoryStore();
    const now = Date.now();
    const first = record({ obtainedAt: now, expiresAt: now + 30_000 });
    expect(await s.write('k', first)).toBe(true);
    expect(await s.write('k', record({ obtainedAt: now - 10_000, expiresAt: now + 20_000 }))).toBe(false);
    expect(await s.write('k', record({ obtainedAt: now + 10_000, expiresAt: now + 40_000 }))).toBe(true);
    expect(await s.remove('k', first.tokenId)).toBe(false);
  });

  it('fenced write on a shortened lifetime: a newer token that expires sooner replaces a live older one', async () => {
    const s = new MemoryStore();
    const now = Date.now();
    expect(await s.write('k', record({ obtainedAt: now - 25_000, expiresAt: now + 5_000, refreshToken: 'rt-1' }))).toBe(true);
    const short = record({ obtainedAt: now, expiresAt: now + 1_000, lifetimeMs: 10_000, refreshToken: 'rt-2' });
    expect(await s.write('k', short)).toBe(true);
    expect(await s.read('k')).toEqual(short);
  });

  it('fenced write on a shortened lifetime: a late writer of an older token with a later expiry is still refused', async () => {
    const s = new MemoryStore();
    const now = Date.now();
    const newer = record({ obtainedAt: now, expiresAt: now + 10_000 });
    expect(await s.write('k', newer)).toBe(true);
    expect(await s.write('k', record({ obtainedAt: now - 25_000, expiresAt: now + 35_000 }))).toBe(false);
    expect(await s.write('k', record({ obtainedAt: now - 25_000, expiresAt: now + 35_000 }), 'not-stored')).toBe(false);
    expect((await s.read('k'))?.tokenId).toBe(newer.tokenId);
    // The record the writer refreshed from: replaced (nothing was written since it read it).
    const next = record({ obtainedAt: now - 1, expiresAt: now + 1_000 });
    expect(await s.write('k', next, newer.tokenId)).toBe(true);
  });

  it('remove keeps the refresh token of the record (read back as expired)', async () => {
    const s = new MemoryStore();
    const rec = record({ refreshToken: 'rt-newest' });
    await s.write('k', rec);
    expect(await s.remove('k', rec.tokenId)).toBe(true);
    expect(await s.remove('k', rec.tokenId)).toBe(false);
    expect(await s.read('k')).toMatchObject({ refreshToken: 'rt-newest', expiresAt: 0 });
    const plain = record();
    await s.write('p', plain);
    await s.remove('p', plain.tokenId);
    expect(await s.read('p')).toBeUndefined();
  });

  it('regression: invalidating a rotating token does not present the configured (spent) refresh token', async () => {
    idp = new DemoTokenServer({ refreshTokens: ['rt-configured'] });
    await idp.start();
    const config = parseConfig(`providers: { p: { source: ${rtSource(idp, 'rt-configured')} } }`);
    const tokens = new TokenManager(config.providers.values());
    try {
      const first = await tokens.getToken('p');
      expect(tokens.invalidate('p', first.tokenId)).toBe(true);
      await until(() => idp!.tokenRequestCount === 2);
      await until(() => tokens.provider('p')!.peek() !== undefined);
      expect(idp.invalidGrantCount).toBe(0);
      expect((await tokens.getToken('p')).value).toBe(idp.issuedAccessTokens[1]);
    } finally {
      await tokens.close();
    }
  });
});
