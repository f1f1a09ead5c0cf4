// What providers leave on the clock and on the shared breaker rotation: a reload's retired
// providers and a closed manager take their breakers' rotation listeners with them (no growth
// over 50 reloads), and warming up providers without a token endpoint sets no readiness timer
// (ten thousand cancelled ones used to fall due in the clock's queue right after readiness).
import { afterEach, describe, expect, it } from 'vitest';
import { ManualClock, type Clock, type TimerHandle } from '../../src/clock.js';
import { parseConfig } from '../../src/config/load.js';
import { rotationsOn } from '../../src/resilience/bucket-rotation.js';
import { TokenManager } from '../../src/tokens/manager.js';
import { DemoTokenServer } from '../../demo/token-server.js';
import { ccSource } from '../support/world.js';

/** A manual clock that records the length of every timer set on it. */
class CountingClock extends ManualClock {
  readonly set: number[] = [];
  override setTimer(fn: () => void, ms: number): TimerHandle {
    this.set.push(ms);
    return super.setTimer(fn, ms);
  }
}

const managers: TokenManager[] = [];
let idp: DemoTokenServer | undefined;

afterEach(async () => {
  await Promise.all(managers.splice(0).map((m) => m.close(1_000)));
  await idp?.stop();
  idp = undefined;
});

function manager(yaml: string, clock: Clock): TokenManager {
  const config = parseConfig(yaml);
  const m = new TokenManager(config.providers.values(), { clock, ...(config.tokenEndpoints ? { tokenEndpoints: config.tokenEndpoints } : {}) });
  managers.push(m);
  return m;
}

describe('breaker rotation listeners across reloads', () => {
  it('50 reloads that replace both providers leave only the live breakers listening, and close leaves none', async () => {
    idp = new DemoTokenServer({ tokenTtlSeconds: 3600, host: '127.0.0.1' });
    await idp.start();
    const server = idp;
    const clock = new ManualClock();
    // A new scope each time: a new store key, so each reload fetches with a new provider (and breaker).
    // The budget is wide open: on a manual clock its rate would never refill.
    const yaml = (i: number) => `
tokenEndpoints: { "${new URL(server.tokenUrl).origin}": { maxRate: 100000/s, burst: 100000 } }
providers:
  a: { source: ${ccSource(server, { extra: { scope: `a${i}` } })} }
  b: { source: ${ccSource(server, { extra: { scope: `b${i}` } })} }
`;
    const m = manager(yaml(0), clock);
    await m.warmUp();
    expect(rotationsOn(clock)).toEqual({ rotations: 1, listeners: 4 }); // opossum's window + the sweep, per breaker
    for (let i = 1; i <= 50; i++) {
      const { changed } = await m.reload(parseConfig(yaml(i)).providers.values());
      expect(changed).toEqual(['a', 'b']);
    }
    // Retired providers close once their refresh in flight has ended (none is): give them a turn.
    await new Promise((r) => setTimeout(r, 50));
    expect(rotationsOn(clock)).toEqual({ rotations: 1, listeners: 4 });
    expect(server.tokenRequestCount).toBe(102);
    await m.close(1_000);
    expect(rotationsOn(clock)).toEqual({ rotations: 0, listeners: 0 });
  });
});

describe('readiness timers', () => {
  it('warming up providers without a token endpoint sets no waitBudget timer', async () => {
    const clock = new CountingClock();
    // A waitBudget no other timer has, to tell readiness timers from the fetches' own.
    const providers = Array.from({ length: 20 }, (_, i) => `  s${i}: { source: { type: static, token: "\${env:T}" }, refresh: { waitBudget: 1234ms } }`).join('\n');
    const m = new TokenManager(parseConfig(`providers:\n${providers}\n`, { env: { T: 'static-token-value' } }).providers.values(), { clock });
    managers.push(m);
    await m.warmUp();
    expect(m.stats().every((s) => s.state === 'valid')).toBe(true);
    expect(clock.set.length).toBeGreaterThan(0); // the fetches' own timeouts: the clock is the one in use
    expect(clock.set.filter((ms) => ms === 1234)).toEqual([]);
  });
});
