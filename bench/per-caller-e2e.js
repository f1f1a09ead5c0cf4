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
// Memory of the 100 000 callers, read four ways (all minus the RSS after a full GC before the fill,
// taken after three windows of the same load with 100 callers, so serving's own memory is in it):
// right after the fill (full GC), after one more pass over every caller as cache hits (each
// caller's encoded answer now built; full GC), after BENCH_PC_SETTLE_MS idle without a forced GC
// (what V8's memory reducer leaves), and the RSS sampled while serving the 100 000 callers, also
// against the RSS sampled the same way while serving 100 callers before the fill (the target's figure).
//
//   npm run build && node bench/per-caller-e2e.js
//   BENCH_PC_ROUNDS=5 BENCH_PC_WINDOW_MS=1500 BENCH_PC_CALLERS=100000 BENCH_PC_SETTLE_MS=15000 (defaults)
//   BENCH_PC_PARTS=memory   only the fill and the memory readings (skips the CPU ratios)
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
const SETTLE_MS = Number(process.env.BENCH_PC_SETTLE_MS ?? 15_000);
const PARTS = process.env.BENCH_PC_PARTS ?? 'all';
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
  return { cpuPerCheckUs: (cpuUs(b.cpu) - cpuUs(a.cpu)) / served, rate: served / ((b.hr - a.hr) / 1e6), rss: b.mem.rss, errors: r.errors, lastError: r.lastError };
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

if (PARTS !== 'memory') {
  log('A. per-caller ÷ shared, same request');
  const a = await alternate({ shared: SHARED, pc: PC, sharedAgain: SHARED });
  report.perCallerVsShared = { ...summary(a, 'pc', 'shared'), target: '<= 1.2', aa: summary(a, 'sharedAgain', 'shared').ratioMedianOfRounds };
  log(JSON.stringify(report.perCallerVsShared));
}

// The same load with 100 callers first: what serving itself costs (http2 sessions, nghttp2's
// and the pool's malloc, V8's young generation) is then in the baseline, not counted as the
// callers' (in memory-only mode nothing else has served yet).
const fewRounds = [];
for (let r = 0; r < 3; r++) fewRounds.push(await closedLoop({ init: PC.init, callers: FEW }));
log(`B. filling ${CALLERS} callers through gRPC`);
const mem0 = await target.call('memory');
const before = exchanges;
const fill = await lg.call('sweep', { key: 't', init: PC.init, callers: CALLERS, concurrency: 128 }, 1_800_000);
const mem1 = await target.call('memory');
const mb = (x) => Math.round(x / 1e5) / 10;
const growth = (m) => ({
  extraRssMB: mb(m.rss - mem0.rss), extraHeapMB: mb(m.heapUsed - mem0.heapUsed), extraHeapTotalMB: mb(m.heapTotal - mem0.heapTotal),
  extraExternalMB: mb(m.external - mem0.external), oldSpaceMB: { size: mb(m.oldSpaceSize), used: mb(m.oldSpaceUsed) },
  // RSS growth by mapping: glibc malloc (main arena, thread arenas), other anonymous (V8 pages).
  extraRssByKindMB: { mallocMain: mb(m.rssMallocMain - mem0.rssMallocMain), mallocArenas: mb(m.rssMallocArenas - mem0.rssMallocArenas), anon: mb(m.rssAnon - mem0.rssAnon) },
});
report.fill = { callers: CALLERS, exchanges: exchanges - before, ms: Math.round(fill.ms), errors: fill.errors, ...growth(mem1), targetRssMB: 150 };
log(JSON.stringify(report.fill));

// Every caller once more, as cache hits: each entry's encoded answer is built on its first hit.
const served = await lg.call('sweep', { key: 't', init: PC.init, callers: CALLERS, concurrency: 128 }, 600_000);
report.afterServingAll = { ms: Math.round(served.ms), errors: served.errors, ...growth(await target.call('memory')) };
log(JSON.stringify(report.afterServingAll));
await sleep(SETTLE_MS);
report.settled = { idleMs: SETTLE_MS, forcedGc: false, ...growth(await target.call('memory', { gc: false })) };
log(JSON.stringify(report.settled));

const manyRounds = [];
if (PARTS !== 'memory') {
  const b = await alternate({ few: { init: PC.init, callers: FEW }, many: { init: PC.init, callers: CALLERS }, fewAgain: { init: PC.init, callers: FEW } });
  report.manyVsFew = { ...summary(b, 'many', 'few'), target: '<= 1.10', aa: summary(b, 'fewAgain', 'few').ratioMedianOfRounds };
  log(JSON.stringify(report.manyVsFew));
  manyRounds.push(...b.many);
} else {
  for (let r = 0; r < 3; r++) manyRounds.push(await closedLoop({ init: PC.init, callers: CALLERS }));
}
// Sampled at the end of each measured window, no forced GC: the RSS of serving 100 000 callers.
report.whileServing = {
  extraRssMBMedian: mb(median(manyRounds.map((r) => r.rss)) - mem0.rss), extraRssMBMax: mb(Math.max(...manyRounds.map((r) => r.rss)) - mem0.rss),
  // Serving 100 000 cached callers ÷ serving 100 (before the fill), both sampled the same way: the target's figure.
  overServingFewMBMedian: mb(median(manyRounds.map((r) => r.rss)) - median(fewRounds.map((r) => r.rss))),
  servingFewRssMB: mb(median(fewRounds.map((r) => r.rss))), baselineRssMB: mb(mem0.rss),
};
log(JSON.stringify(report.whileServing));
report.idpExchangesDuringMeasurement = exchanges - before - (report.fill.exchanges);

process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
await target.call('stop').catch(() => undefined);
await lg.call('stop').catch(() => undefined);
idp.close();
process.exit(0);
