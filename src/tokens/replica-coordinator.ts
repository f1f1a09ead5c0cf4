// One token slot's side of the replica protocol on the shared store: read before fetching, one
// lock holder fetches and publishes, the others adopt its token from the event (or the store),
// rotating refresh tokens are claimed and never presented twice, and an invalidated token is
// removed from the store and announced to the other replicas. It works on the slot it was
// built for and on the store; it fetches through the `Fetcher` it is given and ends every
// refresh in `slot.adopt`. It never calls back into whoever owns the slot.
import type { Clock } from '../clock.js';
import type { ProviderConfig } from '../config/types.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import { RecordCryptoError } from '../store/crypto.js';
import { lockKeyFor, type StoreEvent, type StoreLock, type TokenRecord, type TokenStore } from '../store/store.js';
import type { CachedToken } from './cached-token.js';
import { fencedWrite, lockOutcome, lockWaited, storeEvent } from './coordination-telemetry.js';
import { TokenError } from './errors.js';
import { refreshDueAt } from './expiry.js';
import type { Fetcher } from './fetcher.js';
import type { TokenSource } from './sources/source.js';
import { tokenId } from './token-id.js';
import type { Adoption, TokenSlot } from './token-slot.js';

export type { Adoption } from './token-slot.js';

/**
 * The grant a slot's token comes from: the source to fetch from and the provider settings the
 * protocol needs (lock TTL from `resilience.timeout`, `refresh` for when a stored token is due,
 * the configured refresh token and `reuseInterval` of a refresh_token source).
 */
export interface Grant {
  readonly config: ProviderConfig;
  readonly source: TokenSource;
}

export interface ReplicaDeps {
  readonly clock: Clock;
  readonly store: TokenStore;
  readonly logger: Logger;
  readonly metrics: Metrics;
  /** This process, in store events. */
  readonly replicaId: string;
}

type StoreResult<T> = { ok: true; value: T } | { ok: false; value?: undefined; error?: unknown };

const FOLLOW_POLL_MS = 250;
/** Pause before asking a connected store again after one failed command. */
const STORE_GLITCH_PAUSE_MS = 100;
/** How often a rotated refresh token the store did not take is offered again. */
const UNSAVED_RETRY_MS = 500;
/** Spent refresh tokens remembered in process memory (the store record keeps the newest one). */
const SPENT_MEMORY = 32;

/** The refresh token a rotating refresh is about to present, and since when it may be spent. */
interface Presentation {
  readonly token: string;
  /** tokenId of the refresh token: what the store and logs know it by. */
  readonly id: string;
  /** First presentation with an unknown outcome, when there was one (inside the reuse interval). */
  readonly since: number | undefined;
}

/** The ERR_GRANT_AMBIGUOUS every refusal and every ambiguous outcome ends in. */
export function grantAmbiguous(provider: string, cause?: TokenError): TokenError {
  const what = cause
    ? `the refresh_token grant's outcome is unknown (${cause.code}: ${cause.message})`
    : 'the refresh token this grant holds was presented in a grant whose outcome is unknown';
  return new TokenError('ERR_GRANT_AMBIGUOUS',
    `${what}; the IdP may have rotated it, so it is never presented again: configure a new refresh token and reload (see README, "Rotating refresh tokens")`,
    {
      provider, ambiguous: true,
      // The IdP's own words (already scrubbed of credentials) stay visible in /v1/tokens.
      ...(cause ? { cause, ...(cause.status !== undefined ? { status: cause.status } : {}) } : {}),
      ...(cause?.oauthError !== undefined ? { oauthError: cause.oauthError } : {}),
      ...(cause?.oauthErrorDescription !== undefined ? { oauthErrorDescription: cause.oauthErrorDescription } : {}),
    });
}

