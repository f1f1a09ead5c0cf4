// The `grpc-timeout` deadlines of the Checks in flight on the node:http2 path, behind one timer.
// A timer per call (setTimeout, then clearTimeout a millisecond later when the cache hit
// answers) allocated a Timeout, and at a few Checks in flight it created and dropped Node's
// timer list for that duration on nearly every call (bench/FINDINGS.md, "What the tail at
// 5,000/s is made of"). Here a Check's deadline is a link in a list kept in deadline order; one
// timer is armed for the earliest, and is left alone when that Check answers in time: when it
// fires early it re-arms for whatever is then first. Envoy sends the same timeout on every call,
// so deadlines arrive in order and an insertion is O(1).

const MAX_TIMEOUT_MS = 2 ** 31 - 1;

/** A member of the list: a Check with a deadline. */
export interface Deadlined {
  /** monotonic ms (performance.now()) */
  deadlineAt: number;
  prev: Deadlined | undefined;
  next: Deadlined | undefined;
  /** Called once, when the deadline passes while the Check is still in the list. */
  expire(): void;
}

export class DeadlineList {
  private head: Deadlined | undefined;
  private tail: Deadlined | undefined;
  private timer: NodeJS.Timeout | undefined;
  private armedFor = Number.POSITIVE_INFINITY;
  private readonly onTimer = (): void => this.fire();

  /** Adds a Check that must end by `deadlineAt` (performance.now() clock). */
  add(item: Deadlined): void {
    // From the tail: with one timeout for every call, the new deadline is the latest.
    let after = this.tail;
    while (after !== undefined && after.deadlineAt > item.deadlineAt) after = after.prev;
    item.prev = after;
    item.next = after === undefined ? this.head : after.next;
    if (item.next !== undefined) item.next.prev = item;
    else this.tail = item;
    if (after !== undefined) after.next = item;
    else this.head = item;
    if (item.deadlineAt < this.armedFor) this.arm(item.deadlineAt);
  }

  /** Takes a Check out (it answered, was refused or went away). The timer stays as it is. */
  remove(item: Deadlined): void {
    if (item.prev !== undefined) item.prev.next = item.next;
    else if (this.head === item) this.head = item.next;
    else return; // not in the list
    if (item.next !== undefined) item.next.prev = item.prev;
    else this.tail = item.prev;
    item.prev = undefined;
    item.next = undefined;
  }

  /** How many Checks have a deadline (tests). */
  get size(): number {
    let n = 0;
    for (let i = this.head; i !== undefined; i = i.next) n++;
    return n;
  }

  private arm(at: number): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.armedFor = at;
    // +1: setTimeout may fire a fraction of a millisecond before `at` on the performance clock.
    // setTimeout's ceiling: a longer wait fires early, finds nothing due and re-arms.
    this.timer = setTimeout(this.onTimer, Math.min(MAX_TIMEOUT_MS, Math.max(0, Math.ceil(at - performance.now())) + 1));
    // Open streams hold the process; a timer left armed after its Check answered must not.
    this.timer.unref();
  }

  private fire(): void {
    this.timer = undefined;
    this.armedFor = Number.POSITIVE_INFINITY;
    const now = performance.now();
    while (this.head !== undefined && this.head.deadlineAt <= now) {
      const item = this.head;
      this.remove(item);
      item.expire();
    }
    if (this.head !== undefined) this.arm(this.head.deadlineAt);
  }
}
