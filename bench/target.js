// A server under test, in its own process: `floor-h2`, `floor-object`, `floor-buffer`,
// or `tokengate` (its config says which serving path Check runs on: `listen.checkServer`).
//
// The floors are do-nothing ext_authz servers on the same stack as tokengate: the same
// @grpc/grpc-js server, the same server options, the same service definition (so the same
// proto-loader options decode every CheckRequest exactly as in tokengate), and the same answer
// shape: one header with append:false + append_action, and the dynamic metadata.
//   floor-object  answers a constant response object (grpc-js encodes it on every call): the
//                 "do nothing" floor of a plain grpc-js service.
//   floor-buffer  answers a constant, pre-encoded Buffer through a pass-through serialiser: the
//                 lowest cost this stack allows, and exactly what tokengate's cache hit does.
//   floor-h2      the platform's limit: a node:http2 server (no grpc-js) that reads each
//                 request to its end and answers every stream with the same answer's bytes,
//                 gRPC-framed once at startup, and a `grpc-status: 0` trailer.
import fs from 'node:fs';
import http2 from 'node:http2';
import { PerformanceObserver, constants as perfConstants } from 'node:perf_hooks';
import v8 from 'node:v8';
import * as grpc from '@grpc/grpc-js';
import { GRPC_SERVER_OPTIONS, startTokengate } from '../dist/app.js';
import { installStreamTable } from '../dist/server/h2/stream-table.js';
import { capHeapGrowth } from '../dist/server/heap-growth.js';
import { stopPretenuring } from '../dist/server/pretenuring.js';
import { parseConfig } from '../dist/config/load.js';
import { createLogger } from '../dist/observability/logger.js';
import { okWithToken } from '../dist/server/check-response.js';
import { authorizationServiceDefinition } from '../dist/server/protos.js';
import { announceFailure, announceReady, serveParent } from './procs.js';
import { Watch } from './watch.js';
import { Session } from 'node:inspector';

const role = process.argv[2];

// Experiments only (not used by `npm run bench`): extra grpc-js server options for every
// target, e.g. BENCH_SERVER_OPTIONS='{"grpc.enable_channelz":0}'.
// Runs last longer than the 5-minute connection age and idle time; the load generator's h2
// sessions do not reconnect after a GOAWAY, so floors (like tokengate's bench configs) keep
// connections for the run.
Object.assign(GRPC_SERVER_OPTIONS, { 'grpc.max_connection_age_ms': 86_400_000, 'grpc.max_connection_idle_ms': 86_400_000 }, JSON.parse(process.env.BENCH_SERVER_OPTIONS ?? '{}'));

// BENCH_GC_STATS=1 (size-ab.js, size-profile.js): GC pauses on the main thread by kind, in
// `stats`, to see which collections a request's bytes cause.
const gcStats = { minor: { n: 0, ms: 0 }, major: { n: 0, ms: 0 }, incremental: { n: 0, ms: 0 }, weakcb: { n: 0, ms: 0 } };
if (process.env.BENCH_GC_STATS === '1') {
  const kinds = { [perfConstants.NODE_PERFORMANCE_GC_MINOR]: 'minor', [perfConstants.NODE_PERFORMANCE_GC_MAJOR]: 'major', [perfConstants.NODE_PERFORMANCE_GC_INCREMENTAL]: 'incremental', [perfConstants.NODE_PERFORMANCE_GC_WEAKCB]: 'weakcb' };
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      const g = gcStats[kinds[e.detail?.kind]];
      if (g) {
        g.n++;
        g.ms += e.duration;
      }
    }
  }).observe({ entryTypes: ['gc'] });
}

function memory() {
  const m = process.memoryUsage();
  // Old space's committed vs used bytes: how much of heapTotal is fragmentation around live objects.
  const old = v8.getHeapSpaceStatistics().find((s) => s.space_name === 'old_space');
  return { rss: m.rss, heapUsed: m.heapUsed, heapTotal: m.heapTotal, external: m.external, arrayBuffers: m.arrayBuffers, oldSpaceSize: old?.space_size ?? 0, oldSpaceUsed: old?.space_used_size ?? 0, ...residentByKind() };
}

