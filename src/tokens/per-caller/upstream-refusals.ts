// How often an upstream has refused a caller's exchanged tokens lately (Envoy's access log). An
// upstream that refuses every token a caller gets (it does not accept that user, or not tokens
// for this audience) would otherwise cost one exchange per request: each refusal evicts the
// caller and the next Check exchanges again. After HOLD_AFTER_REFUSALS refusals, each within
// REFUSAL_WINDOW_MS of the one before, the caller is held: answered from the negative cache
// instead of exchanged. The count is kept through a hold, so one more refusal right after it
// holds again; a quiet window starts it afresh.

/** Refusals that hold a caller… */
export const HOLD_AFTER_REFUSALS = 3;
/** …each within this long of the previous one. */
export const REFUSAL_WINDOW_MS = 10 * 60_000;
/** Callers tracked at once; the least recently refused are forgotten first (memory stays bounded). */
const MAX_TRACKED = 4_096;

interface Strikes {
  count: number;
  last: number;
}

export class UpstreamRefusals {
  private readonly byKey = new Map<string, Strikes>();

  /** Counts a refusal of the caller with this subject key at `now`; the count within the window, this one included. */
  record(key: string, now: number): number {
    const s = this.byKey.get(key);
    const count = s !== undefined && now - s.last <= REFUSAL_WINDOW_MS ? s.count + 1 : 1;
    // Re-inserted: the Map's order is the order of the last refusal, oldest first.
    this.byKey.delete(key);
    this.byKey.set(key, { count, last: now });
    if (this.byKey.size > MAX_TRACKED) this.byKey.delete(this.byKey.keys().next().value as string);
    return count;
  }

  /** Whether `count` refusals hold the caller. */
  static holds(count: number): boolean {
    return count >= HOLD_AFTER_REFUSALS;
  }

  get size(): number {
    return this.byKey.size;
  }
}
