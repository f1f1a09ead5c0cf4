// `node bench/tail.js`: what the p99 at a fixed offered rate is made of (issue #18). The limit
// and tokengate's node:http2 Check path (and an identical tokengate, the A/A pair) take turns
// at one open-loop rate for many rounds. Every round records, in each process: the latency of
// every call and when it was sent, every GC pause of the server and of the load generator, and
// both event loops' delay. The tail samples (≥ the round's p99) are then laid against those
// pauses: how many of them a server pause, a load-generator pause, or neither overlapped.
//
//   TAIL_RATE=5000   TAIL_SIZE=3k   TAIL_ROUNDS=6   TAIL_WINDOW_MS=2000
//   TAIL_TARGETS="limit=floor-h2,tokengate=http2,twin=http2"   name=role[+route][@target.js][:flags]; +route: that target's Checks are routed by the header rule
//       role: floor-h2 | floor-object | http2 | grpc-js (tokengate's listen.checkServer);
//       @path: another build's bench/target.js (before/after); :flags replace BENCH_SERVER_FLAGS
//   BENCH_SERVER_FLAGS   V8 flags of every server (default: the Docker image's)
//   TAIL_CONCURRENCY=n  closed loop (n in flight) instead: CPU and bytes per Check, no latency
//   TAIL_ALLOC=1         with TAIL_CONCURRENCY: bytes per Check by V8's sampling heap profiler
//   TAIL_ALLOC=heap      with TAIL_CONCURRENCY: bytes per Check exactly: servers get a 128 MB young
//                        generation, and the heap's growth over a window without any collection
//                        is divided by the Checks served in it (a window with one is not counted)
//   TAIL_ALLOC_SITES=1   …and the top allocating functions
//   TAIL_ALLOC_SURVIVORS=1  …counting only objects that survived the young generation (promoted)
//   TAIL_NO_FULL_GC=1    with TAIL_CONCURRENCY: no forced full GC before each round
//   TAIL_TRACE_GC=1      servers run with --trace-gc-nvp: bytes allocated and promoted per Check
//   TAIL_ROUTE=1         tokengate's Checks are routed by the routes[] header rule (HEADER_ROUTE), not context_extensions
//   TAIL_OUT=file.json   raw per-round figures
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { BENCH_ENV, HEADER_ROUTE, providerName, providersYaml } from './configs.js';
import { Child, LOADGEN_EXEC_ARGV, sleep } from './procs.js';
import { latencySummary, median } from './stats.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const RATE = Number(process.env.TAIL_RATE ?? 5000);
const SIZE = process.env.TAIL_SIZE ?? '3k';
const ROUNDS = Number(process.env.TAIL_ROUNDS ?? 6);
const WINDOW_MS = Number(process.env.TAIL_WINDOW_MS ?? 2000);
const WARMUP_MS = 300;
const CHANNELS = 4;
const SERVER_FLAGS = (process.env.BENCH_SERVER_FLAGS ?? '--max-semi-space-size=2').split(/\s+/).filter(Boolean);
const HEAP_ALLOC = process.env.TAIL_ALLOC === 'heap';
const SPEC = process.env.TAIL_TARGETS ?? 'limit=floor-h2,tokengate=http2,twin=http2';
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'tokengate-tail-'));
const children = [];
const log = (m) => process.stderr.write(`[tail] ${m}\n`);
const ROUTED = process.env.TAIL_ROUTE === '1';
/** What every target is sent: named by context_extensions, or (TAIL_ROUTE=1) routed by the header rule. */
const requestInit = (t) => (ROUTED || t?.route
  ? { size: SIZE, authority: HEADER_ROUTE.authority, headers: { [HEADER_ROUTE.header[0]]: HEADER_ROUTE.header[1] } }
  : { size: SIZE, contextExtensions: { provider: providerName(0) } });

function parseSpec(s) {
  const at = s.indexOf('=');
  const [name, rest] = [s.slice(0, at), s.slice(at + 1)];
  const m = /^([\w-]+)(\+route)?(?:@([^:]+))?(?::(.*))?$/.exec(rest);
  if (!m) throw new Error(`bad target ${s}`);
  return { name, role: m[1], route: m[2] !== undefined, script: m[3] ?? path.join(here, 'target.js'), flags: m[4] === undefined ? SERVER_FLAGS : m[4].split(/\s+/).filter(Boolean) };
}

