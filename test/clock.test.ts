import { describe, expect, it } from 'vitest';
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
