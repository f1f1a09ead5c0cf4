// Time is injected wherever behaviour depends on it, so tests can drive expiry without sleeping.

export interface TimerHandle {
  cancel(): void;
}

export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
  /** Schedules fn after ms. Timers never keep the process alive. */
  setTimer(fn: () => void, ms: number): TimerHandle;
  /** Resolves after ms, or rejects when the signal aborts. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

function abortReason(signal: AbortSignal): unknown {
  return signal.reason ?? new Error('aborted');
}

function sleepOn(clock: Clock, ms: number, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted) return Promise.reject(abortReason(signal));
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      timer.cancel();
      reject(abortReason(signal!));
    };
    const timer = clock.setTimer(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** setTimeout's ceiling; longer waits are re-armed. */
const MAX_TIMEOUT_MS = 2_147_483_647;

class QueuedTimer implements TimerHandle {
  constructor(
    readonly at: number,
    public fn: (() => void) | undefined,
    private readonly queue: TimerQueue,
  ) {}

  cancel(): void {
    if (this.fn === undefined) return;
    this.fn = undefined;
    this.queue.cancelled();
  }
}

/**
 * All of the system clock's timers in one binary heap behind a single Node timer. Every
 * provider keeps a refresh timer, each with its own moment; as Node timers that is a Timeout,
 * a TimersList and two closures apiece, several hundred bytes for each of ten thousand
 * providers. Cancelled entries are dropped lazily: when they reach the top (never armed for), or
 * compacted when they pile up.
 */
class TimerQueue {
  private heap: QueuedTimer[] = [];
  private dead = 0;
  private handle: NodeJS.Timeout | undefined;
  private armedFor = Number.POSITIVE_INFINITY;

  add(ms: number, fn: () => void): QueuedTimer {
    const t = new QueuedTimer(Date.now() + Math.max(0, ms), fn, this);
    this.push(t);
    if (t.at < this.armedFor) this.arm();
    return t;
  }

  cancelled(): void {
    this.dead++;
    if (this.dead > 64 && this.dead > this.heap.length / 2) {
      this.heap = this.heap.filter((t) => t.fn !== undefined);
      this.heap.sort((a, b) => a.at - b.at); // a sorted array is a valid heap
      this.dead = 0;
    }
  }

  private arm(): void {
    if (this.handle) clearTimeout(this.handle);
    this.handle = undefined;
    this.armedFor = Number.POSITIVE_INFINITY;
    // Cancelled timers on top are dropped here rather than woken for: a provider's fetch timeout
    // is set and cancelled within milliseconds, and with ten thousand providers each one would
    // otherwise be a wake-up of its own when its moment came.
    let top = this.heap[0];
    while (top !== undefined && top.fn === undefined) {
      this.pop();
      this.dead = Math.max(0, this.dead - 1);
      top = this.heap[0];
    }
    if (top === undefined) return;
    this.armedFor = top.at;
    this.handle = setTimeout(() => this.fire(), Math.min(Math.max(0, top.at - Date.now()), MAX_TIMEOUT_MS));
    this.handle.unref(); // timers never keep the process alive
  }

  private fire(): void {
    this.handle = undefined;
    this.armedFor = Number.POSITIVE_INFINITY;
    const now = Date.now();
    const due: QueuedTimer[] = [];
    while (this.heap.length && this.heap[0]!.at <= now) due.push(this.pop());
    this.arm();
    for (const t of due) {
      const fn = t.fn;
      if (fn === undefined) {
        this.dead = Math.max(0, this.dead - 1);
        continue;
      }
      t.fn = undefined;
      try {
        fn();
      } catch (err) {
        // As with setTimeout: an exception in a timer is an uncaught exception.
        queueMicrotask(() => {
          throw err;
        });
      }
    }
  }

  private push(t: QueuedTimer): void {
    const h = this.heap;
    h.push(t);
    let i = h.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (h[parent]!.at <= t.at) break;
      h[i] = h[parent]!;
      i = parent;
    }
    h[i] = t;
  }

  private pop(): QueuedTimer {
    const h = this.heap;
    const top = h[0]!;
    const last = h.pop()!;
    if (h.length) {
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        let mAt = last.at;
        if (l < h.length && h[l]!.at < mAt) {
          m = l;
          mAt = h[l]!.at;
        }
        if (r < h.length && h[r]!.at < mAt) m = r;
        if (m === i) break;
        h[i] = h[m]!;
        i = m;
      }
      h[i] = last;
    }
    return top;
  }
}

const queue = new TimerQueue();

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimer: (fn, ms) => queue.add(ms, fn),
  sleep(ms, signal) {
    return sleepOn(systemClock, ms, signal);
  },
};

/** A clock that only moves when told to: `advance(ms)` fires due timers in order. */
export class ManualClock implements Clock {
  private current: number;
  private seq = 0;
  private readonly timers = new Map<number, { at: number; fn: () => void }>();

  constructor(start = Date.UTC(2026, 0, 1)) {
    this.current = start;
  }

  now(): number {
    return this.current;
  }

  setTimer(fn: () => void, ms: number): TimerHandle {
    const id = ++this.seq;
    this.timers.set(id, { at: this.current + Math.max(0, ms), fn });
    return { cancel: () => this.timers.delete(id) };
  }

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return sleepOn(this, ms, signal);
  }

  /** Moves time forward, firing every timer that falls due, earliest first. */
  advance(ms: number): void {
    const target = this.current + ms;
    for (;;) {
      let next: [number, { at: number; fn: () => void }] | undefined;
      for (const entry of this.timers) if (entry[1].at <= target && (!next || entry[1].at < next[1].at)) next = entry;
      if (!next) break;
      this.timers.delete(next[0]);
      this.current = Math.max(this.current, next[1].at);
      next[1].fn();
    }
    this.current = target;
  }

  get pendingTimers(): number {
    return this.timers.size;
  }
}
