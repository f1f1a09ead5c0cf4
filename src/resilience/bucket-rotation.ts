// One timer turns the rolling windows of every breaker with the same window length. Left to
// itself, opossum gives each breaker a `setInterval` (window / 10) that shifts its buckets;
// ten thousand providers with token endpoints meant ten thousand Node timers firing ~1 700
// times a second while idle. opossum takes an EventEmitter instead (`rotateBucketController`):
// each breaker's status listens for 'rotate' and shifts its buckets when it is emitted. This
// module owns those emitters, one per (clock, bucket interval), each driven by one timer of the
// injected clock, which runs only while some breaker listens and is forgotten when none does:
// a breaker's shutdown (reload, close) removes its listener, so nothing outlives its breakers.
import { EventEmitter } from 'node:events';
import type { Clock, TimerHandle } from '../clock.js';

/** The event opossum's Status listens for. */
export const ROTATE_EVENT = 'rotate';

export class BucketRotation extends EventEmitter {
  private timer: TimerHandle | undefined;

  constructor(
    private readonly clock: Clock,
    /** How often every listening breaker's window moves by one bucket. */
    readonly intervalMs: number,
    /** Called once the last listener has gone (the registry forgets this rotation). */
    private readonly onIdle: () => void = () => undefined,
  ) {
    super();
    // One listener per breaker sharing the rotation: thousands are the design, not a leak.
    this.setMaxListeners(0);
    this.on('newListener', (event: string | symbol) => {
      if (event === ROTATE_EVENT && this.timer === undefined) this.arm();
    });
    this.on('removeListener', (event: string | symbol) => {
      if (event === ROTATE_EVENT && this.listenerCount(ROTATE_EVENT) === 0) this.stop();
    });
  }

  /** Listeners (two for each breaker that exists: opossum's window and the breaker's sweep). */
  get listening(): number {
    return this.listenerCount(ROTATE_EVENT);
  }

  /** The timer is armed (some breaker listens). */
  get running(): boolean {
    return this.timer !== undefined;
  }

  private arm(): void {
    this.timer = this.clock.setTimer(() => {
      this.timer = undefined;
      if (this.listenerCount(ROTATE_EVENT) === 0) return;
      this.arm(); // before emitting: a listener that throws must not stop every window turning
      this.emit(ROTATE_EVENT);
    }, this.intervalMs);
  }

  private stop(): void {
    this.timer?.cancel();
    this.timer = undefined;
    this.onIdle();
  }
}

const rotations = new WeakMap<Clock, Map<number, BucketRotation>>();

/**
 * The rotation shared by every breaker on `clock` whose buckets last `intervalMs`. A rotation
 * nobody listens to any more is dropped, so reloads never accumulate them.
 */
export function bucketRotation(clock: Clock, intervalMs: number): BucketRotation {
  let byInterval = rotations.get(clock);
  if (byInterval === undefined) rotations.set(clock, (byInterval = new Map()));
  let r = byInterval.get(intervalMs);
  if (r === undefined) {
    const map = byInterval;
    const created: BucketRotation = new BucketRotation(clock, intervalMs, () => {
      if (map.get(intervalMs) === created) map.delete(intervalMs);
    });
    r = created;
    map.set(intervalMs, r);
  }
  return r;
}

/**
 * The rotations alive on `clock` and how many listeners they have in all (tests and
 * measurements: none may outlive the breakers that used them).
 */
export function rotationsOn(clock: Clock): { rotations: number; listeners: number } {
  let listeners = 0;
  const byInterval = rotations.get(clock);
  for (const r of byInterval?.values() ?? []) listeners += r.listening;
  return { rotations: byInterval?.size ?? 0, listeners };
}