/**
 * Resident bytes by mapping (Linux): glibc's main malloc arena (`[heap]`), its thread arenas
 * (64 MB-aligned reservations), and every other anonymous mapping (V8's heap pages, large
 * ArrayBuffers): where RSS outside V8's heapTotal lives.
 */
function residentByKind() {
  let text;
  try {
    text = fs.readFileSync('/proc/self/smaps', 'utf8');
  } catch {
    return {};
  }
  let brk = 0;
  let arenas = 0;
  let anon = 0;
  let kind = 'other';
  for (const line of text.split('\n')) {
    const head = /^([0-9a-f]+)-([0-9a-f]+) \S+ \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (head) {
      const start = BigInt(`0x${head[1]}`);
      const name = head[3];
      kind = name === '[heap]' ? 'brk' : name === '' ? (start % (64n << 20n) === 0n ? 'arena' : 'anon') : 'other';
      continue;
    }
    if (line.startsWith('Rss:')) {
      const kb = Number(line.split(/\s+/)[1]) * 1024;
      if (kind === 'brk') brk += kb;
      else if (kind === 'arena') arenas += kb;
      else if (kind === 'anon') anon += kb;
    }
  }
  return { rssMallocMain: brk, rssMallocArenas: arenas, rssAnon: anon };
}

function gcNow() {
  if (typeof globalThis.gc === 'function') {
    globalThis.gc();
    globalThis.gc();
  }
}

function bindServer(server) {
  return new Promise((resolve, reject) => {
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, port) => (err ? reject(err) : resolve(`127.0.0.1:${port}`)));
  });
}

async function startFloor(kind) {
  /** The answer tokengate gives for the same token: same header, same metadata, same bytes. */
  const a = JSON.parse(process.env.BENCH_FLOOR_ANSWER ?? '{}');
  const answer = okWithToken(
    a.provider ?? 'p0',
    { headerValue: a.headerValue ?? 'Bearer floor', tokenId: a.tokenId ?? 'floor' },
    a.source ?? 'cache',
    { header: a.header ?? 'authorization', format: 'Bearer {token}', removeHeaders: [] },
  );
  const base = authorizationServiceDefinition();
  const check = base.Check;
  let served = 0;
  let definition = base;
  let handler;
  if (kind === 'buffer') {
    const encode = check.responseSerialize;
    const buf = encode(answer);
    definition = { ...base, Check: { ...check, responseSerialize: (v) => (Buffer.isBuffer(v) ? v : encode(v)) } };
    handler = (_call, callback) => {
      served++;
      callback(null, buf);
    };
  } else {
    handler = (_call, callback) => {
      served++;
      callback(null, answer);
    };
  }
  const server = new grpc.Server(GRPC_SERVER_OPTIONS);
  server.addService(definition, { Check: handler });
  const address = await bindServer(server);
  return {
    address,
    served: () => served,
    stop: () => new Promise((resolve) => server.tryShutdown(() => resolve())),
    extra: {},
  };
}

