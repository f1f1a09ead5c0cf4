import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import { fullJitterDelay } from '../../src/resilience/backoff.js';
import { RetryAfterGate } from '../../src/resilience/retry-after-gate.js';
import { withRetries } from '../../src/resilience/retry.js';
import { TOKEN_FAILURES, TokenError } from '../../src/tokens/errors.js';
import { parseRetryAfter } from '../../src/tokens/http/retry-after.js';

describe('full-jitter backoff', () => {
  it('stays within [0, min(max, base·2^attempt)]', () => {
    expect(fullJitterDelay(0, 200, 5000, () => 0.999)).toBe(199);
    expect(fullJitterDelay(3, 200, 5000, () => 0.999)).toBe(1598);
    expect(fullJitterDelay(10, 200, 5000, () => 0.999)).toBe(4995);
    expect(fullJitterDelay(10, 200, 5000, () => 0)).toBe(0);
  });
});

describe('Retry-After', () => {
  it('parses delta-seconds and HTTP dates', () => {
    const now = Date.UTC(2026, 10, 23, 12, 0, 0);
    expect(parseRetryAfter('2', now)).toBe(2000);
    expect(parseRetryAfter('Mon, 23 Nov 2026 12:00:30 GMT', now)).toBe(30_000);
    expect(parseRetryAfter('Mon, 23 Nov 2026 11:00:00 GMT', now)).toBe(0);
    expect(parseRetryAfter('soon', now)).toBeUndefined();
    expect(parseRetryAfter(undefined, now)).toBeUndefined();
  });

  it('the gate never shortens a wait', () => {
    const g = new RetryAfterGate();
    g.block('u', 5_000);
    g.block('u', 2_000);
    expect(g.remaining('u', 1_000)).toBe(4_000);
    expect(g.remaining('u', 5_000)).toBe(0);
  });
});

describe('withRetries', () => {
  const policy = { timeoutMs: 1_000, retries: 3, baseMs: 100, maxMs: 1_000 };

  it('retries transient errors up to `retries` more times, then throws the last error', async () => {
    const clock = new ManualClock();
    let calls = 0;
    const p = withRetries(async () => {
      calls++;
      throw new TokenError('ERR_IDP_UNAVAILABLE', 'down');
    }, policy, { clock, gate: new RetryAfterGate(), failures: TOKEN_FAILURES, random: () => 0.5 });
    const settled = p.catch((e: unknown) => e);
    for (let i = 0; i < 10; i++) {
      await Promise.resolve();
      await new Promise((r) => setImmediate(r));
      clock.advance(1_000);
    }
    expect(await settled).toMatchObject({ code: 'ERR_IDP_UNAVAILABLE' });
    expect(calls).toBe(4);
  });

  it('does not retry permanent errors', async () => {
    let calls = 0;
    await expect(withRetries(async () => {
      calls++;
      throw new TokenError('ERR_IDP_REJECTED', 'invalid_client');
    }, policy, { clock: new ManualClock(), gate: new RetryAfterGate(), failures: TOKEN_FAILURES })).rejects.toMatchObject({ code: 'ERR_IDP_REJECTED' });
    expect(calls).toBe(1);
  });

  it('gives each attempt its own timeout signal', async () => {
    const clock = new ManualClock();
    const signals: AbortSignal[] = [];
    const p = withRetries((signal) => {
      signals.push(signal);
      return new Promise<never>((_, reject) => signal.addEventListener('abort', () => reject(signal.reason)));
    }, { ...policy, retries: 1 }, { clock, gate: new RetryAfterGate(), failures: TOKEN_FAILURES, random: () => 0 }).catch((e: unknown) => e);
    clock.advance(1_000);
    await new Promise((r) => setImmediate(r));
    clock.advance(1);
    await new Promise((r) => setImmediate(r));
    clock.advance(1_000);
    expect(await p).toMatchObject({ code: 'ERR_IDP_TIMEOUT' });
    expect(signals).toHaveLength(2);
    expect(signals[0]).not.toBe(signals[1]);
  });
});
