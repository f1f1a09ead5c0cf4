// What a lean gRPC call over HTTP/2 sends, shared by the load generator's two lean callers
// (node:http2's client in h2-caller.js, raw frames in raw-h2.js): the same path, the same
// headers, the same framed request bytes, and the same way of reporting back to the open loop.
// No import of the built server here, so tests can load the callers without a build.

export const CHECK_METHOD = '/envoy.service.auth.v3.Authorization/Check';

// As Envoy's own gRPC client sends them: every ext_authz call carries its timeout as
// grpc-timeout (200 ms by default in Envoy; generous here so a loaded machine does not turn
// saturation into DEADLINE_EXCEEDED), so the server under test pays for a deadline per call.
export const H2_HEADERS = Object.freeze({ ':method': 'POST', ':path': CHECK_METHOD, 'content-type': 'application/grpc', te: 'trailers', 'grpc-timeout': '10S' });

/**
 * A caller's `send(frame, done, index)` calls `done(err)` with `this` an object whose [kIndex]
 * is `index`: one shared callback serves every call, no closure per call (the generator's own
 * garbage is scavenged in some target's window, and its pause is then that target's tail).
 */
export const kIndex = Symbol('index');

const FRAMED = new WeakMap();
/** The gRPC message prefix and the message, built once per request buffer (a copy per call was the generator's own garbage). */
export function framed(buf) {
  let frame = FRAMED.get(buf);
  if (frame === undefined) {
    frame = Buffer.allocUnsafe(5 + buf.length);
    frame[0] = 0;
    frame.writeUInt32BE(buf.length, 1);
    buf.copy(frame, 5);
    FRAMED.set(buf, frame);
  }
  return frame;
}
