// The refresh planner (src/resilience/refresh-planner.ts): where early background refreshes
// that come due together go in time.
import { describe, expect, it } from 'vitest';
import { RefreshPlanner } from '../../src/resilience/refresh-planner.js';

const T = Date.UTC(2026, 0, 1);

describe('refresh planner', () => {
  it('a lone refresh keeps its own moment', () => {
    const p = new RefreshPlanner(50);
    expect(p.plan(T + 120_400, T + 190_000, T)).toBe(T + 120_400);
  });

  it('fills each second to half the rate, evenly within it, then the next second', () => {
    const p = new RefreshPlanner(10); // 5 a second
    const at = Array.from({ length: 12 }, () => p.plan(T + 1_000, T + 60_000, T));
    expect(at.slice(0, 5).every((t) => t >= T + 1_000 && t < T + 2_000)).toBe(true);
    expect(at.slice(5, 10)).toEqual([0, 200, 400, 600, 800].map((ms) => T + 2_000 + ms));
    expect(at.slice(10)).toEqual([T + 3_000, T + 3_200]);
    expect(p.planned(T)).toBe(12);
  });

  it('never plans past the end of the window: a full window takes its least-booked slot', () => {
    const p = new RefreshPlanner(2); // 1 a second
    const at = Array.from({ length: 6 }, () => p.plan(T, T + 2_500, T));
    expect(Math.max(...at)).toBeLessThanOrEqual(T + 2_500);
    expect(at.slice(0, 3)).toEqual([T, T + 1_000, T + 2_000]);
  });

  it('below 2/s a slot is longer than a second (1/m: one refresh every two minutes)', () => {
    const p = new RefreshPlanner(1 / 60);
    expect([p.plan(T, T + 600_000, T), p.plan(T, T + 600_000, T), p.plan(T, T + 600_000, T)]).toEqual([T, T + 120_000, T + 240_000]);
  });

  it('a cancelled plan gives its slot back', () => {
    const p = new RefreshPlanner(2);
    const first = p.plan(T, T + 60_000, T);
    p.cancel(first);
    expect(p.plan(T, T + 60_000, T)).toBe(T);
  });

  it('refreshes due later than now are never planned before now', () => {
    const p = new RefreshPlanner(50);
    expect(p.plan(T - 5_000, T + 60_000, T)).toBe(T);
  });
});
