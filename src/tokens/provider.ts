// One provider: its token slot's schedule, the single in-flight refresh, status and the
// fallback ladder. The Check path calls `lookup` (synchronous, no I/O) and only on a miss
// `acquire` (bounded by waitBudget). The refresh path runs one way: `refresh` → the
// `ReplicaCoordinator` (the shared store) → the `Fetcher` (breaker, retries) → `TokenSlot.adopt`,
// which wakes its waiters and tells its observer, this provider, to schedule the next refresh.
import { randomUUID } from 'node:crypto';
import type { Clock, TimerHandle } from '../clock.js';
import type { ProviderConfig } from '../config/types.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import { traceRefresh } from '../observability/tracing.js';
import { BREAKER_STATE_VALUE, type BreakerState } from '../resilience/breaker.js';
import type { RetryAfterGate } from '../resilience/retry-after-gate.js';
import { BudgetHint, type OriginBudget, type TokenEndpointBudgets } from '../resilience/token-endpoint-budget.js';
import { NEVER_EXPIRES, type StoreEvent, type TokenRecord, type TokenStore } from '../store/store.js';
import { CachedToken, type TokenServeSource } from './cached-token.js';
import { TokenError, toTokenError } from './errors.js';
import { MIN_REFRESH_INTERVAL_MS } from '../config/lifetime-bounds.js';
import { Fetcher, type BreakerListener } from './fetcher.js';
import { ReplicaCoordinator, type Grant } from './replica-coordinator.js';
import type { TokenSource } from './sources/source.js';
import { tokenId } from './token-id.js';
import { TokenSlot, type Adoption, type SlotKey, type SlotObserver } from './token-slot.js';

/**
 * `needs_attention`: a refresh_token grant's outcome was unknown, its refresh token is spent and
 * no refresh is attempted until an operator configures a new one (the cached token still serves).
 */
export type ProviderStateName = 'valid' | 'refreshing' | 'stale' | 'expired' | 'missing' | 'needs_attention';

/**
 * What a provider works with. Nothing in it is the provider's own: ten thousand providers share
 * one deps object (their store key is a constructor argument).
 */
export interface ProviderDeps {
  readonly clock: Clock;
  readonly store: TokenStore;
  readonly gate: RetryAfterGate;
  readonly logger: Logger;
  readonly metrics: Metrics;
  /** This process, in store events. */
  readonly replicaId: string;
  readonly random?: () => number;
  readonly budgets?: TokenEndpointBudgets;
}

export type Acquired =
  | { readonly entry: CachedToken; readonly source: TokenServeSource; readonly error?: undefined }
  | { readonly entry?: undefined; readonly source?: undefined; readonly error: TokenError };

export interface ProviderStatus {
  readonly name: string;
  readonly state: ProviderStateName;
  readonly expiresIn: number | null;
  readonly tokenId: string | null;
  readonly source: TokenServeSource | null;
  readonly breaker: BreakerState;
  readonly lastError: Record<string, unknown> | null;
}

const PERMANENT_RETRY_MS = 60_000;
/** `warmedUp` of every provider whose first attempt has settled. */
const WARMED_UP: Promise<void> = Promise.resolve();
/** After close() aborts a refresh: how long its bookkeeping (spent mark, unlock) may take. */
const CUT_OFF_SETTLE_MS = 500;
/** Refreshes that may start back to back before the minimum interval applies. */
const REFRESH_BURST = 2;
const MAX_RETRY_MS = 30_000;

/**
 * The provider is also its slot's key (`storeKey`, `label`) and its coordinator's grant (`config`,
 * `source`): objects of their own would cost each of ten thousand providers 80 B for nothing.
 */