async function start(spec, floorAnswer) {
  const execArgv = ['--expose-gc', ...spec.flags, ...(process.env.TAIL_TRACE_GC === '1' ? ['--trace-gc-nvp'] : []), ...(HEAP_ALLOC ? ['--min-semi-space-size=128', '--max-semi-space-size=128'] : [])];
  const gcEnv = HEAP_ALLOC ? { BENCH_GC_STATS: '1' } : {};
  let c;
  if (spec.role === 'http2' || spec.role === 'grpc-js') {
    const file = path.join(work, `${spec.name}.yaml`);
    fs.writeFileSync(file, providersYaml(1, { checkServer: spec.role, headerRoute: ROUTED || spec.route }));
    c = new Child(spec.name, spec.script, { args: ['tokengate'], env: { ...BENCH_ENV, ...gcEnv, BENCH_CONFIG: file }, execArgv });
  } else {
    c = new Child(spec.name, spec.script, { args: [spec.role], env: { ...gcEnv, BENCH_FLOOR_ANSWER: JSON.stringify(floorAnswer) }, execArgv });
  }
  children.push(c);
  // --trace-gc-nvp lines (with TAIL_TRACE_GC=1): bytes allocated and promoted, summed as they come.
  const gcBytes = { allocated: 0, promoted: 0 };
  let partial = '';
  c.proc.stdout.on('data', (chunk) => {
    const lines = (partial + chunk).split('\n');
    partial = lines.pop();
    for (const line of lines) {
      if (process.env.TAIL_ECHO === '1') process.stderr.write(`${spec.name}: ${line}\n`);
      const a = /\ballocated=(\d+)/.exec(line);
      const p = /\bpromoted=(\d+)/.exec(line);
      if (a) gcBytes.allocated += Number(a[1]);
      if (p) gcBytes.promoted += Number(p[1]);
    }
  });
  const info = await c.ready;
  return { ...spec, child: c, info, gcBytes };
}

const cpuUs = (u) => u.user + u.system;

function systemBusyUs() {
  const line = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  const [user, nice, system, , , irq, softirq, steal] = line;
  return ((user + nice + system + irq + softirq + steal) * 1e6) / 100;
}

/** Does [from, to] overlap any pause? */
function overlaps(pauses, from, to) {
  for (const p of pauses) if (p.at < to && p.at + p.ms > from) return true;
  return false;
}

/**
 * TAIL_CONCURRENCY=n: a closed loop of n calls in flight instead of the open loop. Nothing
 * queues, whatever the machine's load, so the bytes allocated and promoted per Check are the
 * server's own (under an overloaded open loop every call in flight survives scavenges).
 */
async function closedRound(lg, t, concurrency) {
  // TAIL_NO_FULL_GC=1: no forced full GC before the round (see FINDINGS, "h2-promote").
  if (process.env.TAIL_NO_FULL_GC !== '1') await t.child.call('memory');
  const init = requestInit(t);
  const run = lg.call('closed', { key: t.name, init, concurrency, durationMs: WARMUP_MS + WINDOW_MS });
  await sleep(WARMUP_MS);
  const alloc = process.env.TAIL_ALLOC === '1';
  if (HEAP_ALLOC) await t.child.call('memory'); // the young generation empty at the start of the window
  if (alloc) await t.child.call('allocStart', { interval: 256, survivors: process.env.TAIL_ALLOC_SURVIVORS === '1' });
  const [a, ga] = [await t.child.call('stats'), { ...t.gcBytes }];
  // Inside [a, b], so that `stats` (it reads /proc/self/smaps: megabytes of strings) is outside.
  const ha = HEAP_ALLOC ? await t.child.call('heap') : undefined;
  await sleep(Math.max(200, WINDOW_MS - 300));
  const hb = HEAP_ALLOC ? await t.child.call('heap') : undefined;
  const [b, gb] = [await t.child.call('stats'), { ...t.gcBytes }];
  const heapBytesPerCheck = hb && hb.collections === ha.collections ? (hb.heapUsed - ha.heapUsed) / (hb.served - ha.served) : NaN;
  const sampled = alloc ? await t.child.call('allocStop') : undefined;
  await run;
  // The sampler ran from allocStart to allocStop, a little longer than [a, b]: per Check it is
  // read against the Checks served from its start to its stop.
  const c = await t.child.call('stats');
  const served = b.served - a.served;
  if (sampled && process.env.TAIL_ALLOC_SITES === '1') {
    process.stdout.write(`\n${t.name}: bytes per Check by allocating function  <=  innermost tokengate frame on its stack\n`);
    for (const [k, v] of sampled.sites.slice(0, 40)) process.stdout.write(`${(v / (c.served - a.served)).toFixed(0).padStart(7)}  ${k}\n`);
  }
  return {
    heapBytesPerCheck,
    sampledBytesPerCheck: sampled ? sampled.total / (c.served - a.served) : NaN, served, rate: served / ((b.hr - a.hr) / 1e6), cpuPerCheckUs: (cpuUs(b.cpu) - cpuUs(a.cpu)) / served, allocatedPerCheck: (gb.allocated - ga.allocated) / served, promotedPerCheck: (gb.promoted - ga.promoted) / served };
}

