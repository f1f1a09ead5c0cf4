// Spreads early background refreshes that fall due together over their refresh window. 500
// providers warmed in the same minute with the same lifetime would otherwise come due in that
// same minute again at every refresh round: the warm-up's burst, repeated forever. Per origin,
// per replica, the future is cut into slots; each slot takes at most a share of the origin's
// rate in planned refreshes. A refresh goes to the first slot from its own refresh moment that
// has room, never past the end of its window (then to the least-booked slot of the window).
// A refresh with room at its own moment keeps that moment exactly, so a lone provider's timing
// is what `refresh.before` says. Deterministic: the same adoptions in the same order give the
// same plan.

/** Planned background refreshes may use this share of maxRate; the rest is for Checks and urgent refreshes. */
export const BACKGROUND_SHARE = 0.5;

/** How often booked slots in the past are forgotten (ms of the budget's clock). */
const PRUNE_EVERY_MS = 60_000;

export class RefreshPlanner {
  /** Slot number (time / slotMs) → refreshes planned in it. */
  private readonly booked = new Map<number, number>();
  private prunedAt = 0;

  constructor(private ratePerSec: number) {}

  /** A reload changed the origin's maxRate: later plans use the new slot size. */
  setRate(ratePerSec: number): void {
    if (ratePerSec === this.ratePerSec) return;
    this.ratePerSec = ratePerSec;
    this.booked.clear(); // slot numbers of the old size mean nothing now
  }

  /** Slot length: a second, or longer when the share is below one refresh a second. */
  private get slotMs(): number {
    return Math.max(1_000, Math.ceil(1_000 / (this.ratePerSec * BACKGROUND_SHARE)));
  }

  private get perSlot(): number {
    return Math.max(1, Math.floor(this.ratePerSec * BACKGROUND_SHARE * (this.slotMs / 1_000)));
  }

  /**
   * When to start a background refresh that is due at `from` and must start by `until` (epoch
   * ms): `from` itself when its slot has room, else later in the window. Books the slot.
   */
  plan(from: number, until: number, now: number): number {
    this.prune(now);
    const size = this.slotMs;
    const cap = this.perSlot;
    const start = Math.max(from, now);
    const first = Math.floor(start / size);
    const last = Math.max(first, Math.floor(until / size));
    let best = first;
    let bestCount = Number.POSITIVE_INFINITY;
    for (let s = first; s <= last; s++) {
      const n = this.booked.get(s) ?? 0;
      if (n < cap) {
        best = s;
        bestCount = n;
        break;
      }
      if (n < bestCount) {
        best = s;
        bestCount = n;
      }
    }
    this.booked.set(best, bestCount + 1);
    // Within its slot, the n-th refresh starts n/cap of the way in, so a full slot is itself even.
    const at = best * size + Math.floor(((bestCount % cap) / cap) * size);
    return Math.max(start, Math.min(at, Math.max(start, until)));
  }

  /** Gives back the slot of a plan that will not run (the token was replaced first). */
  cancel(at: number): void {
    const s = Math.floor(at / this.slotMs);
    const n = this.booked.get(s);
    if (n === undefined) return;
    if (n <= 1) this.booked.delete(s);
    else this.booked.set(s, n - 1);
  }

  /** Refreshes planned from `now` on (status). */
  planned(now: number): number {
    const current = Math.floor(now / this.slotMs);
    let total = 0;
    for (const [s, n] of this.booked) if (s >= current) total += n;
    return total;
  }

  private prune(now: number): void {
    if (now - this.prunedAt < PRUNE_EVERY_MS) return;
    this.prunedAt = now;
    const current = Math.floor(now / this.slotMs);
    for (const s of this.booked.keys()) if (s < current) this.booked.delete(s);
  }
}
