// One envoy.service.auth.v3.Authorization/Check call served on its node:http2 stream, without
// grpc-js's per-call machinery (bench/FINDINGS.md, "A leaner serving path"). What it takes is
// decided from the headers alone (`acceptsCheckStream`); everything else stays with grpc-js,
// which answers it exactly as before.
import { constants, type IncomingHttpHeaders, type ServerHttp2Stream } from 'node:http2';
import type * as grpc from '@grpc/grpc-js';
import { Code, RESPONSE_CONTENT_TYPE, sendStatusOnly } from './grpc-status.js';
import { grpcTimeoutMs } from './grpc-timeout.js';
import { UnaryMessage } from './unary-message.js';

/** The unary handler this path runs: grpc-js's handler shape, reading only `call.request`. */
export interface UnaryHandler<Req, Res> {
  readonly deserialize: (b: Buffer) => Req;
  readonly serialize: (v: Res) => Buffer;
  readonly handle: (call: { readonly request: Req }, callback: (err: grpc.ServiceError | null, value?: Res) => void) => void;
}

const OK_HEADERS = Object.freeze({ ':status': 200, 'content-type': RESPONSE_CONTENT_TYPE, 'grpc-accept-encoding': 'identity,deflate,gzip' });
const OK_TRAILERS = Object.freeze({ 'grpc-status': '0' });

/** A `wantTrailers` listener shared by every stream (`this` is the stream). */
function sendOkTrailers(this: ServerHttp2Stream): void {
  this.sendTrailers(OK_TRAILERS);
}

const noop = (): void => undefined;

/**
 * The 5-byte framed form of an encoded message. Pre-encoded answers (one per token) are framed
 * once; a WeakMap lets them go when the token does.
 */
class Framer {
  private readonly framed = new WeakMap<Buffer, Buffer>();

  frame(body: Buffer, reuse: boolean): Buffer {
    let out = reuse ? this.framed.get(body) : undefined;
    if (out !== undefined) return out;
    out = Buffer.allocUnsafe(5 + body.length);
    out[0] = 0;
    out.writeUInt32BE(body.length, 1);
    body.copy(out, 5);
    if (reuse) this.framed.set(body, out);
    return out;
  }
}

export class CheckStreams<Req, Res> {
  private readonly framer = new Framer();

  constructor(private readonly path: string, private readonly handler: UnaryHandler<Req, Res>, private readonly maxMessageBytes: number) {}

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
    const message = new UnaryMessage(this.maxMessageBytes, this.path);
    // Set once the request is complete or refused: later DATA is read and dropped, so a client
    // that keeps sending cannot make us buffer it.
    let closed = false;
    let halfClosed = false;
    let timer: NodeJS.Timeout | undefined;
    const end = (code: number, details: string): void => {
      closed = true;
      if (timer !== undefined) clearTimeout(timer);
      sendStatusOnly(stream, code, details);
      // Answered before the client finished sending: ask it to stop, without error, once the
      // status is out (RFC 9113 8.1), so a client that never half-closes cannot hold the stream.
      if (!halfClosed && !stream.destroyed) stream.close(constants.NGHTTP2_NO_ERROR);
    };
    // Errors (a reset, a session torn down) are followed by 'close'; nothing to answer then.
    stream.on('error', noop);
    if (timeoutMs !== undefined) timer = setTimeout(end, timeoutMs, Code.DEADLINE_EXCEEDED, 'Deadline exceeded');
    stream.on('data', (chunk: Buffer) => {
      if (closed) return;
      const err = message.push(chunk);
      if (err !== undefined) end(err.code, err.message);
    });
    stream.on('end', () => {
      halfClosed = true;
      if (closed) return;
      closed = true;
      const payload = message.finish();
      if (!Buffer.isBuffer(payload)) return end(payload.code, payload.message);
      let request: Req;
      try {
        request = this.handler.deserialize(payload);
      } catch {
        // grpc-js's words (the reader's own reason is not sent unless grpc-js is told to).
        return end(Code.INTERNAL, 'Error deserializing request');
      }
      this.handler.handle({ request }, (err, value) => {
        if (timer !== undefined) clearTimeout(timer);
        this.answer(stream, err, value);
      });
    });
  }

  private answer(stream: ServerHttp2Stream, err: grpc.ServiceError | null, value: Res | undefined): void {
    // Cancelled, reset, or the deadline already answered: nothing may be written.
    if (stream.destroyed || stream.closed || stream.headersSent) return;
    if (err) return sendStatusOnly(stream, err.code ?? Code.UNKNOWN, err.details ?? err.message);
    let frame: Buffer;
    try {
      const body = this.handler.serialize(value as Res);
      frame = this.framer.frame(body, Buffer.isBuffer(value));
    } catch {
      return sendStatusOnly(stream, Code.INTERNAL, 'Error serializing response');
    }
    stream.respond(OK_HEADERS, { waitForTrailers: true });
    // 'wantTrailers' is emitted once per stream: `on` spares the wrapper `once` allocates.
    stream.on('wantTrailers', sendOkTrailers);
    stream.end(frame);
  }
}
