// The slow-reader attack of issue #12 (finding 7): CONNS connections × STREAMS streams of Check
// whose answers are never read (a zero receive window), against a real `tokengate serve` with the
// default listen.limits. Prints the server's RSS before, during and after, and a probe Check's
// latency during the attack. Loopback only; bounded in count and time.
//
//   npm run build && npm run build:demo && CONNS=600 STREAMS=1000 node bench/slow-reader.js
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http2 from 'node:http2';
import os from 'node:os';
import path from 'node:path';
import { authorizationServiceDefinition } from '../dist/server/protos.js';
import { DemoTokenServer } from '../dist-demo/token-server.js';

const CONNS = Number(process.env.CONNS ?? 600);
const STREAMS = Number(process.env.STREAMS ?? 1000);
const cli = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../dist/cli.js');
// Refused connections end in EPIPE/ECONNRESET on sockets the attack no longer watches.
process.on('uncaughtException', (err) => { if (!['EPIPE', 'ECONNRESET'].includes(err.code)) throw err; });
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const rss = (pid) => Number(/VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))[1]) / 1024;

const idp = new DemoTokenServer();
await idp.start();
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tokengate-slow-reader-'));
fs.writeFileSync(path.join(dir, 'c.yaml'), `
listen: { grpc: "127.0.0.1:0", admin: "off" }
providers:
  p:
    source: { type: client_credentials, tokenUrl: "${idp.tokenUrl}", clientId: demo-client, clientSecret: "\${env:S}" }
routes:
  - match: { authority: api.example.com }
    provider: p
`);
const proc = spawn(process.execPath, ['--max-semi-space-size=2', cli, 'serve', '--config', path.join(dir, 'c.yaml')], { env: { ...process.env, S: 'demo-secret' }, stdio: ['ignore', 'pipe', 'inherit'] });
const address = await new Promise((resolve) => {
  let buf = '';
  proc.stdout.on('data', (d) => {
    buf += d;
    const m = /"msg":"tokengate listening".*?"grpc":"([^"]+)"/.exec(buf);
    if (m) resolve(m[1]);
  });
});
await sleep(1000);

const def = authorizationServiceDefinition().Check;
const req = { attributes: { request: { http: { host: 'api.example.com', path: '/', method: 'GET', headers: { ':authority': 'api.example.com', cookie: 'c'.repeat(1500) } } } } };
const msg = def.requestSerialize(req);
const frame = Buffer.concat([Buffer.from([0, 0, 0, 0, 0]), msg]);
frame.writeUInt32BE(msg.length, 1);

function check(session) {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const s = session.request({ ':method': 'POST', ':path': '/envoy.service.auth.v3.Authorization/Check', 'content-type': 'application/grpc', te: 'trailers' });
    s.on('data', () => undefined);
    s.on('end', () => resolve(performance.now() - t0));
    s.on('error', reject);
    s.end(frame);
  });
}

const probe = http2.connect(`http://${address}`);
probe.on('error', () => undefined);
await check(probe);
const before = rss(proc.pid);
const attackers = [];
let refusedConnections = 0;
for (let c = 0; c < CONNS; c++) {
  const s = http2.connect(`http://${address}`, { settings: { initialWindowSize: 0 } });
  s.on('error', () => undefined);
  s.on('close', () => refusedConnections++);
  attackers.push(s);
  for (let i = 0; i < STREAMS; i++) {
    try {
      const st = s.request({ ':method': 'POST', ':path': '/envoy.service.auth.v3.Authorization/Check', 'content-type': 'application/grpc', te: 'trailers' });
      st.on('error', () => undefined);
      st.pause();
      st.end(frame);
    } catch { /* the session is gone */ }
  }
  if (c % 50 === 49) await sleep(50);
}
await sleep(3000);
const during = rss(proc.pid);
const probeMs = await Promise.race([check(probe), sleep(10_000).then(() => Infinity)]);
for (const s of attackers) s.destroy();
await sleep(3000);
const after = rss(proc.pid);
console.log(JSON.stringify({ conns: CONNS, streams: STREAMS, closedConnections: refusedConnections, rssMb: { before: Math.round(before), during: Math.round(during), after: Math.round(after) }, probeCheckMs: Math.round(probeMs * 10) / 10 }));
probe.destroy();
proc.kill('SIGTERM');
await idp.stop();
fs.rmSync(dir, { recursive: true, force: true });
process.exit(0);
