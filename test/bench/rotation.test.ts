// Regression: the routed node:http2 target shared tokengate-h2's process, so its p99 slice came
// straight after that process's ctx slice in three rotations of four and read ~10 % high
// (bench/FINDINGS.md, "One slice per process"). The judged rotation now refuses that layout.
import { describe, expect, it } from 'vitest';
import { balancedRotations, oneSlicePerProcess, rowOfRound } from '../../bench/rotation.js';

describe('the judged rotation: one slice per process', () => {
  const [limit, lean, leanRoute, twin] = [{}, {}, {}, {}];

  it('accepts targets that each have a process of their own', () => {
    const targets = [
      { key: 'floor-h2', child: limit },
      { key: 'tokengate-h2', child: lean },
      { key: 'tokengate-h2-route', child: leanRoute },
      { key: 'tokengate-h2-twin', child: twin },
    ];
    expect(oneSlicePerProcess(targets)).toBe(targets);
  });

  it('refuses two targets on one process, naming them (routed_slice_shares_ctx_process)', () => {
    const targets = [
      { key: 'floor-h2', child: limit },
      { key: 'tokengate-h2', child: lean },
      { key: 'tokengate-h2-route', child: lean },
      { key: 'tokengate-h2-twin', child: twin },
    ];
    expect(() => oneSlicePerProcess(targets)).toThrow(/tokengate-h2 and tokengate-h2-route share a process/);
  });
});

// Regression: in a cyclic rotation (A B C D, B C D A, …) each target followed the same neighbour
// in three rotations of four, and the A/A pair at 8 KB read 1.19 [1.02–1.28] apart in run 5
// (bench/FINDINGS.md, "Two identical processes 1.19 × apart"). The plan balances predecessors too.
describe('the rotation plan: slots and predecessors balanced (identical_processes_apart_at_8k)', () => {
  /** Per target: how often in each slot; per ordered pair: how often the second ran right after the first. */
  function tally(rows: number[][], n: number, { wrap }: { wrap: boolean }) {
    const slots = Array.from({ length: n }, () => new Array<number>(n).fill(0));
    const after = Array.from({ length: n }, () => new Array<number>(n).fill(0));
    const seq = rows.flat();
    rows.forEach((row) => row.forEach((t, i) => slots[t]![i]!++));
    for (let i = 1; i < seq.length + (wrap ? 1 : 0); i++) after[seq[i - 1]!]![seq[i % seq.length]!]!++;
    return { slots, after };
  }

  it.each([3, 4])('balances every slot and every predecessor exactly for %i targets, the wrap into the first row included', (n) => {
    const rows = balancedRotations(n);
    for (const row of rows) expect([...row].sort((x, y) => x - y)).toEqual([...Array(n).keys()]);
    const { slots, after } = tally(rows, n, { wrap: true });
    expect(new Set(slots.flat()).size).toBe(1);
    for (let a = 0; a < n; a++) {
      expect(after[a]![a]).toBe(0);
      expect(new Set(after[a]!.filter((_, b) => b !== a)).size).toBe(1);
    }
  });

  it.each([5, 6, 8])('for %i targets is a Williams square: slots balanced, each target follows every other equally often within rows', (n) => {
    const rows = balancedRotations(n);
    for (const row of rows) expect([...row].sort((x, y) => x - y)).toEqual([...Array(n).keys()]);
    const { slots } = tally(rows, n, { wrap: false });
    expect(new Set(slots.flat()).size).toBe(1);
    const within = Array.from({ length: n }, () => new Array<number>(n).fill(0));
    for (const row of rows) for (let i = 1; i < n; i++) within[row[i - 1]!]![row[i]!]!++;
    for (let a = 0; a < n; a++) expect(new Set(within[a]!.filter((_, b) => b !== a)).size).toBe(1);
    // No process serves twice in a row across a row boundary.
    for (let r = 1; r < rows.length; r++) expect(rows[r]![0]).not.toBe(rows[r - 1]!.at(-1));
  });

  it('the cyclic rotation it replaces does not balance predecessors (the test can fail)', () => {
    const cyclic = [0, 1, 2, 3].map((s) => [0, 1, 2, 3].map((i) => (i + s) % 4));
    const { after } = tally(cyclic, 4, { wrap: true });
    expect(after[0]![1]).toBe(3);
    expect(after[0]![2]).toBe(1);
    expect(after[0]![3]).toBe(0);
  });

  it('refuses a count that is not a whole number ≥ 1', () => {
    expect(() => balancedRotations(0)).toThrow(/whole number of targets/);
  });
});

describe('rowOfRound: round 0 is the warm-up', () => {
  it('runs the last row first, then the plan from its first row, cycling', () => {
    const plan = balancedRotations(4);
    expect(rowOfRound(plan, 0)).toBe(plan.at(-1));
    expect(rowOfRound(plan, 1)).toBe(plan[0]);
    expect(rowOfRound(plan, plan.length + 1)).toBe(plan[0]);
  });
});
