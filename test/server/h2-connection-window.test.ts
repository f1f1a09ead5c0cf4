// The HTTP/2 connection receive window on the node:http2 Check path: wide enough that a
// connection's Checks of browser-like size in flight do not wait for WINDOW_UPDATEs (a stalled
// Check lives long enough to be promoted out of the young generation; bench/FINDINGS.md).
import http2 from 'node:http2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CONNECTION_WINDOW_BYTES } from '../../src/server/h2/stream-dispatch.js';
import { staticTokenApp, type TestApp } from '../support/app.js';
import { envoyRequest, injected } from '../support/envoy-request.js';
import { decodeCheckResponse, encodeCheckRequest } from '../security/support/raw-check.js';

const CHECK = '/envoy.service.auth.v3.Authorization/Check';
const TOKEN = 'static-token-for-window-tests';
/** Node's (nghttp2's) initial connection window, which the Check path widens. */
const DEFAULT_WINDOW = 65_535;

function frame(message: Buffer): Buffer {
  const head = Buffer.alloc(5);
  head.writeUInt32BE(message.length, 1);
  return Buffer.concat([head, message]);
}

function check(session: http2.ClientHttp2Session, body: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const req = session.request({ ':method': 'POST', ':path': CHECK, 'content-type': 'application/grpc', te: 'trailers' });
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('error', reject);
    req.on('close', () => resolve(Buffer.concat(chunks)));
    req.end(body);
  });
}

/** Connected, and one round trip later: the server's SETTINGS and first WINDOW_UPDATE are in. */
async function roundTrip(s: http2.ClientHttp2Session): Promise<void> {
  if (s.connecting) await new Promise<void>((resolve, reject) => s.once('connect', () => resolve()).once('error', reject));
  await new Promise<void>((resolve, reject) => s.ping((err) => (err ? reject(err) : resolve())));
}

function app(checkServer: string): Promise<TestApp> {
  return staticTokenApp(TOKEN, `checkServer: ${checkServer}`);
}

describe('HTTP/2 connection window on the node:http2 Check path', () => {
  let t: TestApp;
  let grpcJs: TestApp;
  beforeAll(async () => {
    t = await app('http2');
    grpcJs = await app('grpc-js');
  });
  afterAll(async () => {
    await t?.close();
    await grpcJs?.close();
  });

  it('opens every connection with a wide receive window, so sixteen 8 KB Checks fit in flight at once', async () => {
    const s = http2.connect(`http://${t.app.grpcAddress}`);
    try {
      await roundTrip(s);
      // What this client may send before the server returns any window: the server's window.
      expect(s.state.remoteWindowSize).toBe(CONNECTION_WINDOW_BYTES);
      expect(CONNECTION_WINDOW_BYTES).toBeGreaterThanOrEqual(16 * (8 * 1024 + 5 + 9));
      // Sixteen Checks of ~8 KB, all written at once: every one is answered.
      const cookie = 'c'.repeat(8 * 1024);
      const body = frame(encodeCheckRequest(envoyRequest({ authority: 'api.example.com', headers: { cookie } })));
      expect(body.length).toBeGreaterThan(8 * 1024);
      const answers = await Promise.all(Array.from({ length: 16 }, () => check(s, body)));
      for (const a of answers) expect(injected(decodeCheckResponse(a.subarray(5)))?.header?.value).toBe(`Bearer ${TOKEN}`);
    } finally {
      s.close();
    }
  });

  it("leaves the grpc-js serving path at node's default window (it has no hook for sessions)", async () => {
    const s = http2.connect(`http://${grpcJs.app.grpcAddress}`);
    try {
      await roundTrip(s);
      expect(s.state.remoteWindowSize).toBe(DEFAULT_WINDOW);
    } finally {
      s.close();
    }
  });
});
