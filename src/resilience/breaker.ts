// One opossum breaker per provider, around the whole fetch (retries included). opossum's
// defaults are wrong for this job (docs/field-notes.md, "opossum"): volumeThreshold 0 opens
// on the first failure, rolling percentiles sort every sample per failure, and its timeout
// does not cancel. The rolling window turns on one timer shared by every breaker with the same
// window (resilience/bucket-rotation.ts), not one interval per breaker, and opossum's breaker
// lives only while its window counts something (below).
import CircuitBreaker from 'opossum';
import type { Clock } from '../clock.js';
import type { BreakerConfig } from '../config/types.js';
import { bucketRotation, ROTATE_EVENT, type BucketRotation } from './bucket-rotation.js';
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

/** opossum's window: this many buckets, each window / BUCKETS long. */
const BUCKETS = 10;

type Circuit = CircuitBreaker<[() => Promise<unknown>], unknown>;

/**
 * A closed opossum breaker whose window holds nothing is indistinguishable from a new one, so it
 * exists only from a fetch until its window has emptied again: a provider refreshes once in tens
 * of minutes and a breaker weighs ~8 KB (ten buckets, a dozen listeners), too much to keep for
 * each of ten thousand providers between fetches. While it exists it listens to the shared
 * rotation; at the first turn that leaves its window empty it is shut down and dropped.
 */
export class Breaker {
  private cb: Circuit | undefined;
  /** Runs in progress: a breaker is never dropped under one. */
  private running = 0;
  /** The rotation opossum's breaker listens to, while it exists. */
  private rotation: BucketRotation | undefined;
  private readonly sweep = (): void => this.dropIfIdle();

  constructor(
    readonly name: string,
    private readonly config: BreakerConfig,
    private readonly clock: Clock,
    private readonly events: BreakerEvents = {},
  ) {}

  private circuit(): Circuit {
    if (this.cb) return this.cb;
    const { config, events } = this;
    // Looked up each time: a rotation nobody listened to any more has been forgotten.
    // opossum's own bucket length (window / buckets, floored), on the injected clock.
    const rotation = bucketRotation(this.clock, Math.floor(config.window / BUCKETS));
    const cb: Circuit = new CircuitBreaker((action: () => Promise<unknown>) => action(), {
      name: this.name,
      timeout: false,
      resetTimeout: config.resetTimeout,
      errorThresholdPercentage: config.errorThresholdPercentage,
      volumeThreshold: config.volumeThreshold,
      rollingCountTimeout: config.window,
      rollingCountBuckets: BUCKETS,
      rotateBucketController: rotation,
      rollingPercentilesEnabled: false,
      enableSnapshots: false,
      allowWarmUp: false,
      // A rejection (invalid_client, …) proves the endpoint is up: it must not trip the
      // breaker, and it may close a half-open one. Everything else counts as a failure.
      errorFilter: (err: unknown) => events.provesUp?.(err) ?? false,
    });
    cb.on('open', () => events.onStateChange?.('open'));
    cb.on('halfOpen', () => events.onStateChange?.('half_open'));
    cb.on('close', () => events.onStateChange?.('closed'));
    // After opossum's own listener (added by its constructor): it sees the window already turned.
    rotation.on(ROTATE_EVENT, this.sweep);
    this.rotation = rotation;
    this.cb = cb;
    return cb;
  }

  /** Whether opossum's breaker exists now (tests, measurements). */
  get live(): boolean {
    return this.cb !== undefined;
  }

  get state(): BreakerState {
    const cb = this.cb;
    if (cb === undefined) return 'closed';
    if (cb.opened) return 'open';
    if (cb.halfOpen) return 'half_open';
    return 'closed';
  }

  /** Runs action through the breaker; an open breaker rejects with BreakerOpenError at once. */
  async run<T>(action: () => Promise<T>): Promise<T> {
    const cb = this.circuit();
    this.running++;
    try {
      return (await cb.fire(action)) as T;
    } catch (err) {
      if ((err as { code?: string }).code === 'EOPENBREAKER') {
        throw new BreakerOpenError(this.name, err);
      }
      throw err;
    } finally {
      this.running--;
    }
  }

  /** Drops opossum's breaker when it is closed, idle, and its window counts nothing. */
  private dropIfIdle(): void {
    const cb = this.cb;
    if (cb === undefined || this.running > 0 || !cb.closed || cb.halfOpen) return;
    for (const b of cb.status.window) if (b.fires !== 0 || b.failures !== 0) return;
    this.shutdown();
  }

  shutdown(): void {
    this.rotation?.removeListener(ROTATE_EVENT, this.sweep);
    this.rotation = undefined;
    this.cb?.shutdown();
    this.cb = undefined;
  }
}
