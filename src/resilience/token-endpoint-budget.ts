// Every request to a token endpoint waits here for its origin's budget: a token bucket
// (`burst`, refilled at the effective rate), at most `maxConcurrent` in flight, and a priority
// queue (a Check waiting on a cold cache, then by deadline: the token that expires first). With a
// shared bucket (Redis) the rate holds for all replicas together; while that is unreachable each
// replica takes its `fallbackShare`. A 429 or Retry-After halves the effective rate once per
// episode; it recovers by maxRate/10 a second without one.
import type { Clock, TimerHandle } from '../clock.js';
import type { TokenEndpointBudgetConfig } from '../config/types.js';
import { DEFAULT_TOKEN_ENDPOINT_BUDGET, MIN_TOKEN_ENDPOINT_RATE, originOf } from '../config/token-endpoints.js';
import { PriorityQueue, type QueueEntry } from './priority-queue.js';
import { RefreshPlanner } from './refresh-planner.js';

/** A shared budget's limits, requests a second (mirrors the store's RateQuery). */
export interface SharedRateQuery {
  readonly maxRate: number;
  readonly ceiling: number;
  readonly burst: number;
  readonly minRate: number;
}

/**
 * A token bucket and 429 state shared by replicas (the Redis store implements it): a 429 seen by
 * one replica halves the rate every replica refills at, and its Retry-After holds all of them.
 * Every method rejects when the shared store cannot be asked.
 */
export interface SharedRateBucket {
  /** Takes one request from `origin`'s bucket: `wait` 0 when granted, else ms until one is available. */
  takeRate(origin: string, q: SharedRateQuery): Promise<{ readonly wait: number; readonly rate: number; readonly episode: boolean }>;
  /** A 429 or Retry-After: halves the shared rate once per episode; resolves the shared rate now. */
  throttleRate(origin: string, q: SharedRateQuery, retryAfterMs: number | undefined): Promise<number>;
  /** A success: the shared episode is over. */
  endRateEpisode(origin: string): Promise<void>;
  /** The shared store is connected: false means "use the fallback share". */
  healthy(): boolean;
}

/**
 * What a provider tells the budget about its request, kept on the provider (one object for its
 * whole life, so queuing allocates nothing per provider beyond the wait itself).
 */
export class BudgetHint {
  /** A Check is waiting on a cold cache for this request: served before everything else. */
  cold = false;
  /** Epoch ms by which the request should be served: the current token's hard expiry (0: none). */
  deadline = 0;
  /** @internal The queued request, while it waits. */
  waiter: Waiter | undefined = undefined;

  /** Waiting for the budget right now. */
  get queued(): boolean {
    return this.waiter !== undefined;
  }

  /** A Check waits for this provider: its queued request (if any) moves to the front. */
  promote(): void {
    this.cold = true;
    this.waiter?.budget.reprioritize(this.waiter);
  }
}

/** Held while a request is in flight; `done` with the failure (if any) when it has an answer. */
export interface BudgetLease {
  done(failure?: { readonly status?: number | undefined; readonly retryAfterMs?: number | undefined }): void;
}

/** @internal */
export interface Waiter extends QueueEntry {
  readonly budget: OriginBudget;
  readonly hint: BudgetHint | undefined;
  readonly deadline: number;
  readonly seq: number;
  readonly resolve: (lease: BudgetLease) => void;
  readonly reject: (err: unknown) => void;
  readonly signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
}

export interface BudgetStatus {
  readonly origin: string;
  /** false: the default budget (no `tokenEndpoints` entry). */
  readonly configured: boolean;
  readonly maxRate: number;
  readonly burst: number;
  readonly maxConcurrent: number;
  readonly fallbackShare: number;
  /** Requests a second allowed now (after 429 halving, before the fallback share). */
  readonly effectiveRate: number;
  /** Whether the shared bucket is in use right now (false: this replica's fallback share, or no shared store). */
  readonly shared: boolean;
  readonly queued: number;
  /** Early background refreshes planned (spread) from now on, not queued yet. */
  readonly planned: number;
  readonly inFlight: number;
  readonly throttled: number;
  /** Seconds until Retry-After lets requests through again (0: not blocked). */
  readonly blockedFor: number;
}

export interface BudgetDeps {
  readonly clock: Clock;
  readonly shared?: SharedRateBucket | undefined;
  /** A 429 or Retry-After from `origin` (metrics). */
  readonly onThrottled?: (origin: string) => void;
}

