// The TokenSlot on its own: what adopt and drop do to the token, the hit label, the memory of
// dropped tokens, the waiters for the next change (on the injected clock), and the observer.
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import type { InjectConfig, RefreshConfig } from '../../src/config/types.js';
import { NEVER_EXPIRES, type TokenRecord } from '../../src/store/store.js';
import type { CachedToken } from '../../src/tokens/cached-token.js';
import { TokenSlot, type Adoption, type SlotObserver } from '../../src/tokens/token-slot.js';

const INJECT: InjectConfig = { header: 'authorization', format: '{token_type} {token}', removeHeaders: [], maxTokenBytes: 16_384 };
const REFRESH: RefreshConfig = { before: 60_000, jitter: 0, waitBudget: 150 };

function record(id: string, clock: ManualClock, lifetimeMs = 600_000): TokenRecord {
  const now = clock.now();
  return { accessToken: `access-${id}`, tokenType: 'Bearer', tokenId: id, obtainedAt: now, expiresAt: now + lifetimeMs, lifetimeMs };
}

function newSlot(clock = new ManualClock()): { slot: TokenSlot; clock: ManualClock } {
  return { slot: new TokenSlot({ storeKey: 'unit:{p:hash}:token', label: 'p' }, { refresh: REFRESH, inject: INJECT }, clock, () => 0), clock };
}

class Recorder implements SlotObserver {
  readonly seen: { id: string; how: Adoption; previous: string | undefined; heldBySlot: boolean }[] = [];
  constructor(private readonly slot: TokenSlot) {}
  adopted(entry: CachedToken, how: Adoption, previous: CachedToken | undefined): void {
    this.seen.push({ id: entry.tokenId, how, previous: previous?.tokenId, heldBySlot: this.slot.peek() === entry });
  }
}

describe('TokenSlot', () => {
  it('is keyed by a store key and a label, not by a provider', () => {
    const { slot } = newSlot();
    expect(slot.key).toEqual({ storeKey: 'unit:{p:hash}:token', label: 'p' });
    expect(slot.peek()).toBeUndefined();
  });

  it('adopt makes a record the served token: refresh moment, hard expiry and header computed once', () => {
    const { slot, clock } = newSlot();
    const rec = record('t1', clock);
    const entry = slot.adopt(rec, 'fetched');
    expect(slot.peek()).toBe(entry);
    expect(entry.record).toBe(rec);
    expect(entry.expiresAt).toBe(rec.expiresAt);
    // refresh.before 60 s, no jitter: a minute before hard expiry.
    expect(entry.refreshAt).toBe(rec.expiresAt - 60_000);
    expect(entry.headerValue).toBe('Bearer access-t1');
    expect(entry.headerValue).toBe(entry.headerValue);
  });

  it('a never-expiring record never falls due', () => {
    const { slot, clock } = newSlot();
    const entry = slot.adopt({ ...record('static', clock), expiresAt: NEVER_EXPIRES, lifetimeMs: NEVER_EXPIRES }, 'fetched');
    expect(entry.expiresAt).toBe(NEVER_EXPIRES);
    expect(entry.refreshAt).toBe(NEVER_EXPIRES);
  });

  it('hits are labelled stale after a failed refresh, and cache again after the next adoption', () => {
    const { slot, clock } = newSlot();
    slot.markStale(); // nothing to be stale yet
    expect(slot.hitSource).toBe('cache');
    slot.adopt(record('t1', clock), 'fetched');
    slot.markStale();
    expect(slot.hitSource).toBe('stale');
    slot.adopt(record('t2', clock), 'event');
    expect(slot.hitSource).toBe('cache');
    slot.markStale();
    expect(slot.drop('t2')).toBe(true);
    expect(slot.hitSource).toBe('cache');
  });

  it('drop empties the slot only when it holds that token, and remembers the id either way', () => {
    const { slot, clock } = newSlot();
    slot.adopt(record('t1', clock), 'fetched');
    expect(slot.drop('other')).toBe(false);
    expect(slot.peek()?.tokenId).toBe('t1');
    expect(slot.wasDropped('other')).toBe(true);
    expect(slot.wasDropped('t1')).toBe(false);
    expect(slot.drop('t1')).toBe(true);
    expect(slot.peek()).toBeUndefined();
    expect(slot.wasDropped('t1')).toBe(true);
    // Idempotent: the second drop of the same token finds nothing.
    expect(slot.drop('t1')).toBe(false);
  });

  it('remembers the last 32 dropped ids', () => {
    const { slot } = newSlot();
    for (let i = 0; i < 33; i++) slot.drop(`d${i}`);
    expect(slot.wasDropped('d0')).toBe(false);
    expect(slot.wasDropped('d1')).toBe(true);
    expect(slot.wasDropped('d32')).toBe(true);
  });

  it('tells its observer of every adoption, after it holds the new token', () => {
    const { slot, clock } = newSlot();
    const recorder = new Recorder(slot);
    slot.observe(recorder);
    slot.adopt(record('t1', clock), 'fetched');
    slot.adopt(record('t2', clock), 'store');
    slot.adopt(record('t2', clock), 'event');
    expect(recorder.seen).toEqual([
      { id: 't1', how: 'fetched', previous: undefined, heldBySlot: true },
      { id: 't2', how: 'store', previous: 't1', heldBySlot: true },
      { id: 't2', how: 'event', previous: 't2', heldBySlot: true },
    ]);
  });

  it('waitForChange ends at the next adoption of a different token', async () => {
    const { slot, clock } = newSlot();
    slot.adopt(record('t1', clock), 'fetched');
    let woke = false;
    const waiting = slot.waitForChange(10_000).then(() => (woke = true));
    // The same token again (a store read of our own write) is no change.
    slot.adopt(record('t1', clock), 'store');
    await Promise.resolve();
    expect(woke).toBe(false);
    slot.adopt(record('t2', clock), 'event');
    await waiting;
    expect(woke).toBe(true);
    // Its timer went with it: nothing is left pending on the clock.
    expect(clock.pendingTimers).toBe(0);
  });

  it('waitForChange ends after its time on the injected clock, or at wake()', async () => {
    const { slot, clock } = newSlot();
    const order: string[] = [];
    const a = slot.waitForChange(1_000).then(() => order.push('a'));
    const b = slot.waitForChange(5_000).then(() => order.push('b'));
    clock.advance(999);
    await Promise.resolve();
    expect(order).toEqual([]);
    clock.advance(1);
    await a;
    expect(order).toEqual(['a']);
    slot.wake();
    await b;
    expect(order).toEqual(['a', 'b']);
    expect(clock.pendingTimers).toBe(0);
    // Nobody waiting: wake is a no-op.
    slot.wake();
  });
});
