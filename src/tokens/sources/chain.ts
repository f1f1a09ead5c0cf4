// A token derived from another provider's token is refreshed no later than that token expires:
// a chain (projected token → STS → impersonation) refreshes when any link would expire.
import { statedLifetime } from '../expiry.js';
import type { FetchedToken, LinkedToken } from './source.js';

export function capToLinks(fetched: FetchedToken, links: readonly LinkedToken[], sentAt: number, defaultTtlMs: number): FetchedToken {
  if (fetched.neverExpires) return fetched;
  const own = sentAt + statedLifetime(fetched, sentAt, defaultTtlMs).ms;
  const earliest = Math.min(...links.map((l) => l.expiresAt));
  if (!(earliest < own)) return fetched;
  const { expiresInMs: _ignored, ...rest } = fetched;
  return { ...rest, expiresAtMs: earliest };
}
