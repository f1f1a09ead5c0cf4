// What check-config says about token-endpoint budgets: each origin's steady-state demand,
// Σ 1 / (lifetime − refresh.before) over the providers whose token URL is on it, against its
// maxRate. Offline the lifetime is unknown, so `defaultTtl` stands in for it.
import { join } from './reader.js';
import { DEFAULT_TOKEN_ENDPOINT_BUDGET, originOf } from './token-endpoints.js';
import type { Config, ConfigProblem } from './types.js';

const MAX_REFRESH_BEFORE_MS = 5 * 60_000;

export interface OriginDemand {
  readonly origin: string;
  readonly providers: number;
  /** Token requests a second needed to keep every token fresh. */
  readonly demand: number;
  readonly maxRate: number;
  /** false: the default budget applies (no `tokenEndpoints` entry). */
  readonly configured: boolean;
}

export function budgetDemand(config: Config): OriginDemand[] {
  const byOrigin = new Map<string, { providers: number; demand: number }>();
  for (const p of config.providers.values()) {
    const s = p.source;
    if (s.type !== 'client_credentials' && s.type !== 'refresh_token' && s.type !== 'jwt_bearer' && s.type !== 'token_exchange') continue;
    const lifetime = s.defaultTtl;
    const before = p.refresh.before ?? Math.min(MAX_REFRESH_BEFORE_MS, lifetime / 2);
    const interval = lifetime - Math.min(before, lifetime);
    // With `issuer:` the token endpoint is discovered at run time; the issuer's origin stands in.
    const origin = originOf(s.tokenUrl ?? s.issuer!);
    const o = byOrigin.get(origin) ?? { providers: 0, demand: 0 };
    o.providers++;
    o.demand += interval > 0 ? 1000 / interval : Number.POSITIVE_INFINITY;
    byOrigin.set(origin, o);
  }
  return [...byOrigin].map(([origin, o]) => {
    const c = config.tokenEndpoints?.get(origin);
    return { origin, providers: o.providers, demand: o.demand, maxRate: (c ?? DEFAULT_TOKEN_ENDPOINT_BUDGET).maxRate, configured: c !== undefined };
  });
}

/** `2/s`, `0.05/s (3/m)`. */
export function formatRate(perSecond: number): string {
  if (!Number.isFinite(perSecond)) return 'unbounded';
  const s = `${Math.round(perSecond * 1000) / 1000}/s`;
  return perSecond < 1 ? `${s} (${Math.round(perSecond * 60 * 100) / 100}/m)` : s;
}

/** The origins whose budget cannot keep every token fresh, as `path: problem` pairs. */
export function infeasibleBudgets(demands: readonly OriginDemand[]): ConfigProblem[] {
  return demands.filter((d) => d.demand > d.maxRate).map((d) => ({
    path: join('tokenEndpoints', d.origin) + '.maxRate',
    problem: `steady-state demand ${formatRate(d.demand)} from ${d.providers} provider(s) exceeds the budget of ${formatRate(d.maxRate)}${d.configured ? '' : ' (the default for origins without an entry)'}; raise maxRate, lengthen the tokens' lifetime or shorten refresh.before`,
  }));
}
