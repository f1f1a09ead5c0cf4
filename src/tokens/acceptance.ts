// What tokengate accepts from a token source before it becomes a record: a lifetime within
// bounds and token bytes that make a valid header. Runs inside the fetch attempt, so a refusal
// is an ordinary failure (counted, logged, retried, seen by the breaker) and the cached token
// keeps serving. Messages never quote the token.
import type { ProviderConfig } from '../config/types.js';
import { TokenError } from './errors.js';
import { statedLifetime } from './expiry.js';
import { tokenProblem, tokenTypeProblem } from '../config/header-value.js';
import { lifetimeProblem, MIN_LIFETIME_MS } from '../config/lifetime-bounds.js';
import type { FetchedToken, TokenSource } from './sources/source.js';

/**
 * Throws when `fetched` must not be used: ERR_IDP_BAD_RESPONSE for a token endpoint's answer,
 * ERR_SOURCE_CONFIG for a local source (a static file, a self-signed JWT).
 */
export function acceptFetched(fetched: FetchedToken, sentAt: number, config: ProviderConfig, source: TokenSource): FetchedToken {
  const fromTokenEndpoint = source.endpoint !== undefined;
  const problem = tokenTypeProblem(fetched.tokenType)
    ?? tokenProblem(fetched.accessToken, { tokenType: fetched.tokenType, format: config.inject.format, maxBytes: config.inject.maxTokenBytes, fromTokenEndpoint });
  if (problem === undefined) {
    const short = fetched.neverExpires ? undefined : lifetimeOf(fetched, sentAt, source);
    if (short === undefined) return fetched;
    // An answer that rotated the refresh token cannot be refused without losing the grant (the
    // old one is spent): its lifetime is raised to the minimum instead, which still bounds the rate.
    if (source.rotates && fetched.refreshToken) return { ...fetched, expiresInMs: MIN_LIFETIME_MS };
    return refuse(short, fromTokenEndpoint, config, source);
  }
  return refuse(problem, fromTokenEndpoint, config, source);
}

function refuse(problem: string, fromTokenEndpoint: boolean, config: ProviderConfig, source: TokenSource): never {
  // A 2xx to a rotating grant was carried out: the refresh token presented is spent whatever we
  // think of the answer, so the refusal is ambiguous (never retried with the same token).
  if (fromTokenEndpoint) throw new TokenError('ERR_IDP_BAD_RESPONSE', `token endpoint answered an unusable token: ${problem}`, { provider: config.name, ...(source.rotates ? { ambiguous: true } : {}) });
  throw new TokenError('ERR_SOURCE_CONFIG', `${source.type} source gave an unusable token: ${problem}`, { provider: config.name });
}

function lifetimeOf(fetched: FetchedToken, sentAt: number, source: TokenSource): string | undefined {
  const { ms, from } = statedLifetime(fetched, sentAt, source.defaultTtlMs);
  return lifetimeProblem(ms, from);
}
