// One provider's token life: the L1 slot, the single in-flight refresh, the schedule, the
// breaker, the store coordination and the fallback ladder. The Check path calls `lookup`
// (synchronous, no I/O) and only on a miss `acquire` (bounded by waitBudget).
import { randomUUID } from 'node:crypto';
import type { Clock, TimerHandle } from '../clock.js';
import type { ProviderConfig } from '../config/types.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import { Breaker, BREAKER_STATE_VALUE, type BreakerState } from '../resilience/breaker.js';
import type { RetryAfterGate } from '../resilience/retry-after-gate.js';
import { withRetries } from '../resilience/retry.js';
import { lockKeyFor, NEVER_EXPIRES, type StoreEvent, type StoreLock, type TokenRecord, type TokenStore } from '../store/store.js';
import { CachedToken, type TokenServeSource } from './cached-token.js';
import { TokenError, toTokenError } from './errors.js';
import { recordFor, refreshAtFor, refreshDueAt } from './expiry.js';
import type { TokenSource } from './sources/source.js';
import { tokenId } from './token-id.js';

export type ProviderStateName = 'valid' | 'refreshing' | 'stale' | 'expired' | 'missing';

export interface ProviderDeps {
  readonly clock: Clock;
  readonly store: TokenStore;
  readonly gate: RetryAfterGate;
  readonly logger: Logger;
  readonly metrics: Metrics;
  /** This process, in store events. */
  readonly replicaId: string;
  readonly storeKey: string;
  readonly random?: () => number;
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
const MAX_RETRY_MS = 30_000;
const FOLLOW_POLL_MS = 250;
/** Pause before asking a connected store again after one failed command. */
const STORE_GLITCH_PAUSE_MS = 100;
/** How often a rotated refresh token the store did not take is offered again. */
const UNSAVED_RETRY_MS = 500;
/** Ids of tokens we dropped; never adopt them again from the store or an event. */
const INVALIDATED_MEMORY = 32;

export class Provider {
  readonly name: string;
  /**
   * Created on the first fetch from a token endpoint: local sources (jwt, static) have no
   * endpoint to protect, and ten thousand idle breakers would cost ~80 MB of timers and stats.
   */
  private breakerInstance: Breaker | undefined;
  /** The L1 slot. Kept after hard expiry for the expired-grace rung of the ladder. */
  private current: CachedToken | undefined;
  /** How a hit on `current` is labelled: 'stale' once a refresh for it has failed. */
  hotSource: 'cache' | 'stale' = 'cache';
  private lastServed: TokenServeSource | null = null;
  private readonly emergency: CachedToken | undefined;
  private inflight: Promise<CachedToken> | undefined;
  private timer: TimerHandle | undefined;
  private closing = false;
  private readonly shutdown = new AbortController();
  private lastError: TokenError | undefined;
  private failures = 0;
  /** Until then a permanent failure (refused credential, bad config) is not retried by Checks. */
  private permanentUntil = 0;
  private readonly invalidated: string[] = [];
  /** A rotated refresh token's record that the store has not taken yet (Redis was down). */
  private unsaved: TokenRecord | undefined;
  private waiters = new Set<() => void>();
  private readonly random: () => number;
  private readonly lockTtlMs: number;
  /** The first fetch attempt has settled (health/readiness waits for this). */
  readonly warmedUp: Promise<void>;
  private markWarm!: () => void;

  constructor(
    readonly config: ProviderConfig,
    readonly source: TokenSource,
    private readonly deps: ProviderDeps,
  ) {
    this.name = config.name;
    this.random = deps.random ?? Math.random;
    this.warmedUp = new Promise((resolve) => (this.markWarm = resolve));
    const r = config.resilience;
    // Above one attempt plus the write; renewed while the fetch runs, so it can stay short and
    // a replica that dies holding it delays the next refresh by at most this much.
    this.lockTtlMs = r.timeout + 2_000;
    if (r.emergencyToken) {
      const rec: TokenRecord = {
        accessToken: r.emergencyToken, tokenType: 'Bearer', tokenId: tokenId(r.emergencyToken),
        obtainedAt: 0, expiresAt: NEVER_EXPIRES, lifetimeMs: NEVER_EXPIRES,
      };
      this.emergency = new CachedToken(rec, NEVER_EXPIRES, NEVER_EXPIRES, config.inject);
    }
  }

