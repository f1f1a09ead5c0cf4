// Collects the one request message of a unary gRPC call from its DATA chunks, with the
// framing rules grpc-js applies: a declared length over the limit is refused before anything is
// buffered, a second message is refused as soon as it is complete, and no message is refused at
// half-close. Only the first message's bytes are kept; nothing else is buffered. The message is
// kept as a span of the buffer it arrived in, not a view of it (a Buffer view is ~90 bytes per
// Check); one UnaryMessage serves call after call (`reset`, check-stream.ts's pool).
import { Code } from './grpc-status.js';

/** A reason to end the call instead of answering it. */
export interface FramingError {
  readonly code: number;
  readonly message: string;
}

const PREFIX = 5;

export class UnaryMessage {
  /** The first message (prefix included) while it is incomplete. */
  private buf: Buffer | undefined = undefined;
  private have = 0;
  /** The first message's payload, once complete: buffer[start, end). */
  private payloadBuf: Buffer | undefined = undefined;
  private payloadStart = 0;
  private payloadEnd = 0;
  /** Bytes of later frames: the prefix bytes seen and what their frame still lacks. */
  private extraPrefix = 0;
  // Made when a second frame starts (rare): not a Buffer per call. Kept across resets (scratch).
  private extraPrefixBuf: Buffer | undefined = undefined;
  private extraLeft = 0;

  constructor(private readonly maxBytes: number, private readonly path: string) {}

  /** Ready for another call's message: nothing of the last one is kept (no buffer stays reachable). */
  reset(): void {
    this.buf = undefined;
    this.have = 0;
    this.payloadBuf = undefined;
    this.payloadStart = 0;
    this.payloadEnd = 0;
    this.extraPrefix = 0;
    this.extraLeft = 0;
  }

  /** Takes one DATA chunk; a FramingError ends the call. */
  push(chunk: Buffer): FramingError | undefined {
    if (this.payloadBuf !== undefined) return this.pushExtra(chunk, 0);
    // The usual case: the whole frame in one chunk, kept without a copy or a view.
    if (this.have === 0 && chunk.length >= PREFIX) {
      const len = chunk.readUInt32BE(1);
      if (len > this.maxBytes) return this.tooLarge(len);
      if (chunk.length >= PREFIX + len) {
        const err = this.complete(chunk[0]!, chunk, PREFIX, PREFIX + len);
        return err ?? (chunk.length > PREFIX + len ? this.pushExtra(chunk, PREFIX + len) : undefined);
      }
    }
    return this.gather(chunk);
  }

  /**
   * At half-close: undefined when the message is complete (its bytes: `buffer`, `start`,
   * `end`), or why there is none.
   */
  finish(): FramingError | undefined {
    // A partial frame after a complete message is ignored, as grpc-js ignores it.
    if (this.payloadBuf !== undefined) return undefined;
    return { code: Code.UNIMPLEMENTED, message: `Received no request message for server streaming method ${this.path}` };
  }

  /** The buffer holding the complete message (after `finish` returned undefined). */
  get buffer(): Buffer {
    return this.payloadBuf!;
  }

  get start(): number {
    return this.payloadStart;
  }

  get end(): number {
    return this.payloadEnd;
  }

  private gather(chunk: Buffer): FramingError | undefined {
    let off = 0;
    if (this.have < PREFIX) {
      // Until the prefix is known, keep at most its 5 bytes.
      const prefix = (this.buf ??= Buffer.allocUnsafe(PREFIX));
      off = Math.min(PREFIX - this.have, chunk.length);
      chunk.copy(prefix, this.have, 0, off);
      this.have += off;
      if (this.have < PREFIX) return undefined;
      const len = prefix.readUInt32BE(1);
      if (len > this.maxBytes) return this.tooLarge(len);
      const whole = Buffer.allocUnsafe(PREFIX + len);
      prefix.copy(whole);
      this.buf = whole;
    }
    const whole = this.buf!;
    const take = Math.min(whole.length - this.have, chunk.length - off);
    chunk.copy(whole, this.have, off, off + take);
    this.have += take;
    off += take;
    if (this.have < whole.length) return undefined;
    this.buf = undefined;
    return this.complete(whole[0]!, whole, PREFIX, whole.length) ?? (off < chunk.length ? this.pushExtra(chunk, off) : undefined);
  }

  private complete(flags: number, buf: Buffer, start: number, end: number): FramingError | undefined {
    // grpc-encoding was absent or identity (other encodings are served by grpc-js), so a set
    // compressed flag contradicts the headers: a protocol error (gRPC over HTTP/2).
    if (flags === 1) return { code: Code.INTERNAL, message: 'Compressed message received but grpc-encoding is identity' };
    this.payloadBuf = buf;
    this.payloadStart = start;
    this.payloadEnd = end;
    return undefined;
  }

  /** Bytes after the first message: counted, never kept. A complete second frame is refused. */
  private pushExtra(chunk: Buffer, off: number): FramingError | undefined {
    while (off < chunk.length) {
      if (this.extraPrefix < PREFIX) {
        const prefix = (this.extraPrefixBuf ??= Buffer.allocUnsafe(PREFIX));
        prefix[this.extraPrefix++] = chunk[off++]!;
        if (this.extraPrefix < PREFIX) continue;
        const len = prefix.readUInt32BE(1);
        if (len > this.maxBytes) return this.tooLarge(len);
        this.extraLeft = len;
      }
      const take = Math.min(this.extraLeft, chunk.length - off);
      this.extraLeft -= take;
      off += take;
      if (this.extraLeft === 0) {
        return { code: Code.UNIMPLEMENTED, message: `Received a second request message for server streaming method ${this.path}` };
      }
    }
    return undefined;
  }

  private tooLarge(len: number): FramingError {
    return { code: Code.RESOURCE_EXHAUSTED, message: `Received message larger than max (${len} vs ${this.maxBytes})` };
  }
}
