// What every token source offers: fetch one token. Sources know nothing of caching, retries,
// breakers or stores; the provider's refresh path (tokens/fetcher.ts) wraps them.

export interface FetchContext {
  /** Aborts when this attempt's timeout passes or the refresh is cancelled. */
  readonly signal: AbortSignal;
  /** Milliseconds since the epoch on the injected clock. */
  readonly now: number;
  /** The newest refresh token the store knows (refresh_token sources). */
  readonly refreshToken?: string;
}

export interface FetchedToken {
  readonly accessToken: string;
  readonly tokenType: string;
  /** Lifetime as the issuer stated it; absent → JWT exp, then the source's default. */
  readonly expiresInMs?: number;
  /** The source knows the exact expiry (self-signed JWTs). */
  readonly expiresAtMs?: number;
  /** Never expires (static tokens). */
  readonly neverExpires?: boolean;
  /** Ask the source again after this long even though the token has not expired (files). */
  readonly recheckAfterMs?: number;
  readonly refreshToken?: string;
  readonly scope?: string;
}

export interface TokenSource {
  readonly type: string;
  /** Token endpoint URL, when the source calls one: retries and Retry-After are per endpoint. */
  readonly endpoint?: string;
  /** True for sources whose refresh token rotates: they must never run without the store lock. */
  readonly rotates: boolean;
  /** Fallback lifetime when the response says nothing. */
  readonly defaultTtlMs: number;
  fetch(ctx: FetchContext): Promise<FetchedToken>;
  close?(): void;
}

/** Another provider's current token, for sources that build on it (a chain of providers). */
export interface LinkedToken {
  readonly accessToken: string;
  readonly tokenType: string;
  /** Its hard expiry (epoch ms); a token derived from it is refreshed no later than this. */
  readonly expiresAt: number;
}

/**
 * How a source reaches another provider's token (`via`, `subjectToken.provider`): waits for a
 * refresh when the link is missing or due one, bounded by `signal`. A failure names the link.
 */
export interface LinkedTokens {
  get(provider: string, signal: AbortSignal): Promise<LinkedToken>;
}
