// A token_exchange provider whose subject is the caller's own token: one exchanged token per
// distinct caller, cached by a SHA-256 of the exact subject token. The Check path calls
// `lookup` (synchronous, no I/O, no allocation on a hit) and only on a miss `acquire`, which
// answers every outcome as a value: a token, an invalid subject (401), a refusal by the IdP
// (403), or unavailable (503). One exchange in flight per caller, however many Checks wait.
import type { Clock, TimerHandle } from '../../clock.js';
import type { ProviderConfig, TokenExchangeSource } from '../../config/types.js';
import { auditExchanged, auditInvalidated } from '../../observability/audit.js';
import type { Logger } from '../../observability/logger.js';
import { traceExchange } from '../../observability/tracing.js';
import type { Metrics } from '../../observability/metrics.js';
import type { CounterCell } from '../../observability/prometheus.js';
import { Breaker, type BreakerState } from '../../resilience/breaker.js';
import type { RetryAfterGate } from '../../resilience/retry-after-gate.js';
import { BudgetHint, type TokenEndpointBudgets } from '../../resilience/token-endpoint-budget.js';
import { withRetries } from '../../resilience/retry.js';
import { NEVER_EXPIRES } from '../../store/store.js';
import type { TokenServeSource } from '../cached-token.js';
import { provesEndpointUp, TOKEN_FAILURES, TokenError, toTokenError } from '../errors.js';
import { recordFor, refreshAtFor } from '../expiry.js';
import { TokenEndpoint } from '../http/token-endpoint.js';
import { exchangeToken, isSubjectRefusal, type ExchangeRequest } from '../http/token-exchange.js';
import type { HttpTransport } from '../http/transport.js';
import { tokenProblem } from '../../config/header-value.js';
import { CallerCache, CallerEntry, entryBytes, type NegativeEntry } from './caller-cache.js';
import { isWellFormed, peekJwt, subjectKey, tokenFromHeader, type SubjectProblem, type UnverifiedClaims } from './subject-token.js';
import { SubjectVerifier, type PrecheckFailure } from './subject-verifier.js';
import type { SharedCallers } from './shared-callers.js';
import { UpstreamRefusals } from './upstream-refusals.js';
import type { StoreEvent, TokenRecord } from '../../store/store.js';
import { tokenId } from '../token-id.js';

/** What a Check of a per-caller provider gets when the cache cannot answer at once. */
export type CallerAnswer =
  /** `record`: the token as the IdP (or the shared store) gave it, on the answer that made the entry only. */
  | { readonly kind: 'token'; readonly entry: CallerEntry; readonly source: TokenServeSource; readonly record?: TokenRecord }
  /** 401 invalid_subject_token: no IdP call was made for it. */
  | { readonly kind: 'invalid_subject'; readonly reason: SubjectProblem }
  /** 403 exchange_rejected: the IdP refused this subject (`idpError` is its OAuth error). */
  | { readonly kind: 'rejected'; readonly idpError: string }
  /** 503 token_unavailable. */
  | { readonly kind: 'unavailable'; readonly error: TokenError };

export interface PerCallerStatus {
  readonly name: string;
  readonly perCaller: true;
  readonly entries: number;
  readonly refused: number;
  readonly approximateBytes: number;
  readonly hits: number;
  readonly misses: number;
  /** hits / (hits + misses); null before the first Check. */
  readonly hitRatio: number | null;
  readonly evictions: number;
  readonly exchangesInFlight: number;
  readonly breaker: BreakerState;
  /** The last exchange failure (never a token or subject). */
  readonly lastError: Record<string, unknown> | null;
}

export interface PerCallerDeps {
  readonly clock: Clock;
  readonly gate: RetryAfterGate;
  readonly logger: Logger;
  readonly metrics: Metrics;
  readonly transport?: HttpTransport;
  readonly random?: () => number;
  /** Per-origin token-endpoint budgets: every exchange waits for its origin's (absent: not budgeted). */
  readonly budgets?: TokenEndpointBudgets;
  /** `cache.shared`: exchanged tokens also live in the shared store, one exchange per caller across replicas. */
  readonly shared?: SharedCallers;
  /** The actor token (delegation), from the provider `actorToken.provider` names. */
  readonly actorToken?: () => Promise<string>;
}

