// Issue #18's size independence target, from the sizes phase's alternating rounds (bench/run.js).
import { median, withInterval } from './stats.js';

/**
 * Issue #18's "cost independent of the request's size": the target's CPU per Check at `hi`, less
 * what the limit itself grew from `lo` to `hi`, ÷ its CPU per Check at `lo`, each term the median
 * of its alternating rounds, with a 90 % interval from resampling rounds (the same rounds for
 * every term: round i of each ran in one rotation, seconds apart).
 *
 * Medians first, then the arithmetic (decided on a 5-round trial before the judged runs; on a
 * 10-round run the median of per-round values was as wide, with a different cell undecided:
 * FINDINGS, "One slice per process").
 */
export function sizeIndependence(rounds, keys, lo, hi) {
  const at = (key, size) => (rounds[`${key}@${size}`] ?? []).map((r) => r.cpuPerCheckUs);
  const [limitLo, limitHi] = [at('floor-h2', lo), at('floor-h2', hi)];
  const n = Math.min(limitLo.length, limitHi.length);
  const of = (v, idx) => median(idx.map((i) => v[i]));
  const all = Array.from({ length: n }, (_, i) => i);
  const out = { lo, hi, rounds: n, limitGrowthMedian: of(limitHi, all) / of(limitLo, all) };
  for (const key of keys) {
    if (key === 'floor-h2') continue;
    const [tLo, tHi] = [at(key, lo), at(key, hi)];
    if (tLo.length < n || tHi.length < n) continue;
    const { ratio, low, high } = withInterval(n, (idx) => (of(tHi, idx) - (of(limitHi, idx) - of(limitLo, idx))) / of(tLo, idx));
    out[key] = { median: ratio, low, high };
  }
  return out;
}
