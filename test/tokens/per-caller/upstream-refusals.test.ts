// The count of upstream refusals per caller that decides a hold: consecutive refusals within the
// window count up, a quiet window starts afresh, a hold does not reset it, memory stays bounded.
import { describe, expect, it } from 'vitest';
import { HOLD_AFTER_REFUSALS, REFUSAL_WINDOW_MS, UpstreamRefusals } from '../../../src/tokens/per-caller/upstream-refusals.js';

describe('UpstreamRefusals', () => {
  it('counts refusals each within the window of the previous one; the third holds', () => {
    const r = new UpstreamRefusals();
    let t = 0;
    const counts = [1, 2, 3, 4].map(() => r.record('alice', (t += REFUSAL_WINDOW_MS)));
    expect(counts).toEqual([1, 2, 3, 4]);
    expect(counts.map((c) => UpstreamRefusals.holds(c))).toEqual([false, false, true, true]);
    expect(HOLD_AFTER_REFUSALS).toBe(3);
  });

  it('a gap longer than the window starts the count again; callers are counted apart', () => {
    const r = new UpstreamRefusals();
    expect(r.record('alice', 0)).toBe(1);
    expect(r.record('bob', 1)).toBe(1);
    expect(r.record('alice', 2)).toBe(2);
    expect(r.record('alice', 2 + REFUSAL_WINDOW_MS + 1)).toBe(1);
    expect(r.record('bob', 3)).toBe(2);
  });

  it('keeps at most 4 096 callers, forgetting the least recently refused', () => {
    const r = new UpstreamRefusals();
    r.record('first', 0);
    r.record('first', 1);
    for (let i = 0; i < 4_096; i++) r.record(`caller-${i}`, 2);
    expect(r.size).toBe(4_096);
    expect(r.record('first', 3)).toBe(1);
    expect(r.record('caller-4095', 3)).toBe(2);
  });
});
