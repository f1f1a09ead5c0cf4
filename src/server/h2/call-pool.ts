// The free list behind the node:http2 Check path's per-call state (check-stream.ts). A Check's
// state used to be new objects on every call (the call, its message collector, the handler's
// `{ request }` and callback closure, the request's fields and a view of its bytes): ~400 bytes
// a Check of young-generation garbage beyond what node:http2 itself allocates, and each scavenge
// they bring on pauses some Check in flight (bench/FINDINGS.md, "What a Check allocates"). Calls
// that are done come back here and serve the next Check.
//
// Only what is given back is reused, and a call is given back only once nothing can reach it
// for its old Check any more (check-stream.ts says when); one that is never given back (its
// stream was reset while its request was still arriving) is simply collected.

/** At most this many idle calls are kept: the pool follows the peak of Checks in flight up to it. */
export const MAX_IDLE_CALLS = 1024;

export class CallPool<T> {
  private readonly idle: T[] = [];

  constructor(private readonly max = MAX_IDLE_CALLS) {}

  /** An idle call, or undefined (make a new one). */
  take(): T | undefined {
    return this.idle.pop();
  }

  /** A call that is done: kept for the next Check unless the pool is full. */
  give(item: T): void {
    if (this.idle.length < this.max) this.idle.push(item);
  }

  /** Idle calls kept (tests). */
  get size(): number {
    return this.idle.length;
  }
}
