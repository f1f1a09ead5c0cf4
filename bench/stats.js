// Small statistics helpers shared by the load generator and the report.

/** Percentile of an ascending-sorted array (nearest rank). */
export function percentile(sorted, p) {
  if (sorted.length === 0) return NaN;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank];
}

/** p50/p90/p99/p99.9/max of latency samples in milliseconds. */
export function latencySummary(samples) {
  const s = Float64Array.from(samples).sort();
  return {
    count: s.length,
    p50: percentile(s, 50),
    p90: percentile(s, 90),
    p99: percentile(s, 99),
    p999: percentile(s, 99.9),
    max: s.length ? s[s.length - 1] : NaN,
    mean: s.length ? s.reduce((a, b) => a + b, 0) / s.length : NaN,
  };
}

export function median(values) {
  const s = [...values].sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/**
 * `stat(idx)` over all rotations, with a 90 % interval from resampling rotation indices with
 * replacement (the same index for every target: slice i of each ran in the same rotation,
 * seconds apart).
 */
export function withInterval(n, stat, resamples = 400) {
  if (n === 0) return {};
  const ratio = stat(Array.from({ length: n }, (_, i) => i));
  if (n < 5) return { ratio };
  let seed = 0x9e3779b9;
  const rand = () => ((seed = (Math.imul(seed ^ (seed >>> 15), 0x2c1b3c6d) + 0x6d2b79f5) >>> 0) / 2 ** 32);
  const boot = [];
  for (let k = 0; k < resamples; k++) boot.push(stat(Array.from({ length: n }, () => Math.floor(rand() * n))));
  boot.sort((x, y) => x - y);
  return { ratio, low: boot[Math.floor(0.05 * resamples)], high: boot[Math.ceil(0.95 * resamples) - 1] };
}