async function startH2Floor() {
  const a = JSON.parse(process.env.BENCH_FLOOR_ANSWER ?? '{}');
  const answer = okWithToken(
    a.provider ?? 'p0',
    { headerValue: a.headerValue ?? 'Bearer floor', tokenId: a.tokenId ?? 'floor' },
    a.source ?? 'cache',
    { header: a.header ?? 'authorization', format: 'Bearer {token}', removeHeaders: [] },
  );
  const body = authorizationServiceDefinition().Check.responseSerialize(answer);
  const frame = Buffer.alloc(5 + body.length);
  frame.writeUInt32BE(body.length, 1);
  body.copy(frame, 5);
  const HEADERS = { ':status': 200, 'content-type': 'application/grpc' };
  const TRAILERS = { 'grpc-status': '0' };
  let served = 0;
  const sessions = new Set();
  const server = http2.createServer();
  // The limit gets the connection window tokengate's Check path opens (256 KiB,
  // src/server/h2/stream-dispatch.ts): like is measured against like, so the window's saving at
  // 8 KB is not counted as tokengate beating the platform. BENCH_LIMIT_WINDOW=0 keeps nghttp2's
  // 65,535 bytes (size-ab.js `limit`, to see the stalls themselves).
  const window = Number(process.env.BENCH_LIMIT_WINDOW ?? 256 * 1024);
  // Likewise the stream table tokengate's Check path gives its connections (node:http2's Map of
  // open streams chains them into the old generation after a full GC under load: FINDINGS, "What
  // the promoted kilobyte was"). BENCH_LIMIT_STREAM_TABLE=0 keeps node's Map.
  const streamTable = process.env.BENCH_LIMIT_STREAM_TABLE !== '0';
  // BENCH_LIMIT_HEAP_CAP=1 (an experiment; off by default): the limit grows its old generation as
  // tokengate does (src/server/heap-growth.ts, +50 % of what the last mark-compact kept). Off, V8
  // picks: its first mark-compact under load comes at ~53 MB (4 × what start-up kept) and, with
  // node:http2's external header strings to finalise, pauses 110-145 ms; later ones at 1.5-3 ×
  // (FINDINGS, "The stalls in the p99 slices").
  if (process.env.BENCH_LIMIT_HEAP_CAP === '1') capHeapGrowth();
  // As tokengate does before it serves (src/server/pretenuring.ts): with V8's allocation-site
  // pretenuring, node:http2's per-stream sites got tenured and every stream's graph promoted
  // (FINDINGS, "The stream chain that remained"). BENCH_LIMIT_PRETENURING=1 keeps V8's default.
  if (process.env.BENCH_LIMIT_PRETENURING !== '1') stopPretenuring();
  server.on('session', (s) => {
    if (window > 0) s.setLocalWindowSize(window);
    if (streamTable) installStreamTable(s);
    sessions.add(s);
    s.on('close', () => sessions.delete(s));
  });
  server.on('stream', (stream) => {
    stream.on('error', () => undefined);
    stream.on('data', () => undefined);
    stream.on('end', () => {
      served++;
      stream.respond(HEADERS, { waitForTrailers: true });
      stream.on('wantTrailers', () => stream.sendTrailers(TRAILERS));
      stream.end(frame);
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    address: `127.0.0.1:${server.address().port}`,
    served: () => served,
    stop: () => new Promise((resolve) => {
      server.close(() => resolve());
      for (const s of sessions) s.close();
    }),
    extra: {},
  };
}

/** Checks answered so far, from tokengate's own checks_total counter (bench-only peek). */
function checksServed(metrics) {
  const cells = metrics.checks.cells;
  if (cells instanceof Map) {
    let n = 0;
    // A series is its cell (since branch diet); before, an entry held it as `cell`.
    for (const e of cells.values()) n += e.cell?.value ?? e.value;
    return n;
  }
  let n = 0;
  for (const line of metrics.render().split('\n')) if (line.startsWith('tokengate_checks_total{')) n += Number(line.slice(line.lastIndexOf(' ') + 1));
  return n;
}

async function startTokengateTarget() {
  const yaml = fs.readFileSync(process.env.BENCH_CONFIG, 'utf8');
  const t0 = performance.now();
  const config = parseConfig(yaml, { env: process.env });
  const parsedMs = performance.now() - t0;
  const afterParse = memory(); // before any forced GC: the parse's garbage is still counted
  const logger = createLogger({ level: config.log.level, sink: (line) => process.stderr.write(`${line}\n`) });
  const app = await startTokengate(config, { logger });
  const startedMs = performance.now() - t0;
  await app.ready;
  const readyMs = performance.now() - t0;
  return {
    address: app.grpcAddress,
    served: () => checksServed(app.metrics),
    stop: () => app.close(2_000),
    extra: {
      adminAddress: app.adminAddress,
      providers: config.providers.size,
      routes: config.routes.length,
      parseMs: parsedMs,
      afterParse,
      listenMs: startedMs,
      warmupMs: readyMs - startedMs,
      readyMs,
      states: tally(app.manager.stats().map((s) => s.state)),
    },
  };
}

/**
 * Where the bytes allocated go (bench/tail.js TAIL_ALLOC=1): V8's sampling heap profiler with
 * collected objects kept, so short-lived garbage counts (the default keeps only what survives).
 * Returns the bytes allocated (V8 scales the samples: an estimate of every byte) and the top
 * allocating functions, each with the innermost function of ours on its stack.
 */
class AllocationSampler {
  constructor() {
    this.session = undefined;
  }
  post(method, params = {}) {
    return new Promise((resolve, reject) => this.session.post(method, params, (err, res) => (err ? reject(err) : resolve(res))));
  }
  async start(interval, survivors = false) {
    this.session = new Session();
    this.session.connect();
    // survivors: drop the samples a scavenge collects, so what is left is what survived the
    // young generation (promoted, then collected by a mark-compact, or still live).
    await this.post('HeapProfiler.startSampling', { samplingInterval: interval, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: !survivors });
    return {};
  }
  async stop(top = 60) {
    const { profile } = await this.post('HeapProfiler.stopSampling');
    this.session.disconnect();
    const self = new Map();
    const walk = (node, stack) => {
      const f = node.callFrame;
      const name = `${f.functionName || '(anon)'} ${f.url.replace(/^.*\/(node_modules|dist|bench)\//, '$1/').replace(/^node:internal\//, '')}:${f.lineNumber + 1}`;
      const here = [...stack, name];
      if (node.selfSize > 0) {
        const ours = here.findLast((n) => n.includes('dist/')) ?? '(node only)';
        const key = `${name}  <=  ${ours}`;
        self.set(key, (self.get(key) ?? 0) + node.selfSize);
      }
      for (const c of node.children) walk(c, here.slice(-12));
    };
    walk(profile.head, []);
    let total = 0;
    for (const v of self.values()) total += v;
    return { total, sites: [...self].sort((a, b) => b[1] - a[1]).slice(0, top ?? undefined) };
  }
}

function tally(values) {
  const out = {};
  for (const v of values) out[v] = (out[v] ?? 0) + 1;
  return out;
}

try {
  const t = role === 'tokengate' ? await startTokengateTarget() : role === 'floor-h2' ? await startH2Floor() : await startFloor(role === 'floor-buffer' ? 'buffer' : 'object');
  const watch = new Watch();
  const allocations = new AllocationSampler();
  serveParent({
    stats: () => ({ cpu: process.cpuUsage(), served: t.served(), hr: Number(process.hrtime.bigint() / 1000n), now: performance.now(), mem: memory(), gc: structuredClone(gcStats) }),
    // TAIL_ALLOC=heap (bench/tail.js): heap growth and collections so far, nothing else read.
    heap: () => ({ heapUsed: process.memoryUsage().heapUsed, served: t.served(), collections: gcStats.minor.n + gcStats.major.n + gcStats.incremental.n }),
    memory: ({ gc = true } = {}) => {
      if (gc) gcNow();
      return memory();
    },
    watch: () => watch.start(),
    watched: () => watch.stop(),
    allocStart: ({ interval = 256, survivors = false }) => allocations.start(interval, survivors),
    // top: how many sites (null: all; bench/alloc-sites.js).
    allocStop: ({ top = 60 } = {}) => allocations.stop(top),
    stop: () => t.stop(),
  });
  // BENCH_START_GC=0 (an experiment): no forced full GC before `ready`. Not a cure for the limit's
  // long first mark-compact: without it V8's initial old-generation limit puts that one at 56 MB
  // instead of 53 (FINDINGS, "The stalls in the p99 slices").
  if (process.env.BENCH_START_GC !== '0') gcNow();
  announceReady({ role, pid: process.pid, address: t.address, mem: memory(), ...t.extra });
} catch (err) {
  announceFailure(err);
}