/** After a shared-bucket command fails, use the local fallback this long before asking again. */
const SHARED_RETRY_MS = 1_000;

function isThrottle(f: { readonly status?: number | undefined; readonly retryAfterMs?: number | undefined }): boolean {
  return f.status === 429 || f.retryAfterMs !== undefined;
}

function before(a: Waiter, b: Waiter): boolean {
  const ac = a.hint?.cold === true;
  if (ac !== (b.hint?.cold === true)) return ac;
  if (a.deadline !== b.deadline) return a.deadline < b.deadline;
  return a.seq < b.seq;
}

export class OriginBudget {
  private readonly queue = new PriorityQueue<Waiter>(before);
  private inFlight = 0;
  private seq = 0;
  /** The local bucket (used alone without a shared store, and as the fallback share with one). */
  private level: number;
  private levelAt: number;
  /** 429 state: the rate right after the last 429, and when it came. */
  private floorRate = 0;
  private last429At = Number.NEGATIVE_INFINITY;
  private episode = false;
  private blockedUntil = 0;
  private sharedDownUntil = 0;
  private taking = false;
  private timer: TimerHandle | undefined;
  private timerAt = Number.POSITIVE_INFINITY;
  private closed = false;
  throttled = 0;
  /** Where early background refreshes go in time (see refresh-planner.ts). */
  private readonly planner: RefreshPlanner;

  constructor(
    readonly origin: string,
    public config: TokenEndpointBudgetConfig,
    public configured: boolean,
    private readonly deps: BudgetDeps,
  ) {
    this.level = config.burst;
    this.levelAt = deps.clock.now();
    this.planner = new RefreshPlanner(config.maxRate);
  }

  /** A reload's limits. */
  reconfigure(config: TokenEndpointBudgetConfig, configured: boolean): void {
    this.config = config;
    this.configured = configured;
    this.planner.setRate(config.maxRate);
  }

  /**
   * When an early background refresh due at `refreshAt` for a token expiring at `expiresAt`
   * should start: spread over the first half of what is left between the two (the second half
   * stays for retries), so refreshes that come due together reach the queue a few at a time.
   */
  planRefresh(refreshAt: number, expiresAt: number): number {
    const now = this.deps.clock.now();
    const from = Math.max(refreshAt, now);
    return this.planner.plan(from, from + Math.max(0, expiresAt - from) / 2, now);
  }

  /** A planned refresh that will not run (its token was replaced before it). */
  unplan(at: number): void {
    this.planner.cancel(at);
  }

  /** Requests a second allowed at `now`: maxRate, or less during and after a 429 episode. */
  effectiveRate(now: number): number {
    const max = this.config.maxRate;
    if (this.last429At === Number.NEGATIVE_INFINITY) return max;
    return Math.min(max, this.floorRate + ((now - this.last429At) / 1000) * (max / 10));
  }

  get queued(): number {
    return this.queue.size;
  }

