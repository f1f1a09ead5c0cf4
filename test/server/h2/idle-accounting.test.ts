// Max connection idle read from a session's StreamTable (src/server/h2/idle-accounting.ts),
// against a stand-in for grpc-js's idle state, with the clock under the test's control.
//
// Regression: a timer that fires a millisecond before the connection is due (Node's timers and
// Date.now() disagree by that much) was handed to grpc-js, which found the connection idle for
// 1 999 of 2 000 ms and re-armed a whole period: GOAWAY came a full max-connection-idle late
// (check-h2-protocol.test.ts saw 4 000 ms after the last Check instead of 2 000).
import type { Http2Session } from 'node:http2';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { wrapIdleTimeout, type GrpcJsIdleInternals } from '../../../src/server/h2/idle-accounting.js';
import { StreamTable } from '../../../src/server/h2/stream-table.js';

const PERIOD = 2_000;

function setup(lastIdle: number) {
  const session = {} as Http2Session;
  const state = { activeStreams: 0, lastIdle, timeout: { refresh: vi.fn() } };
  const table = new StreamTable<unknown>();
  const closed: number[] = [];
  // grpc-js's own decision: close when idle long enough, else re-arm a whole period.
  const original = vi.fn((ctx: GrpcJsIdleInternals, s: Http2Session) => {
    const st = ctx.sessionIdleTimeouts.get(s) as typeof state;
    if (st.activeStreams === 0 && Date.now() - st.lastIdle >= ctx.sessionIdleTimeout) closed.push(Date.now());
    else st.timeout.refresh();
  });
  const server: GrpcJsIdleInternals = { sessionIdleTimeout: PERIOD, sessionIdleTimeouts: new Map([[session, state]]), onIdleTimeout: original };
  wrapIdleTimeout(server, original, () => table);
  return { server, session, state, table, closed, fire: () => server.onIdleTimeout(server, session) };
}

describe('idle accounting from the stream table', () => {
  beforeEach(() => {
    vi.useFakeTimers();
    vi.setSystemTime(100_000);
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('a timer firing a millisecond early: the connection closes when due, not a whole period later', () => {
    const t = setup(Date.now() - PERIOD + 1);
    t.table.idleSince = t.state.lastIdle;
    t.fire();
    expect(t.state.timeout.refresh).not.toHaveBeenCalled();
    expect(t.closed).toEqual([]);
    vi.advanceTimersByTime(5);
    expect(t.closed).toHaveLength(1);
    expect(t.closed[0]! - t.state.lastIdle).toBeLessThan(PERIOD + 5);
  });

  it('Checks after grpc-js last saw the connection idle: due max connection idle after the last one', () => {
    const t = setup(Date.now() - PERIOD);
    t.table.idleSince = Date.now() - 300;
    t.fire();
    expect(t.closed).toEqual([]);
    vi.advanceTimersByTime(PERIOD - 300 - 1);
    expect(t.closed).toEqual([]);
    vi.advanceTimersByTime(2);
    expect(t.closed).toHaveLength(1);
  });

  it('a stream open when the timer fires: the idle period starts when it closes', () => {
    const t = setup(Date.now() - PERIOD);
    t.table.set(1, 'open');
    t.fire();
    expect(t.closed).toEqual([]);
    vi.advanceTimersByTime(500);
    t.table.delete(1);
    expect(t.state.lastIdle).toBe(Date.now());
    expect(t.state.timeout.refresh).toHaveBeenCalledTimes(1);
  });

  it('idle long enough: grpc-js closes it at once', () => {
    const t = setup(Date.now() - PERIOD - 10);
    t.table.idleSince = t.state.lastIdle;
    t.fire();
    expect(t.closed).toEqual([Date.now()]);
  });
});