/**
 * One caller's exchange in flight: `verified` settles once the subject's local verification
 * (when configured) has given its verdict, `answer` with the outcome.
 */
interface Flight {
  readonly verified: Promise<void>;
  readonly answer: Promise<CallerAnswer>;
}

/**
 * How long a Check waits for the local verdict on its subject (a signature check, plus at most
 * one JWKS fetch per cooldown) before the refresh wait budget starts. A verdict is what makes a
 * garbage subject a deliberate 401: under a flood of distinct forgeries the signature checks
 * queue up, and a Check must not turn into a 503 for want of its own verdict.
 */
const VERIFY_WAIT_MS = 10_000;

/** Exchanges in flight at once per provider; more callers queue (each within its wait budget). */
const MAX_CONCURRENT_EXCHANGES = 16;
/** Callers queued for an exchange slot; beyond this a cold caller is answered 503 at once. */
const MAX_QUEUED_EXCHANGES = 2_048;
/**
 * After an exchange failed for want of the IdP (timeout, 5xx), that caller's next Checks are
 * answered 503 from memory this long: a caller retrying in a loop must not turn into a loop of
 * exchanges. (The breaker covers the endpoint as a whole.)
 */
const FAILED_EXCHANGE_BACKOFF_MS = 2_000;
/** After a failed refresh ahead, the next try waits at least this long. */
const REFRESH_RETRY_MS = 5_000;

const REJECTED = new Map<string, CallerAnswer>();
/** How often noteVerifyRefusal may speak per check. */
const VERIFY_NOTICE_INTERVAL_MS = 60_000;

/** Token ids an upstream refused, remembered so a shared record carrying one is not adopted again. */
const MAX_REFUSED_UPSTREAM = 1_024;

export class PerCallerProvider {
  readonly name: string;
  readonly source: TokenExchangeSource;
  readonly header: string;
  private readonly cache: CallerCache;
  private readonly inflight = new Map<string, Flight>();
  private readonly endpoint: TokenEndpoint;
  private readonly verifier: SubjectVerifier | undefined;
  private breakerInstance: Breaker | undefined;
  private readonly hitCell: CounterCell;
  private readonly missCell: CounterCell;
  private readonly random: () => number;
  private running = 0;
  private readonly queue: (() => void)[] = [];
  private lastError: TokenError | undefined;
  private closed = false;
  private readonly controllers = new Set<AbortController>();
  private readonly timers = new Set<TimerHandle>();
  /** Exchanged tokens an upstream refused (Envoy's access log, here or in another replica), oldest first. */
  private readonly refusedUpstream = new Set<string>();
  /** Callers whose tokens upstreams refused lately: enough of them hold the caller. */
  private readonly refusals = new UpstreamRefusals();
  /** When each structural verify refusal was last logged (noteVerifyRefusal). */
  private readonly verifyNotices = new Map<PrecheckFailure, number>();

  constructor(readonly config: ProviderConfig, private readonly deps: PerCallerDeps) {
    if (config.source.type !== 'token_exchange' || !config.source.subjectToken.request || !config.cache) {
      throw new TokenError('ERR_SOURCE_CONFIG', 'a per-caller provider needs a token_exchange source with subjectToken.request', { provider: config.name });
    }
    this.name = config.name;
    this.source = config.source;
    this.header = config.source.subjectToken.request.header;
    this.endpoint = new TokenEndpoint(config.source, deps.transport);
    this.verifier = config.source.subjectToken.verify ? new SubjectVerifier(config.source.subjectToken.verify, deps.clock) : undefined;
    const evictions = deps.metrics.exchangeCacheEvictions.cell(this.name);
    this.cache = new CallerCache(config.cache, (n) => (evictions.value += n));
    this.hitCell = deps.metrics.exchangeCacheHits.cell(this.name);
    this.missCell = deps.metrics.exchangeCacheMisses.cell(this.name);
    this.random = deps.random ?? Math.random;
  }

  /** The token endpoint (or, with `issuer`, the issuer): what budgets and Retry-After are kept by. */
  private get endpointUrl(): string {
    return this.source.tokenUrl ?? this.source.issuer ?? '';
  }

