// One envoy.service.auth.v3.Authorization/Check call served on its node:http2 stream, without
// grpc-js's per-call machinery (bench/FINDINGS.md, "A leaner serving path"). What it takes is
// decided from the headers alone (`acceptsCheckStream`); everything else stays with grpc-js,
// which answers it exactly as before. A Check's state is a pooled CheckCall (call-pool.ts): the hit
// path allocates nothing of ours per Check (bench/FINDINGS.md, "What a Check allocates").
import { constants, type IncomingHttpHeaders, type ServerHttp2Stream } from 'node:http2';
import type * as grpc from '@grpc/grpc-js';
import { Code, RESPONSE_CONTENT_TYPE, sendStatusOnly } from './grpc-status.js';
import { CallPool } from './call-pool.js';
import { DeadlineList, type Deadlined } from './deadline-list.js';
import { frameMessage } from '../framed-answer.js';
import { grpcTimeoutMs } from './grpc-timeout.js';
import { UnaryMessage } from './unary-message.js';

/** The unary handler this path runs: grpc-js's handler shape, reading only `call.request`. */
export interface UnaryHandler<Req, Res> {
  readonly deserialize: (b: Buffer) => Req;
  /** Reads requests where they lie, into a holder each pooled call keeps; else `deserialize` of a view. */
  readonly inPlace?: InPlaceReads<Req>;
  readonly serialize: (v: Res) => Buffer;
  /** The answer's bytes already in gRPC message framing, when it was encoded once ahead (src/server/framed-answer.ts). */
  readonly framed?: (v: Res) => Buffer | undefined;
  /**
   * Calls back once (grpc-js's contract too); after that it reads neither `call` nor
   * `call.request` again: both serve another Check then.
   */
  readonly handle: (call: { readonly request: Req }, callback: Callback<Res>) => void;
}

type Callback<Res> = (err: grpc.ServiceError | null, value?: Res) => void;

/** Reading a request in place into a holder that a pooled call keeps (check-request-reader.ts, readInto). */
export interface InPlaceReads<Req> {
  /** The message at buf[start, end), read into `reuse` when given (this call's holder, read by nobody any more). */
  readonly readInto: (buf: Buffer, start: number, end: number, reuse: Req | undefined) => Req;
  /** Lets a holder go of its request: an idle call keeps no request buffer alive. */
  readonly clear: (req: Req) => void;
}

const OK_HEADERS = Object.freeze({ ':status': 200, 'content-type': RESPONSE_CONTENT_TYPE, 'grpc-accept-encoding': 'identity,deflate,gzip' });
const OK_TRAILERS = Object.freeze({ 'grpc-status': '0' });
/** respond() copies its options: one object for every answer. */
const RESPOND_WITH_TRAILERS = Object.freeze({ waitForTrailers: true });

/** A `wantTrailers` listener shared by every stream (`this` is the stream). */
function sendOkTrailers(this: ServerHttp2Stream): void {
  this.sendTrailers(OK_TRAILERS);
}

const noop = (): void => undefined;

/**
 * One Check being served, found from its stream (so the stream's listeners are functions shared
 * by every call), and, once done, kept in a pool for the next one. It is done, and given back,
 * when its status is out (or cannot be sent) and the handler is not holding it: whichever of
 * the answer and the handler's callback comes last gives it back. Giving it back unlinks it from
 * its stream first, so events of the old stream that come later find no call and are dropped.
 */
class CheckCall<Req, Res> implements Deadlined {
  stream: ServerHttp2Stream | undefined = undefined;
  /** Set once the request is complete or refused: later DATA is read and dropped, so a client
   * that keeps sending cannot make us buffer it. */
  closed = false;
  halfClosed = false;
  /** A status was sent, or tried (a reset stream gets none): nothing more may be written. */
  answered = false;
  /** The handler has this call and has not called back. */
  handling = false;
  readonly message: UnaryMessage;
  /** The request's holder: kept from Check to Check when the handler reads in place. */
  held: Req | undefined = undefined;
  deadlineAt = 0;
  prev: Deadlined | undefined = undefined;
  next: Deadlined | undefined = undefined;
  /** The handler's callback: one function per pooled call, not a closure per Check. */
  readonly done: Callback<Res>;

  constructor(readonly owner: CheckStreams<Req, Res>) {
    this.message = new UnaryMessage(owner.maxMessageBytes, owner.path);
    this.done = (err, value) => owner.done(this, err, value);
  }

  /** What the handler reads (set before it runs). */
  get request(): Req {
    return this.held!;
  }

  end(code: number, details: string): void {
    this.closed = true;
    this.answered = true;
    this.owner.deadlines.remove(this);
    const stream = this.stream!;
    sendStatusOnly(stream, code, details);
    // Answered before the client finished sending: ask it to stop, without error, once the
    // status is out (RFC 9113 8.1), so a client that never half-closes cannot hold the stream.
    if (!this.halfClosed && !stream.destroyed) stream.close(constants.NGHTTP2_NO_ERROR);
    if (!this.handling) this.owner.release(this);
  }

  expire(): void {
    this.end(Code.DEADLINE_EXCEEDED, 'Deadline exceeded');
  }
}

