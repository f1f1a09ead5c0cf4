// `node bench/stalls.js`: what the 100–170 ms stalls in the fixed-rate p99 slices are (issue #18,
// FINDINGS "The stalls in the p99 slices"). The sized p99 stage of bench/run.js in miniature: the
// limit (floor-h2), tokengate on node:http2 (context_extensions and routed slices) and its twin
// take turns in 500 ms open-loop slices of the raw-frame generator, after closed-loop rounds as
// in run.js. For every slice it records, besides the latencies (each call's send time and
// connection):
//   - every GC pause and the event loop's delay of the server and of the generator (watch.js);
//   - each one's main thread from /proc/<pid>/sched: CPU run time, run-queue wait, voluntary and
//     involuntary switches, migrations, the CPU it ended on;
//   - the kernel's TCP counters (retransmits, loss probes, backlog drops, delayed ACKs …);
//   - with STALLS_PROBE=1 (default), a heartbeat pinned to each CPU (bench/cpu-gaps.js): when a
//     CPU ran nothing for ≥ 10 ms.
// A stall is the set of calls slower than STALLS_MS; each is printed with what overlapped it.
//
//   STALLS_SIZES=0.4k,3k,8k  STALLS_SLICES=20  STALLS_RATE=5000  STALLS_SLICE_MS=500
//   STALLS_MS=30  STALLS_CLOSED=1 (closed-loop rounds before each size, as run.js)  STALLS_OUT=file.json
//   BENCH_SERVER_FLAGS  as in run.js (default --max-semi-space-size=2)
//   STALLS_TRACE_GC=dir  servers run with --trace-gc-nvp; their lines go to dir/<name>.gc.log
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { BENCH_ENV, HEADER_ROUTE, providerName, providersYaml } from './configs.js';
import { Child, LOADGEN_EXEC_ARGV } from './procs.js';
import { latencySummary } from './stats.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const env = process.env;
const SIZES = (env.STALLS_SIZES ?? '0.4k,3k,8k').split(',');
const SLICES = Number(env.STALLS_SLICES ?? 20);
const RATE = Number(env.STALLS_RATE ?? 5000);
const SLICE_MS = Number(env.STALLS_SLICE_MS ?? 500);
const STALL_MS = Number(env.STALLS_MS ?? 30);
const SERVER_FLAGS = [...(env.BENCH_SERVER_FLAGS ?? '--max-semi-space-size=2').split(/\s+/).filter(Boolean), ...(env.STALLS_TRACE_GC ? ['--trace-gc-nvp'] : [])];
const CHANNELS = 4;
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'tokengate-stalls-'));
const log = (m) => process.stderr.write(`[stalls ${new Date().toISOString().slice(11, 19)}] ${m}\n`);
const children = [];

function child(name, role, opts) {
  const c = new Child(name, path.join(here, role === 'loadgen' ? 'loadgen.js' : 'target.js'), { args: role === 'loadgen' ? [] : [role], ...opts });
  children.push(c);
  // STALLS_TRACE_GC=dir: every process's --trace-gc-nvp lines, each prefixed with the epoch ms it
  // was read at (V8 prints a collection's line right after its pause), to dir/<name>.gc.log.
  if (env.STALLS_TRACE_GC) {
    const file = fs.openSync(path.join(env.STALLS_TRACE_GC, `${name}.gc.log`), 'w');
    let partial = '';
    c.proc.stdout.on('data', (chunk) => {
      const lines = (partial + chunk).split('\n');
      partial = lines.pop();
      const now = Date.now();
      for (const l of lines) fs.writeSync(file, `${now} ${l}\n`);
    });
  }
  return c;
}

