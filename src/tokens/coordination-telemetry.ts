// What the replica protocol reports about itself: the refresh lock's outcomes and wait, fenced
// store writes and store operations, as metrics (docs/operations.md, "Coordination metrics")
// and as events on the refresh's span. Free functions, so a provider carries no extra object.
import type { Metrics, RefreshLockOutcome } from '../observability/metrics.js';
import { spanEvent, tracingEnabled } from '../observability/tracing.js';

export function lockOutcome(metrics: Metrics, provider: string, outcome: RefreshLockOutcome): void {
  metrics.refreshLocks.inc({ provider, outcome });
  spanEvent('refresh.lock', { outcome });
}

/** The refresh held the lock, or adopted the token another replica published, after `ms`. */
export function lockWaited(metrics: Metrics, provider: string, ms: number, ended: 'acquired' | 'adopted'): void {
  metrics.refreshLockWait.observe(Math.max(0, ms) / 1000, provider);
  spanEvent('refresh.lock_wait', { wait_ms: Math.max(0, ms), ended });
}

/** The store refused a write: it holds a newer token (we were a stale writer). */
export function fencedWrite(metrics: Metrics, provider: string): void {
  metrics.fencedWrites.inc({ provider });
  spanEvent('store.fenced_write');
}

/** A store operation's outcome, as an event on the refresh's span (reads, locks, writes…). */
export function storeEvent(op: string, ok: boolean): void {
  if (!tracingEnabled()) return;
  spanEvent(`store.${op}`, { ok });
}
