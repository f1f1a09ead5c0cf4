// gRPC status on node:http2: a Trailers-Only answer and the `grpc-message` encoding.
import type { ServerHttp2Stream } from 'node:http2';

/** The status codes this path sends (google.rpc.Code). */
export const Code = {
  OK: 0,
  UNKNOWN: 2,
  DEADLINE_EXCEEDED: 4,
  RESOURCE_EXHAUSTED: 8,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
} as const;

/** What every answer's headers say (grpc-js sends the same content-type). */
export const RESPONSE_CONTENT_TYPE = 'application/grpc+proto';

/**
 * `grpc-message` is percent-encoded: every UTF-8 byte outside printable ASCII, and `%` itself
 * (gRPC over HTTP/2, "Responses"). Done on the bytes so a lone surrogate cannot throw.
 */
export function encodeGrpcMessage(message: string): string {
  if (/^[\x20-\x24\x26-\x7e]*$/.test(message)) return message;
  let out = '';
  for (const b of Buffer.from(message, 'utf8')) {
    out += b >= 0x20 && b <= 0x7e && b !== 0x25 ? String.fromCharCode(b) : `%${b.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/**
 * Ends the call with a status and no message: one HEADERS frame with END_STREAM (Trailers-Only).
 * A stream that is gone or already answered gets nothing.
 */
export function sendStatusOnly(stream: ServerHttp2Stream, code: number, message: string): void {
  if (stream.destroyed || stream.closed || stream.headersSent) return;
  stream.respond({
    ':status': 200,
    'content-type': RESPONSE_CONTENT_TYPE,
    'grpc-status': String(code),
    'grpc-message': encodeGrpcMessage(message),
  }, { endStream: true });
}
