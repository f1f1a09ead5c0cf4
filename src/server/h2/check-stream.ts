// One envoy.service.auth.v3.Authorization/Check call served on its node:http2 stream, without
// grpc-js's per-call machinery (bench/FINDINGS.md, "A leaner serving path"). What it takes is
// decided from the headers alone (`acceptsCheckStream`); everything else stays with grpc-js,
// which answers it exactly as before.
import { constants, type IncomingHttpHeaders, type ServerHttp2Stream } from 'node:http2';
import type * as grpc from '@grpc/grpc-js';
import { Code, RESPONSE_CONTENT_TYPE, sendStatusOnly } from './grpc-status.js';
import { DeadlineList, type Deadlined } from './deadline-list.js';
import { frameMessage } from '../framed-answer.js';
import { grpcTimeoutMs } from './grpc-timeout.js';
import { UnaryMessage } from './unary-message.js';

/** The unary handler this path runs: grpc-js's handler shape, reading only `call.request`. */
export interface UnaryHandler<Req, Res> {
  readonly deserialize: (b: Buffer) => Req;
  readonly serialize: (v: Res) => Buffer;
  /** The answer's bytes already in gRPC message framing, when it was encoded once ahead (src/server/framed-answer.ts). */
  readonly framed?: (v: Res) => Buffer | undefined;
  readonly handle: (call: { readonly request: Req }, callback: (err: grpc.ServiceError | null, value?: Res) => void) => void;
}

const OK_HEADERS = Object.freeze({ ':status': 200, 'content-type': RESPONSE_CONTENT_TYPE, 'grpc-accept-encoding': 'identity,deflate,gzip' });
const OK_TRAILERS = Object.freeze({ 'grpc-status': '0' });

/** A `wantTrailers` listener shared by every stream (`this` is the stream). */
function sendOkTrailers(this: ServerHttp2Stream): void {
  this.sendTrailers(OK_TRAILERS);
}

const noop = (): void => undefined;

/** What a call needs of the CheckStreams serving it. */
interface CallOwner {
  readonly deadlines: DeadlineList;
  readonly maxMessageBytes: number;
  readonly path: string;
  run(call: CheckCall, payload: Buffer): void;
}

/**
 * One Check being served: its state lives here, found from the stream, so the stream's
 * listeners are functions shared by every call rather than closures made for each.
 */
class CheckCall implements Deadlined {
  /** Set once the request is complete or refused: later DATA is read and dropped, so a client
   * that keeps sending cannot make us buffer it. */
  closed = false;
  halfClosed = false;
  readonly message: UnaryMessage;
  deadlineAt = 0;
  prev: Deadlined | undefined = undefined;
  next: Deadlined | undefined = undefined;

  constructor(readonly owner: CallOwner, readonly stream: ServerHttp2Stream) {
    this.message = new UnaryMessage(owner.maxMessageBytes, owner.path);
  }

  end(code: number, details: string): void {
    this.closed = true;
    this.owner.deadlines.remove(this);
    const stream = this.stream;
    sendStatusOnly(stream, code, details);
    // Answered before the client finished sending: ask it to stop, without error, once the
    // status is out (RFC 9113 8.1), so a client that never half-closes cannot hold the stream.
    if (!this.halfClosed && !stream.destroyed) stream.close(constants.NGHTTP2_NO_ERROR);
  }

  expire(): void {
    this.end(Code.DEADLINE_EXCEEDED, 'Deadline exceeded');
  }
}

const kCall = Symbol('tokengate.checkCall');
type CallStream = ServerHttp2Stream & { [kCall]: CheckCall };

function onData(this: CallStream, chunk: Buffer): void {
  const call = this[kCall];
  if (call.closed) return;
  const err = call.message.push(chunk);
  if (err !== undefined) call.end(err.code, err.message);
}

function onEnd(this: CallStream): void {
  const call = this[kCall];
  call.halfClosed = true;
  if (call.closed) return;
  call.closed = true;
  const payload = call.message.finish();
  if (!Buffer.isBuffer(payload)) return call.end(payload.code, payload.message);
  call.owner.run(call, payload);
}

export class CheckStreams<Req, Res> implements CallOwner {
  /** `grpc-timeout` deadlines of the Checks in flight, behind one timer. */
  readonly deadlines = new DeadlineList();
  readonly maxMessageBytes: number;
  readonly path: string;

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
    const call = new CheckCall(this, stream);
    (stream as CallStream)[kCall] = call;
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
  run(call: CheckCall, payload: Buffer): void {
    let request: Req;
    try {
      request = this.handler.deserialize(payload);
    } catch {
      // grpc-js's words (the reader's own reason is not sent unless grpc-js is told to).
      return call.end(Code.INTERNAL, 'Error deserializing request');
    }
    this.handler.handle({ request }, (err, value) => {
      this.deadlines.remove(call);
      this.answer(call.stream, err, value);
    });
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
    stream.respond(OK_HEADERS, { waitForTrailers: true });
    // 'wantTrailers' is emitted once per stream: `on` spares the wrapper `once` allocates.
    stream.on('wantTrailers', sendOkTrailers);
    stream.end(frame);
  }
}
