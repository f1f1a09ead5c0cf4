// Per-caller credentials end to end (issue 14's ratios through the real server): one tokengate
// process serving Checks over gRPC, driven by the h2 load generator (bench/loadgen.js) in its own
// process, configurations measured side by side in alternating rounds (round 0 discarded):
//
//   A. cache-hit CPU per Check: per-caller provider ÷ shared-token provider, the same request
//      (the same caller's `authorization` in both), with an A/A pair (shared ÷ shared again);
//   B. 100 000 distinct cached callers vs 100 (requests rotate over the callers), A/A pair
//      (100 ÷ 100 again); plus the target's RSS after a full GC before and after the 100 000
//      callers were cached (filled through gRPC: every caller's first Check exchanges at a
//      loopback token endpoint).
//
// CPU per Check is the target's own process.cpuUsage over a steady window ÷ the Checks it
// answered. The machine is shared: read medians and lows together, and the A/A ratios as the
// noise floor.
//
//   npm run build && node bench/per-caller-e2e.js
//   BENCH_PC_ROUNDS=5 BENCH_PC_WINDOW_MS=1500 BENCH_PC_CALLERS=100000 (defaults)
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { BENCH_ENV } from './configs.js';
import { Child, sleep } from './procs.js';
import { median } from './stats.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const ROUNDS = Number(process.env.BENCH_PC_ROUNDS ?? 5);
const WINDOW_MS = Number(process.env.BENCH_PC_WINDOW_MS ?? 1500);
const RAMP_MS = 300;
const CALLERS = Number(process.env.BENCH_PC_CALLERS ?? 100_000);
const FEW = 100;
const CONCURRENCY = 64;
const CHANNELS = 4;
const log = (m) => process.stderr.write(`[per-caller-e2e] ${m}\n`);
const cpuUs = (u) => u.user + u.system;

// --- a loopback token endpoint that exchanges anything (the hit path is what is measured) ----
let exchanges = 0;
const idp = http.createServer((req, res) => {
  req.resume();
  req.on('end', () => {
    exchanges++;
    res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' });
    res.end(JSON.stringify({
      access_token: `ex_${exchanges}_${randomBytes(24).toString('base64url')}`, token_type: 'Bearer', expires_in: 3600,
      issued_token_type: 'urn:ietf:params:oauth:token-type:access_token',
    }));
  });
});
await new Promise((r) => idp.listen(0, '127.0.0.1', r));
const origin = `http://127.0.0.1:${idp.address().port}`;

const yaml = `listen: { grpc: "127.0.0.1:0", admin: "off", limits: { maxConnectionAge: 1h } }
log: { level: warn }
tokenEndpoints:
  "${origin}": { maxRate: 100000/s, burst: 100000, maxConcurrent: 16 }
providers:
  shared: { source: { type: jwt, algorithm: HS256, key: "\${env:BENCH_JWT_KEY}", claims: { iss: bench, aud: upstream }, ttl: 30m } }
  pc:
    source:
      type: token_exchange
      tokenUrl: ${origin}/token
      clientId: gateway
      clientSecret: "\${env:BENCH_PC_SECRET}"
      audience: https://orders.example
      subjectToken: { request: { header: authorization, scheme: Bearer } }
    cache: { maxEntries: ${Math.max(CALLERS, FEW) * 2}, maxBytes: 1073741824 }
    refresh: { waitBudget: 30s }
`;
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'tokengate-pc-e2e-'));
const file = path.join(work, 'tokengate.yaml');
fs.writeFileSync(file, yaml);

const flags = (process.env.BENCH_SERVER_FLAGS ?? '--max-semi-space-size=2').split(/\s+/).filter(Boolean);
const target = new Child('tokengate', path.join(here, 'target.js'), {
  args: ['tokengate'], env: { ...BENCH_ENV, BENCH_PC_SECRET: randomBytes(16).toString('hex'), BENCH_CONFIG: file }, execArgv: ['--expose-gc', ...flags], readyTimeoutMs: 120_000,
});
const lg = new Child('loadgen', path.join(here, 'loadgen.js'), { execArgv: ['--expose-gc'] });
const [info] = await Promise.all([target.ready, lg.ready]);
await lg.call('connect', { key: 't', address: info.address, channels: CHANNELS, client: 'h2' });

// The request: the bench's Envoy-shaped Check plus the caller's own 600-byte credential.
const SHARED = { init: { contextExtensions: { provider: 'shared' } }, callers: 1 };
const PC = { init: { contextExtensions: { provider: 'pc' } }, callers: 1 };