  /** Waits for a slot. Rejects with the signal's reason when it aborts first. */
  admit(hint: BudgetHint | undefined, signal?: AbortSignal): Promise<BudgetLease> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (this.closed) return Promise.reject(new Error('token endpoint budget closed'));
    return new Promise<BudgetLease>((resolve, reject) => {
      const waiter: Waiter = {
        index: -1, budget: this, hint, deadline: hint ? hint.deadline : this.deps.clock.now(), seq: ++this.seq,
        resolve, reject, signal, onAbort: undefined,
      };
      if (signal) {
        waiter.onAbort = () => {
          if (this.queue.remove(waiter) && hint?.waiter === waiter) hint.waiter = undefined;
          reject(signal.reason);
        };
        signal.addEventListener('abort', waiter.onAbort, { once: true });
      }
      if (hint) hint.waiter = waiter;
      this.queue.push(waiter);
      this.pump();
    });
  }

  /** @internal A hint changed priority while queued. */
  reprioritize(waiter: Waiter): void {
    this.queue.update(waiter);
    this.pump();
  }

  private usingShared(now: number): boolean {
    const s = this.deps.shared;
    return s !== undefined && now >= this.sharedDownUntil && s.healthy();
  }

  /** Grants as many waiters as the bucket, the concurrency bound and Retry-After allow. */
  private pump(): void {
    if (this.taking || this.closed) return;
    while (this.queue.size > 0 && this.inFlight < this.config.maxConcurrent) {
      const now = this.deps.clock.now();
      if (now < this.blockedUntil) return this.wake(this.blockedUntil - now);
      if (this.usingShared(now)) return this.takeShared(now);
      const wait = this.takeLocal(now);
      if (wait > 0) return this.wake(wait);
      this.grant();
    }
  }

  /**
   * Brings the local bucket up to `now`; returns its rate. Without a shared store this replica
   * has the whole rate; with one that is unreachable, its share.
   */
  private refillLocal(now: number): number {
    const share = this.deps.shared ? this.config.fallbackShare : 1;
    const rate = Math.max(MIN_TOKEN_ENDPOINT_RATE, this.effectiveRate(now) * share);
    const cap = Math.max(1, this.config.burst * share);
    this.level = Math.min(cap, this.level + ((now - this.levelAt) / 1000) * rate);
    this.levelAt = now;
    return rate;
  }

  /** One request from the local bucket: 0 when taken, else ms until one is there. */
  private takeLocal(now: number): number {
    const rate = this.refillLocal(now);
    if (this.level >= 1) {
      this.level -= 1;
      return 0;
    }
    return Math.max(1, Math.ceil(((1 - this.level) / rate) * 1000));
  }

  private query(now: number): SharedRateQuery {
    return { maxRate: this.config.maxRate, ceiling: Math.max(MIN_TOKEN_ENDPOINT_RATE, this.effectiveRate(now)), burst: this.config.burst, minRate: MIN_TOKEN_ENDPOINT_RATE };
  }

  /**
   * Another replica's 429 lowered the shared rate: take it over (and its recovery from here), so
   * this replica's status, metrics and fallback share follow it too.
   */
  private adoptShared(rate: number, episode: boolean): void {
    const now = this.deps.clock.now();
    if (rate < this.effectiveRate(now) - 1e-6) {
      this.floorRate = Math.max(MIN_TOKEN_ENDPOINT_RATE, rate);
      this.last429At = now;
    }
    if (episode) this.episode = true;
  }

  private takeShared(now: number): void {
    this.taking = true;
    this.deps.shared!.takeRate(this.origin, this.query(now)).then(
      ({ wait, rate, episode }) => {
        this.taking = false;
        this.adoptShared(rate, episode);
        if (wait > 0) return this.wake(wait);
        // A shared grant is spent from the fallback share too (down to empty, no debt): a replica
        // that was busy when Redis went away has no saved-up burst to add to what others sent.
        this.refillLocal(this.deps.clock.now());
        this.level = Math.max(0, this.level - 1);
        if (this.queue.size > 0 && !this.closed) this.grant();
        this.pump();
      },
      () => {
        // Unreachable: this replica falls back to its share of the rate, never to no limit.
        this.taking = false;
        this.sharedDownUntil = this.deps.clock.now() + SHARED_RETRY_MS;
        this.pump();
      },
    );
  }

  private grant(): void {
    const w = this.queue.pop()!;
    if (w.hint?.waiter === w) {
      w.hint.waiter = undefined;
      w.hint.cold = false;
    }
    if (w.onAbort) w.signal?.removeEventListener('abort', w.onAbort);
    this.inFlight++;
    let settled = false;
    w.resolve({
      done: (failure) => {
        if (settled) return;
        settled = true;
        this.inFlight--;
        this.settle(failure);
        this.pump();
      },
    });
  }

  private settle(failure: { readonly status?: number | undefined; readonly retryAfterMs?: number | undefined } | undefined): void {
    const now = this.deps.clock.now();
    const shared = this.usingShared(now) ? this.deps.shared : undefined;
    if (failure === undefined) {
      // Tell the other replicas the episode is over (once: only while this one knows it is open).
      if (this.episode && shared) shared.endRateEpisode(this.origin).catch(() => undefined);
      this.episode = false;
      return;
    }
    if (!isThrottle(failure)) return;
    this.throttled++;
    this.deps.onThrottled?.(this.origin);
    if (shared) {
      // The shared halving is the one that counts: every replica refills at it. The local one
      // below holds until the answer comes (and stays if Redis cannot be asked).
      shared.throttleRate(this.origin, this.query(now), failure.retryAfterMs).then(
        (rate) => this.adoptShared(rate, true),
        () => undefined,
      );
    }
    const current = this.effectiveRate(now);
    // Once per episode: the 429s of requests already in flight must not halve it again.
    this.floorRate = this.episode ? current : Math.max(MIN_TOKEN_ENDPOINT_RATE, current / 2);
    this.episode = true;
    this.last429At = now;
    this.level = Math.min(this.level, 0); // the burst saved up is not spent into a 429
    if (failure.retryAfterMs !== undefined) this.blockedUntil = Math.max(this.blockedUntil, now + failure.retryAfterMs);
  }

  private wake(ms: number): void {
    const at = this.deps.clock.now() + ms;
    if (this.timer && this.timerAt <= at) return;
    this.timer?.cancel();
    this.timerAt = at;
    this.timer = this.deps.clock.setTimer(() => {
      this.timer = undefined;
      this.timerAt = Number.POSITIVE_INFINITY;
      this.pump();
    }, ms);
  }

  status(now: number): BudgetStatus {
    const c = this.config;
    return {
      origin: this.origin, configured: this.configured,
      maxRate: c.maxRate, burst: c.burst, maxConcurrent: c.maxConcurrent, fallbackShare: c.fallbackShare,
      effectiveRate: Math.round(this.effectiveRate(now) * 1000) / 1000,
      shared: this.usingShared(now),
      queued: this.queue.size, planned: this.planner.planned(now), inFlight: this.inFlight, throttled: this.throttled,
      blockedFor: Math.max(0, Math.ceil((this.blockedUntil - now) / 1000)),
    };
  }

  /** Rejects every waiter with `reason` and stops the timer. */
  close(reason: unknown): void {
    this.closed = true;
    this.timer?.cancel();
    this.timer = undefined;
    for (let w = this.queue.pop(); w; w = this.queue.pop()) {
      if (w.hint?.waiter === w) w.hint.waiter = undefined;
      if (w.onAbort) w.signal?.removeEventListener('abort', w.onAbort);
      w.reject(reason);
    }
  }
}

