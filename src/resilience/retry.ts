// One fetch = the first attempt plus up to `retries` more on transient failures, each attempt
// with its own timeout (opossum's `timeout` does not cancel; one shared AbortController would
// cancel everything once aborted).
import type { Clock } from '../clock.js';
import { fullJitterDelay } from './backoff.js';
import type { FailureKinds, RetryableFailure } from './failure.js';
import type { RetryAfterGate } from './retry-after-gate.js';
import type { BudgetLease } from './token-endpoint-budget.js';

export interface RetryPolicy<E extends RetryableFailure = RetryableFailure> {
  readonly timeoutMs: number;
  readonly retries: number;
  readonly baseMs: number;
  readonly maxMs: number;
  /**
   * Consulted for a transient error before retrying: false ends the fetch with it. Rotating
   * refresh tokens use it so that an attempt the IdP may have carried out is not repeated.
   */
  readonly mayRetry?: (err: E) => boolean;
}

export interface RetryHooks<E extends RetryableFailure> {
  /** Called before each attempt (metrics, logs). */
  onAttempt?(attempt: number): void;
  onRetry?(attempt: number, err: E, delayMs: number): void;
}

export async function withRetries<T, E extends RetryableFailure>(
  attempt: (signal: AbortSignal) => Promise<T>,
  policy: RetryPolicy<E>,
  deps: {
    clock: Clock; gate: RetryAfterGate; failures: FailureKinds<E>; endpoint?: string; signal?: AbortSignal; random?: () => number;
    /**
     * The endpoint's budget: waited for before each attempt, like the Retry-After gate, so time
     * in its queue does not count against the attempt's timeout. Told each attempt's outcome.
     */
    admit?: (signal?: AbortSignal) => Promise<BudgetLease>;
  },
  hooks: RetryHooks<E> = {},
): Promise<T> {
  const { clock, gate, endpoint, failures } = deps;
  for (let n = 0; ; n++) {
    if (endpoint) {
      const wait = gate.remaining(endpoint, clock.now());
      if (wait > 0) await clock.sleep(wait, deps.signal);
    }
    if (deps.signal?.aborted) throw failures.aborted(deps.signal.reason);
    let lease: BudgetLease | undefined;
    if (deps.admit) {
      try {
        lease = await deps.admit(deps.signal);
      } catch (raw) {
        throw deps.signal?.aborted ? failures.aborted(deps.signal.reason) : failures.classify(raw);
      }
    }
    const controller = new AbortController();
    const timer = clock.setTimer(
      () => controller.abort(failures.timeout(policy.timeoutMs)),
      policy.timeoutMs,
    );
    const onOuterAbort = () => controller.abort(deps.signal?.reason);
    deps.signal?.addEventListener('abort', onOuterAbort, { once: true });
    hooks.onAttempt?.(n);
    try {
      const value = await attempt(controller.signal);
      lease?.done();
      return value;
    } catch (raw) {
      // The transport turns our own timeout abort into the timeout error; anything else is wrapped.
      const err = failures.classify(raw);
      lease?.done(err);
      if (err.retryAfterMs !== undefined && endpoint) gate.block(endpoint, clock.now() + err.retryAfterMs);
      if (!err.transient || n >= policy.retries || deps.signal?.aborted) throw err;
      if (policy.mayRetry && !policy.mayRetry(err)) throw err;
      const backoff = fullJitterDelay(n, policy.baseMs, policy.maxMs, deps.random);
      hooks.onRetry?.(n + 1, err, backoff);
      // The gate (Retry-After) is waited for at the top of the loop; never undercut it.
      await clock.sleep(backoff, deps.signal);
    } finally {
      timer.cancel();
      deps.signal?.removeEventListener('abort', onOuterAbort);
    }
  }
}
