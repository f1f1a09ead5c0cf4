// What L1 holds per provider: the record plus everything a Check needs, computed once per
// token rather than once per request.
import type { InjectConfig } from '../config/types.js';
import type { TokenRecord } from '../store/store.js';

export type TokenServeSource = 'cache' | 'refreshed' | 'stale' | 'expired_grace' | 'emergency';

export class CachedToken {
  readonly tokenId: string;
  /** The injected header's value, e.g. "Bearer eyJ…". */
  readonly headerValue: string;

  constructor(
    readonly record: TokenRecord,
    /** This replica's (jittered) moment to start a background refresh. */
    readonly refreshAt: number,
    /** Hard expiry: after this only the fallback ladder may serve it. */
    readonly expiresAt: number,
    inject: InjectConfig,
  ) {
    this.tokenId = record.tokenId;
    this.headerValue = inject.format.replaceAll('{token_type}', record.tokenType).replaceAll('{token}', record.accessToken);
  }
}