  /** The breaker's state; "closed" until the first fetch from a token endpoint creates it. */
  get breakerState(): BreakerState {
    return this.breakerInstance?.state ?? 'closed';
  }

  private breaker(): Breaker {
    this.breakerInstance ??= new Breaker(this.name, this.config.resilience.breaker, {
      onStateChange: (state) => {
        this.deps.logger.warn('breaker state changed', { provider: this.name, breaker: state });
        // The half-open probe is our own refresh: the first Check after recovery finds a fresh token.
        if (state === 'half_open' && this.needsRefresh()) this.refreshInBackground('probe');
      },
    });
    return this.breakerInstance;
  }

  get storeKey(): string {
    return this.deps.storeKey;
  }

  // ---- the request path ------------------------------------------------------------------

  /**
   * The cached token if it is before hard expiry, else undefined. Inside the refresh window it
   * also starts one background refresh. Synchronous and allocation-free on a hit.
   */
  lookup(now: number): CachedToken | undefined {
    const c = this.current;
    if (c === undefined || now >= c.expiresAt) return undefined;
    if (now >= c.refreshAt && this.inflight === undefined && !this.closing && this.breakerState !== 'open') {
      this.refreshInBackground('near_expiry');
    }
    return c;
  }

  /** The slow path: wait (bounded) for the in-flight refresh, then the fallback ladder. */
  async acquire(): Promise<Acquired> {
    const now = this.deps.clock.now();
    const hit = this.lookup(now);
    if (hit) return this.served(hit, this.hotSource);
    let error: TokenError | undefined;
    if (this.closing) error = new TokenError('ERR_SHUTTING_DOWN', 'tokengate is shutting down', { provider: this.name });
    else if (this.breakerState === 'open' && this.inflight === undefined) {
      // Do not queue behind an open breaker: its probe is scheduled; answer from the ladder now.
      error = this.lastError ?? new TokenError('ERR_BREAKER_OPEN', `circuit breaker for ${this.name} is open`, { provider: this.name });
    } else if (this.lastError && now < this.permanentUntil && this.inflight === undefined) {
      // A refused credential does not trip the breaker, so nothing else would stop every cold
      // Check from asking again: wait for the scheduled retry (or a reload, or an admin refresh).
      error = this.lastError;
    } else {
      try {
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
    const c = this.current;
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

  private needsRefresh(): boolean {
    const c = this.current;
    return c === undefined || this.deps.clock.now() >= c.refreshAt;
  }

  refreshInBackground(reason: string): void {
    this.refresh(reason).catch(() => undefined); // failures are recorded, logged and rescheduled
  }

  /** Single flight: every caller shares the one refresh in progress. */
  refresh(reason: string): Promise<CachedToken> {
    if (this.inflight) return this.inflight;
    if (this.closing) return Promise.reject(new TokenError('ERR_SHUTTING_DOWN', 'tokengate is shutting down', { provider: this.name }));
    this.timer?.cancel();
    this.timer = undefined;
    const p = this.runRefresh(reason).finally(() => {
      if (this.inflight === p) this.inflight = undefined;
    });
    this.inflight = p;
    return p;
  }

  private async runRefresh(reason: string): Promise<CachedToken> {
    try {
      const entry = await this.coordinate();
      this.lastError = undefined;
      this.failures = 0;
      this.permanentUntil = 0;
      return entry;
    } catch (raw) {
      const err = toTokenError(raw, 'ERR_IDP_UNAVAILABLE', this.name);
      // "The breaker is open" is a consequence; the IdP's own error stays the one to show.
      if (err.code !== 'ERR_BREAKER_OPEN' || !this.lastError) this.lastError = err;
      this.failures++;
      if (this.current) this.hotSource = 'stale';
      const level = err.transient || err.code === 'ERR_BREAKER_OPEN' || err.code === 'ERR_SHUTTING_DOWN' ? 'warn' : 'error';
      this.deps.logger[level]('token refresh failed', { provider: this.name, reason, error: err.toJSON(), failures: this.failures });
      this.scheduleRetry(err);
      throw err;
    } finally {
      this.markWarm();
    }
  }

  /** Gets a fresh token, through the shared store when there is one. */
  private async coordinate(): Promise<CachedToken> {
    const store = this.deps.store;
    if (!store.shared) {
      const stored = await this.storeOp('read', () => store.read(this.storeKey));
      const rec = await this.fetch(this.newestRefreshToken(stored.value));
      await this.storeOp('write', () => store.write(this.storeKey, rec));
      return this.adopt(rec, 'fetched');
    }
    // The token this refresh replaces: another one arriving meanwhile (an event) ends it.
    const startId = this.current?.tokenId;
    const deadline = this.deps.clock.now() + 3 * this.lockTtlMs;
    let glitches = 0;
    for (;;) {
      const arrived = this.arrivedSince(startId);
      if (arrived) return arrived;
      const stored = await this.storeOp('read', () => store.read(this.storeKey));
      if (stored.ok && stored.value) {
        if (this.isBetter(stored.value)) return this.adopt(stored.value, 'store');
        // Nothing usable here (cold start, or ours expired) but one there: serve it meanwhile.
        if (this.usableNow(stored.value)) this.adopt(stored.value, 'store');
      }
      const lock = stored.ok ? await this.storeOp('lock', () => store.tryLock(lockKeyFor(this.storeKey), this.lockTtlMs)) : stored;
      if (!lock.ok) {
        // Connected but one command was late (a busy event loop outlasts a 50 ms timeout): while
        // our token still serves, try the store once more before fetching on our own.
        if (store.healthy() && glitches++ === 0 && this.current && this.deps.clock.now() < this.current.expiresAt) {
          await this.waitForEvent(STORE_GLITCH_PAUSE_MS);
          continue;
        }
        return this.fetchWithoutStore();
      }
      if (lock.value) return this.leadRefresh(lock.value, startId);
      // Another replica holds the lock: it will publish. Wait for its event (or poll), bounded.
      if (this.deps.clock.now() >= deadline) {
        throw new TokenError('ERR_STORE_UNAVAILABLE', 'another replica holds the refresh lock and published no token', { provider: this.name });
      }
      await this.waitForEvent(Math.min(FOLLOW_POLL_MS * 4, this.lockTtlMs));
    }
  }

  /** The store is unreachable: serve L1, and refresh on our own unless that is unsafe. */
  private async fetchWithoutStore(): Promise<CachedToken> {
    if (this.source.rotates) {
      // Presenting a refresh token another replica may also present gets the grant revoked.
      throw new TokenError('ERR_REFRESH_UNSAFE', 'the shared store is unreachable; a rotating refresh token is not used without its lock', { provider: this.name });
    }
    const rec = await this.fetch(undefined);
    const store = this.deps.store;
    // Connected again (or only one command failed): offer it to the others; the write is fenced.
    if (store.healthy()) {
      const written = await this.storeOp('write', () => store.write(this.storeKey, rec));
      if (written.ok && written.value) await this.publishUpdate(rec);
    }
    return this.adopt(rec, 'fetched');
  }

  private async leadRefresh(lock: StoreLock, startId: string | undefined): Promise<CachedToken> {
    const store = this.deps.store;
    const renew = setInterval(() => {
      lock.extend(this.lockTtlMs).catch(() => this.deps.metrics.storeErrors.inc({ op: 'lock' }));
    }, Math.max(100, Math.floor(this.lockTtlMs / 3)));
    renew.unref();
    let claimed = false;
    try {
      // Re-read under the lock: a replica that finished just before us already did the work.
      const again = await this.storeOp('read', () => store.read(this.storeKey));
      // Its event may have been adopted meanwhile (then the record we read is already ours).
      const arrived = this.arrivedSince(startId);
      if (arrived) return arrived;
      if (again.ok && again.value && this.isBetter(again.value)) return this.adopt(again.value, 'store');
      if (this.source.rotates) {
        if (!again.ok) {
          throw new TokenError('ERR_REFRESH_UNSAFE', 'the shared store did not answer; the newest refresh token is unknown, so none is presented', { provider: this.name });
        }
        claimed = await this.claimRefresh();
      }
      let rec: TokenRecord;
      try {
        rec = await this.fetch(this.newestRefreshToken(again.value));
      } catch (err) {
        // Nothing rotated (as far as we can tell, and as our own retries assume): give it back.
        if (claimed) await this.storeOp('unclaim', () => store.releaseRefreshClaim?.(this.storeKey, this.deps.replicaId) ?? Promise.resolve());
        throw err;
      }
      // Written before the lock is released: the next holder must see the rotated refresh token.
      let written = await this.storeOp('write', () => store.write(this.storeKey, rec));
      if (!written.ok && rec.refreshToken) written = await this.storeOp('write', () => store.write(this.storeKey, rec));
      if (written.ok) {
        if (this.unsaved && this.unsaved.obtainedAt <= rec.obtainedAt) this.unsaved = undefined;
        await this.publishUpdate(rec);
      } else if (this.source.rotates) {
        this.persistLater(rec);
      }
      return this.adopt(rec, 'fetched');
    } finally {
      clearInterval(renew);
      await this.storeOp('unlock', () => lock.release());
    }
  }

  private async publishUpdate(rec: TokenRecord): Promise<void> {
    const store = this.deps.store;
    await this.storeOp('publish', () => store.publish({ provider: this.name, key: this.storeKey, token_id: rec.tokenId, kind: 'updated', origin: this.deps.replicaId }));
  }

  /**
   * Rotating sources: marks the refresh token we are about to present as ours, so no replica
   * presents it again if we die or lose Redis before the new one is stored. True when claimed.
   */
  private async claimRefresh(): Promise<boolean> {
    const store = this.deps.store;
    if (!store.claimRefresh) return false;
    const claim = await this.storeOp('claim', () => store.claimRefresh!(this.storeKey, this.deps.replicaId));
    if (!claim.ok) {
      // A timed-out claim may still have been recorded: take it back (nothing was presented).
      await this.storeOp('unclaim', () => store.releaseRefreshClaim?.(this.storeKey, this.deps.replicaId) ?? Promise.resolve());
      throw new TokenError('ERR_REFRESH_UNSAFE', 'the shared store did not answer; a rotating refresh token is not presented unclaimed', { provider: this.name });
    }
    if (claim.value !== undefined) {
      throw new TokenError('ERR_REFRESH_UNSAFE', `replica ${claim.value} presented the stored refresh token and never stored the result; presenting it again could revoke the grant (see docs/redis.md)`, { provider: this.name });
    }
    return true;
  }

  /** The newest refresh token we know of: the store's, ours, or one the store has not taken yet. */
  private newestRefreshToken(stored: TokenRecord | undefined): string | undefined {
    let best: TokenRecord | undefined;
    for (const r of [stored, this.current?.record, this.unsaved]) {
      if (r?.refreshToken !== undefined && (best === undefined || r.obtainedAt > best.obtainedAt)) best = r;
    }
    return best?.refreshToken;
  }

  /** A rotated refresh token the store did not take: keep offering it until it does. */
  private persistLater(rec: TokenRecord): void {
    this.unsaved = rec;
    this.deps.logger.error('rotated refresh token not stored yet; retrying until the shared store takes it', { provider: this.name, token_id: rec.tokenId });
    const attempt = async () => {
      if (this.unsaved !== rec || this.closing) return;
      let replaced: boolean;
      try {
        replaced = await this.deps.store.write(this.storeKey, rec);
      } catch {
        // Counted, not logged: the outage was logged once already.
        this.deps.metrics.storeErrors.inc({ op: 'write' });
        this.deps.clock.setTimer(() => void attempt(), UNSAVED_RETRY_MS);
        return;
      }
      if (this.unsaved !== rec) return;
      this.unsaved = undefined;
      this.deps.logger.info('rotated refresh token stored', { provider: this.name, token_id: rec.tokenId, replaced });
      if (replaced) await this.publishUpdate(rec);
    };
    this.deps.clock.setTimer(() => void attempt(), UNSAVED_RETRY_MS);
  }

  /** A token adopted since this refresh started (another replica's event) that needs no refresh. */
  private arrivedSince(startId: string | undefined): CachedToken | undefined {
    const c = this.current;
    if (c === undefined || c.tokenId === startId) return undefined;
    const now = this.deps.clock.now();
    return now < c.expiresAt && now < refreshDueAt(c.record, this.config.refresh) ? c : undefined;
  }

  /** Worth serving while a refresh runs: before hard expiry, and ours is gone or expires sooner. */
  private usableNow(rec: TokenRecord): boolean {
    const now = this.deps.clock.now();
    const c = this.current;
    if (rec.expiresAt <= now || this.invalidated.includes(rec.tokenId) || c?.tokenId === rec.tokenId) return false;
    return c === undefined || rec.expiresAt > c.expiresAt;
  }

  private async fetch(refreshToken: string | undefined): Promise<TokenRecord> {
    const { clock, gate, metrics } = this.deps;
    const r = this.config.resilience;
    const sentAt = clock.now();
    try {
      let attemptAt = sentAt;
      const attempt = () =>
        withRetries(
          (signal) => {
            attemptAt = clock.now();
            return this.source.fetch({ signal, now: attemptAt, ...(refreshToken ? { refreshToken } : {}) });
          },
          { timeoutMs: r.timeout, retries: r.retries, baseMs: r.backoff.base, maxMs: r.backoff.max },
          { clock, gate, ...(this.source.endpoint ? { endpoint: this.source.endpoint } : {}), signal: this.shutdown.signal, random: this.random },
          { onRetry: (n, err, delay) => this.deps.logger.info('retrying token request', { provider: this.name, attempt: n, delayMs: delay, error: err.toJSON() }) },
        );
      const fetched = this.source.endpoint ? await this.breaker().run(attempt) : await attempt();
      const rec = recordFor(fetched, attemptAt, this.source.defaultTtlMs, this.config.refresh);
      metrics.fetches.inc({ provider: this.name, outcome: 'success' });
      metrics.fetchDuration.observe((clock.now() - sentAt) / 1000, this.name);
      this.deps.logger.info('token fetched', { provider: this.name, token_id: rec.tokenId, expires_in_s: Math.round((rec.expiresAt - clock.now()) / 1000), source_type: this.source.type });
      return rec;
    } catch (raw) {
      const err = toTokenError(raw, 'ERR_IDP_UNAVAILABLE', this.name);
      metrics.fetches.inc({ provider: this.name, outcome: err.code });
      if (err.code !== 'ERR_BREAKER_OPEN') metrics.fetchDuration.observe((clock.now() - sentAt) / 1000, this.name);
      throw err;
    }
  }

  /** A stored record is worth adopting: usable, not one we dropped, newer than ours. */
  private isBetter(rec: TokenRecord): boolean {
    const now = this.deps.clock.now();
    if (rec.expiresAt <= now || this.invalidated.includes(rec.tokenId)) return false;
    if (this.current?.tokenId === rec.tokenId) return false;
    if (now >= refreshDueAt(rec, this.config.refresh)) return false;
    return this.current === undefined || rec.expiresAt > this.current.expiresAt || now >= this.current.expiresAt;
  }

  private adopt(rec: TokenRecord, how: 'fetched' | 'store' | 'event'): CachedToken {
    const entry = new CachedToken(rec, refreshAtFor(rec, this.config.refresh, this.random), rec.expiresAt, this.config.inject);
    const previous = this.current;
    this.current = entry;
    this.hotSource = 'cache';
    if (how !== 'fetched') this.deps.logger.debug('token adopted from store', { provider: this.name, token_id: rec.tokenId, how });
    if (previous?.tokenId !== entry.tokenId) this.notifyWaiters();
    this.schedule(entry.refreshAt - this.deps.clock.now(), 'scheduled');
    return entry;
  }

  private schedule(delayMs: number, reason: string): void {
    if (this.closing) return;
    this.timer?.cancel();
    if (delayMs >= NEVER_EXPIRES / 2) return;
    this.timer = this.deps.clock.setTimer(() => {
      this.timer = undefined;
      this.refreshInBackground(reason);
    }, Math.max(0, delayMs));
  }

  /** After a failure: when to try again in the background. */
  private scheduleRetry(err: TokenError): void {
    const now = this.deps.clock.now();
    let delay: number;
    switch (this.breakerState === 'open' ? 'ERR_BREAKER_OPEN' : err.code) {
      case 'ERR_SHUTTING_DOWN':
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

  // ---- the shared store --------------------------------------------------------------------

  private async storeOp<T>(op: string, fn: () => Promise<T>): Promise<{ ok: true; value: T } | { ok: false; value?: undefined }> {
    try {
      return { ok: true, value: await fn() };
    } catch (err) {
      this.deps.metrics.storeErrors.inc({ op });
      this.deps.logger.warn('shared store operation failed; continuing without it', { provider: this.name, op, error: err });
      return { ok: false };
    }
  }

  private waitForEvent(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        timer.cancel();
        this.waiters.delete(done);
        resolve();
      };
      const timer = this.deps.clock.setTimer(done, ms);
      this.waiters.add(done);
    });
  }

  private notifyWaiters(): void {
    const w = this.waiters;
    this.waiters = new Set();
    for (const fn of w) fn();
  }

  /** An event from another replica about this provider's key. */
  async onStoreEvent(event: StoreEvent): Promise<void> {
    if (event.origin === this.deps.replicaId || event.key !== this.storeKey) return;
    if (event.kind === 'invalidated') {
      this.forget(event.token_id);
      return;
    }
    if (this.current?.tokenId === event.token_id || this.invalidated.includes(event.token_id)) return;
    const stored = await this.storeOp('read', () => this.deps.store.read(this.storeKey));
    // Whatever the store holds now: a later write may already have replaced the announced token.
    if (stored.ok && stored.value && this.isBetter(stored.value)) {
      this.adopt(stored.value, 'event');
    }
    this.notifyWaiters();
  }

  // ---- control -----------------------------------------------------------------------------

  private forget(id: string): boolean {
    if (!this.invalidated.includes(id)) {
      this.invalidated.push(id);
      if (this.invalidated.length > INVALIDATED_MEMORY) this.invalidated.shift();
    }
    if (this.current?.tokenId !== id) return false;
    this.current = undefined;
    this.hotSource = 'cache';
    return true;
  }

  /**
   * Drops the token (only if it is still `id`, when given) here, in the store and, through the
   * event channel, in every replica; then starts a refresh. Idempotent per token.
   */
  invalidate(id?: string): boolean {
    const target = id ?? this.current?.tokenId;
    if (target === undefined || !this.forget(target)) return false;
    const store = this.deps.store;
    void (async () => {
      await this.storeOp('remove', () => store.remove(this.storeKey, target));
      await this.storeOp('publish', () => store.publish({ provider: this.name, key: this.storeKey, token_id: target, kind: 'invalidated', origin: this.deps.replicaId }));
    })().finally(() => this.refreshInBackground('invalidated'));
    this.deps.logger.warn('token invalidated', { provider: this.name, token_id: target });
    return true;
  }

  /** The token a Check would get now, if any (no refresh is started). */
  peek(): CachedToken | undefined {
    return this.current;
  }

  status(): ProviderStatus {
    const now = this.deps.clock.now();
    const c = this.current;
    let state: ProviderStateName;
    if (!c) state = this.inflight ? 'refreshing' : 'missing';
    else if (now >= c.expiresAt) state = 'expired';
    else if (now >= c.refreshAt) state = this.lastError ? 'stale' : 'refreshing';
    else state = 'valid';
    return {
      name: this.name,
      state,
      expiresIn: c && c.expiresAt < NEVER_EXPIRES ? Math.round((c.expiresAt - now) / 1000) : null,
      tokenId: c?.tokenId ?? null,
      source: c ? (this.lastServed ?? this.hotSource) : null,
      breaker: this.breakerState,
      lastError: this.lastError ? this.lastError.toJSON() : null,
    };
  }

  breakerValue(): number {
    return BREAKER_STATE_VALUE[this.breakerState];
  }

  /** Takes over another instance's token (reload with an unchanged source). */
  inherit(from: Provider): void {
    const c = from.current;
    if (c) this.adopt(c.record, 'store');
    this.markWarm();
  }

  /** No new refresh starts from now on; a hit is still served. First step of shutdown. */
  quiesce(): void {
    this.closing = true;
    this.timer?.cancel();
    this.timer = undefined;
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
    this.shutdown.abort(new TokenError('ERR_SHUTTING_DOWN', 'tokengate is shutting down', { provider: this.name }));
    this.breakerInstance?.shutdown();
    this.source.close?.();
    this.notifyWaiters();
  }
}

export function newReplicaId(): string {
  return randomUUID();
}
