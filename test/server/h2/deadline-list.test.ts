// The deadlines of the node:http2 Check path: one timer for every Check in flight, expiry in
// deadline order, nothing for a Check that answered (fake timers and clock: no wall time).
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { DeadlineList, type Deadlined } from '../../../src/server/h2/deadline-list.js';

function check(name: string, expired: string[]): Deadlined {
  return { deadlineAt: 0, prev: undefined, next: undefined, expire: () => expired.push(name) };
}

function add(list: DeadlineList, item: Deadlined, timeoutMs: number): Deadlined {
  item.deadlineAt = performance.now() + timeoutMs;
  list.add(item);
  return item;
}

describe('DeadlineList', () => {
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance'] });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('arms one timer for many Checks with the same timeout, not one per Check', () => {
    const list = new DeadlineList();
    const spy = vi.spyOn(globalThis, 'setTimeout');
    const expired: string[] = [];
    for (let i = 0; i < 100; i++) {
      const c = add(list, check(`c${i}`, expired), 200);
      list.remove(c); // answered at once, as a cache hit is
      vi.advanceTimersByTime(1);
    }
    expect(spy).toHaveBeenCalledTimes(1);
    expect(list.size).toBe(0);
    vi.advanceTimersByTime(1_000);
    expect(expired).toEqual([]);
  });

  it('expires in deadline order at each deadline, a shorter timeout added later first', () => {
    const list = new DeadlineList();
    const expired: string[] = [];
    add(list, check('slow', expired), 300);
    add(list, check('fast', expired), 100);
    add(list, check('mid', expired), 200);
    vi.advanceTimersByTime(99);
    expect(expired).toEqual([]);
    vi.advanceTimersByTime(2);
    expect(expired).toEqual(['fast']);
    vi.advanceTimersByTime(100);
    expect(expired).toEqual(['fast', 'mid']);
    vi.advanceTimersByTime(100);
    expect(expired).toEqual(['fast', 'mid', 'slow']);
    expect(list.size).toBe(0);
  });

  it('a Check that answered never expires; the others still do, on time', () => {
    const list = new DeadlineList();
    const expired: string[] = [];
    const first = add(list, check('first', expired), 100);
    vi.advanceTimersByTime(50);
    add(list, check('second', expired), 100);
    list.remove(first);
    list.remove(first); // twice: no harm
    vi.advanceTimersByTime(60);
    expect(expired).toEqual([]);
    vi.advanceTimersByTime(41);
    expect(expired).toEqual(['second']);
  });

  it('waits out a deadline beyond setTimeout\'s ceiling without spinning', () => {
    const list = new DeadlineList();
    const spy = vi.spyOn(globalThis, 'setTimeout');
    const expired: string[] = [];
    add(list, check('far', expired), 2 ** 31 + 5_000);
    vi.advanceTimersByTime(2 ** 31 - 1);
    expect(expired).toEqual([]);
    expect(spy.mock.calls.length).toBeLessThanOrEqual(2);
    vi.advanceTimersByTime(10_000);
    expect(expired).toEqual(['far']);
  });

  it('lets a Check end itself from expire() (it is already out of the list)', () => {
    const list = new DeadlineList();
    const expired: string[] = [];
    const c: Deadlined = { deadlineAt: 0, prev: undefined, next: undefined, expire: () => { list.remove(c); expired.push('c'); } };
    add(list, c, 10);
    add(list, check('d', expired), 10);
    vi.advanceTimersByTime(20);
    expect(expired).toEqual(['c', 'd']);
  });
});