export class ReplicaCoordinator {
  private readonly lockTtlMs: number;
  /** A rotated refresh token's record that the store has not taken yet (Redis was down). */
  private unsaved: TokenRecord | undefined;
  /**
   * Refresh tokens (by tokenId) presented with an unknown outcome, and when first presented.
   * The store record carries the newest one for other replicas and restarts; this copy covers a
   * store write that failed, and the reload that hands the grant to a new provider. Made on
   * first use: only a rotating grant with an unknown outcome ever fills it.
   */
  private spent: Map<string, number> | undefined;
  /** After a reload: the coordinator that took this grant over (`takeOver`). */
  private heir: ReplicaCoordinator | undefined;
  /** A newer refresh token of this grant carried over from another store key (source reload). */
  private inherited: TokenRecord | undefined;
  /** No new store work starts (a rotated record's retries stop): shutdown or retirement. */
  private quiesced = false;
  /** When the refresh that found the lock held began (tokengate_refresh_lock_wait_seconds). */
  private contendedSince: number | undefined;

  constructor(
    readonly slot: TokenSlot,
    private readonly grant: Grant,
    private readonly fetcher: Fetcher,
    private readonly deps: ReplicaDeps,
  ) {
    // Above one attempt plus the write; renewed while the fetch runs, so it can stay short and
    // a replica that dies holding it delays the next refresh by at most this much.
    this.lockTtlMs = grant.config.resilience.timeout + 2_000;
  }

  private get name(): string {
    return this.slot.key.label;
  }

  private get storeKey(): string {
    return this.slot.key.storeKey;
  }

  private adopt(rec: TokenRecord, how: Adoption): CachedToken {
    return this.slot.adopt(rec, how);
  }

  /** One fetch from the grant's source, presenting `refreshToken` when given. */
  private fetch(refreshToken: string | undefined, presentedSince?: number): Promise<TokenRecord> {
    return this.fetcher.fetch({ source: this.grant.source, refreshToken, presentedSince });
  }

  /** Gets a fresh token, through the shared store when there is one. */
  async coordinate(): Promise<CachedToken> {
    const store = this.deps.store;
    if (!store.shared) {
      const stored = await this.storeOp('read', () => store.read(this.storeKey));
      const rec = this.grant.source.rotates
        ? await this.presentRotating(this.presentation(stored.value), stored.value)
        : await this.fetch(this.newestRefreshToken(stored.value));
      await this.storeOp('write', () => store.write(this.storeKey, rec));
      return this.adopt(rec, 'fetched');
    }
    // The token this refresh replaces: another one arriving meanwhile (an event) ends it.
    const startId = this.slot.peek()?.tokenId;
    const deadline = this.deps.clock.now() + 3 * this.lockTtlMs;
    let glitches = 0;
    const since = this.deps.clock.now();
    this.contendedSince = undefined;
    for (;;) {
      const arrived = this.arrivedSince(startId);
      if (arrived) return this.endWait(arrived);
      const stored = await this.storeOp('read', () => store.read(this.storeKey));
      if (stored.ok && stored.value) {
        if (this.isBetter(stored.value)) return this.endWait(this.adopt(stored.value, 'store'));
        // Nothing usable here (cold start, or ours expired) but one there: serve it meanwhile.
        if (this.usableNow(stored.value)) this.adopt(stored.value, 'store');
      }
      const lock = stored.ok ? await this.storeOp('lock', () => store.tryLock(lockKeyFor(this.storeKey), this.lockTtlMs)) : stored;
      if (!lock.ok) {
        // Connected but one command was late (a busy event loop outlasts a 50 ms timeout): while
        // our token still serves, try the store once more before fetching on our own.
        const c = this.slot.peek();
        if (store.healthy() && glitches++ === 0 && c && this.deps.clock.now() < c.expiresAt) {
          await this.slot.waitForChange(STORE_GLITCH_PAUSE_MS);
          continue;
        }
        return this.fetchWithoutStore(lock.error);
      }
      if (lock.value) {
        lockOutcome(this.deps.metrics, this.name, 'acquired');
        lockWaited(this.deps.metrics, this.name, this.deps.clock.now() - since, 'acquired');
        this.contendedSince = undefined;
        return this.leadRefresh(lock.value, startId);
      }
      lockOutcome(this.deps.metrics, this.name, 'contended');
      this.contendedSince ??= since;
      // Another replica holds the lock: it will publish. Wait for its event (or poll), bounded.
      if (this.deps.clock.now() >= deadline) {
        throw new TokenError('ERR_STORE_UNAVAILABLE', 'another replica holds the refresh lock and published no token', { provider: this.name });
      }
      await this.slot.waitForChange(Math.min(FOLLOW_POLL_MS * 4, this.lockTtlMs));
    }
  }

