// When a token stops being usable and when to replace it, on the local clock.
import { decodeJwt } from 'jose';
import type { RefreshConfig } from '../config/types.js';
import { NEVER_EXPIRES, type TokenRecord } from '../store/store.js';
import { clampLifetime } from '../config/lifetime-bounds.js';
import type { FetchedToken } from './sources/source.js';
import { tokenId } from './token-id.js';

const MAX_SKEW_MS = 30_000;
const MAX_REFRESH_BEFORE_MS = 5 * 60_000;

function jwtExpMs(token: string): number | undefined {
  if (!token.startsWith('eyJ')) return undefined;
  try {
    const { exp } = decodeJwt(token);
    return typeof exp === 'number' ? exp * 1000 : undefined;
  } catch {
    return undefined;
  }
}

/** Where a token's lifetime comes from, for messages. */
export type LifetimeOrigin = 'expires_in' | 'expiry' | 'JWT exp' | 'defaultTtl';

/**
 * The lifetime the issuer stated, in ms from `sentAt`, unclamped: expires_in, else the source's
 * exact expiry, else the JWT's exp, else the source default. Not for never-expiring tokens.
 */
export function statedLifetime(fetched: FetchedToken, sentAt: number, defaultTtlMs: number): { ms: number; from: LifetimeOrigin } {
  if (fetched.expiresInMs !== undefined) return { ms: fetched.expiresInMs, from: 'expires_in' };
  if (fetched.expiresAtMs !== undefined) return { ms: fetched.expiresAtMs - sentAt, from: 'expiry' };
  const fromJwt = jwtExpMs(fetched.accessToken);
  if (fromJwt !== undefined) return { ms: fromJwt - sentAt, from: 'JWT exp' };
  return { ms: defaultTtlMs, from: 'defaultTtl' };
}

/**
 * Builds the record for a fetched token. Lifetime: the issuer's expires_in, else the JWT's exp,
 * else the source default, at most MAX_LIFETIME_MS; measured from when the request was sent, so
 * network time only ever makes us refresh early. Hard expiry takes off a skew of min(30s, 5% of the lifetime).
 */
export function recordFor(fetched: FetchedToken, sentAt: number, defaultTtlMs: number, refresh: RefreshConfig): TokenRecord {
  let expiresAt: number;
  let lifetimeMs: number;
  if (fetched.neverExpires) {
    expiresAt = NEVER_EXPIRES;
    lifetimeMs = NEVER_EXPIRES;
  } else {
    // Bounded above (the fetcher has already refused lifetimes below the minimum).
    lifetimeMs = clampLifetime(Math.max(0, statedLifetime(fetched, sentAt, defaultTtlMs).ms));
    const skew = refresh.skew ?? Math.min(MAX_SKEW_MS, lifetimeMs * 0.05);
    expiresAt = sentAt + lifetimeMs - Math.min(skew, lifetimeMs);
  }
  // One literal with every field: on Node 20, `{ ...base, more }` gives each object its own
  // hidden classes (~200 B apiece), which adds up with thousands of providers.
  return {
    accessToken: fetched.accessToken,
    tokenType: fetched.tokenType,
    tokenId: tokenId(fetched.accessToken),
    obtainedAt: sentAt,
    expiresAt,
    lifetimeMs,
    refreshToken: fetched.refreshToken || undefined,
    scope: fetched.scope || undefined,
    recheckAt: fetched.neverExpires && fetched.recheckAfterMs ? sentAt + fetched.recheckAfterMs : undefined,
  };
}

/** How long before hard expiry a refresh starts: refresh.before, else min(5m, half the lifetime). */
export function refreshLeadMs(record: TokenRecord, refresh: RefreshConfig): number {
  if (record.expiresAt >= NEVER_EXPIRES) return 0;
  const usable = record.expiresAt - record.obtainedAt;
  const lead = refresh.before ?? Math.min(MAX_REFRESH_BEFORE_MS, record.lifetimeMs / 2);
  return Math.min(lead, usable);
}

/** This replica's refresh moment: lead plus up to `jitter` of it, so replicas spread out. */
export function refreshAtFor(record: TokenRecord, refresh: RefreshConfig, random: () => number): number {
  if (record.expiresAt >= NEVER_EXPIRES) return record.recheckAt ?? NEVER_EXPIRES;
  const lead = refreshLeadMs(record, refresh);
  const jitter = Math.min(lead * refresh.jitter * random(), record.expiresAt - record.obtainedAt - lead);
  return record.expiresAt - lead - Math.max(0, jitter);
}

/** The un-jittered refresh moment: used to judge whether a record from the store is fresh. */
export function refreshDueAt(record: TokenRecord, refresh: RefreshConfig): number {
  if (record.expiresAt >= NEVER_EXPIRES) return record.recheckAt ?? NEVER_EXPIRES;
  return record.expiresAt - refreshLeadMs(record, refresh);
}