const kCall = Symbol('tokengate.checkCall');
/** `undefined` once the call was given back: the stream's later events are dropped. */
type CallStream = ServerHttp2Stream & { [kCall]: CheckCall<unknown, unknown> | undefined };

function onData(this: CallStream, chunk: Buffer): void {
  const call = this[kCall];
  if (call === undefined || call.closed) return;
  const err = call.message.push(chunk);
  if (err !== undefined) call.end(err.code, err.message);
}

function onEnd(this: CallStream): void {
  const call = this[kCall];
  if (call === undefined) return;
  call.halfClosed = true;
  if (call.closed) return;
  call.closed = true;
  const err = call.message.finish();
  if (err !== undefined) return call.end(err.code, err.message);
  call.owner.run(call);
}

export class CheckStreams<Req, Res> {
  /** `grpc-timeout` deadlines of the Checks in flight, behind one timer. */
  readonly deadlines = new DeadlineList();
  readonly maxMessageBytes: number;
  readonly path: string;
  /** Calls that are done, for the next Checks (tests read `size`). */
  readonly pool = new CallPool<CheckCall<Req, Res>>();

  constructor(path: string, private readonly handler: UnaryHandler<Req, Res>, maxMessageBytes: number) {
    this.path = path;
    this.maxMessageBytes = maxMessageBytes;
  }

  /**
   * Takes the stream when its headers ask for what this path implements: a gRPC content-type,
   * no compression and a well-formed `grpc-timeout` (if any). Otherwise returns false and
   * grpc-js serves the stream (415, decompression, INTERNAL for a bad timeout) as it always has.
   */
  accept(stream: ServerHttp2Stream, headers: IncomingHttpHeaders): boolean {
    const contentType = headers['content-type'];
    if (typeof contentType !== 'string' || !contentType.startsWith('application/grpc')) return false;
    const encoding = headers['grpc-encoding'];
    if (encoding !== undefined && encoding !== 'identity') return false;
    const timeoutMs = grpcTimeoutMs(headers['grpc-timeout']);
    if (timeoutMs === null) return false;
    this.serve(stream, timeoutMs);
    return true;
  }

  private serve(stream: ServerHttp2Stream, timeoutMs: number | undefined): void {
    const call = this.pool.take() ?? new CheckCall(this);
    call.stream = stream;
    (stream as CallStream)[kCall] = call as CheckCall<unknown, unknown>;
    // Errors (a reset, a session torn down) are followed by 'close'; nothing to answer then.
    stream.on('error', noop);
    if (timeoutMs !== undefined) {
      call.deadlineAt = performance.now() + timeoutMs;
      this.deadlines.add(call);
    }
    stream.on('data', onData);
    stream.on('end', onEnd);
  }

  /** The request is complete: read it and run the handler. */
  run(call: CheckCall<Req, Res>): void {
    const m = call.message;
    try {
      const inPlace = this.handler.inPlace;
      call.held = inPlace !== undefined ? inPlace.readInto(m.buffer, m.start, m.end, call.held) : this.handler.deserialize(m.buffer.subarray(m.start, m.end));
    } catch {
      // grpc-js's words (the reader's own reason is not sent unless grpc-js is told to).
      return call.end(Code.INTERNAL, 'Error deserializing request');
    }
    call.handling = true;
    // The hit path calls back before this returns, and the call may then serve another Check:
    // nothing here touches it after.
    this.handler.handle(call, call.done);
  }

  /** The handler's callback for `call`. */
  done(call: CheckCall<Req, Res>, err: grpc.ServiceError | null, value: Res | undefined): void {
    if (!call.handling) return; // a second callback: the first one answered
    call.handling = false;
    if (!call.answered) {
      call.answered = true;
      this.answer(call.stream!, err, value);
    }
    this.release(call); // takes the deadline out too (nothing can expire during a synchronous answer)
  }

  /** Unlinks a done call from its stream and request, and keeps it for the next Check. */
  release(call: CheckCall<Req, Res>): void {
    this.deadlines.remove(call); // a pooled call is never in the deadline list
    (call.stream as CallStream)[kCall] = undefined;
    call.stream = undefined;
    call.message.reset();
    const held = call.held;
    if (held !== undefined) {
      if (this.handler.inPlace !== undefined) this.handler.inPlace.clear(held);
      else call.held = undefined;
    }
    call.closed = false;
    call.halfClosed = false;
    call.answered = false;
    call.deadlineAt = 0;
    this.pool.give(call);
  }

  private answer(stream: ServerHttp2Stream, err: grpc.ServiceError | null, value: Res | undefined): void {
    // Cancelled, reset, or the deadline already answered: nothing may be written.
    if (stream.destroyed || stream.closed || stream.headersSent) return;
    if (err) return sendStatusOnly(stream, err.code ?? Code.UNKNOWN, err.details ?? err.message);
    let frame: Buffer;
    try {
      frame = this.handler.framed?.(value as Res) ?? frameMessage(this.handler.serialize(value as Res));
    } catch {
      return sendStatusOnly(stream, Code.INTERNAL, 'Error serializing response');
    }
    stream.respond(OK_HEADERS, RESPOND_WITH_TRAILERS);
    // 'wantTrailers' is emitted once per stream: `on` spares the wrapper `once` allocates.
    stream.on('wantTrailers', sendOkTrailers);
    stream.end(frame);
  }
}
