// Issue #12, finding 7: clients that open connections and streams and never read their answers
// must not grow tokengate without bound, nor starve a legitimate client. The server runs as its
// own process (`tokengate serve`) so its RSS can be read from /proc; the attackers are raw
// node:http2 sessions that advertise a zero receive window, so no answer can ever be delivered.
// Against the old listener (no connection limit, grpc-js's unbounded session memory) every
// attacking connection was kept; here the limits in `listen.limits` hold.
import fs from 'node:fs';
import http2 from 'node:http2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DemoTokenServer } from '../../demo/token-server.js';
import { ccSource } from '../support/world.js';
import { envoyRequest, injected } from '../support/envoy-request.js';
import { removeTmpDir, Replica, sleep, tmpDir } from '../support/replicas.js';
import { encodeCheckRequest } from './support/raw-check.js';
import { checkServerYaml } from '../support/check-server.js';

const MAX_CONNECTIONS = 12;
const MAX_STREAMS = 40;
const ATTACK_CONNECTIONS = 30;
const STREAMS_PER_CONNECTION = 120;

function rssBytes(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m![1]) * 1024;
}

/** One gRPC frame: uncompressed flag, 4-byte length, message. */
function grpcFrame(message: Buffer): Buffer {
  const head = Buffer.alloc(5);
  head.writeUInt32BE(message.length, 1);
  return Buffer.concat([head, message]);
}

interface Attacker {
  session: http2.ClientHttp2Session;
  /** The server kept the connection long enough to send its SETTINGS. */
  accepted: boolean;
  closed: boolean;
  refused: number;
}

describe('resource bounds on the gRPC listener', () => {
  let idp: DemoTokenServer;
  let dir: string;
  let server: Replica;
  const attackers: Attacker[] = [];

  beforeAll(async () => {
    idp = new DemoTokenServer();
    await idp.start();
    dir = tmpDir('bounds');
    server = await Replica.start('bounded', `
listen:
  grpc: "127.0.0.1:0"
  admin: "off"
  limits: { maxConnections: ${MAX_CONNECTIONS}, maxConcurrentStreams: ${MAX_STREAMS}, maxSessionMemoryMb: 1, maxConnectionIdle: 2s }
${checkServerYaml()}log: { level: info }
providers:
  p:
    source: ${ccSource(idp)}
routes:
  - match: { authority: api.example.com }
    provider: p
`, dir);
    await server.ready;
  }, 30_000);

  afterAll(async () => {
    for (const a of attackers) a.session.destroy();
    await server?.stop();
    await idp?.stop();
    if (dir) removeTmpDir(dir);
  });

  it('clients that never read make memory grow without bound', async () => {
    // One legitimate client first: Envoy's connection, established before the attack.
    const probe = server.client;
    expect(injected(await probe.check(envoyRequest({ authority: 'api.example.com' })))?.header?.value).toMatch(/^Bearer /);
    const rssBefore = rssBytes(server.pid);

    const body = grpcFrame(encodeCheckRequest(envoyRequest({ authority: 'api.example.com', headers: { 'x-pad': 'p'.repeat(2_000) } })));
    for (let c = 0; c < ATTACK_CONNECTIONS; c++) {
      const session = http2.connect(`http://${server.grpcAddress}`, { settings: { initialWindowSize: 0 } });
      const a: Attacker = { session, accepted: false, closed: false, refused: 0 };
      attackers.push(a);
      session.on('remoteSettings', () => { a.accepted = true; });
      session.on('close', () => { a.closed = true; });
      session.on('error', () => undefined);
      for (let s = 0; s < STREAMS_PER_CONNECTION; s++) {
        try {
          const stream = session.request({
            ':method': 'POST', ':path': '/envoy.service.auth.v3.Authorization/Check',
            'content-type': 'application/grpc', te: 'trailers',
          });
          stream.on('error', () => undefined);
          stream.on('close', () => { if (stream.rstCode === http2.constants.NGHTTP2_REFUSED_STREAM) a.refused++; });
          stream.pause(); // never read
          stream.end(body);
        } catch {
          a.refused++;
        }
      }
    }
    await sleep(1_500);

    // Connections over the limit were closed on accept: at most MAX_CONNECTIONS are held open
    // (the probe's connection is one of them).
    const held = attackers.filter((a) => a.accepted && !a.closed).length;
    expect(held).toBeLessThanOrEqual(MAX_CONNECTIONS - 1);
    expect(attackers.filter((a) => a.closed).length).toBeGreaterThan(0);
    // The server's memory grew by a bounded amount (generous: the point is "bounded", not fast).
    const grown = rssBytes(server.pid) - rssBefore;
    expect(grown).toBeLessThan(150 * 1024 * 1024);

    // The legitimate client is still answered while the attackers hold their streams.
    const res = await probe.check(envoyRequest({ authority: 'api.example.com' }), 5_000);
    expect(injected(res)?.header?.value).toMatch(/^Bearer /);

    // The attackers leave; the server keeps serving, and a new connection is accepted again.
    for (const a of attackers) a.session.destroy();
    await sleep(500);
    const fresh = http2.connect(`http://${server.grpcAddress}`);
    const accepted = await new Promise<boolean>((resolve) => {
      fresh.once('remoteSettings', () => resolve(true));
      fresh.once('close', () => resolve(false));
      fresh.once('error', () => resolve(false));
    });
    fresh.destroy();
    expect(accepted).toBe(true);
  }, 30_000);
});