/** The main thread's scheduler figures (/proc/<pid>/sched, CONFIG_SCHED_DEBUG) and the CPU it is on. */
function sched(pid) {
  const out = {};
  try {
    for (const line of fs.readFileSync(`/proc/${pid}/sched`, 'utf8').split('\n')) {
      const m = /^(se\.sum_exec_runtime|se\.nr_migrations|nr_voluntary_switches|nr_involuntary_switches)\s*:\s*([\d.]+)/.exec(line);
      if (m) out[m[1].replace('se.', '')] = Number(m[2]);
    }
    out.waitMs = Number(fs.readFileSync(`/proc/${pid}/schedstat`, 'utf8').split(' ')[1]) / 1e6;
    out.cpu = Number(fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ')[36]);
  } catch {
    /* gone */
  }
  return out;
}
const schedDiff = (a, b) => ({ runMs: b.sum_exec_runtime - a.sum_exec_runtime, waitMs: b.waitMs - a.waitMs, vol: b.nr_voluntary_switches - a.nr_voluntary_switches, invol: b.nr_involuntary_switches - a.nr_involuntary_switches, migr: b.nr_migrations - a.nr_migrations, cpu: `${a.cpu}>${b.cpu}` });

/** TCP counters of the kernel (Tcp and TcpExt lines of /proc/net/snmp and /proc/net/netstat). */
function tcpCounters() {
  const out = {};
  for (const f of ['/proc/net/snmp', '/proc/net/netstat']) {
    const lines = fs.readFileSync(f, 'utf8').split('\n');
    for (let i = 0; i + 1 < lines.length; i += 2) {
      const [k, ...names] = lines[i].split(/\s+/);
      if (k !== 'Tcp:' && k !== 'TcpExt:') continue;
      const vals = lines[i + 1].split(/\s+/).slice(1).map(Number);
      names.forEach((n, j) => { out[n] = vals[j]; });
    }
  }
  return out;
}
const WATCHED_TCP = ['RetransSegs', 'TCPLossProbes', 'TCPTimeouts', 'TCPBacklogDrop', 'TCPRcvQDrop', 'TCPZeroWindowDrop', 'TCPFastRetrans', 'TCPSpuriousRTOs', 'DelayedACKs', 'DelayedACKLocked', 'TCPFromZeroWindowAdv', 'TCPToZeroWindowAdv', 'TCPRcvCollapsed', 'PruneCalled', 'TCPOFOQueue'];
function tcpDiff(a, b) {
  const out = {};
  for (const k of WATCHED_TCP) if (b[k] - a[k]) out[k] = b[k] - a[k];
  return out;
}

function systemBusyUs() {
  const [user, nice, system, , , irq, softirq, steal] = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  return ((user + nice + system + irq + softirq + steal) * 1e6) / 100;
}

/** One heartbeat per CPU (bench/cpu-gaps.js), pinned with taskset; their gaps, epoch ms. */
function startProbes() {
  const gaps = [];
  const procs = [];
  for (let cpu = 0; cpu < os.cpus().length; cpu++) {
    const p = spawn('taskset', ['-c', String(cpu), process.execPath, path.join(here, 'cpu-gaps.js'), '10'], { stdio: ['ignore', 'pipe', 'inherit'] });
    let partial = '';
    p.stdout.on('data', (chunk) => {
      const lines = (partial + chunk).split('\n');
      partial = lines.pop();
      for (const l of lines) {
        const g = JSON.parse(l);
        if (!g.ready) gaps.push({ cpu, at: g.at, ms: g.ms });
      }
    });
    procs.push(p);
  }
  process.once('exit', () => procs.forEach((p) => p.kill('SIGKILL')));
  return gaps;
}

const overlapping = (list, from, to) => list.filter((p) => p.at < to && p.at + p.ms > from);
const r1 = (v) => Math.round(v * 10) / 10;

async function slice(lg, t, size, probeGaps) {
  await t.child.call('watch');
  await lg.call('watch');
  const [sa, la, ta, ba, ua] = [sched(t.child.pid), sched(lg.pid), tcpCounters(), systemBusyUs(), await t.child.call('stats')];
  const r = await lg.call('open', { key: `${t.key}:raw`, init: t.init(size), rate: RATE, durationMs: SLICE_MS, warmupMs: 50, times: true });
  const [sb, lb, tb, bb, ub] = [sched(t.child.pid), sched(lg.pid), tcpCounters(), systemBusyUs(), await t.child.call('stats')];
  const server = await t.child.call('watched');
  const gen = await lg.call('watched');
  const serverUs = ub.cpu.user + ub.cpu.system - ua.cpu.user - ua.cpu.system;
  const wallUs = ub.hr - ua.hr;
  const s = schedDiff(sa, sb);
  const g = schedDiff(la, lb);
  const out = {
    target: t.key, size, at: r.startedAt, p50: r.latency.p50, p99: r.latency.p99, max: r.latency.max, lagMax: r.lag.max, errors: r.errors,
    serverCpuPerCheckUs: serverUs / (ub.served - ua.served),
    otherCores: Math.max(0, (bb - ba - s.runMs * 1000 - g.runMs * 1000) / wallUs),
    load1: os.loadavg()[0],
    server: { sched: s, loopMax: server.loop?.max, gcMaxMs: Math.max(0, ...server.pauses.filter((p) => p.at >= r.startedAt).map((p) => p.ms)) },
    loadgen: { sched: g, loopMax: gen.loop?.max, gcMaxMs: Math.max(0, ...gen.pauses.filter((p) => p.at >= r.startedAt).map((p) => p.ms)) },
    tcp: tcpDiff(ta, tb),
    // Mark-compacts of the server inside the slice (their pauses, ms).
    serverMajors: server.pauses.filter((p) => p.at >= r.startedAt && p.kind === 'major').map((p) => r1(p.ms)),
  };
  Object.defineProperty(out, 'samples', { value: r.samples, enumerable: false });
  // The stall: the calls slower than STALL_MS, when they were sent and on which connection.
  const slow = [];
  for (let i = 0; i < r.samples.length; i++) if (r.samples[i] >= STALL_MS) slow.push(i);
  if (slow.length) {
    const from = Math.min(...slow.map((i) => r.sentAt[i]));
    const to = Math.max(...slow.map((i) => r.sentAt[i] + r.samples[i]));
    const perConn = new Array(CHANNELS).fill(0);
    for (const i of slow) perConn[r.sentIndex[i] % CHANNELS]++;
    // Calls sent during the stall that were answered fast (another connection kept going?).
    let fastDuring = 0;
    for (let i = 0; i < r.samples.length; i++) if (r.samples[i] < STALL_MS && r.sentAt[i] >= from && r.sentAt[i] < to - STALL_MS) fastDuring++;
    out.stall = {
      n: slow.length, fromMs: r1(from - r.startedAt), lengthMs: r1(to - from), perConn, fastDuring,
      serverGc: overlapping(server.pauses, from, to).map((p) => `${p.kind} ${r1(p.ms)}ms @${r1(p.at - r.startedAt)}`),
      loadgenGc: overlapping(gen.pauses, from, to).map((p) => `${p.kind} ${r1(p.ms)}ms @${r1(p.at - r.startedAt)}`),
      cpuGaps: overlapping(probeGaps, from, to).map((p) => `cpu${p.cpu} ${r1(p.ms)}ms @${r1(p.at - r.startedAt)}`),
    };
  }
  return out;
}

function line(x) {
  const st = x.stall ? ` STALL n=${x.stall.n} @${x.stall.fromMs}ms len=${x.stall.lengthMs} conns=${x.stall.perConn} fastDuring=${x.stall.fastDuring} sGC=[${x.stall.serverGc}] gGC=[${x.stall.loadgenGc}] gaps=[${x.stall.cpuGaps}]` : '';
  const sc = (o) => `run ${r1(o.sched.runMs)} wait ${r1(o.sched.waitMs)} v${o.sched.vol} i${o.sched.invol} m${o.sched.migr} ${o.sched.cpu} loop ${r1(o.loopMax)} gc ${r1(o.gcMaxMs)}`;
  return `${x.size} ${x.target.padEnd(18)} p50 ${x.p50.toFixed(2)} p99 ${x.p99.toFixed(1).padStart(6)} max ${x.max.toFixed(1).padStart(6)} lag ${x.lagMax.toFixed(1)} cpu/chk ${x.serverCpuPerCheckUs.toFixed(0)} other ${x.otherCores.toFixed(2)} L ${x.load1.toFixed(2)} | srv ${sc(x.server)} | gen ${sc(x.loadgen)} | tcp ${JSON.stringify(x.tcp)}${st}`;
}

async function main() {
  const probeGaps = env.STALLS_PROBE === '0' ? [] : startProbes();
  const lg = child('loadgen', 'loadgen', { execArgv: LOADGEN_EXEC_ARGV });
  await lg.ready;
  const serverArgv = ['--expose-gc', ...SERVER_FLAGS];
  const limit = child('floor-h2', 'floor-h2', { execArgv: serverArgv });
  const tgFile = path.join(work, 'tg.yaml');
  fs.writeFileSync(tgFile, providersYaml(1, { headerRoute: true, checkServer: 'http2' }));
  const tg = child('tokengate-h2', 'tokengate', { env: { ...BENCH_ENV, BENCH_CONFIG: tgFile }, execArgv: serverArgv });
  const twin = child('tokengate-h2-twin', 'tokengate', { env: { ...BENCH_ENV, BENCH_CONFIG: tgFile }, execArgv: serverArgv });
  const infos = await Promise.all([limit.ready, tg.ready, twin.ready]);
  const ctx = (size) => ({ size, contextExtensions: { provider: providerName(0) } });
  const routed = (size) => ({ size, authority: HEADER_ROUTE.authority, headers: { [HEADER_ROUTE.header[0]]: HEADER_ROUTE.header[1] } });
  const targets = [
    { key: 'floor-h2', child: limit, info: infos[0], init: ctx },
    { key: 'tokengate-h2', child: tg, info: infos[1], init: ctx },
    { key: 'tokengate-h2-route', child: tg, info: infos[1], init: routed },
    { key: 'tokengate-h2-twin', child: twin, info: infos[2], init: ctx },
  ];
  log(`pids: loadgen ${lg.pid} limit ${limit.pid} tokengate-h2 ${tg.pid} twin ${twin.pid}; server flags ${serverArgv.join(' ')}`);
  for (const t of targets) {
    await lg.call('connect', { key: `${t.key}:raw`, address: t.info.address, channels: CHANNELS, client: 'raw' });
    await lg.call('connect', { key: `${t.key}:h2`, address: t.info.address, channels: CHANNELS, client: 'h2' });
  }
  const all = [];
  for (const size of SIZES) {
    if (env.STALLS_CLOSED !== '0') {
      for (let k = 0; k < 2; k++) for (const t of targets.filter((x) => x.key !== 'tokengate-h2-route')) await lg.call('closed', { key: `${t.key}:h2`, init: t.init(size), concurrency: 64, durationMs: 1200 });
    }
    for (let s = -1; s < SLICES; s++) {
      const order = targets.map((_, i) => targets[(i + s + 1) % targets.length]);
      for (const t of order) {
        const x = await slice(lg, t, size, probeGaps);
        x.rotation = s;
        if (s >= 0) all.push(x);
        if (x.stall || s < 0) log(`${s < 0 ? '(warm-up) ' : ''}${line(x)}`);
      }
    }
    for (const t of targets) {
      const v = all.filter((x) => x.size === size && x.target === t.key);
      // The pooled p99 as run.js computes it, and without the slices in which the server ran a
      // mark-compact: how much of the pooled figure those pauses are.
      const pooled = (xs) => latencySummary(xs.flatMap((x) => x.samples)).p99;
      const noMajor = v.filter((x) => x.serverMajors.length === 0);
      log(`${size} ${t.key}: slices ${v.length}, with a stall ≥ ${STALL_MS} ms: ${v.filter((x) => x.stall).length}, slice p99 median ${latencySummary(v.map((x) => x.p99)).p50.toFixed(2)} max ${Math.max(...v.map((x) => x.p99)).toFixed(1)}; pooled p99 ${pooled(v).toFixed(2)}, without the ${v.length - noMajor.length} slices with a server mark-compact [${v.flatMap((x) => x.serverMajors)}] ${pooled(noMajor).toFixed(2)}`);
    }
  }
  if (env.STALLS_OUT) fs.writeFileSync(env.STALLS_OUT, JSON.stringify({ all, probeGaps }, null, 1));
  log(`cpu gaps ≥ 10 ms over the run: ${probeGaps.length} (${probeGaps.map((g) => `cpu${g.cpu} ${r1(g.ms)}`).join(', ')})`);
  for (const c of children) await c.stop();
  process.exit(0);
}

main().catch((err) => {
  process.stderr.write(`${err?.stack ?? err}\n`);
  process.exit(1);
});