export class Provider implements SlotObserver, BreakerListener, SlotKey, Grant {
  readonly name: string;
  /**
   * This provider's place in its token endpoint's budget queue (priority, deadline). None for a
   * source without a token endpoint (jwt, static): it is never queued, and the hint would be
   * two objects (its deadline is a boxed double) for each of ten thousand providers.
   */
  readonly budgetHint: BudgetHint | undefined;
  /**
   * When the current token's background refresh starts: its refresh moment, or later in its
   * window when the origin's budget spreads refreshes that came due together.
   */
  private refreshDueAt = 0;
  /** The slot booked in the origin's refresh plan for it (0: none), given back if it will not run. */
  private plannedAt = 0;
  /** The token this provider serves; the refresh path ends in its `adopt`. */
  private readonly slot: TokenSlot;
  private lastServed: TokenServeSource | null = null;
  private readonly emergency: CachedToken | undefined;
  private inflight: Promise<CachedToken> | undefined;
  private timer: TimerHandle | undefined;
  /**
   * The timer's callback and why it was set: one bound method for the provider's life instead
   * of a closure and its context per schedule (two objects each of ten thousand providers keep).
   */
  private readonly onTimer = this.timerFired.bind(this);
  private timerReason = 'scheduled';
  /**
   * Refresh credit, a token bucket: one per MIN_REFRESH_INTERVAL_MS, at most REFRESH_BURST, so a
   * lone invalidation right after a fetch is served at once and a loop is held to one a second.
   */
  private refreshCredit = REFRESH_BURST;
  private refreshCreditAt = 0;
  /** Ends a refresh's wait for the minimum interval early, at shutdown. */
  private cancelPause: (() => void) | undefined;
  private closing = false;
  private lastError: TokenError | undefined;
  private failures = 0;
  /** Until then a permanent failure (refused credential, bad config) is not retried by Checks. */
  private permanentUntil = 0;
  /** ERR_GRANT_AMBIGUOUS: only an operator (reload, admin refresh) starts a refresh. */
  private attention = false;
  private readonly random: () => number;
  private readonly fetcher: Fetcher;
  private readonly replica: ReplicaCoordinator;
  /** The first fetch attempt has settled (health/readiness waits for this). */
  get warmedUp(): Promise<void> {
    return this.warming ?? WARMED_UP;
  }

  /**
   * Until the first attempt settles: the promise `warmedUp` hands out and what resolves it. Both
   * are dropped then (`warmedUp` hands out a shared resolved promise): the promise, the resolve
   * function and its context are ~150 B that each of ten thousand providers would keep.
   */
  private warming: Promise<void> | undefined;
  private markWarm: (() => void) | undefined;

  constructor(
    readonly config: ProviderConfig,
    readonly source: TokenSource,
    private readonly deps: ProviderDeps,
    /** The store key of this provider's slot (a reload keeps the token when it is unchanged). */
    readonly storeKey: string,
  ) {
    this.name = config.name;
    this.random = deps.random ?? Math.random;
    this.budgetHint = source.endpoint === undefined ? undefined : new BudgetHint();
    this.warming = new Promise((resolve) => (this.markWarm = resolve));
    this.slot = new TokenSlot(this, config, deps.clock, this.random);
    this.slot.observe(this);
    this.fetcher = new Fetcher(config, deps, this.random, this, this.budgetHint);
    this.replica = new ReplicaCoordinator(this.slot, this, this.fetcher, deps);
    const r = config.resilience;
    if (r.emergencyToken) {
      const rec: TokenRecord = {
        accessToken: r.emergencyToken, tokenType: 'Bearer', tokenId: tokenId(r.emergencyToken),
        obtainedAt: 0, expiresAt: NEVER_EXPIRES, lifetimeMs: NEVER_EXPIRES,
      };
      this.emergency = new CachedToken(rec, NEVER_EXPIRES, NEVER_EXPIRES, config.inject);
    }
  }

  /** How a lookup hit is labelled: 'cache', or 'stale' once a refresh for it has failed. */
  get hotSource(): 'cache' | 'stale' {
    return this.slot.hitSource;
  }

  /** The breaker's state; "closed" until the first fetch from a token endpoint creates it. */
  get breakerState(): BreakerState {
    return this.fetcher.breakerState;
  }

  /** SlotKey: the slot's label in logs, metrics and store events. */
  get label(): string {
    return this.name;
  }

  // ---- the request path ------------------------------------------------------------------

