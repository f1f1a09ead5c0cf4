// A binary heap whose entries know their own position, so one can be removed (an abandoned
// wait) or moved up (a waiting Check promotes its provider's queued refresh) in O(log n).

export interface QueueEntry {
  /** Position in the heap; -1 when not queued. Maintained by the queue. */
  index: number;
}

export class PriorityQueue<T extends QueueEntry> {
  private readonly heap: T[] = [];

  /** `before(a, b)`: a is served first. */
  constructor(private readonly before: (a: T, b: T) => boolean) {}

  get size(): number {
    return this.heap.length;
  }

  peek(): T | undefined {
    return this.heap[0];
  }

  push(entry: T): void {
    entry.index = this.heap.length;
    this.heap.push(entry);
    this.up(entry.index);
  }

  pop(): T | undefined {
    const top = this.heap[0];
    if (top !== undefined) this.remove(top);
    return top;
  }

  /** Takes `entry` out wherever it is; false when it was not queued. */
  remove(entry: T): boolean {
    const i = entry.index;
    if (i < 0 || this.heap[i] !== entry) return false;
    const last = this.heap.pop()!;
    entry.index = -1;
    if (last !== entry) {
      this.heap[i] = last;
      last.index = i;
      this.down(i);
      this.up(last.index);
    }
    return true;
  }

  /** Re-sorts `entry` after its priority changed. */
  update(entry: T): void {
    const i = entry.index;
    if (i < 0 || this.heap[i] !== entry) return;
    this.up(i);
    this.down(entry.index);
  }

  /** Every entry, in no particular order. */
  values(): readonly T[] {
    return this.heap;
  }

  private up(i: number): void {
    const h = this.heap;
    const e = h[i]!;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.before(e, h[p]!)) break;
      h[i] = h[p]!;
      h[i]!.index = i;
      i = p;
    }
    h[i] = e;
    e.index = i;
  }

  private down(i: number): void {
    const h = this.heap;
    const e = h[i]!;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      let best = e;
      if (l < h.length && this.before(h[l]!, best)) { m = l; best = h[l]!; }
      if (r < h.length && this.before(h[r]!, best)) { m = r; best = h[r]!; }
      if (m === i) break;
      h[i] = best;
      best.index = i;
      i = m;
    }
    h[i] = e;
    e.index = i;
  }
}
