// One provider's requests to its token source: each goes through retries (with the endpoint's
// Retry-After gate) and, for a token endpoint, the circuit breaker. Knows nothing of caching or
// the shared store; the provider decides when to fetch and what to do with the record.
import type { Clock } from '../clock.js';
import type { ProviderConfig } from '../config/types.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import { Breaker, type BreakerState } from '../resilience/breaker.js';
import type { RetryAfterGate } from '../resilience/retry-after-gate.js';
import { withRetries } from '../resilience/retry.js';
import type { BudgetHint, TokenEndpointBudgets } from '../resilience/token-endpoint-budget.js';
import type { TokenRecord } from '../store/store.js';
import { acceptFetched } from './acceptance.js';
import { provesEndpointUp, TOKEN_FAILURES, TokenError, toTokenError } from './errors.js';
import { recordFor } from './expiry.js';
import type { TokenSource } from './sources/source.js';

/** What the fetcher reads of its provider (all of it public). */
export interface FetcherHost {
  readonly name: string;
  readonly config: ProviderConfig;
  readonly source: TokenSource;
  /** Priority and deadline of this provider's requests in its origin's budget. */
  readonly budgetHint?: BudgetHint;
}

export interface FetcherDeps {
  readonly clock: Clock;
  readonly gate: RetryAfterGate;
  readonly logger: Logger;
  readonly metrics: Metrics;
  /** Per-origin token-endpoint budgets; absent: requests are not budgeted. */
  readonly budgets?: TokenEndpointBudgets;
}

export class Fetcher<H extends FetcherHost> {
  /**
   * Created on the first fetch from a token endpoint: local sources (jwt, static) have no
   * endpoint to protect, and ten thousand idle breakers would cost ~80 MB of timers and stats.
   */
  private breakerInstance: Breaker | undefined;
  /**
   * The fetch in progress (the provider's single flight means one at a time), so close() can
   * cut its requests and retry waits. Per fetch rather than one per provider: an AbortSignal
   * that has had listeners keeps hidden classes of its own, ~200 B for every idle provider.
   */
  private inFlight: AbortController | undefined;
  private closed = false;

  constructor(
    private readonly host: H,
    /**
     * The breaker lets a probe through: the provider decides whether to refresh now. A function
     * of the provider, shared by all of them, rather than a closure for each.
     */
    private readonly onHalfOpen: (host: H) => void,
    private readonly deps: FetcherDeps,
    private readonly random: () => number,
  ) {}

  /** The breaker's state; "closed" until the first fetch from a token endpoint creates it. */
  get breakerState(): BreakerState {
    return this.breakerInstance?.state ?? 'closed';
  }

  private breaker(): Breaker {
    this.breakerInstance ??= new Breaker(this.host.name, this.host.config.resilience.breaker, {
      onStateChange: (state) => {
        this.deps.logger.warn('breaker state changed', { provider: this.host.name, breaker: state });
        if (state === 'half_open') this.onHalfOpen(this.host);
      },
      provesUp: provesEndpointUp,
    });
    return this.breakerInstance;
  }

  /**
   * `presentedSince`: when this rotating refresh token was first presented, if an earlier fetch
   * already did and its outcome is unknown (the reuse interval counts from then).
   */
  async fetch(refreshToken: string | undefined, presentedSince?: number): Promise<TokenRecord> {
    const { clock, gate, metrics } = this.deps;
    const { name, config, source } = this.host;
    if (this.closed) throw new TokenError('ERR_SHUTTING_DOWN', 'tokengate is shutting down', { provider: name });
    const r = config.resilience;
    const sentAt = clock.now();
    const controller = new AbortController();
    this.inFlight = controller;
    // A rotating refresh token is presented again only when the IdP cannot have seen it (nothing
    // was sent), or inside the reuse interval it declared, counted from its first presentation.
    const reuseUntil = (presentedSince ?? sentAt) + (config.source.type === 'refresh_token' ? config.source.reuseInterval : 0);
    let ambiguous: TokenError | undefined;
    const mayRetry = source.rotates ? (err: TokenError) => !err.ambiguous || clock.now() < reuseUntil : undefined;
    // Every request to a token endpoint waits for its origin's budget (resilience/token-endpoint-budget.ts).
    const budget = source.endpoint && this.deps.budgets ? this.deps.budgets.forUrl(source.endpoint) : undefined;
    const admit = budget ? (signal?: AbortSignal) => budget.admit(this.host.budgetHint, signal) : undefined;
    try {
      let attemptAt = sentAt;
      const attempt = () =>
        withRetries(
          (signal) => {
            // The backoff may have carried us past the window: checked again right before sending.
            if (ambiguous && clock.now() >= reuseUntil) return Promise.reject(ambiguous);
            const at = clock.now();
            attemptAt = at;
            // Checked inside the attempt: a refused token is a failed attempt (retries, breaker).
            const p = source.fetch({ signal, now: at, ...(refreshToken ? { refreshToken } : {}) }).then((f) => acceptFetched(f, at, config, source));
            return source.rotates
              ? p.catch((err: unknown) => {
                if (err instanceof TokenError && err.ambiguous) ambiguous = err;
                throw err;
              })
              : p;
          },
          { timeoutMs: r.timeout, retries: r.retries, baseMs: r.backoff.base, maxMs: r.backoff.max, ...(mayRetry ? { mayRetry } : {}) },
          { clock, gate, failures: TOKEN_FAILURES, ...(source.endpoint ? { endpoint: source.endpoint } : {}), signal: controller.signal, random: this.random, ...(admit ? { admit } : {}) },
          { onRetry: (n, err, delay) => this.deps.logger.info('retrying token request', { provider: name, attempt: n, delayMs: delay, error: err.toJSON() }) },
        );
      const fetched = source.endpoint ? await this.breaker().run(attempt) : await attempt();
      const rec = recordFor(fetched, attemptAt, source.defaultTtlMs, config.refresh);
      metrics.fetches.inc({ provider: name, outcome: 'success' });
      metrics.fetchDuration.observe((clock.now() - sentAt) / 1000, name);
      this.deps.logger.info('token fetched', { provider: name, token_id: rec.tokenId, expires_in_s: Math.round((rec.expiresAt - clock.now()) / 1000), source_type: source.type });
      return rec;
    } catch (raw) {
      const err = toTokenError(raw, 'ERR_IDP_UNAVAILABLE', name);
      metrics.fetches.inc({ provider: name, outcome: err.code });
      if (err.code !== 'ERR_BREAKER_OPEN') metrics.fetchDuration.observe((clock.now() - sentAt) / 1000, name);
      throw err;
    } finally {
      if (this.inFlight === controller) this.inFlight = undefined;
      if (this.host.budgetHint) this.host.budgetHint.cold = false; // the Checks that waited have their answer
    }
  }

  /** Aborts requests and retry waits in progress and stops the breaker's timers. */
  close(): void {
    this.closed = true;
    this.inFlight?.abort(new TokenError('ERR_SHUTTING_DOWN', 'tokengate is shutting down', { provider: this.host.name }));
    this.breakerInstance?.shutdown();
  }
}
