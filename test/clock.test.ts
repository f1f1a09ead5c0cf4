import { describe, expect, it, vi } from 'vitest';
import { systemClock } from '../src/clock.js';

describe('systemClock timers (one heap behind one Node timer)', () => {
  it('fires in deadline order, skips cancelled timers, and lets timers scheduled from a timer run', async () => {
    const fired: string[] = [];
    systemClock.setTimer(() => fired.push('c'), 60);
    systemClock.setTimer(() => fired.push('a'), 10);
    const cancelled = systemClock.setTimer(() => fired.push('never'), 20);
    systemClock.setTimer(() => {
      fired.push('b');
      systemClock.setTimer(() => fired.push('b2'), 5);
    }, 30);
    cancelled.cancel();
    cancelled.cancel(); // idempotent
    await new Promise((r) => setTimeout(r, 120));
    expect(fired).toEqual(['a', 'b', 'b2', 'c']);
  });

  it('survives many cancellations (compaction) and keeps firing the live ones', async () => {
    const fired: number[] = [];
    const handles = Array.from({ length: 500 }, (_, i) => systemClock.setTimer(() => fired.push(i), 20 + (i % 7)));
    handles.forEach((h, i) => i % 5 !== 0 && h.cancel());
    await new Promise((r) => setTimeout(r, 80));
    expect(fired.sort((a, b) => a - b)).toEqual(Array.from({ length: 100 }, (_, i) => i * 5));
  });

  // Regression: a cancelled timer kept its place in the heap until it came due, and the queue
  // armed its Node timer for it. 10 000 providers' fetch timeouts (set, then cancelled within
  // milliseconds) woke the process 300-500 times a second for seconds after readiness.
  it('cancelled timers do not wake the process: one wake-up for a run of cancelled deadlines, not one each', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
    try {
      vi.resetModules();
      const { systemClock: clock } = await import('../src/clock.js');
      const fired: string[] = [];
      // More live timers than cancelled ones: the queue does not compact, the dead stay in the heap.
      for (let i = 0; i < 200; i++) clock.setTimer(() => fired.push('live'), 30 * 60_000);
      const dead = Array.from({ length: 100 }, (_, i) => clock.setTimer(() => fired.push('dead'), 5_000 + i * 10));
      dead.forEach((t) => t.cancel());
      const early = clock.setTimer(() => fired.push('early'), 1_000);
      const arms = vi.spyOn(globalThis, 'setTimeout');
      vi.advanceTimersByTime(10_000);
      expect(fired).toEqual(['early']);
      // Re-armed once after 'early' (for the live timers), not once per cancelled deadline.
      expect(arms.mock.calls.length).toBeLessThanOrEqual(2);
      vi.advanceTimersByTime(30 * 60_000);
      expect(fired.filter((f) => f === 'live')).toHaveLength(200);
      void early;
    } finally {
      vi.restoreAllMocks();
      vi.useRealTimers();
      vi.resetModules();
    }
  });

  it('sleep resolves after the delay and rejects when aborted', async () => {
    const t0 = Date.now();
    await systemClock.sleep(30);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(29);
    const ac = new AbortController();
    const p = systemClock.sleep(10_000, ac.signal);
    ac.abort(new Error('stop'));
    await expect(p).rejects.toThrow('stop');
  });
});
