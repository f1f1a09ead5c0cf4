// What the server holds per provider to answer Checks: a narrow, documented view of one
// provider's token slot, handed out by TokenManager.handle(name). The hot path (lookup +
// hotSource) is synchronous and allocates nothing on a hit; everything else a caller wants
// goes through TokenManager's own methods (getToken, invalidate, refresh, stats).
import type { ProviderConfig } from '../config/types.js';
import type { BreakerState } from '../resilience/breaker.js';
import type { CachedToken, TokenServeSource } from './cached-token.js';
import type { Acquired } from './provider.js';

/** The public types of a provider, re-exported here so callers never import provider.ts. */
export type { Acquired, ProviderStateName, ProviderStatus } from './provider.js';

export interface TokenHandle {
  readonly name: string;
  readonly config: ProviderConfig;
  /**
   * The current token if it is before hard expiry, else undefined. Inside the refresh window it
   * also starts one background refresh. Synchronous and allocation-free on a hit.
   */
  lookup(now: number): CachedToken | undefined;
  /** How a lookup hit is labelled: 'cache', or 'stale' once a refresh for it has failed. */
  readonly hotSource: 'cache' | 'stale';
  /** The slow path: wait (bounded by waitBudget) for a refresh, then the fallback ladder. */
  acquire(): Promise<Acquired>;
  /** The token in the slot, even past expiry; undefined when there is none. */
  peek(): CachedToken | undefined;
  readonly breakerState: BreakerState;
}
