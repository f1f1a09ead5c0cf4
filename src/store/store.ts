// The shared store (L2): where replicas meet. The memory store is the single-process default;
// the Redis store makes replicas share one token per provider. Callers treat every store error
// as "no shared state right now" and fall back to their own single-flight refresh.

/** Hard expiry for tokens that never expire (static tokens); JSON-safe, unlike Infinity. */
export const NEVER_EXPIRES = 8.64e15;

export interface TokenRecord {
  readonly accessToken: string;
  readonly tokenType: string;
  readonly tokenId: string;
  /** Epoch ms when the request that produced it was sent (local clock of the fetching replica). */
  readonly obtainedAt: number;
  /** Epoch ms of hard expiry, skew already taken off. NEVER_EXPIRES for static tokens. */
  readonly expiresAt: number;
  /** Lifetime the issuer granted, before skew; drives the refresh window. */
  readonly lifetimeMs: number;
  /** The (rotated) refresh token that goes with this access token. */
  readonly refreshToken?: string;
  readonly scope?: string;
  /** When the source wants to be asked again regardless of expiry (static files). */
  readonly recheckAt?: number;
  /**
   * Rotating sources: the token id (a hash, never the token) of a refresh token presented in a
   * grant whose outcome is unknown. It is never presented again (outside the reuse interval) by
   * any replica, and the record lives as long as one carrying a refresh token.
   */
  readonly spentRefreshId?: string;
  /** Epoch ms when that refresh token was first presented: the reuse interval counts from here. */
  readonly spentPresentedAt?: number;
}

export type StoreEventKind = 'updated' | 'invalidated';

export interface StoreEvent {
  readonly provider: string;
  readonly key: string;
  readonly token_id: string;
  readonly kind: StoreEventKind;
  /** The replica that published; a replica ignores its own events. */
  readonly origin: string;
  /** `invalidated` after Envoy's access log: the upstream status that refused the token (audit lines). */
  readonly status?: number;
}

export interface StoreLock {
  /** Pushes the lock's expiry out; false when the lock was lost. */
  extend(ttlMs: number): Promise<boolean>;
  /** Compare-and-delete: only removes the lock if we still own it. False: it had lapsed already. */
  release(): Promise<boolean>;
}

/** A shared token-endpoint budget's limits, requests a second. */
export interface RateQuery {
  /** The configured maxRate (recovery after a 429 is a tenth of it a second). */
  readonly maxRate: number;
  /** The caller's own effective rate: the shared bucket refills no faster. */
  readonly ceiling: number;
  readonly burst: number;
  readonly minRate: number;
}

/** One take from a shared bucket. */
export interface RateTake {
  /** 0: granted; else ms until a request is available (or Retry-After ends). */
  readonly wait: number;
  /** The origin's shared effective rate (after 429 halving, before any ceiling). */
  readonly rate: number;
  /** A 429 episode is open (the next success ends it). */
  readonly episode: boolean;
}

export interface TokenStore {
  /** True when other processes may see what this store holds (locks and events matter). */
  readonly shared: boolean;
  read(key: string): Promise<TokenRecord | undefined>;
  /**
   * Fenced write: stores the record unless a live record of another token, obtained at or after
   * this one (`obtainedAt`), is stored, so a paused former lock holder cannot overwrite a newer
   * token, while a newer token that expires sooner (an IdP shortening lifetimes) still replaces
   * an older one. `supersedes`: the token id of the record the writer read before fetching; if
   * that record is still the stored one, the write goes through whatever the rule says (nothing
   * was written since, so this one is newer). Redis records written by an earlier version carry
   * no obtained time: for them a later expiry decides, as it did. Returns whether it was written.
   */
  write(key: string, record: TokenRecord, supersedes?: string): Promise<boolean>;
  /**
   * Drops the access token if the record still holds `tokenId`. A refresh token in the record
   * stays (read returns it with `expiresAt` 0): presenting an older one would revoke the grant.
   */
  remove(key: string, tokenId: string): Promise<boolean>;
  /** Takes the refresh lock, or undefined when another owner holds it. */
  tryLock(key: string, ttlMs: number): Promise<StoreLock | undefined>;
  /**
   * Rotating refresh tokens, taken by the lock holder right before it presents the newest refresh
   * token. Resolves undefined when `owner` now holds the claim (or already did), else the owner
   * that claimed it and never stored the result: that token may be spent, and presenting it
   * again would get the grant revoked. A successful `write` clears the claim.
   * Optional: a store without it gives no protection beyond its lock.
   */
  claimRefresh?(key: string, owner: string): Promise<string | undefined>;
  /** Gives a claim back after a refresh that failed, so the token may be presented again. */
  releaseRefreshClaim?(key: string, owner: string): Promise<void>;
  /**
   * Token-endpoint budgets shared by replicas: takes one request from `origin`'s token bucket
   * (capacity `burst`, refilled at the origin's shared effective rate); `wait` 0 when granted,
   * else the ms until one is available. Optional: a store without it (memory) leaves each
   * process its own budget. The three methods come together.
   */
  takeRate?(origin: string, q: RateQuery): Promise<RateTake>;
  /** A 429 or Retry-After from `origin`: halves the shared rate once per episode; resolves the rate now. */
  throttleRate?(origin: string, q: RateQuery, retryAfterMs: number | undefined): Promise<number>;
  /** A success from `origin`: its 429 episode is over. */
  endRateEpisode?(origin: string): Promise<void>;
  publish(event: StoreEvent): Promise<void>;
  subscribe(listener: (event: StoreEvent) => void): () => void;
  /** Lets the store report whether it is reachable right now (metrics, status). */
  healthy(): boolean;
  close(): Promise<void>;
}

/** Keys of one provider share a `{…}` hash tag, so its scripts work on Redis Cluster. */
export function storeKey(prefix: string, provider: string, configHash: string): string {
  return `${prefix}{${provider}:${configHash}}:token`;
}

export function lockKeyFor(tokenKey: string): string {
  return tokenKey.replace(/:token$/, ':lock');
}
