// One provider's requests to a token source: each goes through retries (with the endpoint's
// Retry-After gate) and, for a token endpoint, the circuit breaker. Knows nothing of slots,
// schedules or the shared store: it is told what to fetch (`FetchRequest`) and returns the
// record; the coordinator decides when to fetch and what to do with it.
import type { Clock } from '../clock.js';
import type { ProviderConfig } from '../config/types.js';
import type { Logger } from '../observability/logger.js';
import { auditMinted } from '../observability/audit.js';
import type { Metrics } from '../observability/metrics.js';
import { inSpan, SpanKind, spanAttributes, spanEvent } from '../observability/tracing.js';
import { Breaker, type BreakerState } from '../resilience/breaker.js';
import type { RetryAfterGate } from '../resilience/retry-after-gate.js';
import { withRetries } from '../resilience/retry.js';
import type { BudgetHint, TokenEndpointBudgets } from '../resilience/token-endpoint-budget.js';
import { NEVER_EXPIRES, type TokenRecord } from '../store/store.js';
import { acceptFetched } from './acceptance.js';
import { provesEndpointUp, TOKEN_FAILURES, TokenError, toTokenError } from './errors.js';
import { recordFor } from './expiry.js';
import type { TokenSource } from './sources/source.js';

/** One fetch: the source to ask, and the refresh token to present (if any). */
export interface FetchRequest {
  readonly source: TokenSource;
  readonly refreshToken?: string | undefined;
  /**
   * When this rotating refresh token was first presented, if an earlier fetch already did and
   * its outcome is unknown (the reuse interval counts from then).
   */
  readonly presentedSince?: number | undefined;
}

/**
 * Told when the breaker lets a probe through (half-open). An object rather than a closure, so
 * the provider itself listens at no cost per provider.
 */
export interface BreakerListener {
  breakerHalfOpen(): void;
}

export interface FetcherDeps {
  readonly clock: Clock;
  readonly gate: RetryAfterGate;
  readonly logger: Logger;
  readonly metrics: Metrics;
  /** Per-origin token-endpoint budgets; absent: requests are not budgeted. */
  readonly budgets?: TokenEndpointBudgets;
}

export class Fetcher {
  /**
   * Created on the first fetch from a token endpoint: local sources (jwt, static) have no
   * endpoint to protect. Between fetches it holds no opossum breaker either (resilience/breaker.ts):
   * ~8 KB apiece, 75 MB for ten thousand providers.
   */
  private breakerInstance: Breaker | undefined;
  /**
   * The fetches in progress, so close() can cut their requests and retry waits. One at a time
   * for a provider's own slot (its single flight), more when several slots share this fetcher
   * (and its breaker). Per fetch rather than one per provider, and the set only while one runs:
   * an AbortSignal that has had listeners keeps hidden classes of its own, ~200 B for every idle
   * provider.
   */
  private inFlight: Set<AbortController> | undefined;
  private closed = false;

  constructor(
    /**
     * What the fetch is checked against and how it is protected: `name` labels logs and metrics,
     * `resilience` configures retries and the breaker, `inject` and `refresh` decide whether an
     * answer is accepted and when it expires, `source.reuseInterval` bounds a rotating retry.
     */
    private readonly config: ProviderConfig,
    private readonly deps: FetcherDeps,
    private readonly random: () => number,
    private readonly listener?: BreakerListener,
    /** Priority and deadline of this provider's requests in its origin's budget. */
    private readonly budgetHint?: BudgetHint,
  ) {}

  /** The breaker's state; "closed" until the first fetch from a token endpoint creates it. */
  get breakerState(): BreakerState {
    return this.breakerInstance?.state ?? 'closed';
  }

  private breaker(): Breaker {
    this.breakerInstance ??= new Breaker(this.config.name, this.config.resilience.breaker, this.deps.clock, {
      onStateChange: (state) => {
        this.deps.logger.warn('breaker state changed', { provider: this.config.name, breaker: state });
        spanEvent('breaker.state', { state }); // on the fetch whose failure tripped it, if any
        if (state === 'half_open') this.listener?.breakerHalfOpen();
      },
      provesUp: provesEndpointUp,
    });
    return this.breakerInstance;
  }

