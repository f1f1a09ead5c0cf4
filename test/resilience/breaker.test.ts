// The breaker on the injected clock: every breaker with the same window turns on one shared
// rotation (opossum's rotateBucketController) instead of an interval apiece, and opossum's
// breaker exists only while its window counts something. Its decisions stay opossum's:
// volumeThreshold and errorThresholdPercentage over the rolling window, resetTimeout, half-open.
import { afterEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import type { BreakerConfig } from '../../src/config/types.js';
import { Breaker } from '../../src/resilience/breaker.js';
import { rotationsOn } from '../../src/resilience/bucket-rotation.js';
import { BreakerOpenError } from '../../src/resilience/failure.js';
import { until } from '../support/until.js';

const CONFIG: BreakerConfig = { window: 10_000, volumeThreshold: 2, errorThresholdPercentage: 50, resetTimeout: 200 };
const ok = () => Promise.resolve('ok');
const boom = () => Promise.reject(new Error('503'));
const outcome = (p: Promise<unknown>) => p.then(() => 'ok', (e: unknown) => (e instanceof BreakerOpenError ? 'refused' : 'failed'));

const made: Breaker[] = [];
function breakers(clock: ManualClock, n: number, config = CONFIG): Breaker[] {
  const out = Array.from({ length: n }, (_, i) => new Breaker(`b${i}`, config, clock));
  made.push(...out);
  return out;
}

afterEach(() => {
  for (const b of made.splice(0)) b.shutdown();
});

describe('breakers sharing one rotation', () => {
  it('many breakers keep one timer between them, and none once they are shut down', async () => {
    const clock = new ManualClock();
    const bs = breakers(clock, 50);
    for (const b of bs) await b.run(ok);
    expect(rotationsOn(clock)).toEqual({ rotations: 1, listeners: 100 });
    expect(clock.pendingTimers).toBe(1);
    for (const b of bs) b.shutdown();
    expect(rotationsOn(clock)).toEqual({ rotations: 0, listeners: 0 });
    expect(clock.pendingTimers).toBe(0);
  });

  it('a breaker still opens on its error percentage inside the window, whatever the others do', async () => {
    const clock = new ManualClock();
    const [failing, healthy] = breakers(clock, 2);
    await healthy!.run(ok);
    expect(await outcome(failing!.run(boom))).toBe('failed');
    clock.advance(4_000); // same window: 2 failures in 2 calls, 100% > 50%
    expect(await outcome(failing!.run(boom))).toBe('failed');
    expect(failing!.state).toBe('open');
    expect(await outcome(failing!.run(ok))).toBe('refused');
    expect(healthy!.state).toBe('closed');
    expect(await outcome(healthy!.run(ok))).toBe('ok');
  });

  it('forgets failures once they have left the window', async () => {
    const clock = new ManualClock();
    const [b] = breakers(clock, 1);
    expect(await outcome(b!.run(boom))).toBe('failed');
    clock.advance(CONFIG.window + 1_000); // the failure has rotated out
    expect(await outcome(b!.run(boom))).toBe('failed');
    expect(b!.state).toBe('closed'); // 1 call in the window: below volumeThreshold
  });

  it('a breaker kept alive by its calls forgets the failures the shared rotation has turned out', async () => {
    const clock = new ManualClock();
    const [b] = breakers(clock, 1);
    expect(await outcome(b!.run(boom))).toBe('failed'); // t=0
    clock.advance(5_000);
    await b!.run(ok); // t=5 s: the window is not empty, the breaker stays
    clock.advance(6_000);
    expect(b!.live).toBe(true);
    // t=11 s: the failure at 0 is out; 1 failure in 2 calls is 50%, not above: still closed.
    expect(await outcome(b!.run(boom))).toBe('failed');
    expect(b!.state).toBe('closed');
  });

  it('counts successes in the window: 1 failure in 3 calls does not open at 50%', async () => {
    const clock = new ManualClock();
    const [b] = breakers(clock, 1);
    await b!.run(ok);
    clock.advance(2_000);
    await b!.run(ok);
    expect(await outcome(b!.run(boom))).toBe('failed');
    expect(b!.state).toBe('closed');
    expect(await outcome(b!.run(boom))).toBe('failed'); // 2 of 4: 50% is not above 50%
    expect(b!.state).toBe('closed');
    expect(await outcome(b!.run(boom))).toBe('failed'); // 3 of 5
    expect(b!.state).toBe('open');
  });

  it('half-opens after resetTimeout and closes on a successful probe', async () => {
    const clock = new ManualClock();
    const [b] = breakers(clock, 1);
    for (let i = 0; i < 2; i++) await outcome(b!.run(boom));
    expect(b!.state).toBe('open');
    // opossum's reset timer runs in real time (200 ms here).
    await until(() => b!.state === 'half_open', 5_000);
    expect(await outcome(b!.run(ok))).toBe('ok');
    expect(b!.state).toBe('closed');
  });
});

describe('opossum breaker only while its window counts something', () => {
  it('is dropped once its window has emptied, and made again by the next run', async () => {
    const clock = new ManualClock();
    const [b] = breakers(clock, 1);
    expect(b!.live).toBe(false);
    await b!.run(ok);
    expect(b!.live).toBe(true);
    clock.advance(CONFIG.window - 1_000); // 9 of 10 buckets turned: the success is still counted
    expect(b!.live).toBe(true);
    clock.advance(1_000);
    expect(b!.live).toBe(false);
    expect(rotationsOn(clock)).toEqual({ rotations: 0, listeners: 0 });
    expect(clock.pendingTimers).toBe(0);
    expect(await outcome(b!.run(ok))).toBe('ok');
    expect(b!.live).toBe(true);
  });

  it('is kept while open, and while a run is in flight', async () => {
    const clock = new ManualClock();
    const [open, busy] = breakers(clock, 2, { ...CONFIG, resetTimeout: 600_000 });
    for (let i = 0; i < 2; i++) await outcome(open!.run(boom));
    let release!: () => void;
    const slow = busy!.run(() => new Promise<string>((resolve) => (release = () => resolve('late'))));
    clock.advance(3 * CONFIG.window);
    expect(open!.state).toBe('open');
    expect(open!.live).toBe(true);
    expect(busy!.live).toBe(true);
    release();
    expect(await slow).toBe('late');
    clock.advance(CONFIG.window);
    expect(busy!.live).toBe(false);
    expect(open!.state).toBe('open');
  });
});

describe('ten thousand breakers', () => {
  it('share one rotation without a MaxListenersExceededWarning', async () => {
    const warnings: Error[] = [];
    const onWarning = (w: Error) => void warnings.push(w);
    process.on('warning', onWarning);
    try {
      const clock = new ManualClock();
      const bs = breakers(clock, 10_000);
      await Promise.all(bs.map((b) => b.run(ok)));
      expect(rotationsOn(clock)).toEqual({ rotations: 1, listeners: 20_000 });
      clock.advance(CONFIG.window / 10);
      await new Promise((r) => setImmediate(r)); // warnings are emitted on the next tick
      expect(warnings.filter((w) => w.name === 'MaxListenersExceededWarning')).toEqual([]);
      clock.advance(CONFIG.window);
      expect(bs.filter((b) => b.live)).toHaveLength(0);
      expect(clock.pendingTimers).toBe(0);
    } finally {
      process.off('warning', onWarning);
    }
  });
});
