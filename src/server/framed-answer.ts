// An answer encoded once and served to every Check it fits (one per token, one per cached
// caller), kept in gRPC's length-prefixed message framing: a flag byte, the 4-byte length, the
// message. The node:http2 Check path writes it as it is; grpc-js frames messages itself and gets
// the message, a view without a copy. One buffer per answer: the http2 path used to keep a
// framed copy beside each encoded answer (a WeakMap), which doubled what 100 000 cached callers'
// answers hold (bench/FINDINGS.md, per-caller section).

declare const framed: unique symbol;

/** An encoded CheckResponse with its 5-byte gRPC message prefix. */
export type FramedAnswer = Buffer & { readonly [framed]: true };

/** The gRPC message prefix: a compressed-flag byte and the message's 4-byte big-endian length. */
export const PREFIX_BYTES = 5;

/** Writes the prefix of an uncompressed message of `length` bytes at the start of `out`. */
export function writePrefix(out: Buffer, length: number): void {
  out[0] = 0;
  out.writeUInt32BE(length, 1);
}

/** The gRPC message framing of `message` (uncompressed), in a new buffer (from Node's pool: it is written and dropped). */
export function frameMessage(message: Buffer): Buffer {
  return frameInto(Buffer.allocUnsafe(PREFIX_BYTES + message.length), message);
}

function frameInto(out: Buffer, message: Buffer): Buffer {
  writePrefix(out, message.length);
  message.copy(out, PREFIX_BYTES);
  return out;
}

/**
 * Frames an encoded answer that will be kept and reused, in memory of its own: a kept slice of
 * Node's shared 8 KB pool would pin the whole chunk, and whatever short-lived buffers shared it,
 * for as long as the answer lives (100 000 cached callers' answers held ~3× their size in malloc).
 */
export function framedAnswer(message: Buffer): FramedAnswer {
  return frameInto(Buffer.allocUnsafeSlow(PREFIX_BYTES + message.length), message) as FramedAnswer;
}

/** The message inside a framed answer (a view, no copy). */
export function answerMessage(a: FramedAnswer): Buffer {
  return a.subarray(PREFIX_BYTES);
}