  get breakerState(): BreakerState {
    return this.breakerInstance?.state ?? 'closed';
  }

  get size(): number {
    return this.cache.size;
  }

  /**
   * The cached entry for the caller whose header value this is, before its hard expiry, or
   * undefined (the slow path then answers). Inside the refresh window it starts one refresh
   * ahead: only callers still calling ever get one. Synchronous; on a hit it hashes the token
   * and allocates nothing else.
   */
  lookup(headerValue: string | undefined, now: number): CallerEntry | undefined {
    const req = this.source.subjectToken.request!;
    const token = tokenFromHeader(headerValue, req);
    if (token === undefined || token.length > req.maxBytes) return undefined;
    const key = subjectKey(token);
    const e = this.cache.get(key, now);
    if (e === undefined) return undefined;
    this.cache.hits++;
    this.hitCell.value++;
    if (now >= e.refreshAt && !this.inflight.has(key)) this.refreshAhead(e, token);
    return e;
  }

  /**
   * The slow path: every outcome as a value, waiting at most refresh.waitBudget (or `waitMs`,
   * e.g. the CLI's one-off exchange) for an exchange.
   */
  async acquire(headerValue: string | undefined, opts: { readonly signal?: AbortSignal; readonly waitMs?: number } = {}): Promise<CallerAnswer> {
    const req = this.source.subjectToken.request!;
    const now = this.deps.clock.now();
    const token = tokenFromHeader(headerValue, req);
    if (token === undefined) return this.invalid('missing');
    // Refused before hashing: a 1 MB header costs one length check.
    if (Buffer.byteLength(token, 'utf8') > req.maxBytes) return this.invalid('too_large');
    const key = subjectKey(token);
    const hit = this.cache.get(key, now);
    if (hit) {
      this.cache.hits++;
      this.hitCell.value++;
      return { kind: 'token', entry: hit, source: hit.stale ? 'stale' : 'cache' };
    }
    const negative = this.cache.getNegative(key, now);
    if (negative) return negative.kind === 'unavailable' ? this.unavailableFromMemory(negative, now) : answerFor(negative);
    this.cache.misses++;
    this.missCell.value++;
    if (!isWellFormed(token)) return this.invalid('malformed');
    // Reading exp to deny needs no trust: an expired JWT is refused with or without verify.
    const claims = peekJwt(token);
    const leeway = this.source.subjectToken.verify?.leeway ?? 0;
    if (claims?.expMs !== undefined && claims.expMs + leeway <= now) return this.invalid('expired', key);
    if (claims?.nbfMs !== undefined && claims.nbfMs - leeway > now) return this.invalid('not_yet_valid');
    // With verify on, what no signature could fix is refused before any signature check: not a
    // JWT, an algorithm not allowed (none), another issuer or audience, no exp.
    const structural = this.verifier?.precheck(claims);
    if (structural !== undefined) {
      this.noteVerifyRefusal(structural, claims, now);
      return this.invalid('verify_failed', key);
    }
    let flight = this.inflight.get(key);
    if (flight === undefined) {
      if (this.closed) return { kind: 'unavailable', error: new TokenError('ERR_SHUTTING_DOWN', 'tokengate is shutting down', { provider: this.name }) };
      if (this.queue.length >= MAX_QUEUED_EXCHANGES) {
        return { kind: 'unavailable', error: new TokenError('ERR_IDP_RATE_LIMITED', `${this.name}: too many callers waiting for an exchange`, { provider: this.name }) };
      }
      flight = this.startExchange(key, token, claims);
    }
    return this.waitFor(flight, opts.waitMs ?? this.config.refresh.waitBudget, opts.signal);
  }

  /** A status line for /v1/tokens: sizes and ratios, never a token or subject. */
  status(): PerCallerStatus {
    const c = this.cache;
    const total = c.hits + c.misses;
    return {
      name: this.name, perCaller: true, entries: c.size, refused: c.negativeSize, approximateBytes: c.approximateBytes,
      hits: c.hits, misses: c.misses, hitRatio: total ? Math.round((c.hits / total) * 10_000) / 10_000 : null,
      evictions: c.evictions, exchangesInFlight: this.inflight.size, breaker: this.breakerState,
      lastError: this.lastError ? this.lastError.toJSON() : null,
    };
  }

