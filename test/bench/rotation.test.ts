// Regression: the routed node:http2 target shared tokengate-h2's process, so its p99 slice came
// straight after that process's ctx slice in three rotations of four and read ~10 % high
// (bench/FINDINGS.md, "One slice per process"). The judged rotation now refuses that layout.
import { describe, expect, it } from 'vitest';
import { oneSlicePerProcess } from '../../bench/rotation.js';

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