  /** The store is unreachable: the slot keeps serving, and we refresh on our own unless that is unsafe. */
  private async fetchWithoutStore(cause?: unknown): Promise<CachedToken> {
    if (this.grant.source.rotates) {
      if (cause instanceof RecordCryptoError) throw this.unreadableRecord(cause);
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
    let lost = false;
    const renew = setInterval(() => {
      lock.extend(this.lockTtlMs).then((held) => {
        // Gone while we still refresh: another replica may take it and refresh too.
        if (held || lost) return;
        lost = true;
        lockOutcome(this.deps.metrics, this.name, 'lost');
      }, () => this.deps.metrics.storeErrors.inc({ op: 'lock' }));
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
      let plan: Presentation | undefined;
      if (this.grant.source.rotates) {
        if (!again.ok) {
          if (again.error instanceof RecordCryptoError) throw this.unreadableRecord(again.error);
          throw new TokenError('ERR_REFRESH_UNSAFE', 'the shared store did not answer; the newest refresh token is unknown, so none is presented', { provider: this.name });
        }
        // A spent token is refused before it is claimed: nothing is presented, nothing to give back.
        plan = this.presentation(again.value);
        claimed = await this.claimRefresh();
      }
      let rec: TokenRecord;
      try {
        rec = plan ? await this.presentRotating(plan, again.value) : await this.fetch(this.newestRefreshToken(again.value));
      } catch (err) {
        // The IdP may have carried the grant out: the claim stays (the spent mark replaces it
        // when the store takes it). Otherwise nothing rotated: give it back.
        const ambiguous = err instanceof TokenError && err.ambiguous;
        if (claimed && !ambiguous) await this.storeOp('unclaim', () => store.releaseRefreshClaim?.(this.storeKey, this.deps.replicaId) ?? Promise.resolve());
        throw err;
      }
      // Written before the lock is released: the next holder must see the rotated refresh token.
      // The record read under the lock is the one this token supersedes (nothing newer existed).
      const supersedes = again.value?.tokenId;
      if (this.grant.source.rotates) {
        await this.storeRotated(rec, supersedes);
      } else {
        let written = await this.storeOp('write', () => store.write(this.storeKey, rec, supersedes));
        if (!written.ok && rec.refreshToken) written = await this.storeOp('write', () => store.write(this.storeKey, rec, supersedes));
        // Refused (fenced): the store holds a newer token, announced by its writer.
        if (written.ok && written.value) await this.publishUpdate(rec);
      }
      return this.adopt(rec, 'fetched');
    } finally {
      clearInterval(renew);
      const released = await this.storeOp('unlock', () => lock.release());
      // It lapsed before we were done (renewals late or failing), unless already counted lost.
      if (released.ok && released.value === false && !lost) lockOutcome(this.deps.metrics, this.name, 'expired');
    }
  }

  /**
   * Stores a rotated refresh token's record (the previous refresh token is spent now). A fenced
   * refusal is not "written": see `settleRotated`. A store that does not answer: `persistLater`.
   */
  private async storeRotated(rec: TokenRecord, supersedes: string | undefined): Promise<void> {
    let outcome = await this.storeOp('write', () => this.settleRotated(rec, supersedes));
    if (!outcome.ok) outcome = await this.storeOp('write', () => this.settleRotated(rec, supersedes));
    if (!outcome.ok) {
      (this.heir ?? this).persistLater(rec);
      return;
    }
    if (this.unsaved && this.unsaved.obtainedAt <= rec.obtainedAt) this.unsaved = undefined;
    if (outcome.value === 'written') {
      await this.publishUpdate(rec);
      return;
    }
    this.deps.logger.warn('rotated refresh token not stored: the shared store holds one obtained at or after it', { provider: this.name, token_id: rec.tokenId });
  }

  /**
   * Writes a rotated record until it is stored or a newer one is: 'written', or 'newer' when
   * the store holds a record obtained at or after this one that carries a refresh token (that
   * one is the newest, its writer announced it). Any other record that fenced it out is older
   * (written by an earlier version, whose fence is on expiry, or behind a lock we lost), and
   * this one replaces it, named as the record it supersedes: the newest refresh token is never
   * dropped for an older one. Store errors are thrown (the caller counts them and retries).
   */
  private async settleRotated(rec: TokenRecord, supersedes: string | undefined): Promise<'written' | 'newer'> {
    const store = this.deps.store;
    let over = supersedes;
    for (let attempt = 0; attempt < 3; attempt++) {
      if (await store.write(this.storeKey, rec, over)) return 'written';
      fencedWrite(this.deps.metrics, this.name);
      const current = await store.read(this.storeKey);
      if (current?.refreshToken !== undefined && current.obtainedAt >= rec.obtainedAt) return 'newer';
      over = current?.tokenId;
    }
    throw new TokenError('ERR_STORE_UNAVAILABLE', 'the shared store kept refusing a rotated refresh token over older records', { provider: this.name });
  }

  /**
   * The stored record does not open with any configured key (store.encryptionKey rotated without
   * listing the old key in previousEncryptionKeys). Its refresh token may be the only unspent one:
   * the configured one is spent, so it is not presented; the slot keeps serving.
   */
  private unreadableRecord(cause: RecordCryptoError): TokenError {
    return new TokenError('ERR_REFRESH_UNSAFE', `${cause.message}; the refresh token it may hold is the newest one, so the configured refresh token is not presented (list the key in store.previousEncryptionKeys; see docs/redis.md)`, { provider: this.name, cause });
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
    return this.newestRecord(stored)?.refreshToken;
  }

  private newestRecord(stored: TokenRecord | undefined): TokenRecord | undefined {
    let best: TokenRecord | undefined;
    for (const r of [stored, this.slot.peek()?.record, this.unsaved, this.inherited]) {
      if (r?.refreshToken !== undefined && (best === undefined || r.obtainedAt > best.obtainedAt)) best = r;
    }
    return best;
  }

  // ---- rotating refresh tokens whose grant had an unknown outcome ---------------------------

  private get reuseInterval(): number {
    const s = this.grant.config.source;
    return s.type === 'refresh_token' ? s.reuseInterval : 0;
  }

  /** When refresh token `id` was first presented with an unknown outcome, if it was. */
  private spentSince(id: string, stored: TokenRecord | undefined): number | undefined {
    const local = this.spent?.get(id);
    const shared = stored?.spentRefreshId === id ? (stored.spentPresentedAt ?? 0) : undefined;
    if (local === undefined) return shared;
    return shared === undefined ? local : Math.min(local, shared);
  }

  /**
   * The refresh token to present (the newest known, else the configured one), or
   * ERR_GRANT_AMBIGUOUS when it is spent and outside the IdP's reuse interval.
   */
  private presentation(stored: TokenRecord | undefined): Presentation {
    const src = this.grant.config.source;
    const token = this.newestRefreshToken(stored) ?? (src.type === 'refresh_token' ? src.refreshToken : undefined);
    if (token === undefined) throw new TokenError('ERR_INTERNAL', 'a rotating source without a refresh token', { provider: this.name });
    const id = tokenId(token);
    const since = this.spentSince(id, stored);
    if (since !== undefined && this.deps.clock.now() >= since + this.reuseInterval) throw grantAmbiguous(this.name);
    return { token, id, since };
  }

  /** Presents the refresh token; an outcome the IdP may have carried out marks it spent. */
  private async presentRotating(plan: Presentation, stored: TokenRecord | undefined): Promise<TokenRecord> {
    const presentedAt = plan.since ?? this.deps.clock.now();
    try {
      return await this.fetch(plan.token, plan.since);
    } catch (raw) {
      if (!(raw instanceof TokenError) || !raw.ambiguous) throw raw;
      await this.markSpent(plan.id, presentedAt, stored, raw);
      // Inside the declared reuse interval the IdP takes it again: a later refresh may retry.
      if (this.deps.clock.now() < presentedAt + this.reuseInterval) throw raw;
      throw grantAmbiguous(this.name, raw);
    }
  }

  /** Records refresh token `id` as spent here, in the store and in the heir (a reload took over). */
  private async markSpent(id: string, presentedAt: number, stored: TokenRecord | undefined, cause: TokenError): Promise<void> {
    for (let c: ReplicaCoordinator | undefined = this; c; c = c.heir) c.rememberSpent(id, presentedAt);
    const base = stored ?? this.slot.peek()?.record;
    // No record yet (the configured token's first use): a record that holds only the mark.
    const rec: TokenRecord = base
      ? { ...base, spentRefreshId: id, spentPresentedAt: presentedAt }
      // obtainedAt 0: it holds no token, so the fenced write never puts it over a live record.
      : { accessToken: '', tokenType: 'Bearer', tokenId: `spent-${id}`, obtainedAt: 0, expiresAt: 0, lifetimeMs: 0, spentRefreshId: id, spentPresentedAt: presentedAt };
    const store = this.deps.store;
    const written = await this.storeOp('write', () => store.write(this.storeKey, rec));
    const inWindow = this.deps.clock.now() < presentedAt + this.reuseInterval;
    this.deps.metrics.grantAmbiguous.inc({ provider: this.name });
    this.deps.logger.error('refresh token outcome unknown; the refresh token is spent and will not be presented again', {
      provider: this.name,
      error: cause.toJSON(),
      recorded_in_store: written.ok && written.value,
      ...(inWindow ? { reuse_window_ms: presentedAt + this.reuseInterval - this.deps.clock.now() } : { action: 'configure a new refresh token and reload' }),
    });
  }

  private rememberSpent(id: string, presentedAt: number): void {
    const spent = (this.spent ??= new Map());
    const prev = spent.get(id);
    spent.set(id, prev === undefined ? presentedAt : Math.min(prev, presentedAt));
    if (spent.size > SPENT_MEMORY) spent.delete(spent.keys().next().value!);
  }

  // ---- reloads -----------------------------------------------------------------------------

  /**
   * A reload replaced `from`'s provider with this one on the same store key: what only that
   * coordinator knows (spent tokens, a rotated record the store has not taken) comes here, now
   * and when its refresh in flight ends.
   */
  takeOver(from: ReplicaCoordinator): void {
    from.heir = this;
    for (const [id, at] of from.spent ?? []) this.rememberSpent(id, at);
    if (from.unsaved) {
      const rec = from.unsaved;
      from.unsaved = undefined;
      this.persistLater(rec);
    }
  }

  /**
   * A reload gave the same grant (same configured refresh token) a new store key: the new
   * provider continues from the newest refresh token the old key knew, never the configured one
   * the old provider may already have rotated away.
   */
  async continueGrant(from: ReplicaCoordinator): Promise<void> {
    const stored = await from.storeOp('read', () => from.deps.store.read(from.storeKey));
    const newest = from.newestRecord(stored.value);
    if (newest) this.inherited = { ...newest, expiresAt: 0 };
    for (const [id, at] of from.spent ?? []) this.rememberSpent(id, at);
    const mark = stored.value;
    if (mark?.spentRefreshId !== undefined) this.rememberSpent(mark.spentRefreshId, mark.spentPresentedAt ?? 0);
  }

  /** A rotated refresh token the store did not take: keep offering it until it does. */
  private persistLater(rec: TokenRecord): void {
    this.unsaved = rec;
    this.deps.logger.error('rotated refresh token not stored yet; retrying until the shared store takes it', { provider: this.name, token_id: rec.tokenId });
    const attempt = async () => {
      if (this.unsaved !== rec || this.quiesced) return;
      let replaced: boolean;
      try {
        replaced = (await this.settleRotated(rec, undefined)) === 'written';
      } catch {
        // Counted, not logged: the outage was logged once already.
        this.deps.metrics.storeErrors.inc({ op: 'write' });
        this.deps.clock.setTimer(() => void attempt(), UNSAVED_RETRY_MS);
        return;
      }
      if (this.unsaved !== rec) return;
      // Not replaced: the store holds a newer refresh token (settleRotated), which is the one to keep.
      this.unsaved = undefined;
      this.deps.logger.info('rotated refresh token stored', { provider: this.name, token_id: rec.tokenId, replaced });
      if (replaced) await this.publishUpdate(rec);
    };
    this.deps.clock.setTimer(() => void attempt(), UNSAVED_RETRY_MS);
  }

  /** A token adopted since this refresh started (another replica's event) that needs no refresh. */
  private arrivedSince(startId: string | undefined): CachedToken | undefined {
    const c = this.slot.peek();
    if (c === undefined || c.tokenId === startId) return undefined;
    const now = this.deps.clock.now();
    return now < c.expiresAt && now < refreshDueAt(c.record, this.grant.config.refresh) ? c : undefined;
  }

  /** Worth serving while a refresh runs: before hard expiry, and ours is gone or expires sooner. */
  private usableNow(rec: TokenRecord): boolean {
    const now = this.deps.clock.now();
    const c = this.slot.peek();
    if (rec.expiresAt <= now || this.slot.wasDropped(rec.tokenId) || c?.tokenId === rec.tokenId) return false;
    return c === undefined || rec.expiresAt > c.expiresAt;
  }

  /** A stored record is worth adopting: usable, not one we dropped, newer than ours. */
  private isBetter(rec: TokenRecord): boolean {
    const now = this.deps.clock.now();
    if (rec.expiresAt <= now || this.slot.wasDropped(rec.tokenId)) return false;
    const c = this.slot.peek();
    if (c?.tokenId === rec.tokenId) return false;
    if (now >= refreshDueAt(rec, this.grant.config.refresh)) return false;
    // Newer means obtained later, not expiring later: an IdP that shortens lifetimes issues a
    // newer token that expires before ours (the store's fence is on obtainedAt for the same reason).
    return c === undefined || rec.obtainedAt > c.record.obtainedAt || now >= c.expiresAt;
  }

  // ---- the shared store --------------------------------------------------------------------

  /** A follower's wait for the lock ended with another replica's token. */
  private endWait(entry: CachedToken): CachedToken {
    if (this.contendedSince !== undefined) lockWaited(this.deps.metrics, this.name, this.deps.clock.now() - this.contendedSince, 'adopted');
    this.contendedSince = undefined;
    return entry;
  }

  private async storeOp<T>(op: string, fn: () => Promise<T>): Promise<StoreResult<T>> {
    try {
      const value = await fn();
      storeEvent(op, true);
      if (op === 'write' && value === false) fencedWrite(this.deps.metrics, this.name);
      return { ok: true, value };
    } catch (err) {
      storeEvent(op, false);
      if (err instanceof RecordCryptoError) {
        // Redis answered: the record is there, sealed with a key this replica does not hold.
        this.deps.metrics.storeErrors.inc({ op: 'unseal' });
        this.deps.logger.error('stored token record does not open with any configured encryption key', { provider: this.name, op, key_id: err.keyId ?? null, error: err });
        return { ok: false, error: err };
      }
      this.deps.metrics.storeErrors.inc({ op });
      this.deps.logger.warn('shared store operation failed; continuing without it', { provider: this.name, op, error: err });
      return { ok: false, error: err };
    }
  }

  /** An event from another replica about this slot's key. */
  async onStoreEvent(event: StoreEvent): Promise<void> {
    if (event.origin === this.deps.replicaId || event.key !== this.storeKey) return;
    if (event.kind === 'invalidated') {
      this.slot.drop(event.token_id);
      return;
    }
    if (this.slot.peek()?.tokenId === event.token_id || this.slot.wasDropped(event.token_id)) return;
    const stored = await this.storeOp('read', () => this.deps.store.read(this.storeKey));
    // Whatever the store holds now: a later write may already have replaced the announced token.
    if (stored.ok && stored.value && this.isBetter(stored.value)) {
      this.adopt(stored.value, 'event');
    }
    this.slot.wake();
  }

  // ---- invalidating a token ---------------------------------------------------------------

  /**
   * The shared half of an invalidation (the slot has dropped token `id`): removes it from the
   * store and tells the other replicas, which drop it from their slots.
   */
  async removeFromStore(id: string): Promise<void> {
    const store = this.deps.store;
    await this.storeOp('remove', () => store.remove(this.storeKey, id));
    await this.storeOp('publish', () => store.publish({ provider: this.name, key: this.storeKey, token_id: id, kind: 'invalidated', origin: this.deps.replicaId }));
  }

  /** No new store work starts from now on (shutdown, or a reload retired the slot's owner). */
  quiesce(): void {
    this.quiesced = true;
  }
}