async function round(lg, t) {
  await t.child.call('memory'); // a full GC first, as bench/run.js does: no inherited garbage
  await t.child.call('watch');
  await lg.call('watch');
  const init = requestInit(t);
  const run = lg.call('open', { key: t.name, init, rate: RATE, durationMs: WINDOW_MS, warmupMs: WARMUP_MS, times: true });
  await sleep(WARMUP_MS + 100);
  const [a, sa, la, ga] = [await t.child.call('stats'), systemBusyUs(), await lg.call('cpu'), { ...t.gcBytes }];
  await sleep(Math.max(200, WINDOW_MS - 300));
  const [b, sb, lb, gb] = [await t.child.call('stats'), systemBusyUs(), await lg.call('cpu'), { ...t.gcBytes }];
  const r = await run;
  const server = await t.child.call('watched');
  const gen = await lg.call('watched');
  const secs = (b.hr - a.hr) / 1e6;
  const serverCpu = cpuUs(b.cpu) - cpuUs(a.cpu);
  const lgCpu = cpuUs(lb) - cpuUs(la);
  // The tail: every sample at or above the round's p99, against both processes' GC pauses.
  const p99 = r.latency.p99;
  const tail = { n: 0, serverGc: 0, loadgenGc: 0, neither: 0 };
  for (let i = 0; i < r.samples.length; i++) {
    if (r.samples[i] < p99) continue;
    const from = r.sentAt[i];
    const to = from + r.samples[i];
    const s = overlaps(server.pauses, from, to);
    const g = overlaps(gen.pauses, from, to);
    tail.n++;
    if (s) tail.serverGc++;
    if (g) tail.loadgenGc++;
    if (!s && !g) tail.neither++;
  }
  const windowGc = (pauses) => pauses.filter((p) => p.at >= r.sentAt[0]);
  const sumMs = (ps, kind) => ps.filter((p) => !kind || p.kind === kind).reduce((n, p) => n + p.ms, 0);
  const sp = windowGc(server.pauses);
  const gp = windowGc(gen.pauses);
  return {
    p50: r.latency.p50,
    p99,
    p999: r.latency.p999,
    max: r.latency.max,
    lagP99: r.lag.p99,
    errors: r.errors,
    cpuPerCheckUs: serverCpu / (b.served - a.served),
    allocatedPerCheck: (gb.allocated - ga.allocated) / (b.served - a.served),
    promotedPerCheck: (gb.promoted - ga.promoted) / (b.served - a.served),
    serverCores: serverCpu / 1e6 / secs,
    loadgenCores: lgCpu / 1e6 / secs,
    otherCores: Math.max(0, (sb - sa - serverCpu - lgCpu) / 1e6 / secs),
    load1: os.loadavg()[0],
    server: {
      scavenges: sp.filter((p) => p.kind === 'minor').length,
      scavengeMs: sumMs(sp, 'minor'),
      scavengeMaxMs: Math.max(0, ...sp.filter((p) => p.kind === 'minor').map((p) => p.ms)),
      majors: sp.filter((p) => p.kind === 'major').length,
      majorMs: sumMs(sp, 'major'),
      incrementalMs: sumMs(sp, 'incremental'),
      gcMaxMs: Math.max(0, ...sp.map((p) => p.ms)),
      loop: server.loop,
    },
    loadgen: { gcMs: sumMs(gp), gcMaxMs: Math.max(0, ...gp.map((p) => p.ms)), scavenges: gp.filter((p) => p.kind === 'minor').length, loop: gen.loop },
    tail,
  };
}