  /**
   * The cached token if it is before hard expiry, else undefined. Inside the refresh window it
   * also starts one background refresh. Synchronous and allocation-free on a hit.
   */
  lookup(now: number): CachedToken | undefined {
    const c = this.slot.peek();
    if (c === undefined || now >= c.expiresAt) return undefined;
    if (now >= this.refreshDueAt && this.inflight === undefined && !this.closing && !this.attention && this.breakerState !== 'open') {
      this.refreshInBackground('near_expiry');
    }
    return c;
  }

  /** The slow path: wait (bounded) for the in-flight refresh, then the fallback ladder. */
  async acquire(): Promise<Acquired> {
    const now = this.deps.clock.now();
    const hit = this.lookup(now);
    if (hit) return this.served(hit, this.slot.hitSource);
    let error: TokenError | undefined;
    if (this.closing) error = new TokenError('ERR_SHUTTING_DOWN', 'tokengate is shutting down', { provider: this.name });
    else if (this.breakerState === 'open' && this.inflight === undefined) {
      // Do not queue behind an open breaker: its probe is scheduled; answer from the ladder now.
      error = this.lastError ?? new TokenError('ERR_BREAKER_OPEN', `circuit breaker for ${this.name} is open`, { provider: this.name });
    } else if (this.lastError && (this.attention || now < this.permanentUntil || this.refreshWait(now) > 0) && this.inflight === undefined) {
      // A refused credential does not trip the breaker, so nothing else would stop every cold
      // Check from asking again: wait for the scheduled retry (or a reload, or an admin refresh).
      // Nor may Checks refresh faster than the minimum interval after a failure.
      error = this.lastError;
    } else {
      try {
        this.budgetHint?.promote(); // a Check waits: this provider's queued request goes first
        const entry = await this.waitFor(this.refresh('cold'), this.config.refresh.waitBudget);
        return this.served(entry, 'refreshed');
      } catch (err) {
        error = toTokenError(err, 'ERR_IDP_UNAVAILABLE', this.name);
      }
    }
    return this.ladder(error);
  }

  private ladder(error: TokenError): Acquired {
    const now = this.deps.clock.now();
    const c = this.slot.peek();
    if (c && now < c.expiresAt) return this.served(c, 'stale');
    if (c && now < c.expiresAt + this.config.resilience.serveExpiredFor) return this.served(c, 'expired_grace');
    if (this.emergency) return this.served(this.emergency, 'emergency');
    return { error };
  }

  private served(entry: CachedToken, source: TokenServeSource): Acquired {
    this.lastServed = source;
    return { entry, source };
  }

  private waitFor(p: Promise<CachedToken>, budgetMs: number): Promise<CachedToken> {
    return new Promise<CachedToken>((resolve, reject) => {
      const timer = this.deps.clock.setTimer(
        () => reject(new TokenError('ERR_WAIT_BUDGET', `no token within the ${budgetMs}ms wait budget`, { provider: this.name, ...(this.lastError ? { cause: this.lastError } : {}) })),
        budgetMs,
      );
      p.then(
        (v) => { timer.cancel(); resolve(v); },
        (e: unknown) => { timer.cancel(); reject(e); },
      );
    });
  }

  // ---- refreshing --------------------------------------------------------------------------

  /**
   * BreakerListener: the half-open probe is our own refresh, so the first Check after recovery
   * finds a fresh token.
   */
  breakerHalfOpen(): void {
    if (this.needsRefresh()) this.refreshInBackground('probe');
  }

  private needsRefresh(): boolean {
    if (this.attention) return false;
    const c = this.slot.peek();
    return c === undefined || this.deps.clock.now() >= c.refreshAt;
  }

  refreshInBackground(reason: string): void {
    this.refresh(reason).catch(() => undefined); // failures are recorded, logged and rescheduled
  }

  /**
   * Single flight: every caller shares the one refresh in progress. Refreshes start at most
   * REFRESH_BURST back to back, then one per MIN_REFRESH_INTERVAL_MS (an operator's 'admin'
   * refresh is not held back), so no sequence of answers, errors or events can make this
   * provider hammer its IdP.
   */
  refresh(reason: string): Promise<CachedToken> {
    if (this.inflight) return this.inflight;
    if (this.closing) return Promise.reject(new TokenError('ERR_SHUTTING_DOWN', 'tokengate is shutting down', { provider: this.name }));
    this.timer?.cancel();
    this.timer = undefined;
    const wait = reason === 'admin' ? 0 : this.refreshWait(this.deps.clock.now());
    if (this.budgetHint) this.budgetHint.deadline = this.slot.peek()?.expiresAt ?? 0;
    return this.track(async () => {
      if (wait > 0) await this.pause(wait);
      this.spendRefreshCredit(this.deps.clock.now());
      return this.replica.coordinate();
    }, reason);
  }

