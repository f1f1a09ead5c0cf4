// Regression (size_independence_across_phases): issue #18's "cost independent of the request's
// size" was computed from each size's medians, and the sizes ran minutes apart. On 2026-12-07
// (13:37 UTC run) the machine was slower while 0.4 KB ran: the limit read 48.5 µs at 0.4 KB and
// 44.5 at 8 KB ("grows 0.92 ×"), tokengate-h2 1.25 and its identical twin 1.46. The sizes now
// alternate in one rotation, each term is the median of its rounds, and the target is judged
// with its 90 % interval (rounds resampled).
import { describe, expect, it } from 'vitest';
// @ts-expect-error plain JS module of the bench, without types
import { ceilingVerdict, evaluateTargets } from '../../bench/report.js';
// @ts-expect-error plain JS module of the bench, without types
import { sizeIndependence } from '../../bench/size-independence.js';

interface Verdict { target: string; measured: string; yardstick: string; pass: boolean | string }
interface Si { rounds: number; limitGrowthMedian: number; [key: string]: unknown }
interface Row { median: number; low?: number; high?: number }

// A machine whose speed moves from round to round (each round's windows share a factor).
const drift = [1.3, 0.8, 1.1, 0.9, 1.25, 0.85, 1.0, 1.2, 0.95, 1.05];
function rounds(costs: Record<string, [number, number]>) {
  const out: Record<string, { cpuPerCheckUs: number }[]> = {};
  for (const [key, [lo, hi]] of Object.entries(costs)) {
    out[`${key}@0.4k`] = drift.map((f) => ({ cpuPerCheckUs: lo * f }));
    out[`${key}@8k`] = drift.map((f) => ({ cpuPerCheckUs: hi * f }));
  }
  return out;
}

describe('size independence, from rounds that alternate every size', () => {
  it('cancels a machine that speeds up and slows down between rounds', () => {
    // tokengate grows by exactly the limit's own growth: 1.00 in every round, whatever the drift.
    const si = sizeIndependence(rounds({ 'floor-h2': [30, 42], 'tokengate-h2': [33, 45] }), ['floor-h2', 'tokengate-h2'], '0.4k', '8k') as Si;
    const t = si['tokengate-h2'] as Row;
    expect(si.rounds).toBe(10);
    expect(si.limitGrowthMedian).toBeCloseTo(1.4, 10);
    expect(t.median).toBeCloseTo(1, 10);
    expect(t.low).toBeCloseTo(1, 10);
    expect(t.high).toBeCloseTo(1, 10);
  });

  it('reads the growth beyond the limit\'s', () => {
    // 33 → 45 + 6.6 more than the limit grew: (51.6 − 12) ÷ 33 = 1.2.
    const si = sizeIndependence(rounds({ 'floor-h2': [30, 42], 'tokengate-h2': [33, 51.6] }), ['floor-h2', 'tokengate-h2'], '0.4k', '8k') as Si;
    expect((si['tokengate-h2'] as Row).median).toBeCloseTo(1.2, 10);
  });
});

describe('the size independence verdict', () => {
  const row = (median: number, low?: number, high?: number) => ({ median, low, high });
  const results = (h2: ReturnType<typeof row>) => ({
    sizes: {
      closed: { '0.4k': { 'floor-h2': { cpuPerCheckUs: 30 } }, '8k': { 'floor-h2': { cpuPerCheckUs: 42 } } },
      open: {},
      sizeIndependence: { lo: '0.4k', hi: '8k', rounds: 10, limitGrowthMedian: 1.4, 'tokengate-h2': h2, 'tokengate-h2-twin': row(1.01, 0.95, 1.06), tokengate: row(1.6, 1.5, 1.7) },
    },
  });
  const verdicts = (r: unknown) => (evaluateTargets(r) as Verdict[]).filter((v) => v.target.startsWith('cost independent of size'));

  it('is met when all of the interval is at or below 1.1, with the A/A twin beside it', () => {
    const [h2] = verdicts(results(row(1.02, 0.97, 1.08))).filter((v) => v.target.includes('node:http2'));
    expect(h2!.pass).toBe(true);
    expect(h2!.measured).toContain('1.02 × [0.97–1.08] from the medians of 10 alternating rounds');
    expect(h2!.measured).toContain('the limit grows 1.40 ×');
    expect(h2!.yardstick).toBe('A/A twin: 1.01 [0.95–1.06]');
  });

  it('is undecided when the interval straddles 1.1, missed when all of it is above', () => {
    expect(verdicts(results(row(1.05, 0.98, 1.15))).find((v) => v.target.includes('node:http2'))!.pass).toBe('undecided');
    expect(verdicts(results(row(1.2, 1.12, 1.3))).find((v) => v.target.includes('node:http2'))!.pass).toBe(false);
  });

  it('keeps Check on grpc-js as information', () => {
    expect(verdicts(results(row(1, 0.9, 1.05))).find((v) => v.target.includes('grpc-js'))!.pass).toBe('info');
  });

  it('falls back to the median alone without an interval', () => {
    expect(ceilingVerdict(1.09, undefined, undefined, 1.1)).toBe(true);
    expect(ceilingVerdict(1.11, undefined, undefined, 1.1)).toBe(false);
  });
});
