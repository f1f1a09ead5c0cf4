// Max connection idle (`limits.maxConnectionIdle`) for connections that carry Checks served on
// node:http2, without a cost per Check.
//
// grpc-js closes a session that has had no open stream for maxConnectionIdle: it counts streams
// with `onStreamOpened(stream)` (a `once('close')` listener per stream, i.e. a wrapper closure
// and its state) and `onStreamClose(session)` (a trace string built on every drop to zero
// streams, tracing on or off): ~280 B a Check that the platform's limit does not allocate
// (bench/FINDINGS.md, "What the tail at 5,000/s is made of"). A session's StreamTable
// (stream-table.ts) already sees every stream open and close, so the idle time can be read from
// it instead, when grpc-js's idle timer fires (once per idle period, not per Check):
//
// - streams are open: the idle period has not started; it starts when the last one closes
//   (the table calls back once), exactly as grpc-js's own accounting would have started it;
// - none are open: the connection is due max connection idle after the later of `idleSince`
//   (the last stream closed) and grpc-js's own `lastIdle`; before then the rest is waited out
//   here, not a whole period (what grpc-js does with a timer that fires early);
// - otherwise (due) grpc-js decides, as it always has (close, or wait for its own streams).
//
// This relies on grpc-js internals beyond the two stream-dispatch.ts names: `onIdleTimeout(ctx,
// session)` as the timer's callback, read from the server when a session starts, and
// `sessionIdleTimeouts` (session → { activeStreams, lastIdle, timeout }). `wrapIdleTimeout`
// checks them when the server is built; `idleStateOf` checks a session's entry when its timer
// fires and, if it does not have that shape, leaves the decision to grpc-js.
import type { Http2Session } from 'node:http2';
import type { StreamTable } from './stream-table.js';

interface IdleState {
  activeStreams: number;
  lastIdle: number;
  timeout: { refresh(): unknown };
}

/** The grpc-js server internals used here. */
export interface GrpcJsIdleInternals {
  sessionIdleTimeout: number;
  sessionIdleTimeouts: Map<Http2Session, unknown>;
  onIdleTimeout(ctx: GrpcJsIdleInternals, session: Http2Session): void;
}

function idleStateOf(ctx: GrpcJsIdleInternals, session: Http2Session): IdleState | undefined {
  const s = ctx.sessionIdleTimeouts.get(session) as Partial<IdleState> | undefined;
  if (s === undefined || typeof s.lastIdle !== 'number' || typeof s.timeout?.refresh !== 'function') return undefined;
  return s as IdleState;
}

/**
 * Replaces the server's `onIdleTimeout` (an own property shadowing grpc-js's method) with one
 * that reads a session's stream table first. `tableOf` gives the StreamTable of a session, or
 * undefined for a session without one (its Check streams are then counted per stream, as before).
 */
export function wrapIdleTimeout(server: GrpcJsIdleInternals, original: GrpcJsIdleInternals['onIdleTimeout'], tableOf: (session: Http2Session) => StreamTable<unknown> | undefined): void {
  const fire = (ctx: GrpcJsIdleInternals, session: Http2Session): void => {
    const table = tableOf(session);
    const state = table === undefined ? undefined : idleStateOf(ctx, session);
    if (table === undefined || state === undefined) return original.call(ctx, ctx, session);
    if (table.size > 0) {
      // Streams open: the idle period starts when the last one closes.
      table.onEmpty = () => {
        state.lastIdle = Date.now();
        state.timeout.refresh();
      };
      return;
    }
    if (table.idleSince > state.lastIdle) state.lastIdle = table.idleSince;
    // Not due yet (Checks closed after grpc-js last saw the connection idle, or a timer fired a
    // millisecond early: Node's timers and Date.now() disagree by that much): wait out the rest
    // here. grpc-js would re-arm a whole period and close the connection that much late.
    const dueInMs = state.lastIdle + ctx.sessionIdleTimeout - Date.now();
    if (dueInMs > 0) {
      setTimeout(fire, dueInMs + 1, ctx, session).unref();
      return;
    }
    original.call(ctx, ctx, session);
  };
  server.onIdleTimeout = fire;
}
