// Resilience knows nothing of what is being fetched: the caller says how to turn whatever an
// attempt throws into its own error type, and that error says whether trying again may help.
// The token layer passes TokenError's classification (src/tokens/errors.ts).

/** What retries need to know about a failure. */
export interface RetryableFailure extends Error {
  /** Retrying may help (slow, down, overloaded, garbled). */
  readonly transient: boolean;
  /** The other side asked for this long a pause (Retry-After). */
  readonly retryAfterMs?: number | undefined;
}

/** The caller's vocabulary for failures, used by withRetries. */
export interface FailureKinds<E extends RetryableFailure> {
  /** Anything an attempt threw, as the caller's error (kept as is when it already is one). */
  classify(raw: unknown): E;
  /** One attempt ran out of time. */
  timeout(ms: number): E;
  /** The whole operation was cancelled (shutdown) with this reason. */
  aborted(reason: unknown): E;
}

/** The breaker refused the call: it is open until its half-open probe. */
export class BreakerOpenError extends Error {
  readonly code = 'ERR_BREAKER_OPEN';

  constructor(readonly breaker: string, cause: unknown) {
    super(`circuit breaker for ${breaker} is open; no calls to the token endpoint until the half-open probe`, { cause });
    this.name = 'BreakerOpenError';
  }
}
