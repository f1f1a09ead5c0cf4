// PROTOTYPE (bench only, not shipped): tokengate's Check served on node:http2 directly, without
// grpc-js's call machinery, to measure what a lean serving path would save (bench/FINDINGS.md).
// It runs tokengate's real AuthzService handler (the same request reader, lanes and answers);
// only the transport differs. What it does of the gRPC protocol: content-type check, the
// 5-byte message framing (uncompressed only), a receive size limit, exactly one request
// message, grpc-timeout as a deadline, status in trailers (Trailers-Only for errors), GOAWAY on
// close. What it leaves out: compression, grpc-js's keepalive/max-connection-age options,
// channelz, and every other service (health, access logs, admin), which stay on grpc-js.
import http2 from 'node:http2';

const CHECK = '/envoy.service.auth.v3.Authorization/Check';
const OK_HEADERS = { ':status': 200, 'content-type': 'application/grpc' };
const OK_TRAILERS = { 'grpc-status': '0' };
const UNITS = { H: 3_600_000, M: 60_000, S: 1_000, m: 1, u: 1e-3, n: 1e-6 };

/** grpc-timeout: up to 8 digits and a unit (H M S m u n); undefined when absent or malformed. */
function timeoutMs(v) {
  if (typeof v !== 'string' || v.length < 2 || v.length > 9) return undefined;
  const n = Number(v.slice(0, -1));
  const unit = UNITS[v[v.length - 1]];
  return Number.isInteger(n) && unit !== undefined ? n * unit : undefined;
}

/** grpc-message is percent-encoded for bytes outside printable ASCII and for "%" only. */
const grpcMessage = (m) => m.replace(/[^\x20-\x24\x26-\x7e]/gu, (c) => encodeURIComponent(c));

function trailersOnly(stream, code, message) {
  if (stream.destroyed || stream.headersSent) return;
  stream.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': String(code), 'grpc-message': grpcMessage(message) }, { endStream: true });
}

/**
 * @param {import('../dist/server/authz-service.js').AuthzService} authz
 * @returns {Promise<{address: string, close: () => Promise<void>}>}
 */
export async function serveCheckOverH2(authz, { maxReceiveBytes = 4 * 1024 * 1024, host = '127.0.0.1' } = {}) {
  const def = authz.serviceDefinition.Check;
  const deserialize = def.requestDeserialize;
  const serialize = def.responseSerialize;
  const sessions = new Set();
  const server = http2.createServer();
  server.on('session', (s) => {
    sessions.add(s);
    s.on('close', () => sessions.delete(s));
  });
  server.on('stream', (stream, headers) => {
    stream.on('error', () => undefined);
    if (headers[':path'] !== CHECK) return trailersOnly(stream, 12, `unimplemented: ${String(headers[':path']).slice(0, 100)}`);
    if (!String(headers['content-type'] ?? '').startsWith('application/grpc')) {
      stream.respond({ ':status': 415 }, { endStream: true });
      return;
    }
    let timer;
    const ms = timeoutMs(headers['grpc-timeout']);
    if (ms !== undefined) timer = setTimeout(() => trailersOnly(stream, 4, 'Deadline exceeded'), ms);
    let chunks = [];
    let size = 0;
    stream.on('data', (c) => {
      size += c.length;
      if (size > maxReceiveBytes + 5) {
        trailersOnly(stream, 8, 'Received message larger than max');
        chunks = [];
        stream.close(http2.constants.NGHTTP2_CANCEL);
        return;
      }
      chunks.push(c);
    });
    stream.on('end', () => {
      if (stream.headersSent || stream.destroyed) return;
      const buf = chunks.length === 1 ? chunks[0] : Buffer.concat(chunks);
      chunks = [];
      if (buf.length < 5) return trailersOnly(stream, 13, 'no request message');
      if (buf[0] !== 0) return trailersOnly(stream, 12, 'compressed messages are not supported');
      const len = buf.readUInt32BE(1);
      if (len !== buf.length - 5) return trailersOnly(stream, 13, 'expected exactly one request message');
      let request;
      try {
        request = deserialize(buf.subarray(5));
      } catch (err) {
        return trailersOnly(stream, 13, `Error deserializing request: ${err.message}`);
      }
      authz.check({ request }, (err, value) => {
        if (timer) clearTimeout(timer);
        if (stream.destroyed || stream.headersSent) return;
        if (err) return trailersOnly(stream, err.code ?? 2, err.details ?? 'error');
        const body = serialize(value);
        const frame = Buffer.allocUnsafe(5 + body.length);
        frame[0] = 0;
        frame.writeUInt32BE(body.length, 1);
        body.copy(frame, 5);
        stream.respond(OK_HEADERS, { waitForTrailers: true });
        stream.once('wantTrailers', () => stream.sendTrailers(OK_TRAILERS));
        stream.end(frame);
      });
    });
  });
  await new Promise((resolve) => server.listen(0, host, resolve));
  return {
    address: `${host}:${server.address().port}`,
    close: () => new Promise((resolve) => {
      server.close(() => resolve());
      for (const s of sessions) s.close(); // GOAWAY; open streams finish
    }),
  };
}