  /**
   * Envoy's access log (to this replica) reports that an upstream refused the exchanged token
   * with this id. Once per token id: a repeat (Envoy batches, requests in flight, another
   * replica's report already here) does nothing. The caller holding it is evicted (their next
   * Check exchanges afresh) and the id is remembered, so a shared record carrying it is never
   * adopted again. With `cache.shared`, the record is removed if it still holds that token and
   * every replica is told to do the same (in the background: the store never delays anything).
   * Only that one caller: no other entry, and never a record holding another token. False for a
   * repeat.
   */
  refusedByUpstream(tokenId: string, status: number): boolean {
    if (this.refusedUpstream.has(tokenId)) return false;
    this.rememberRefused(tokenId);
    const e = this.evictRefused(tokenId);
    if (e) auditInvalidated(this.deps.logger, { provider: this.name, tokenId, by: 'access_log', status });
    // A log line must never turn into an unhandled rejection: the store's failures are counted inside.
    if (this.deps.shared) void this.spreadRefusal(this.deps.shared, tokenId, status, e).catch(() => undefined);
    return true;
  }

  /**
   * Another replica's `invalidated` event (cache.shared): an upstream refused token `token_id`.
   * This replica evicts the caller holding it and remembers the id; when the reporting replica
   * did not hold that caller (the event names no record) and this one does, it removes the
   * shared record, and the replica whose compare-and-delete removed it writes the audit line.
   */
  onStoreEvent(event: StoreEvent): void {
    const shared = this.deps.shared;
    if (!shared || event.kind !== 'invalidated' || event.origin === shared.replicaId || this.refusedUpstream.has(event.token_id)) return;
    this.rememberRefused(event.token_id);
    const e = this.evictRefused(event.token_id);
    if (e === undefined) return;
    const key = shared.keyFor(e.key);
    if (event.key === key) return; // removed by the replica that reported it
    void this.removeShared(shared, key, event.token_id).then((removed) => {
      if (removed === true) auditInvalidated(this.deps.logger, { provider: this.name, tokenId: event.token_id, by: 'access_log', ...(event.status !== undefined ? { status: event.status } : {}) });
    });
  }