/** The budgets of every origin this process talks to, created on first use. */
export class TokenEndpointBudgets {
  private readonly budgets = new Map<string, OriginBudget>();
  private configs: ReadonlyMap<string, TokenEndpointBudgetConfig>;

  constructor(configs: ReadonlyMap<string, TokenEndpointBudgetConfig> | undefined, private readonly deps: BudgetDeps) {
    this.configs = configs ?? new Map();
    for (const origin of this.configs.keys()) this.forOrigin(origin);
  }

  /** The budget for a token URL's origin. */
  forUrl(url: string): OriginBudget {
    return this.forOrigin(originOf(url));
  }

  private forOrigin(origin: string): OriginBudget {
    let b = this.budgets.get(origin);
    if (!b) {
      const c = this.configs.get(origin);
      b = new OriginBudget(origin, c ?? DEFAULT_TOKEN_ENDPOINT_BUDGET, c !== undefined, this.deps);
      this.budgets.set(origin, b);
    }
    return b;
  }

  /** A reload: new limits apply at once; queues, 429 state and counts stay. */
  configure(configs: ReadonlyMap<string, TokenEndpointBudgetConfig> | undefined): void {
    this.configs = configs ?? new Map();
    for (const b of this.budgets.values()) {
      const c = this.configs.get(b.origin);
      b.reconfigure(c ?? DEFAULT_TOKEN_ENDPOINT_BUDGET, c !== undefined);
    }
    for (const origin of this.configs.keys()) this.forOrigin(origin);
  }

  /** Each origin's budget, plus the default that origins without an entry get (origin `*`). */
  status(): BudgetStatus[] {
    const now = this.deps.clock.now();
    const d = DEFAULT_TOKEN_ENDPOINT_BUDGET;
    const list = [...this.budgets.values()].map((b) => b.status(now));
    list.push({
      origin: '*', configured: false, maxRate: d.maxRate, burst: d.burst, maxConcurrent: d.maxConcurrent, fallbackShare: d.fallbackShare,
      effectiveRate: d.maxRate, shared: false, queued: 0, planned: 0, inFlight: 0, throttled: 0, blockedFor: 0,
    });
    return list;
  }

  /** [origin, queued, effective rate] for the metrics. */
  *gauges(): Iterable<[string, number, number]> {
    const now = this.deps.clock.now();
    for (const b of this.budgets.values()) yield [b.origin, b.queued, b.effectiveRate(now)];
  }

  close(reason: unknown): void {
    for (const b of this.budgets.values()) b.close(reason);
  }
}
