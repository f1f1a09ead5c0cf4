// One error type for everything that can go wrong getting a token, with a stable code a caller
// can switch on. The IdP's own `error`/`error_description` and HTTP status stay on the error;
// no token, secret or assertion is ever put into a message.
import type { ConfigProblem } from '../config/types.js';
import { BreakerOpenError, type FailureKinds } from '../resilience/failure.js';

export type TokenErrorCode =
  | 'ERR_IDP_TIMEOUT'        // an attempt exceeded resilience.timeout
  | 'ERR_IDP_UNAVAILABLE'    // network error, reset, 5xx
  | 'ERR_IDP_RATE_LIMITED'   // 429 (Retry-After honoured)
  | 'ERR_IDP_BAD_RESPONSE'   // 2xx whose body is not a usable token response
  | 'ERR_IDP_REJECTED'       // invalid_client / invalid_grant / unauthorized_client and other 4xx
  | 'ERR_IDP_REDIRECT'       // the token endpoint redirected; never followed
  | 'ERR_IDP_TLS'            // certificate or pin mismatch
  | 'ERR_BREAKER_OPEN'       // the provider's breaker refused the call
  | 'ERR_SOURCE_CONFIG'      // the source cannot work as configured (bad key, unreadable file)
  | 'ERR_STORE_UNAVAILABLE'  // the shared store failed; callers fall back
  | 'ERR_WAIT_BUDGET'        // a caller stopped waiting for the in-flight refresh
  | 'ERR_REFRESH_UNSAFE'     // a rotating refresh token cannot be used safely right now
  | 'ERR_GRANT_AMBIGUOUS'    // a refresh_token grant's outcome is unknown: its token is spent, an operator must act
  | 'ERR_SHUTTING_DOWN'      // no new refreshes during shutdown
  | 'ERR_UNKNOWN_PROVIDER'
  | 'ERR_INTERNAL';          // a bug in tokengate, not the IdP's fault

/** Retrying may help: the endpoint was slow, down, overloaded or said something garbled. */
const TRANSIENT: ReadonlySet<TokenErrorCode> = new Set(['ERR_IDP_TIMEOUT', 'ERR_IDP_UNAVAILABLE', 'ERR_IDP_RATE_LIMITED', 'ERR_IDP_BAD_RESPONSE']);

export interface TokenErrorDetails {
  readonly provider?: string;
  readonly status?: number;
  /** The IdP's OAuth error code, e.g. invalid_grant. */
  readonly oauthError?: string;
  readonly oauthErrorDescription?: string;
  /** Milliseconds the endpoint asked us to wait (Retry-After). */
  readonly retryAfterMs?: number;
  /**
   * The request may have reached the IdP and been carried out (timed out or reset after it was
   * sent, a garbled 2xx, a gateway error): a rotating refresh token it carried may be spent.
   */
  readonly ambiguous?: boolean;
  readonly cause?: unknown;
}

export class TokenError extends Error {
  readonly code: TokenErrorCode;
  readonly provider: string | undefined;
  readonly status: number | undefined;
  readonly oauthError: string | undefined;
  readonly oauthErrorDescription: string | undefined;
  readonly retryAfterMs: number | undefined;
  readonly ambiguous: boolean;

  constructor(code: TokenErrorCode, message: string, details: TokenErrorDetails = {}) {
    super(message, details.cause !== undefined ? { cause: details.cause } : undefined);
    this.name = 'TokenError';
    this.code = code;
    this.provider = details.provider;
    this.status = details.status;
    this.oauthError = details.oauthError;
    this.oauthErrorDescription = details.oauthErrorDescription;
    this.retryAfterMs = details.retryAfterMs;
    this.ambiguous = details.ambiguous ?? false;
  }

  /** The same error, marked as possibly carried out by the IdP. */
  asAmbiguous(): TokenError {
    if (this.ambiguous) return this;
    return new TokenError(this.code, this.message, {
      ...(this.provider !== undefined ? { provider: this.provider } : {}),
      ...(this.status !== undefined ? { status: this.status } : {}),
      ...(this.oauthError !== undefined ? { oauthError: this.oauthError } : {}),
      ...(this.oauthErrorDescription !== undefined ? { oauthErrorDescription: this.oauthErrorDescription } : {}),
      ...(this.retryAfterMs !== undefined ? { retryAfterMs: this.retryAfterMs } : {}),
      ambiguous: true,
      cause: this.cause ?? this,
    });
  }

  get transient(): boolean {
    return TRANSIENT.has(this.code);
  }

  /** A summary safe for logs, status pages and metrics (no secrets are ever put in messages). */
  toJSON(): Record<string, unknown> {
    return {
      code: this.code,
      message: this.message,
      ...(this.status !== undefined ? { status: this.status } : {}),
      ...(this.oauthError ? { error: this.oauthError } : {}),
      ...(this.oauthErrorDescription ? { error_description: this.oauthErrorDescription } : {}),
    };
  }
}

/**
 * Sources that cannot work as configured (a bad key, an unreadable file), one `path: problem`
 * each, found when TokenManager builds its providers. The token layer's own error: the CLI and
 * the app report it exactly like a config file problem.
 */
export class SourceConfigError extends TokenError {
  readonly problems: readonly ConfigProblem[];

  constructor(problems: readonly ConfigProblem[]) {
    super('ERR_SOURCE_CONFIG', `invalid config:\n${problems.map((p) => `${p.path}: ${p.problem}`).join('\n')}`);
    this.name = 'SourceConfigError';
    this.problems = problems;
  }
}

export function isTokenError(err: unknown): err is TokenError {
  return err instanceof TokenError;
}

/** Wraps anything thrown into a TokenError without losing the cause. */
export function toTokenError(err: unknown, fallback: TokenErrorCode, provider?: string): TokenError {
  if (err instanceof TokenError) return err;
  // resilience has its own error for an open breaker; to a token caller it is ERR_BREAKER_OPEN.
  if (err instanceof BreakerOpenError) return new TokenError('ERR_BREAKER_OPEN', err.message, { provider: provider ?? err.breaker, cause: err });
  const message = err instanceof Error ? err.message : String(err);
  // A programming error must not be reported as the IdP's (metrics, alerts, status).
  const code = err instanceof TypeError || err instanceof ReferenceError || err instanceof SyntaxError ? 'ERR_INTERNAL' : fallback;
  return new TokenError(code, message, { cause: err, ...(provider ? { provider } : {}) });
}

/** How retries around a token request classify failures (resilience stays token-agnostic). */
export const TOKEN_FAILURES: FailureKinds<TokenError> = {
  classify: (raw) => toTokenError(raw, 'ERR_IDP_UNAVAILABLE'),
  timeout: (ms) => new TokenError('ERR_IDP_TIMEOUT', `token request timed out after ${ms}ms`),
  aborted: (reason) => toTokenError(reason, 'ERR_SHUTTING_DOWN'),
};

/** A rejection (invalid_client, …) proves the token endpoint is up: it must not trip the breaker. */
export function provesEndpointUp(err: unknown): boolean {
  return err instanceof TokenError && err.code === 'ERR_IDP_REJECTED';
}
