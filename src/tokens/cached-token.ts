// What a token slot holds: the record plus everything a Check needs, computed once per
// token rather than once per request.
import type { InjectConfig } from '../config/types.js';
import type { TokenRecord } from '../store/store.js';

export type TokenServeSource = 'cache' | 'refreshed' | 'stale' | 'expired_grace' | 'emergency';

export class CachedToken {
  readonly tokenId: string;
  private header: string | undefined;

  constructor(
    readonly record: TokenRecord,
    /** This replica's (jittered) moment to start a background refresh. */
    readonly refreshAt: number,
    /** Hard expiry: after this only the fallback ladder may serve it. */
    readonly expiresAt: number,
    private readonly inject: InjectConfig,
  ) {
    this.tokenId = record.tokenId;
  }

  /**
   * The injected header's value, e.g. "Bearer eyJ…": built on first use (the Check path encodes
   * its answer once per token anyway), so idle providers do not hold a second copy of the token.
   */
  get headerValue(): string {
    this.header ??= headerValueFor(this.inject.format, this.record.tokenType, this.record.accessToken);
    return this.header;
  }
}

/** What an answer injects: the header's value and the token's id (never the token itself). */
export interface InjectedToken {
  readonly headerValue: string;
  readonly tokenId: string;
}

/** `inject.format` with the token filled in, e.g. "Bearer eyJ…". */
export function headerValueFor(format: string, tokenType: string, accessToken: string): string {
  return format.replaceAll('{token_type}', tokenType).replaceAll('{token}', accessToken);
}