  /** One fetch through retries and (for a token endpoint) the breaker: the record, or a TokenError. */
  fetch(request: FetchRequest): Promise<TokenRecord> {
    return inSpan('tokengate.token.fetch', { 'tokengate.provider': this.config.name, 'tokengate.source_type': request.source.type, 'tokengate.breaker': this.breakerState }, () => this.fetchOnce(request), { kind: SpanKind.CLIENT });
  }

  private async fetchOnce(request: FetchRequest): Promise<TokenRecord> {
    const { clock, gate, metrics } = this.deps;
    const { source, refreshToken, presentedSince } = request;
    const config = this.config;
    const name = config.name;
    if (this.closed) throw new TokenError('ERR_SHUTTING_DOWN', 'tokengate is shutting down', { provider: name });
    const r = config.resilience;
    const sentAt = clock.now();
    const controller = new AbortController();
    (this.inFlight ??= new Set()).add(controller);
    // A rotating refresh token is presented again only when the IdP cannot have seen it (nothing
    // was sent), or inside the reuse interval it declared, counted from its first presentation.
    const reuseUntil = (presentedSince ?? sentAt) + (config.source.type === 'refresh_token' ? config.source.reuseInterval : 0);
    let ambiguous: TokenError | undefined;
    const mayRetry = source.rotates ? (err: TokenError) => !err.ambiguous || clock.now() < reuseUntil : undefined;
    // Every request to a token endpoint waits for its origin's budget (resilience/token-endpoint-budget.ts).
    const budget = source.endpoint && this.deps.budgets ? this.deps.budgets.forUrl(source.endpoint) : undefined;
    const admit = budget ? (signal?: AbortSignal) => budget.admit(this.budgetHint, signal) : undefined;
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
          { onRetry: (n, err, delay) => {
            spanEvent('retry', { attempt: n, delay_ms: delay, 'error.type': err.code });
            this.deps.logger.info('retrying token request', { provider: name, attempt: n, delayMs: delay, error: err.toJSON() });
          } },
        );
      const fetched = source.endpoint ? await this.breaker().run(attempt) : await attempt();
      const rec = recordFor(fetched, attemptAt, source.defaultTtlMs, config.refresh);
      metrics.fetches.inc({ provider: name, outcome: 'success' });
      metrics.fetchDuration.observe((clock.now() - sentAt) / 1000, name);
      this.deps.logger.info('token fetched', { provider: name, token_id: rec.tokenId, expires_in_s: Math.round((rec.expiresAt - clock.now()) / 1000), source_type: source.type });
      auditMinted(this.deps.logger, { provider: name, tokenId: rec.tokenId, sourceType: source.type, expiresInS: rec.expiresAt >= NEVER_EXPIRES ? null : Math.round((rec.expiresAt - clock.now()) / 1000) });
      spanAttributes({ 'tokengate.token_id': rec.tokenId });
      return rec;
    } catch (raw) {
      const err = toTokenError(raw, 'ERR_IDP_UNAVAILABLE', name);
      // The breaker's decision: it refused the fetch without a request.
      if (err.code === 'ERR_BREAKER_OPEN') spanEvent('breaker.rejected', { state: this.breakerState });
      metrics.fetches.inc({ provider: name, outcome: err.code });
      if (err.code !== 'ERR_BREAKER_OPEN') metrics.fetchDuration.observe((clock.now() - sentAt) / 1000, name);
      throw err;
    } finally {
      this.inFlight?.delete(controller);
      if (this.inFlight?.size === 0) this.inFlight = undefined;
      if (this.budgetHint) this.budgetHint.cold = false; // the Checks that waited have their answer
    }
  }

  /** Aborts requests and retry waits in progress and stops the breaker's timers. */
  close(): void {
    this.closed = true;
    const reason = new TokenError('ERR_SHUTTING_DOWN', 'tokengate is shutting down', { provider: this.config.name });
    for (const c of this.inFlight ?? []) c.abort(reason);
    this.breakerInstance?.shutdown();
  }
}
