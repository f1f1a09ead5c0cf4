// Token-endpoint budgets (README, "Token-endpoint budgets"): a loopback IdP that rate-limits like
// a free tier, providers on it, and time driven through the manual clock.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import { parseConfig } from '../../src/config/load.js';
import { TokenManager } from '../../src/tokens/manager.js';
import { BudgetHint, OriginBudget } from '../../src/resilience/token-endpoint-budget.js';

/**
 * An IdP that enforces its own limit as a token bucket on the test's clock (capacity `burst`,
 * `rate` a second) and answers 429 when it is empty; it records who asked when.
 */
class LimitedIdp {
  readonly requests: { at: number; client: string }[] = [];
  rejected = 0;
  /** While set, every request is answered 429 with this Retry-After (seconds). */
  throttleWith: number | undefined;
  pending = 0;
  private level: number;
  private levelAt: number;
  private server: http.Server;
  url = '';

  constructor(private readonly clock: ManualClock, private readonly rate: number, private readonly burst: number, private readonly expiresIn = 300) {
    this.level = burst;
    this.levelAt = clock.now();
    this.server = http.createServer((req, res) => {
      this.pending++;
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        const now = this.clock.now();
        const client = new URLSearchParams(body).get('client_id') ?? '?';
        this.requests.push({ at: now, client });
        this.level = Math.min(this.burst, this.level + ((now - this.levelAt) / 1000) * this.rate);
        this.levelAt = now;
        const send = (status: number, json: unknown, headers: Record<string, string> = {}) => {
          res.writeHead(status, { 'content-type': 'application/json', ...headers });
          res.end(JSON.stringify(json), () => this.pending--);
        };
        if (this.throttleWith !== undefined) return send(429, { error: 'slow_down' }, { 'retry-after': String(this.throttleWith) });
        if (this.level < 1 - 1e-9) {
          this.rejected++;
          return send(429, { error: 'rate_limited' }, { 'retry-after': '1' });
        }
        this.level -= 1;
        send(200, { access_token: randomBytes(12).toString('hex'), token_type: 'Bearer', expires_in: this.expiresIn });
      });
    });
  }

  async start(): Promise<void> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  stop(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  /** Most requests seen in any window of `ms` (sliding, on the test's clock). */
  maxIn(ms: number, from = 0): number {
    const at = this.requests.filter((r) => r.at >= from).map((r) => r.at);
    let best = 0;
    for (let i = 0, j = 0; j < at.length; j++) {
      while (at[j]! - at[i]! >= ms) i++;
      best = Math.max(best, j - i + 1);
    }
    return best;
  }
}

/** Lets the loopback requests started by the last clock step finish (real I/O, no clock movement). */
async function settle(idp: LimitedIdp): Promise<void> {
  // Until nothing is pending and no request arrived for a few ms: a request the last step let
  // through reaches the IdP at that step's time, not a later one.
  for (let i = 0, quiet = 0, seen = -1; i < 300 && quiet < 3; i++) {
    for (let k = 0; k < 3; k++) await new Promise((r) => setImmediate(r));
    if (idp.pending === 0 && idp.requests.length === seen) quiet++;
    else quiet = 0;
    seen = idp.requests.length;
    if (quiet < 3) await new Promise((r) => setTimeout(r, 1));
  }
}

async function run(clock: ManualClock, idp: LimitedIdp, ms: number, step = 100, each?: () => void): Promise<void> {
  for (let t = 0; t < ms; t += step) {
    clock.advance(step);
    await settle(idp);
    each?.();
  }
}

function configFor(idp: LimitedIdp, n: number, budget: string, extra = ''): string {
  const lines = [`tokenEndpoints: { "${idp.url}": ${budget} }`, 'providers:'];
  for (let i = 0; i < n; i++) {
    lines.push(`  p${i}: { source: { type: client_credentials, tokenUrl: "${idp.url}/token", clientId: p${i}, clientSecret: s, authMethod: client_secret_post }${extra} }`);
  }
  return lines.join('\n');
}

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function setup(n: number, budget: string, opts: { rate?: number; burst?: number; expiresIn?: number; extra?: string } = {}) {
  const clock = new ManualClock();
  const idp = new LimitedIdp(clock, opts.rate ?? 5, opts.burst ?? 5, opts.expiresIn);
  await idp.start();
  const config = parseConfig(configFor(idp, n, budget, opts.extra));
  const manager = new TokenManager(config.providers.values(), { clock, tokenEndpoints: config.tokenEndpoints, random: () => 0.5 });
  cleanups.push(async () => {
    await manager.close(0);
    await idp.stop();
  });
  return { clock, idp, manager };
}

