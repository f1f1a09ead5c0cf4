// One listener, two serving paths: a grpc.Server whose HTTP/2 servers hand the streams of
// chosen methods to node:http2 handlers of ours before grpc-js sees them. grpc-js keeps
// everything at the session level (TLS and mTLS, SETTINGS such as max concurrent streams and
// session memory, keepalive pings, max connection idle/age with GOAWAY, graceful shutdown) and
// every other stream (health, access logs, admin, reflection, unknown methods).
//
// It relies on two grpc-js internals, checked when the server is built and again when a
// listener is bound, so an upgrade that moves them fails at startup (ERR_STREAM_DISPATCH),
// never silently: `createHttp2Server(credentials)` builds each HTTP/2 server and attaches
// exactly one 'stream' listener to it, and `onStreamOpened(stream)` counts a stream for the
// max-connection-idle timer. Where a session has a StreamTable and grpc-js's idle timer has the
// expected shape, Check streams are not counted one by one: the timer reads the table instead
// (idle-accounting.ts says why and how).
import type { Http2Server, Http2Session, IncomingHttpHeaders, ServerHttp2Stream } from 'node:http2';
import * as grpc from '@grpc/grpc-js';
import { type GrpcJsIdleInternals, wrapIdleTimeout } from './idle-accounting.js';
import { installStreamTable, type StreamTable } from './stream-table.js';

/** Takes a stream (true) or leaves it to grpc-js (false), from its headers. */
export type StreamTaker = (stream: ServerHttp2Stream, headers: IncomingHttpHeaders) => boolean;

interface GrpcJsInternals extends Partial<GrpcJsIdleInternals> {
  createHttp2Server(credentials: grpc.ServerCredentials): Http2Server;
  onStreamOpened(stream: ServerHttp2Stream): void;
}

/**
 * The receive window of a whole connection (RFC 9113 6.9.2), instead of the 65,535 bytes nghttp2
 * starts with. Envoy multiplexes a worker's Checks on one connection; at 65,535 bytes, sixteen
 * 8 KB requests in flight already wait for WINDOW_UPDATEs: their HEADERS arrive, their DATA a
 * few loop turns later, and each stalled call's state lives long enough to be promoted out of the
 * young generation, which made Checks at 8 KB pay old-generation collections that Checks at
 * 0.4 KB do not (bench/FINDINGS.md, "Why a Check's cost grew with its size"). The per-stream
 * window stays 65,535 bytes, so one stream still cannot send more than that unread; a Check
 * stream always reads (and drops DATA after its one message), and every other stream is bounded
 * by its own window as before.
 */
export const CONNECTION_WINDOW_BYTES = 256 * 1024;

function widenConnectionWindow(session: Http2Session): void {
  try {
    session.setLocalWindowSize(CONNECTION_WINDOW_BYTES);
  } catch {
    // The session was destroyed before its first turn: nothing to widen.
  }
}

export class StreamDispatchError extends Error {
  readonly code = 'ERR_STREAM_DISPATCH';
}

type StreamListener = (stream: ServerHttp2Stream, headers: IncomingHttpHeaders, flags: number, rawHeaders: string[]) => void;

const base = grpc.Server.prototype as unknown as Partial<GrpcJsInternals>;

/**
 * Installed on one grpc.Server before it binds: wraps the server's `createHttp2Server` (an
 * own property shadowing grpc-js's method), so each HTTP/2 server it builds dispatches streams.
 */
export class StreamDispatch {
  private readonly takers = new Map<string, StreamTaker>();
  /** HTTP/2 servers grpc-js built and we re-wired (one per bound listener). */
  private wired = 0;
  /** Streams our takers served (tests read it to prove the dispatch is in place). */
  taken = 0;
  /** Sessions whose stream Map was replaced by a StreamTable (stream-table.ts says why). */
  streamTables = 0;
  /**
   * Whether max-connection-idle reads each session's StreamTable (no per-Check accounting) or,
   * when grpc-js's idle timer is not what idle-accounting.ts expects, counts Check streams one
   * by one through grpc-js's onStreamOpened.
   */
  readonly idleFromTables: boolean;
  private readonly tables = new WeakMap<Http2Session, StreamTable<unknown>>();

  constructor(server: grpc.Server) {
    const create = base.createHttp2Server;
    const opened = base.onStreamOpened;
    if (typeof create !== 'function' || typeof opened !== 'function') {
      throw new StreamDispatchError('this @grpc/grpc-js has no createHttp2Server/onStreamOpened: listen.checkServer http2 cannot be used with it; use grpc-js');
    }
    const target = server as unknown as GrpcJsInternals;
    target.createHttp2Server = (credentials) => this.wire(create.call(target, credentials), (s) => opened.call(target, s));
    const onIdle = (base as Partial<GrpcJsIdleInternals>).onIdleTimeout;
    this.idleFromTables = typeof onIdle === 'function' && target.sessionIdleTimeouts instanceof Map && typeof target.sessionIdleTimeout === 'number';
    if (this.idleFromTables) wrapIdleTimeout(target as GrpcJsIdleInternals, onIdle!, (session) => this.tables.get(session));
  }

  /** Streams for `path` go to `taker` first. */
  take(path: string, taker: StreamTaker): void {
    this.takers.set(path, taker);
  }

  /** Throws unless every listener bound so far was re-wired (call after binding). */
  assertWired(expected: number): void {
    if (this.wired !== expected) throw new StreamDispatchError(`grpc-js built ${this.wired} HTTP/2 servers for ${expected} listeners: its internals moved`);
  }

  private wire(h2: Http2Server, opened: (stream: ServerHttp2Stream) => void): Http2Server {
    const listeners = h2.listeners('stream') as StreamListener[];
    if (listeners.length !== 1) throw new StreamDispatchError(`grpc-js attached ${listeners.length} stream listeners, expected 1: its internals moved`);
    const grpcJs = listeners[0]!;
    h2.removeAllListeners('stream');
    const tables = this.tables;
    const idleFromTables = this.idleFromTables;
    h2.on('session', (session: Http2Session) => {
      widenConnectionWindow(session);
      const table = installStreamTable(session);
      if (table === undefined) return;
      this.streamTables++;
      if (idleFromTables) tables.set(session, table);
    });
    const takers = this.takers;
    h2.on('stream', (stream: ServerHttp2Stream, headers: IncomingHttpHeaders, flags: number, rawHeaders: string[]) => {
      const taker = takers.get(headers[':path'] as string);
      if (taker !== undefined && taker(stream, headers)) {
        this.taken++;
        // grpc-js's max-connection-idle timer counts open streams; ours count too: through the
        // session's StreamTable when it has one (idle-accounting.ts), else one by one.
        const session = stream.session;
        if (session === undefined || !tables.has(session)) opened(stream);
        return;
      }
      grpcJs.call(h2, stream, headers, flags, rawHeaders);
    });
    this.wired++;
    return h2;
  }
}
