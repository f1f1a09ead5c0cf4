// The 10,000-provider throughput verdict of bench/REPORT.md (issue #18: "10,000 providers within
// 10 % of one provider's throughput", medians of alternating rounds). It is judged on the median
// of per-round ratios and its 90 % resampling interval, the way the p99 target is: one round that
// a mark-compact of the large heap slowed moves one ratio of ten, and the interval says whether
// the run can tell.
import { describe, expect, it } from 'vitest';
// @ts-expect-error plain JS module of the bench, without types
import { evaluateTargets, scaleVerdict } from '../../bench/report.js';

interface Verdict { target: string; measured: string; yardstick: string; pass: boolean | string }

const mb = 2 ** 20;
function results(ratio: { median: number; low?: number; high?: number }) {
  const row = (n: number, r: { median: number; low?: number; high?: number }) => ({
    rate: 20_000 * r.median, cpuPerCheckUs: 30, rateVsBasePerRound: Array(10).fill(r.median),
    rateVsBaseMedian: r.median, rateVsBaseLow: r.low, rateVsBaseHigh: r.high, n,
  });
  const mode = { 1: row(1, { median: 1, low: 1, high: 1 }), 100: row(100, { median: 1.01, low: 0.97, high: 1.04 }), 10000: row(10_000, ratio) };
  const size = { afterWarmup: { rss: 150 * mb }, afterLoad: { rss: 170 * mb } };
  return { scale: { sizes: { 1: size, 100: size, 10000: size }, throughput: { context_extensions: mode } } };
}

const verdict = (r: unknown): Verdict => (evaluateTargets(r) as Verdict[]).find((v) => v.target.startsWith('10,000 providers within 10%'))!;

describe('the 10,000-provider throughput verdict', () => {
  it('is met when the whole interval of the median per-round ratio is at or above 0.9', () => {
    const v = verdict(results({ median: 0.97, low: 0.92, high: 1.01 }));
    expect(v.pass).toBe(true);
    expect(v.measured).toContain('0.97 × [0.92–1.01] median of 10 per-round ratios');
    expect(v.yardstick).toBe('1.01 [0.97–1.04] (100 providers ÷ 1)');
  });

  it('is undecided when the interval straddles 0.9, whichever side the median is on', () => {
    expect(verdict(results({ median: 0.93, low: 0.86, high: 0.99 })).pass).toBe('undecided');
    expect(verdict(results({ median: 0.89, low: 0.84, high: 0.95 })).pass).toBe('undecided');
  });

  it('is missed when the whole interval is below 0.9', () => {
    expect(verdict(results({ median: 0.8, low: 0.75, high: 0.86 })).pass).toBe(false);
  });

  it('falls back to the median alone without an interval (fewer than 5 rounds, older results)', () => {
    expect(scaleVerdict(0.91, undefined, undefined)).toBe(true);
    expect(scaleVerdict(0.89, undefined, undefined)).toBe(false);
    expect(verdict(results({ median: 0.95 })).measured).toContain('0.95 × median of 10');
  });
});