describe('token-endpoint budgets', () => {
  it('500 providers on an IdP limited to 5/s: never above the limit, every provider gets its token, none expires waiting', async () => {
    const { clock, idp, manager } = await setup(500, '{ maxRate: 5/s, burst: 5 }');
    let ready = false;
    void manager.warmUp().then(() => (ready = true));
    // Warm-up: 500 requests at 5/s take ~100 s; readiness does not wait for all of them.
    await run(clock, idp, 4_000);
    expect(ready).toBe(true);
    let expiredWhileWaiting = 0;
    let checks = 0;
    await run(clock, idp, 116_000, 100, () => {
      if (++checks % 20) return;
      for (const s of manager.stats()) if (s.state === 'expired') expiredWhileWaiting++;
    });
    const states = manager.stats();
    expect(states.filter((s) => s.state === 'valid' || s.state === 'refreshing').length).toBe(500);
    // Steady state: 500 tokens of 300 s refreshed 150 s early need 3.3/s of the 5/s. Run through
    // the first refresh round (due ~135-250 s after warm-up, expiry at ~285-385 s).
    await run(clock, idp, 300_000, 200, () => {
      if (++checks % 10) return;
      for (const s of manager.stats()) if (s.state === 'expired' || s.state === 'missing') expiredWhileWaiting++;
    });
    expect(idp.rejected).toBe(0); // the IdP's own 5/s bucket never ran dry
    expect(idp.maxIn(1_000)).toBeLessThanOrEqual(5 + 5); // burst + rate × 1 s
    expect(idp.maxIn(10_000)).toBeLessThanOrEqual(5 + 50);
    expect(new Set(idp.requests.map((r) => r.client)).size).toBe(500);
    expect(idp.requests.length).toBeGreaterThanOrEqual(1000); // warm-up plus one refresh each
    expect(expiredWhileWaiting).toBe(0);
    expect(manager.budgetStatus().find((b) => b.origin === idp.url)).toMatchObject({ maxRate: 5, burst: 5, configured: true });
  }, 120_000);

  it('spreads refreshes that come due together over their window: the second round is flat, not the warm-up spike again', async () => {
    // 500 providers warmed at once with the same 300 s lifetime, a 50/s budget on a roomy IdP.
    const { clock, idp, manager } = await setup(500, '{ maxRate: 50/s, burst: 50, maxConcurrent: 50 }', { rate: 1_000, burst: 1_000, expiresIn: 300 });
    const t0 = clock.now();
    void manager.warmUp();
    let expired = 0;
    let steps = 0;
    const watch = () => {
      if (++steps % 8) return;
      for (const s of manager.stats()) if (s.state === 'expired' || s.state === 'missing') expired++;
    };
    await run(clock, idp, 30_000, 250);
    const warmUp = idp.requests.length;
    expect(warmUp).toBe(500);
    const perSecond = (from: number, to: number) => {
      const h = new Map<number, number>();
      for (const r of idp.requests) {
        const s = Math.floor((r.at - t0) / 1000);
        if (r.at - t0 >= from && r.at - t0 < to) h.set(s, (h.get(s) ?? 0) + 1);
      }
      return [...h.values()];
    };
    // The warm-up itself goes out as fast as the budget allows: 50/s.
    expect(Math.max(...perSecond(0, 30_000))).toBeGreaterThanOrEqual(45);
    // Refresh moments: 300 s − 15 s skew − 150 s lead − 7.5 s jitter ≈ 127.5 s after each fetch,
    // all within the ~10 s of warm-up. Run through two refresh rounds.
    await run(clock, idp, 170_000, 250, watch);
    const round1 = perSecond(30_000, 200_000);
    expect(round1.reduce((a, b) => a + b, 0)).toBe(500);
    expect(Math.max(...round1)).toBeLessThanOrEqual(25);
    expect(manager.budgetStatus().find((b) => b.origin === idp.url)!.planned).toBeGreaterThan(0); // round 2 is planned
    await run(clock, idp, 150_000, 250, watch);
    const round2 = perSecond(200_000, 350_000);
    expect(round2.reduce((a, b) => a + b, 0)).toBe(500);
    for (const round of [round1, round2]) {
      // Flat: at most half the budget (25) in any second, over at least 20 seconds, where the
      // warm-up sent 50 a second for 10.
      expect(Math.max(...round)).toBeLessThanOrEqual(25);
      expect(round.length).toBeGreaterThanOrEqual(20);
    }
    expect(idp.rejected).toBe(0);
    expect(expired).toBe(0);
    expect(manager.stats().every((s) => s.state === 'valid')).toBe(true);
  }, 120_000);

  it('a refresh whose token would otherwise expire goes ahead of early background refreshes', async () => {
    const clock = new ManualClock();
    const budget = new OriginBudget('https://idp.example', { maxRate: 1, burst: 1, maxConcurrent: 10, fallbackShare: 1 }, true, { clock });
    const hint = (deadlineIn: number) => Object.assign(new BudgetHint(), { deadline: clock.now() + deadlineIn });
    const order: string[] = [];
    const ask = (name: string, h: BudgetHint) => budget.admit(h).then((lease) => { order.push(name); lease.done(); });
    const all = [ask('first', hint(3_600_000)), ask('early-1', hint(3_600_000)), ask('early-2', hint(3_500_000))];
    await Promise.resolve();
    all.push(ask('urgent', hint(2_000)));
    for (let i = 0; i < 4; i++) {
      await new Promise((r) => setImmediate(r));
      clock.advance(1_000);
    }
    await Promise.all(all);
    expect(order).toEqual(['first', 'urgent', 'early-2', 'early-1']);
    budget.close(new Error('done'));
  });

  it('serves a cold Check before the queued background refreshes', async () => {
    const { clock, idp, manager } = await setup(20, '{ maxRate: 1/s, burst: 1 }', { rate: 100, burst: 100, extra: ', refresh: { waitBudget: 30s }' });
    void manager.warmUp();
    await run(clock, idp, 500);
    // Warm-up requests are queued behind the 1/s budget; a Check for the last provider arrives.
    expect(idp.requests.length).toBe(1);
    const got = manager.getToken('p19');
    await run(clock, idp, 1_500);
    const token = await got;
    expect(token.source).toBe('refreshed');
    expect(idp.requests.map((r) => r.client).slice(0, 3)).toContain('p19');
    expect(idp.requests.findIndex((r) => r.client === 'p19')).toBe(1); // the very next request
    expect(manager.budgetStatus().find((b) => b.origin === idp.url)!.queued).toBeGreaterThan(10);
  }, 60_000);

  it('429 with Retry-After: 2 halves the rate once, honours the pause, and recovers', async () => {
    const { clock, idp, manager } = await setup(60, '{ maxRate: 4/s, burst: 4 }', { rate: 100, burst: 100, expiresIn: 3600 });
    void manager.warmUp();
    await run(clock, idp, 2_000);
    const budget = () => manager.budgetStatus().find((b) => b.origin === idp.url)!;
    expect(budget().effectiveRate).toBe(4);
    idp.throttleWith = 2;
    await run(clock, idp, 300);
    const throttledAt = clock.now();
    const before = idp.requests.length;
    expect(budget().effectiveRate).toBeLessThanOrEqual(2.2); // halved once (several 429s in flight: one episode)
    expect(budget().effectiveRate).toBeGreaterThanOrEqual(1.9);
    expect(budget().throttled).toBeGreaterThanOrEqual(1);
    // Retry-After: 2 → nothing is sent for 2 s.
    idp.throttleWith = undefined;
    await run(clock, idp, 1_500);
    expect(idp.requests.filter((r) => r.at > throttledAt + 100).length).toBe(0);
    await run(clock, idp, 3_000);
    expect(idp.requests.length).toBeGreaterThan(before);
    // Recovery: maxRate/10 a second without a 429, up to maxRate.
    await run(clock, idp, 6_000);
    expect(budget().effectiveRate).toBe(4);
    expect(manager.metrics.render()).toMatch(new RegExp(`tokengate_token_endpoint_throttled_total\\{origin="${idp.url.replace(/[.]/g, '\\.')}"\\} [1-9]`));
    expect(manager.metrics.render()).toContain(`tokengate_token_endpoint_rate{origin="${idp.url}"} 4`);
  }, 60_000);
});