  /** Runs `work` as the single refresh in flight, recording its outcome. */
  private track(work: () => Promise<CachedToken>, reason: string): Promise<CachedToken> {
    const p = this.runRefresh(() => traceRefresh(this.name, reason, work), reason).finally(() => {
      if (this.inflight === p) this.inflight = undefined;
    });
    this.inflight = p;
    return p;
  }

  /** How long until a refresh may start (0: now), from the credit earned by `now`. */
  private refreshWait(now: number): number {
    const credit = Math.min(REFRESH_BURST, this.refreshCredit + (now - this.refreshCreditAt) / MIN_REFRESH_INTERVAL_MS);
    return credit >= 1 ? 0 : Math.ceil((1 - credit) * MIN_REFRESH_INTERVAL_MS);
  }

  /** Spends one refresh credit (an operator's refresh may overdraw it). */
  private spendRefreshCredit(now: number): void {
    this.refreshCredit = Math.max(0, Math.min(REFRESH_BURST, this.refreshCredit + (now - this.refreshCreditAt) / MIN_REFRESH_INTERVAL_MS) - 1);
    this.refreshCreditAt = now;
  }

  /** Waits on the injected clock; shutdown ends the wait with ERR_SHUTTING_DOWN. */
  private pause(ms: number): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const timer = this.deps.clock.setTimer(() => {
        this.cancelPause = undefined;
        resolve();
      }, ms);
      this.cancelPause = () => {
        timer.cancel();
        this.cancelPause = undefined;
        reject(new TokenError('ERR_SHUTTING_DOWN', 'tokengate is shutting down', { provider: this.name }));
      };
    });
  }

  private async runRefresh(work: () => Promise<CachedToken>, reason: string): Promise<CachedToken> {
    try {
      const entry = await work();
      this.lastError = undefined;
      this.failures = 0;
      this.permanentUntil = 0;
      this.attention = false;
      return entry;
    } catch (raw) {
      const err = toTokenError(raw, 'ERR_IDP_UNAVAILABLE', this.name);
      // "The breaker is open" is a consequence; the IdP's own error stays the one to show.
      if (err.code !== 'ERR_BREAKER_OPEN' || !this.lastError) this.lastError = err;
      this.failures++;
      if (err.code === 'ERR_GRANT_AMBIGUOUS') this.attention = true;
      this.slot.markStale();
      const level = err.transient || err.code === 'ERR_BREAKER_OPEN' || err.code === 'ERR_SHUTTING_DOWN' ? 'warn' : 'error';
      this.deps.logger[level]('token refresh failed', { provider: this.name, reason, error: err.toJSON(), failures: this.failures });
      this.scheduleRetry(err);
      throw err;
    } finally {
      this.warm();
    }
  }

  private warm(): void {
    this.markWarm?.();
    this.markWarm = undefined;
    this.warming = undefined;
  }

  /** SlotObserver: every adoption (ours, the store's, another replica's) sets the next refresh. */
  adopted(entry: CachedToken, how: Adoption): void {
    if (how !== 'fetched') this.deps.logger.debug('token adopted from store', { provider: this.name, token_id: entry.tokenId, how });
    this.schedule(this.planRefresh(entry) - this.deps.clock.now(), 'scheduled');
  }

  /** The background refresh moment for a newly adopted token, spread by its origin's budget. */
  private planRefresh(entry: CachedToken): number {
    this.unplanRefresh();
    const budget = this.budget();
    if (budget && entry.expiresAt < NEVER_EXPIRES / 2) {
      this.refreshDueAt = this.plannedAt = budget.planRefresh(entry.refreshAt, entry.expiresAt);
    } else {
      this.refreshDueAt = entry.refreshAt;
    }
    return this.refreshDueAt;
  }

  /** Gives back a planned refresh that has not come due (the token was replaced, or we are closing). */
  private unplanRefresh(): void {
    if (this.plannedAt > this.deps.clock.now()) this.budget()?.unplan(this.plannedAt);
    this.plannedAt = 0;
  }

  private budget(): OriginBudget | undefined {
    return this.source.endpoint && this.deps.budgets ? this.deps.budgets.forUrl(this.source.endpoint) : undefined;
  }

  private schedule(delayMs: number, reason: string): void {
    if (this.closing) return;
    this.timer?.cancel();
    if (delayMs >= NEVER_EXPIRES / 2) return;
    this.timerReason = reason;
    this.timer = this.deps.clock.setTimer(this.onTimer, Math.max(0, delayMs));
  }

  /** The refresh timer fired (a scheduled timer is cancelled before another is set). */
  private timerFired(): void {
    this.timer = undefined;
    this.refreshWhenIdle(this.timerReason);
  }

  /**
   * The timer's refresh. One may still be in flight: the token it adopted can fall due before
   * it ends (its store write and unlock outlast a short lead). Joining it would lose this refresh
   * and, with it, the schedule: go again once it settles, unless something rescheduled meanwhile.
   */
  private refreshWhenIdle(reason: string): void {
    const running = this.inflight;
    if (running === undefined) {
      this.refreshInBackground(reason);
      return;
    }
    void running.then(() => undefined, () => undefined).then(() => {
      if (this.timer === undefined && this.inflight === undefined && !this.closing && this.needsRefresh()) this.refreshInBackground(reason);
    });
  }

  /** After a failure: when to try again in the background. */
  private scheduleRetry(err: TokenError): void {
    const now = this.deps.clock.now();
    let delay: number;
    switch (this.breakerState === 'open' && err.code !== 'ERR_GRANT_AMBIGUOUS' ? 'ERR_BREAKER_OPEN' : err.code) {
      case 'ERR_SHUTTING_DOWN':
      case 'ERR_GRANT_AMBIGUOUS': // waits for an operator: a retry could only be refused again
        return;
      case 'ERR_BREAKER_OPEN':
        // The breaker's half-open transition triggers the probe; this is the safety net.
        delay = this.config.resilience.breaker.resetTimeout + 50;
        break;
      case 'ERR_IDP_REJECTED':
      case 'ERR_SOURCE_CONFIG':
      case 'ERR_IDP_REDIRECT':
      case 'ERR_IDP_TLS':
      case 'ERR_INTERNAL':
        delay = PERMANENT_RETRY_MS;
        this.permanentUntil = now + delay;
        break;
      default:
        delay = Math.min(MAX_RETRY_MS, 1_000 * 2 ** Math.min(this.failures - 1, 10));
    }
    const gateWait = this.source.endpoint ? this.deps.gate.remaining(this.source.endpoint, now) : 0;
    this.schedule(Math.max(delay, gateWait), 'retry');
  }

  // ---- control -----------------------------------------------------------------------------

  /** An event from another replica about this provider's key. */
  onStoreEvent(event: StoreEvent): Promise<void> {
    return this.replica.onStoreEvent(event);
  }

  /**
   * Invalidates the token (only if it is still `id`, when given): the slot drops it here, the
   * store removes it and, through the event channel, every replica drops it; then a refresh
   * starts. Idempotent per token.
   */
  invalidate(id?: string): boolean {
    const target = id ?? this.slot.peek()?.tokenId;
    if (target === undefined || !this.slot.drop(target)) return false;
    void this.replica.removeFromStore(target).finally(() => this.refreshInBackground('invalidated'));
    this.deps.logger.warn('token invalidated', { provider: this.name, token_id: target });
    return true;
  }

  /** The token a Check would get now, if any (no refresh is started). */
  peek(): CachedToken | undefined {
    return this.slot.peek();
  }

  status(): ProviderStatus {
    const now = this.deps.clock.now();
    const c = this.slot.peek();
    let state: ProviderStateName;
    if (this.attention) state = 'needs_attention';
    else if (!c) state = this.inflight ? 'refreshing' : 'missing';
    else if (now >= c.expiresAt) state = 'expired';
    else if (now >= this.refreshDueAt) state = this.lastError ? 'stale' : 'refreshing';
    else state = 'valid';
    return {
      name: this.name,
      state,
      expiresIn: c && c.expiresAt < NEVER_EXPIRES ? Math.round((c.expiresAt - now) / 1000) : null,
      tokenId: c?.tokenId ?? null,
      source: c ? (this.lastServed ?? this.slot.hitSource) : null,
      breaker: this.breakerState,
      lastError: this.lastError ? this.lastError.toJSON() : null,
    };
  }

  /** The grant waits for an operator (state needs_attention). */
  get needsAttention(): boolean {
    return this.attention;
  }

  breakerValue(): number {
    return BREAKER_STATE_VALUE[this.breakerState];
  }

  /**
   * Takes over another instance's token (reload with an unchanged source): its cached token, what
   * it knows of spent refresh tokens, its attention state, and its refresh in flight, which is
   * never cut off (a rotation it started would be lost) but awaited and adopted.
   */
  takeOver(from: Provider): void {
    const c = from.slot.peek();
    if (c) this.slot.adopt(c.record, 'store');
    this.replica.takeOver(from.replica);
    this.attention = from.attention;
    this.lastError = from.lastError;
    const pending = from.inflight;
    if (pending) {
      this.track(async () => {
        const entry = await pending;
        const mine = this.slot.peek();
        return mine?.tokenId === entry.tokenId ? mine : this.slot.adopt(entry.record, 'fetched');
      }, 'reload').catch(() => undefined);
    }
    this.warm();
  }

  /**
   * Reload with a changed source that is still the same grant (same configured refresh token):
   * waits for the old provider's refresh in flight, then refreshes on from the newest refresh
   * token the old one knew (its own store key). Presenting the configured one could be a reuse.
   */
  continueGrant(from: Provider): void {
    const pending = from.inflight;
    this.track(async () => {
      await pending?.catch(() => undefined);
      await this.replica.continueGrant(from.replica);
      return this.replica.coordinate();
    }, 'warm_up').catch(() => undefined);
  }

  /** True when both are refresh_token sources with the same configured refresh token. */
  sameGrantAs(other: Provider): boolean {
    const a = this.config.source;
    const b = other.config.source;
    return a.type === 'refresh_token' && b.type === 'refresh_token' && a.refreshToken === b.refreshToken;
  }

  /**
   * Leaves after a reload: no new refresh, the one in flight runs to its end (a rotating refresh
   * is never cut in half; its own timeouts bound it), then closes.
   */
  async retire(): Promise<void> {
    this.quiesce();
    await this.inflight?.catch(() => undefined);
    await this.close(0);
  }

  /** No new refresh starts from now on; a hit is still served. First step of shutdown. */
  quiesce(): void {
    this.closing = true;
    this.unplanRefresh();
    this.replica.quiesce();
    this.timer?.cancel();
    this.timer = undefined;
    this.cancelPause?.();
  }

  /** Stops scheduling, waits for an in-flight refresh (a rotation is never cut in half). */
  async close(deadlineMs = 5_000): Promise<void> {
    this.quiesce();
    if (this.inflight) {
      // Real time on purpose: a shutdown deadline must pass even under a test's manual clock.
      let t: NodeJS.Timeout | undefined;
      await Promise.race([
        this.inflight.catch(() => undefined),
        new Promise<void>((resolve) => (t = setTimeout(resolve, deadlineMs))),
      ]);
      clearTimeout(t);
    }
    this.fetcher.close();
    // A cut-off rotating refresh records its token as spent (one store write) and releases the
    // lock: let that happen before the store closes. Bounded, in real time like the deadline.
    if (this.inflight) {
      let t: NodeJS.Timeout | undefined;
      await Promise.race([this.inflight.catch(() => undefined), new Promise<void>((resolve) => (t = setTimeout(resolve, CUT_OFF_SETTLE_MS)))]);
      clearTimeout(t);
    }
    this.source.close?.();
    this.slot.wake();
  }
}

export function newReplicaId(): string {
  return randomUUID();
}