const fmt = (v, d = 2) => (Number.isFinite(v) ? v.toFixed(d) : '–');

async function main() {
  const specs = SPEC.split(',').map(parseSpec);
  log(`${RATE}/s, ${SIZE}, ${ROUNDS} rounds × ${WINDOW_MS} ms + warm-up round; targets ${specs.map((s) => `${s.name}(${s.role}${s.flags.length ? ` ${s.flags.join(' ')}` : ''})`).join(', ')}; load ${os.loadavg().map((v) => v.toFixed(2)).join(' ')}`);
  const lg = new Child('loadgen', path.join(here, 'loadgen.js'), { execArgv: LOADGEN_EXEC_ARGV });
  children.push(lg);
  await lg.ready;
  const floorAnswer = { provider: providerName(0), header: 'authorization' };
  const targets = [];
  for (const s of specs) targets.push(await start(s, floorAnswer));
  for (const t of targets) await lg.call('connect', { key: t.name, address: t.info.address, channels: CHANNELS, client: 'h2' });
  const rounds = Object.fromEntries(targets.map((t) => [t.name, []]));
  const concurrency = Number(process.env.TAIL_CONCURRENCY ?? 0);
  if (concurrency > 0) {
    for (let r = 0; r <= ROUNDS; r++) {
      for (let i = 0; i < targets.length; i++) {
        const t = targets[(i + r) % targets.length];
        const res = await closedRound(lg, t, concurrency);
        if (r > 0) rounds[t.name].push(res);
        log(`round ${r} ${t.name}: ${fmt(res.rate, 0)}/s, cpu ${fmt(res.cpuPerCheckUs, 1)} µs, heap ${fmt(res.heapBytesPerCheck, 0)} B, sampled ${fmt(res.sampledBytesPerCheck, 0)} B, allocated ${fmt(res.allocatedPerCheck, 0)} B, promoted ${fmt(res.promotedPerCheck, 0)} B per Check`);
      }
    }
    for (const t of targets) {
      const rs = rounds[t.name];
      const rss = (await t.child.call('stats')).mem.rss / 2 ** 20;
      process.stdout.write(`${t.name}: closed loop ${concurrency} in flight, medians of ${rs.length}: ${fmt(median(rs.map((x) => x.rate)), 0)}/s (lowest CPU ${fmt(Math.min(...rs.map((x) => x.cpuPerCheckUs)), 1)} µs), RSS after ${fmt(rss, 1)} MB, CPU ${fmt(median(rs.map((x) => x.cpuPerCheckUs)), 1)} µs, heap ${fmt(median(rs.map((x) => x.heapBytesPerCheck).filter(Number.isFinite)), 0)} B (${rs.filter((x) => Number.isFinite(x.heapBytesPerCheck)).length} windows without a collection), sampled ${fmt(median(rs.map((x) => x.sampledBytesPerCheck)), 0)} B, allocated ${fmt(median(rs.map((x) => x.allocatedPerCheck)), 0)} B, promoted ${fmt(median(rs.map((x) => x.promotedPerCheck)), 0)} B per Check\n`);
    }
    return;
  }
  for (let r = 0; r <= ROUNDS; r++) {
    for (let i = 0; i < targets.length; i++) {
      const t = targets[(i + r) % targets.length];
      const res = await round(lg, t);
      if (r > 0) rounds[t.name].push(res);
      log(`round ${r}${r === 0 ? ' (warm-up)' : ''} ${t.name}: p50 ${fmt(res.p50)} p99 ${fmt(res.p99)} max ${fmt(res.max)} ms, lag p99 ${fmt(res.lagP99)}, cpu ${fmt(res.cpuPerCheckUs, 1)} µs, scav ${res.server.scavenges} (${fmt(res.server.scavengeMs, 1)} ms, max ${fmt(res.server.scavengeMaxMs)}), major ${res.server.majors}, loop max ${fmt(res.server.loop?.max)}, lg gc ${fmt(res.loadgen.gcMs, 1)} ms, tail ${res.tail.serverGc}/${res.tail.loadgenGc}/${res.tail.neither} of ${res.tail.n}, other ${fmt(res.otherCores)} cores, load ${fmt(res.load1)}`);
    }
  }
  const base = rounds[targets[0].name];
  const summary = {};
  for (const t of targets) {
    const rs = rounds[t.name];
    const ratio = rs.map((x, i) => x.p99 / base[i].p99);
    const pick = (f) => rs.map(f);
    summary[t.name] = {
      role: t.role,
      flags: t.flags.join(' '),
      p50Median: median(pick((x) => x.p50)),
      p99Median: median(pick((x) => x.p99)),
      p99Min: Math.min(...pick((x) => x.p99)),
      p99VsFirstMedian: median(ratio),
      p99VsFirstMin: Math.min(...ratio),
      p99VsFirstPerRound: ratio,
      cpuPerCheckUs: median(pick((x) => x.cpuPerCheckUs)),
      allocatedPerCheck: median(pick((x) => x.allocatedPerCheck)),
      promotedPerCheck: median(pick((x) => x.promotedPerCheck)),
      serverCores: median(pick((x) => x.serverCores)),
      loadgenCores: median(pick((x) => x.loadgenCores)),
      scavengesPerS: median(pick((x) => x.server.scavenges)) / (WINDOW_MS / 1000),
      scavengeMsPerS: median(pick((x) => x.server.scavengeMs)) / (WINDOW_MS / 1000),
      scavengeMaxMs: median(pick((x) => x.server.scavengeMaxMs)),
      majors: rs.reduce((n, x) => n + x.server.majors, 0),
      loopMaxMs: median(pick((x) => x.server.loop?.max ?? NaN)),
      loopP99Ms: median(pick((x) => x.server.loop?.p99 ?? NaN)),
      lagP99: median(pick((x) => x.lagP99)),
      loadgenGcMsPerS: median(pick((x) => x.loadgen.gcMs)) / (WINDOW_MS / 1000),
      tailShare: (() => {
        const n = rs.reduce((a, x) => a + x.tail.n, 0);
        const sum = (k) => rs.reduce((a, x) => a + x.tail[k], 0) / n;
        return { serverGc: sum('serverGc'), loadgenGc: sum('loadgenGc'), neither: sum('neither') };
      })(),
      otherCores: median(pick((x) => x.otherCores)),
      rssMB: (await t.child.call('stats')).mem.rss / 2 ** 20,
    };
  }
  const cols = ['p50Median', 'p99Median', 'p99Min', 'p99VsFirstMedian', 'p99VsFirstMin', 'cpuPerCheckUs', 'allocatedPerCheck', 'promotedPerCheck', 'serverCores', 'scavengesPerS', 'scavengeMsPerS', 'scavengeMaxMs', 'majors', 'loopP99Ms', 'loopMaxMs', 'lagP99', 'loadgenGcMsPerS', 'otherCores', 'rssMB'];
  process.stdout.write(`\n${RATE}/s, ${SIZE}, ${ROUNDS} rounds × ${WINDOW_MS} ms; load at end ${os.loadavg().map((v) => v.toFixed(2)).join(' ')}\n`);
  process.stdout.write(`| target | ${cols.join(' | ')} | tail ∩ server GC / loadgen GC / neither |\n|${'---|'.repeat(cols.length + 2)}\n`);
  for (const [name, s] of Object.entries(summary)) {
    process.stdout.write(`| ${name} | ${cols.map((c) => fmt(s[c], ['majors', 'allocatedPerCheck', 'promotedPerCheck'].includes(c) ? 0 : 2)).join(' | ')} | ${fmt(s.tailShare.serverGc)} / ${fmt(s.tailShare.loadgenGc)} / ${fmt(s.tailShare.neither)} |\n`);
  }
  if (process.env.TAIL_OUT) fs.writeFileSync(process.env.TAIL_OUT, `${JSON.stringify({ meta: { rate: RATE, size: SIZE, rounds: ROUNDS, windowMs: WINDOW_MS, loadavg: os.loadavg(), date: new Date().toISOString() }, summary, rounds }, null, 1)}\n`);
}

try {
  await main();
} catch (err) {
  process.stderr.write(`tail failed: ${err?.stack ?? err}\n`);
  process.exitCode = 1;
} finally {
  await Promise.all(children.map((c) => c.stop(2_000).catch(() => undefined)));
  fs.rmSync(work, { recursive: true, force: true });
}