  /** Drops every cached caller (admin invalidate). */
  invalidateAll(): void {
    this.cache.clear();
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const c of this.controllers) c.abort(new TokenError('ERR_SHUTTING_DOWN', 'tokengate is shutting down', { provider: this.name }));
    for (const t of this.timers) t.cancel();
    for (const wake of this.queue.splice(0)) wake();
    await Promise.allSettled([...this.inflight.values()].map((f) => f.answer));
    this.breakerInstance?.shutdown();
    this.endpoint.close();
    this.cache.clear();
  }

  private rememberRefused(tokenId: string): void {
    if (this.refusedUpstream.size >= MAX_REFUSED_UPSTREAM) this.refusedUpstream.delete(this.refusedUpstream.values().next().value as string);
    this.refusedUpstream.add(tokenId);
  }

  /**
   * Evicts the caller holding refused token `tokenId`, if cached here, and counts the refusal
   * against that caller: enough refusals in a row hold them (answered 401 from memory for
   * `cache.negativeTtl`, no exchange), so an upstream that refuses every token they get does
   * not cost one exchange per request.
   */
  private evictRefused(tokenId: string): CallerEntry | undefined {
    const e = this.cache.byToken(tokenId);
    if (e === undefined) return undefined;
    this.cache.remove(e);
    const now = this.deps.clock.now();
    const count = this.refusals.record(e.key, now);
    if (UpstreamRefusals.holds(count)) {
      const holdMs = this.config.cache!.negativeTtl;
      this.cache.setNegative(e.key, { kind: 'invalid_subject', reason: 'refused_upstream', until: now + holdMs });
      this.deps.metrics.exchangeHolds.inc({ provider: this.name });
      this.deps.logger.warn('upstream keeps refusing this caller\'s exchanged tokens; answering 401 without exchanging', {
        provider: this.name, subject: e.subject ?? null, token_id: tokenId, refusals: count, hold_s: Math.round(holdMs / 1000),
      });
    }
    return e;
  }

  /** The shared half of a refusal reported here: compare-and-delete the record (when this replica knows it), then tell the others. */
  private async spreadRefusal(shared: SharedCallers, tokenId: string, status: number, e: CallerEntry | undefined): Promise<void> {
    let key = shared.anyRecordKey;
    if (e) {
      const own = shared.keyFor(e.key);
      // Not removed for want of the store: the event then names no record, so a holder tries.
      if ((await this.removeShared(shared, own, tokenId)) !== 'failed') key = own;
    }
    if (!(await shared.publishRefused(key, tokenId, status))) {
      this.deps.metrics.storeErrors.inc({ op: 'publish' });
      this.deps.logger.warn('could not tell the other replicas that an upstream refused a caller\'s token; they evict it when it is refused there', { provider: this.name, token_id: tokenId });
    }
  }

  private async removeShared(shared: SharedCallers, key: string, tokenId: string): Promise<boolean | 'failed'> {
    const removed = await shared.remove(key, tokenId);
    if (removed === 'failed') this.deps.metrics.storeErrors.inc({ op: 'remove' });
    return removed;
  }

  private unavailableFromMemory(n: NegativeEntry, now: number): CallerAnswer {
    const code = n.reason as TokenError['code'];
    return { kind: 'unavailable', error: new TokenError(code, `${this.name}: this caller's last exchange failed (${code}); not retried yet`, { provider: this.name, retryAfterMs: n.until - now }) };
  }

  /**
   * Says, at most once a minute per check, why `verify` refused subjects before any signature
   * check: a `verify.issuer` or `audience` that does not match what the IdP writes refuses every
   * caller, and without this line the only sign is the 401s. The token's own claim is shown
   * (cut short: it is the caller's text), never the token.
   */
  private noteVerifyRefusal(check: PrecheckFailure, claims: UnverifiedClaims | undefined, now: number): void {
    const last = this.verifyNotices.get(check);
    if (last !== undefined && now - last < VERIFY_NOTICE_INTERVAL_MS) return;
    this.verifyNotices.set(check, now);
    const verify = this.source.subjectToken.verify!;
    const seen = check === 'issuer' ? claims?.iss : check === 'audience' ? claims?.aud : check === 'algorithm' ? claims?.alg : undefined;
    this.deps.logger.info('subject tokens refused by verify before any signature check (at most one line a minute per check)', {
      provider: this.name, check,
      ...(check === 'issuer' ? { configured: verify.issuer } : check === 'audience' ? { configured: verify.audience ?? null } : check === 'algorithm' ? { configured: verify.algorithms } : {}),
      ...(seen !== undefined ? { token_claim: JSON.stringify(seen).slice(0, 200) } : {}),
    });
  }

  private invalid(reason: SubjectProblem, key?: string): CallerAnswer {
    this.deps.metrics.exchanges.inc({ provider: this.name, outcome: 'invalid_subject' });
    // Repeats of a dead token are answered from memory (a flood costs one decode per token).
    if (key !== undefined) this.cache.setNegative(key, { kind: 'invalid_subject', reason, until: this.deps.clock.now() + this.config.cache!.negativeTtl });
    return { kind: 'invalid_subject', reason };
  }

  private breaker(): Breaker {
    this.breakerInstance ??= new Breaker(this.name, this.config.resilience.breaker, this.deps.clock, {
      onStateChange: (state) => this.deps.logger.warn('breaker state changed', { provider: this.name, breaker: state }),
      provesUp: provesEndpointUp,
    });
    return this.breakerInstance;
  }

  /**
   * Waits for `flight`: for its verify verdict (bounded by VERIFY_WAIT_MS), then at most
   * `budget` for the exchange; the exchange itself goes on for the callers after.
   */
  private waitFor(flight: Flight, budget: number, signal?: AbortSignal): Promise<CallerAnswer> {
    return new Promise<CallerAnswer>((resolve) => {
      let done = false;
      let timer: TimerHandle | undefined;
      const finish = (answer: CallerAnswer): void => {
        if (done) return;
        done = true;
        timer?.cancel();
        signal?.removeEventListener('abort', onAbort);
        resolve(answer);
      };
      const arm = (ms: number): void => {
        timer?.cancel();
        timer = this.deps.clock.setTimer(() => finish({
          kind: 'unavailable', error: new TokenError('ERR_WAIT_BUDGET', `no exchanged token within the wait budget (${budget}ms)`, { provider: this.name }),
        }), ms);
      };
      const onAbort = (): void => finish({ kind: 'unavailable', error: new TokenError('ERR_SHUTTING_DOWN', 'the Check was cancelled', { provider: this.name }) });
      signal?.addEventListener('abort', onAbort, { once: true });
      arm(Math.max(budget, VERIFY_WAIT_MS));
      flight.verified.then(() => {
        if (!done) arm(budget);
      }, () => undefined);
      flight.answer.then(finish, () => undefined);
    });
  }

  private startExchange(key: string, token: string, claims: UnverifiedClaims | undefined, previous?: CallerEntry): Flight {
    let markVerified!: () => void;
    const verified = new Promise<void>((resolve) => (markVerified = resolve));
    // A CLIENT span, the child of the Check that started it (a refresh ahead: of the hit's
    // context, i.e. none). The caller is named by the subject token's id only.
    const answer = traceExchange(this.name, tokenId(token), () => this.exchange(key, token, claims, previous, markVerified)).finally(() => {
      markVerified();
      if (this.inflight.get(key) === flight) this.inflight.delete(key);
    });
    const flight: Flight = { verified, answer };
    this.inflight.set(key, flight);
    return flight;
  }

  private refreshAhead(e: CallerEntry, token: string): void {
    if (this.closed) return;
    const claims = peekJwt(token);
    void this.startExchange(e.key, token, claims, e);
  }

  /** One exchange slot (bounded concurrency per provider), released by the returned function. */
  private async slot(): Promise<() => void> {
    if (this.running >= MAX_CONCURRENT_EXCHANGES) await new Promise<void>((resolve) => this.queue.push(resolve));
    this.running++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.running--;
      this.queue.shift()?.();
    };
  }

  private async exchange(key: string, token: string, claims: UnverifiedClaims | undefined, previous: CallerEntry | undefined, verified: () => void): Promise<CallerAnswer> {
    const { clock, metrics } = this.deps;
    let subject: string | undefined;
    if (this.verifier && !previous) {
      const v = await this.verifier.verify(token);
      verified();
      if (!v.ok) {
        if (v.reason === 'keys_unavailable') {
          const error = new TokenError('ERR_IDP_UNAVAILABLE', `${this.name}: the subject token's signing keys cannot be fetched`, { provider: this.name });
          this.lastError = error;
          metrics.exchanges.inc({ provider: this.name, outcome: error.code });
          return { kind: 'unavailable', error };
        }
        return this.invalid(v.reason, key);
      }
      subject = v.sub;
    } else {
      verified();
      subject = previous?.subject;
    }
    const shared = this.deps.shared;
    if (!shared) return this.exchangeAtIdp(key, token, claims, subject, previous);
    // Across replicas: a usable record another replica stored, else the per-subject lock; the
    // holder exchanges, the others wait for its record (bounded), then fall back to their own.
    const skey = shared.keyFor(key);
    // Newer means obtained later, not expiring later (as replica-coordinator's isBetter and the
    // store's fenced write judge it): an IdP that shortens lifetimes issues a newer token that
    // expires before ours, and refusing it would cost every replica an exchange per caller.
    const usable = (r: TokenRecord) => !this.refusedUpstream.has(r.tokenId) && (!previous || (r.tokenId !== previous.tokenId && r.obtainedAt > previous.obtainedAt));
    const stored = await shared.read(skey, usable);
    if (stored) return this.adopt(key, stored, subject, claims, 'store');
    const lockTtl = this.config.resilience.timeout * (this.config.resilience.retries + 1) + 2_000;
    const lock = await shared.tryLock(skey, lockTtl);
    if (lock === 'held') {
      const followed = await shared.follow(skey, clock.now() + lockTtl, usable);
      if (followed) return this.adopt(key, followed, subject, claims, 'store');
    }
    try {
      const answer = await this.exchangeAtIdp(key, token, claims, subject, previous);
      if (answer.kind === 'token' && answer.record) {
        const r = answer.record;
        // Stored with the bounded expiry: the shared record never outlives the subject either.
        await shared.write(skey, { ...r, expiresAt: answer.entry.expiresAt });
      }
      return answer;
    } finally {
      if (typeof lock === 'object') await lock.release().catch(() => undefined);
    }
  }

  /** A record from the shared store (another replica's exchange) becomes this caller's entry. */
  private adopt(key: string, record: TokenRecord, subject: string | undefined, claims: UnverifiedClaims | undefined, _how: 'store'): CallerAnswer {
    const entry = this.entryFor(key, record, subject, claims);
    if (entry === undefined) return this.invalid('expired', key);
    this.cache.set(entry);
    this.deps.metrics.exchanges.inc({ provider: this.name, outcome: 'shared' });
    return { kind: 'token', entry, source: 'refreshed', record };
  }

  /** The cache entry for a record: lifetime bounded by the subject's exp; undefined when already over. */
  private entryFor(key: string, record: TokenRecord, subject: string | undefined, claims: UnverifiedClaims | undefined): CallerEntry | undefined {
    const now = this.deps.clock.now();
    // The entry never outlives the subject: an exchanged token must not keep a caller in
    // after their own token has expired.
    const subjectExp = claims?.expMs;
    const bounded = subjectExp !== undefined && subjectExp < record.expiresAt;
    const expiresAt = bounded ? subjectExp : record.expiresAt;
    if (expiresAt <= now) return undefined;
    // Refresh ahead only when a new exchange could outlive this one (not when the subject's exp bounds it).
    const refreshAt = bounded || record.expiresAt >= NEVER_EXPIRES ? Number.POSITIVE_INFINITY : refreshAtFor(record, this.config.refresh, this.random);
    // One object per caller (no CachedToken, no record kept): the record's other fields serve
    // only the exchange that made it (the shared store's copy, the CLI), via the answer.
    return new CallerEntry(key, record.accessToken, record.tokenType, record.tokenId, expiresAt, subject, refreshAt, entryBytes(record.accessToken.length, subject?.length ?? 0), now, expiresAt - record.obtainedAt);
  }

  /** The exchange itself: budget, breaker, retries, answer checks; the outcome cached. */
  private async exchangeAtIdp(key: string, token: string, claims: UnverifiedClaims | undefined, subject: string | undefined, previous: CallerEntry | undefined): Promise<CallerAnswer> {
    const { clock, metrics, logger } = this.deps;
    const started = clock.now();
    const release = await this.slot();
    if (this.closed) {
      release();
      return { kind: 'unavailable', error: new TokenError('ERR_SHUTTING_DOWN', 'tokengate is shutting down', { provider: this.name }) };
    }
    const controller = new AbortController();
    this.controllers.add(controller);
    let attemptAt = started;
    try {
      const actorToken = this.deps.actorToken ? await this.deps.actorToken() : undefined;
      const request = this.request(token, actorToken);
      const r = this.config.resilience;
      // A caller waiting on a cold cache goes first in the origin's budget; a refresh ahead is
      // due by the current token's hard expiry.
      const budget = this.deps.budgets?.forUrl(this.endpointUrl);
      const hint = new BudgetHint();
      if (previous) hint.deadline = previous.expiresAt;
      else hint.cold = true;
      const admit = budget ? (signal?: AbortSignal) => budget.admit(hint, signal) : undefined;
      const attempt = () => withRetries(
        (signal) => {
          attemptAt = clock.now();
          return exchangeToken(this.endpoint, request, { signal, now: attemptAt });
        },
        { timeoutMs: r.timeout, retries: r.retries, baseMs: r.backoff.base, maxMs: r.backoff.max },
        { clock, gate: this.deps.gate, failures: TOKEN_FAILURES, endpoint: this.endpointUrl, signal: controller.signal, random: this.random, ...(admit ? { admit } : {}) },
      );
      const fetched = await this.breaker().run(attempt);
      const inject = this.config.inject;
      const problem = tokenProblem(fetched.accessToken, { tokenType: fetched.tokenType, format: inject.format, maxBytes: inject.maxTokenBytes, fromTokenEndpoint: true });
      if (problem) throw new TokenError('ERR_IDP_BAD_RESPONSE', `token endpoint answered an unusable token: ${problem}`, { provider: this.name });
      const record = recordFor(fetched, attemptAt, this.source.defaultTtl, this.config.refresh);
      const entry = this.entryFor(key, record, subject, claims);
      if (entry === undefined) return this.invalid('expired', key);
      const expiresAt = entry.expiresAt;
      this.cache.set(entry);
      metrics.exchanges.inc({ provider: this.name, outcome: 'issued' });
      // One audit line per exchange (docs/operations.md, "Audit events"): the verified `sub`
      // when verify is on, the subject token's id always, never the subject token.
      auditExchanged(logger, {
        provider: this.name, tokenId: record.tokenId, subjectId: tokenId(token), subject: subject ?? null,
        audience: this.audience(), actor: this.source.actorToken?.provider ?? null,
        expiresInS: Math.round((expiresAt - clock.now()) / 1000), ...(previous ? { refresh: true } : {}),
      });
      return { kind: 'token', entry, source: 'refreshed', record };
    } catch (raw) {
      const err = toTokenError(raw, 'ERR_IDP_UNAVAILABLE', this.name);
      if (isSubjectRefusal(err)) {
        const idpError = err.oauthError!;
        metrics.exchanges.inc({ provider: this.name, outcome: 'rejected' });
        logger.info('token exchange refused', { provider: this.name, subject: subject ?? null, error: idpError, ...(err.oauthErrorDescription ? { error_description: err.oauthErrorDescription } : {}) });
        const negative: NegativeEntry = { kind: 'rejected', reason: idpError, until: clock.now() + this.config.cache!.negativeTtl };
        if (previous) this.cache.remove(previous);
        this.cache.setNegative(key, negative);
        return answerFor(negative);
      }
      this.lastError = err;
      metrics.exchanges.inc({ provider: this.name, outcome: err.code });
      logger.warn('token exchange failed', { provider: this.name, error: err.toJSON() });
      // A refresh ahead that failed: the caller's current token serves until its hard expiry.
      if (previous && clock.now() < previous.expiresAt) {
        previous.stale = true;
        previous.refreshAt = Math.min(previous.expiresAt, clock.now() + Math.max(REFRESH_RETRY_MS, (previous.expiresAt - clock.now()) / 4));
        return { kind: 'token', entry: previous, source: 'stale' };
      }
      this.cache.setNegative(key, { kind: 'unavailable', reason: err.code, until: clock.now() + Math.max(FAILED_EXCHANGE_BACKOFF_MS, err.retryAfterMs ?? 0) });
      return { kind: 'unavailable', error: err };
    } finally {
      this.controllers.delete(controller);
      release();
    }
  }

  /** What the exchanged token is for, as the audit line names it: audience, else resource, else scope. */
  private audience(): string | null {
    const s = this.source;
    return s.audience ?? (typeof s.resource === 'string' ? s.resource : s.resource?.join(' ')) ?? s.scope ?? null;
  }

  private request(subjectToken: string, actorToken: string | undefined): ExchangeRequest {
    const s = this.source;
    if (s.style === 'entra_obo') return { style: 'entra_obo', subjectToken, ...(s.scope ? { scope: s.scope } : {}) };
    return {
      style: 'rfc8693',
      subjectToken,
      subjectTokenType: s.subjectToken.type,
      ...(actorToken !== undefined ? { actorToken, actorTokenType: s.actorToken!.type } : {}),
      ...(s.audience ? { audience: s.audience } : {}),
      ...(s.resource ? { resource: s.resource } : {}),
      ...(s.scope ? { scope: s.scope } : {}),
      ...(s.requestedTokenType ? { requestedTokenType: s.requestedTokenType } : {}),
    };
  }
}

/** Negative answers are shared objects: a flood of one refused subject allocates nothing per Check. */
function answerFor(n: NegativeEntry): CallerAnswer {
  if (n.kind === 'invalid_subject') return { kind: 'invalid_subject', reason: n.reason as SubjectProblem };
  let a = REJECTED.get(n.reason);
  if (a === undefined) {
    a = { kind: 'rejected', idpError: n.reason };
    // OAuth error codes are a small vocabulary; an IdP inventing codes must not grow this.
    if (REJECTED.size < 64) REJECTED.set(n.reason, a);
  }
  return a;
}
