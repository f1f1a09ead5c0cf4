// One opossum breaker per provider, around the whole fetch (retries included). opossum's
// defaults are wrong for this job (see NOTES): volumeThreshold 0 opens on the first failure,
// rolling percentiles sort every sample per failure, and its timeout does not cancel.
import CircuitBreaker from 'opossum';
import type { BreakerConfig } from '../config/types.js';
import { TokenError } from '../tokens/errors.js';

export type BreakerState = 'closed' | 'half_open' | 'open';

/** Prometheus encoding: 0 closed, 1 half-open, 2 open. */
export const BREAKER_STATE_VALUE: Readonly<Record<BreakerState, number>> = { closed: 0, half_open: 1, open: 2 };

export interface BreakerEvents {
  onStateChange?(state: BreakerState): void;
}

export class Breaker {
  private readonly cb: CircuitBreaker<[() => Promise<unknown>], unknown>;

  constructor(readonly name: string, config: BreakerConfig, events: BreakerEvents = {}) {
    this.cb = new CircuitBreaker((action: () => Promise<unknown>) => action(), {
      name,
      timeout: false,
      resetTimeout: config.resetTimeout,
      errorThresholdPercentage: config.errorThresholdPercentage,
      volumeThreshold: config.volumeThreshold,
      rollingCountTimeout: config.window,
      rollingCountBuckets: 10,
      rollingPercentilesEnabled: false,
      enableSnapshots: false,
      allowWarmUp: false,
      // A rejection (invalid_client, …) proves the endpoint is up: it must not trip the
      // breaker, and it may close a half-open one. Everything else counts as a failure.
      errorFilter: (err: unknown) => err instanceof TokenError && err.code === 'ERR_IDP_REJECTED',
    });
    this.cb.on('open', () => events.onStateChange?.('open'));
    this.cb.on('halfOpen', () => events.onStateChange?.('half_open'));
    this.cb.on('close', () => events.onStateChange?.('closed'));
  }

  get state(): BreakerState {
    if (this.cb.opened) return 'open';
    if (this.cb.halfOpen) return 'half_open';
    return 'closed';
  }

  /** Runs action through the breaker; an open breaker rejects with ERR_BREAKER_OPEN at once. */
  async run<T>(action: () => Promise<T>): Promise<T> {
    try {
      return (await this.cb.fire(action)) as T;
    } catch (err) {
      if ((err as { code?: string }).code === 'EOPENBREAKER') {
        throw new TokenError('ERR_BREAKER_OPEN', `circuit breaker for ${this.name} is open; no calls to the token endpoint until the half-open probe`, { provider: this.name, cause: err });
      }
      throw err;
    }
  }

  shutdown(): void {
    this.cb.shutdown();
  }
}
