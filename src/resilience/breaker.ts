// One opossum breaker per provider, around the whole fetch (retries included). opossum's
// defaults are wrong for this job (docs/field-notes.md, "opossum"): volumeThreshold 0 opens
// on the first failure, rolling percentiles sort every sample per failure, and its timeout
// does not cancel.
import CircuitBreaker from 'opossum';
import type { BreakerConfig } from '../config/types.js';
import { BreakerOpenError } from './failure.js';

export type BreakerState = 'closed' | 'half_open' | 'open';

/** Prometheus encoding: 0 closed, 1 half-open, 2 open. */
export const BREAKER_STATE_VALUE: Readonly<Record<BreakerState, number>> = { closed: 0, half_open: 1, open: 2 };

export interface BreakerEvents {
  onStateChange?(state: BreakerState): void;
  /**
   * True for a failure that proves the endpoint is up (the caller's "rejected", e.g. an IdP's
   * invalid_client): it must not trip the breaker, and it may close a half-open one.
   */
  provesUp?(err: unknown): boolean;
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
      errorFilter: (err: unknown) => events.provesUp?.(err) ?? false,
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

  /** Runs action through the breaker; an open breaker rejects with BreakerOpenError at once. */
  async run<T>(action: () => Promise<T>): Promise<T> {
    try {
      return (await this.cb.fire(action)) as T;
    } catch (err) {
      if ((err as { code?: string }).code === 'EOPENBREAKER') {
        throw new BreakerOpenError(this.name, err);
      }
      throw err;
    }
  }

  shutdown(): void {
    this.cb.shutdown();
  }
}