async function closedLoop({ init, callers }) {
  const run = lg.call('closed', { key: 't', init, callers, concurrency: CONCURRENCY, durationMs: RAMP_MS + WINDOW_MS + 250 });
  await sleep(RAMP_MS);
  const a = await target.call('stats');
  await sleep(WINDOW_MS);
  const b = await target.call('stats');
  const r = await run;
  const served = b.served - a.served;
  return { cpuPerCheckUs: (cpuUs(b.cpu) - cpuUs(a.cpu)) / served, rate: served / ((b.hr - a.hr) / 1e6), errors: r.errors, lastError: r.lastError };
}

/** Round-robin rotation of the order (A B C, B C A, …); round 0 is a warm-up and is dropped. */
async function alternate(configs) {
  const out = Object.fromEntries(Object.keys(configs).map((k) => [k, []]));
  const keys = Object.keys(configs);
  for (let r = 0; r <= ROUNDS; r++) {
    for (let i = 0; i < keys.length; i++) {
      const k = keys[(i + r) % keys.length];
      const res = await closedLoop(configs[k]);
      if (res.errors) log(`${k}: ${res.errors} errors (${res.lastError})`);
      if (r > 0) out[k].push(res);
    }
    log(`round ${r} done`);
  }
  return out;
}

const round2 = (x) => Math.round(x * 100) / 100;
function summary(rounds, num, den) {
  const n = rounds[num].map((r) => r.cpuPerCheckUs);
  const d = rounds[den].map((r) => r.cpuPerCheckUs);
  return {
    [`${num}UsMedian`]: round2(median(n)), [`${num}UsLow`]: round2(Math.min(...n)),
    [`${den}UsMedian`]: round2(median(d)), [`${den}UsLow`]: round2(Math.min(...d)),
    ratioMedianOfRounds: round2(median(n.map((v, i) => v / d[i]))),
    ratioOfMedians: round2(median(n) / median(d)),
    ratioOfLows: round2(Math.min(...n) / Math.min(...d)),
  };
}

const report = { command: 'npm run build && node bench/per-caller-e2e.js', rounds: ROUNDS, windowMs: WINDOW_MS, concurrency: CONCURRENCY, channels: CHANNELS, client: 'h2', node: process.version, cpus: os.cpus().length };

// Warm both providers for the single caller.
for (const c of [SHARED, PC]) await lg.call('sweep', { key: 't', init: c.init, callers: c.callers });

log('A. per-caller ÷ shared, same request');
const a = await alternate({ shared: SHARED, pc: PC, sharedAgain: SHARED });
report.perCallerVsShared = { ...summary(a, 'pc', 'shared'), target: '<= 1.2', aa: summary(a, 'sharedAgain', 'shared').ratioMedianOfRounds };
log(JSON.stringify(report.perCallerVsShared));

log(`B. filling ${CALLERS} callers through gRPC`);
const mem0 = await target.call('memory');
const before = exchanges;
const fill = await lg.call('sweep', { key: 't', init: PC.init, callers: CALLERS, concurrency: 128 }, 1_800_000);
const mem1 = await target.call('memory');
report.fill = { callers: CALLERS, exchanges: exchanges - before, ms: Math.round(fill.ms), errors: fill.errors, extraRssMB: Math.round((mem1.rss - mem0.rss) / 1e5) / 10, extraHeapMB: Math.round((mem1.heapUsed - mem0.heapUsed) / 1e5) / 10, extraHeapTotalMB: Math.round((mem1.heapTotal - mem0.heapTotal) / 1e5) / 10, extraExternalMB: Math.round((mem1.external - mem0.external) / 1e5) / 10, targetRssMB: 150 };
log(JSON.stringify(report.fill));

const b = await alternate({ few: { init: PC.init, callers: FEW }, many: { init: PC.init, callers: CALLERS }, fewAgain: { init: PC.init, callers: FEW } });
report.manyVsFew = { ...summary(b, 'many', 'few'), target: '<= 1.10', aa: summary(b, 'fewAgain', 'few').ratioMedianOfRounds };
log(JSON.stringify(report.manyVsFew));
report.idpExchangesDuringMeasurement = exchanges - before - (report.fill.exchanges);

process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
await target.call('stop').catch(() => undefined);
await lg.call('stop').catch(() => undefined);
idp.close();
process.exit(0);
