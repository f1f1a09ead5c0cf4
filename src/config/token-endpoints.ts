// `tokenEndpoints`: per-origin budgets for requests to token endpoints (README, "Token-endpoint
// budgets"). An origin without an entry gets DEFAULT_TOKEN_ENDPOINT_BUDGET.
import { join, Reader } from './reader.js';
import type { TokenEndpointBudgetConfig } from './types.js';

/**
 * For origins without an entry: 10 requests a second (a burst of 10), 4 in flight per replica,
 * a third of the rate per replica while the shared budget is unreachable. Below the free tiers
 * of the common IdPs' token endpoints and far above what a steady state of hourly tokens needs.
 */
export const DEFAULT_TOKEN_ENDPOINT_BUDGET: TokenEndpointBudgetConfig = Object.freeze({ maxRate: 10, burst: 10, maxConcurrent: 4, fallbackShare: 1 / 3 });

/** The slowest a budget may be configured or throttled to: one request a minute. */
export const MIN_TOKEN_ENDPOINT_RATE = 1 / 60;

/** `5/s`, `300/m` or a bare number (per second) → requests per second. */
export function parseRate(text: string): number | undefined {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(?:\/\s*(s|m|h))?\s*$/.exec(text);
  if (!m) return undefined;
  const per = m[2] === 'm' ? 60 : m[2] === 'h' ? 3600 : 1;
  return Number(m[1]) / per;
}

/** `1/3`, `33%` or `0.33` → a fraction in (0, 1]. */
function parseShare(text: string): number | undefined {
  const s = text.trim();
  const ratio = /^(\d+(?:\.\d+)?)\s*\/\s*(\d+(?:\.\d+)?)$/.exec(s);
  const pct = /^(\d+(?:\.\d+)?)%$/.exec(s);
  const n = ratio ? Number(ratio[1]) / Number(ratio[2]) : pct ? Number(pct[1]) / 100 : s === '' ? NaN : Number(s);
  return Number.isFinite(n) && n > 0 && n <= 1 ? n : undefined;
}

/** The origin a token URL's requests are budgeted under (`https://idp.example.com`, no path). */
export function originOf(url: string): string {
  try {
    return new URL(url).origin;
  } catch {
    return url;
  }
}

function readBudget(r: Reader): TokenEndpointBudgetConfig {
  const d = DEFAULT_TOKEN_ENDPOINT_BUDGET;
  const rateText = r.str('maxRate');
  let maxRate = d.maxRate;
  if (rateText !== undefined) {
    const rate = parseRate(rateText);
    if (rate === undefined) r.problem('maxRate', 'expected a rate such as 5/s or 300/m');
    else if (rate < MIN_TOKEN_ENDPOINT_RATE) r.problem('maxRate', 'must be at least 1/m');
    else maxRate = rate;
  }
  // The default burst follows the rate (one second's worth, at least 1).
  const burst = r.num('burst', Math.max(1, Math.ceil(maxRate)), { min: 1, max: 100_000, integer: true });
  const maxConcurrent = r.num('maxConcurrent', d.maxConcurrent, { min: 1, max: 1_000, integer: true });
  const shareText = r.str('fallbackShare');
  let fallbackShare = d.fallbackShare;
  if (shareText !== undefined) {
    const share = parseShare(shareText);
    if (share === undefined) r.problem('fallbackShare', 'expected a share of maxRate in (0, 1], such as 1/3 or 50%');
    else fallbackShare = share;
  }
  r.done();
  return { maxRate, burst, maxConcurrent, fallbackShare };
}

/** Reads `tokenEndpoints` (a mapping of origin → budget); problems go to the reader's context. */
export function readTokenEndpoints(root: Reader): Map<string, TokenEndpointBudgetConfig> {
  const out = new Map<string, TokenEndpointBudgetConfig>();
  const te = root.child('tokenEndpoints');
  if (!te) return out;
  for (const key of Object.keys(te.raw)) {
    const origin = originOf(key.replace(/\/+$/, ''));
    if (!/^https?:\/\/[^/]+$/.test(origin) || origin !== key.replace(/\/+$/, '')) {
      te.problem(key, 'expected an origin such as https://idp.example.com (scheme and host, optional port, no path)');
      te.value(key);
      continue;
    }
    const r = Reader.of(te.value(key), join(te.path, key), te.ctx);
    if (!r) continue;
    if (out.has(origin)) te.problem(key, `names the same origin as another entry (${origin})`);
    out.set(origin, readBudget(r));
  }
  te.done();
  return out;
}
