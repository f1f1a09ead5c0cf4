// The bounds that keep any answer from a token source from setting the request rate to it.
// A token's lifetime drives its refresh schedule: a zero lifetime would ask for a refresh at once,
// forever; an astronomical one would never ask again and does not fit the store's record.

/**
 * Shortest lifetime accepted (expires_in, the JWT `exp`, `defaultTtl`, a self-signed `ttl`).
 * A token is refreshed half its lifetime before expiry, and refreshes are at least
 * MIN_REFRESH_INTERVAL_MS apart: below twice that interval every token would expire before its
 * refresh may start. 3 s leaves 1.5 s of lead. Real IdPs issue minutes to hours; 0-2 s (0 is what
 * a broken IdP sends) is an IdP fault, refused as ERR_IDP_BAD_RESPONSE.
 */
export const MIN_LIFETIME_MS = 3_000;

/**
 * Longest lifetime used. A longer stated lifetime is clamped, not refused: the token is fine,
 * asking for a new one early is always safe, and 365 days keeps expiry far from the store's
 * NEVER_EXPIRES (8.64e15) and within Redis TTLs.
 */
export const MAX_LIFETIME_MS = 365 * 86_400_000;

/**
 * Sustained shortest time between two refreshes of one provider (per replica), whatever starts
 * them: the schedule, Checks, store events, upstream 401s. Two may start back to back (a lone
 * invalidation right after a fetch is not delayed); after that, one refresh (with its
 * `retries`) per second. Operator refreshes (admin API) are not held back.
 */
export const MIN_REFRESH_INTERVAL_MS = 1_000;

/** The lifetime an issuer stated, clamped to MAX_LIFETIME_MS. */
export function clampLifetime(ms: number): number {
  return Math.min(ms, MAX_LIFETIME_MS);
}

/** Why a stated lifetime (ms) is unusable, or undefined. Never more than the numbers. */
export function lifetimeProblem(ms: number, from: string): string | undefined {
  if (!(ms >= MIN_LIFETIME_MS)) {
    const s = Number.isFinite(ms) ? `${Math.round(ms / 1000)}s` : String(ms);
    return `the token lifetime (${from}) is ${s}, below the ${MIN_LIFETIME_MS / 1000}s minimum`;
  }
  return undefined;
}
