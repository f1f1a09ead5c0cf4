// What a provider weighs, independent of load (issue #18; bench/FINDINGS.md, "What a provider
// weighs"): for each N, a fresh tokengate process with N providers and N routes (the scale
// stage's config, bench/configs.js), started and warmed up, then after a full GC: V8's heap
// used, RSS, the active handles and timers, and how many timer callbacks run per second while
// idle. Optionally a heap snapshot aggregated by constructor, as a difference against N=1.
// Usage: node bench/provider-weight.js            (needs `npm run build` and `npm run build:demo`)
// Options (env):
//   NS=1,1000,10000   provider counts
//   KIND=jwt|cc       jwt: self-signed (no token endpoint, the bench's scale config); cc:
//                     client_credentials against a loopback demo IdP (one breaker per provider)
//   IDLE_S=10         seconds of idle over which timer callbacks are counted
//   SNAPSHOT=1        heap snapshot of each process, the largest N's excess over N=1 by constructor
//   FLAGS="--max-semi-space-size=2"   the server's V8 flags
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { BENCH_ENV, providersYaml } from './configs.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const M = (b) => (b / 2 ** 20).toFixed(1);

/** The scale config with client_credentials sources against one loopback origin (budget wide open). */
function ccYaml(n, tokenUrl) {
  const origin = new URL(tokenUrl).origin;
  const lines = [
    'listen: { grpc: "127.0.0.1:0", admin: "off", limits: { maxConnectionAge: 1h } }',
    'log: { level: warn }',
    `tokenEndpoints: { "${origin}": { maxRate: 100000/s, burst: 100000, maxConcurrent: 16 } }`,
    'providers:',
  ];
  for (let i = 0; i < n; i++) lines.push(`  p${i}: { source: { type: client_credentials, tokenUrl: "${tokenUrl}", clientId: demo-client, clientSecret: "\${env:BENCH_IDP_SECRET}" } }`);
  lines.push('routes:');
  for (let i = 0; i < n; i++) lines.push(`  - { match: { authority: svc-${i}.bench.example, pathPrefix: /v1/ }, provider: p${i} }`);
  return `${lines.join('\n')}\n`;
}

// ---- the child: one tokengate, measured ---------------------------------------------------

async function child() {
  const { default: asyncHooks } = await import('node:async_hooks');
  const v8 = await import('node:v8');
  // Timer callbacks (Timeout resources: setTimeout and setInterval alike, each repeat counted).
  // PW_SITES=1: by where each timer was created (the first frame outside node: and this file).
  const timeouts = new Map();
  const sites = new Map();
  let fired = 0;
  const siteOf = () => {
    const frames = (new Error().stack ?? '').split('\n').slice(1).map((l) => l.trim());
    return frames.find((l) => !l.includes('node:') && !l.includes('provider-weight.js'))?.replace(/^at /, '').replace(/\(?file:\/\/[^)]*\/(dist|node_modules)\//, '$1/') ?? 'node';
  };
  const hook = asyncHooks.createHook({
    init(id, type) { if (type === 'Timeout') timeouts.set(id, process.env.PW_SITES === '1' ? siteOf() : ''); },
    before(id) {
      const site = timeouts.get(id);
      if (site === undefined) return;
      fired++;
      if (site) sites.set(site, (sites.get(site) ?? 0) + 1);
    },
    destroy(id) { timeouts.delete(id); },
  });
  if (process.env.PW_TIMERS === '1') hook.enable();
  if (process.env.PW_SITES === '1') {
    // The system clock's timers share one Node timer: count its callbacks by where each was set.
    const { systemClock } = await import('../dist/clock.js');
    const setTimer = systemClock.setTimer;
    systemClock.setTimer = (fn, ms) => {
      const site = `clock ${ms}ms ${siteOf()}`;
      return setTimer(() => {
        sites.set(site, (sites.get(site) ?? 0) + 1);
        fn();
      }, ms);
    };
  }
  const { parseConfig } = await import('../dist/config/load.js');
  const { startTokengate } = await import('../dist/app.js');
  const { createLogger } = await import('../dist/observability/logger.js');
  const gc = () => { globalThis.gc(); globalThis.gc(); };
  gc();
  const base = process.memoryUsage();
  const config = parseConfig(fs.readFileSync(process.env.PW_CONFIG, 'utf8'), { env: process.env });
  const logger = createLogger({ level: 'error', sink: () => undefined }); // audit lines too: a log sink is not what is measured
  const app = await startTokengate(config, { logger });
  await app.ready;
  // SETTLE_S: a wait before measuring (timers left from warm-up, cancelled or not, fall due).
  await new Promise((r) => setTimeout(r, Number(process.env.SETTLE_S ?? 0.5) * 1000));
  gc();
  const mem = process.memoryUsage();
  const resources = {};
  for (const r of process.getActiveResourcesInfo()) resources[r] = (resources[r] ?? 0) + 1;
  const idleS = Number(process.env.IDLE_S ?? 10);
  const f0 = fired;
  sites.clear();
  const cpu0 = process.cpuUsage();
  // This wait's own timer is created with the hook off, so it is not counted.
  hook.disable();
  const idle = new Promise((r) => setTimeout(r, idleS * 1000));
  if (process.env.PW_TIMERS === '1') hook.enable();
  await idle;
  const cpu1 = process.cpuUsage(cpu0);
  const out = {
    heapUsed: mem.heapUsed, heapBase: base.heapUsed, rss: mem.rss, external: mem.external,
    resources, timerCallbacksPerS: process.env.PW_TIMERS === '1' ? (fired - f0) / idleS : null,
    idleCpuMsPerS: (cpu1.user + cpu1.system) / 1000 / idleS,
    timerSites: [...sites].sort((a, b) => b[1] - a[1]).slice(0, 8).map(([s, n]) => `${(n / idleS).toFixed(1)}/s ${s}`),
  };
  if (process.env.SNAPSHOT === '1') {
    hook.disable();
    gc();
    out.byConstructor = await aggregate(v8.getHeapSnapshot());
  }
  fs.writeFileSync(process.env.PW_OUT, JSON.stringify(out));
  await app.close(2_000);
  process.exit(0);
}

/**
 * Self bytes and counts by node type and name (constructor for objects) of a heap snapshot;
 * with PW_RETAINERS=1 keyed also by the first strong retainer found (its name and the edge).
 */
async function aggregate(stream) {
  const chunks = [];
  for await (const c of stream) chunks.push(c);
  const snap = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  const meta = snap.snapshot.meta;
  const f = meta.node_fields;
  const ef = meta.edge_fields;
  const types = meta.node_types[0];
  const edgeTypes = meta.edge_types[0];
  const [iType, iName, iSize, iEdges] = ['type', 'name', 'self_size', 'edge_count'].map((k) => f.indexOf(k));
  const [eType, eName, eTo] = ['type', 'name_or_index', 'to_node'].map((k) => ef.indexOf(k));
  const n = snap.nodes;
  const e = snap.edges;
  const label = (i) => {
    const type = types[n[i + iType]];
    const name = type === 'string' || type === 'concatenated string' || type === 'sliced string' || type === 'number' ? '' : snap.strings[n[i + iName]].slice(0, 50);
    return `${type}:${name}`;
  };
  const parent = new Map();
  if (process.env.PW_RETAINERS === '1') {
    let ei = 0;
    for (let i = 0; i < n.length; i += f.length) {
      for (let k = 0; k < n[i + iEdges]; k++, ei += ef.length) {
        const et = edgeTypes[e[ei + eType]];
        if (et === 'weak' || et === 'shortcut') continue;
        const to = e[ei + eTo];
        if (!parent.has(to)) parent.set(to, `${label(i)}.${et === 'element' || et === 'hidden' ? `[${et}]` : snap.strings[e[ei + eName]]}`);
      }
    }
  }
  const by = {};
  for (let i = 0; i < n.length; i += f.length) {
    const key = parent.size ? `${label(i)} <- ${parent.get(i) ?? '?'}` : label(i);
    const entry = (by[key] ??= [0, 0]);
    entry[0] += n[i + iSize];
    entry[1]++;
  }
  return by;
}

// ---- the parent ---------------------------------------------------------------------------

function run(n, kind, file, env, timers) {
  const out = path.join(path.dirname(file), `out-${n}-${timers}.json`);
  const flags = (process.env.FLAGS ?? '--max-semi-space-size=2').split(/\s+/).filter(Boolean);
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, ['--expose-gc', ...flags, fileURLToPath(import.meta.url), 'child'], {
      env: { ...process.env, ...BENCH_ENV, ...env, PW_CONFIG: file, PW_OUT: out, PW_TIMERS: timers ? '1' : '0', SNAPSHOT: timers ? '0' : (process.env.SNAPSHOT ?? '0') },
      stdio: ['ignore', 'inherit', 'inherit'],
    });
    p.on('exit', (code) => (code === 0 ? resolve(JSON.parse(fs.readFileSync(out, 'utf8'))) : reject(new Error(`child N=${n} exited ${code}`))));
  });
}

async function parent() {
  const NS = (process.env.NS ?? '1,1000,10000').split(',').map(Number);
  const KIND = process.env.KIND ?? 'jwt';
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'provider-weight-'));
  let idp;
  const env = {};
  if (KIND === 'cc') {
    const { DemoTokenServer } = await import('../dist-demo/token-server.js');
    idp = new DemoTokenServer({ tokenTtlSeconds: 3600, host: '127.0.0.1' });
    await idp.start();
    env.BENCH_IDP_SECRET = 'demo-secret';
  }
  console.log(`KIND=${KIND} flags=${process.env.FLAGS ?? '--max-semi-space-size=2'} load ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}`);
  const results = new Map();
  try {
    for (const n of NS) {
      const file = path.join(work, `c${n}.yaml`);
      fs.writeFileSync(file, KIND === 'cc' ? ccYaml(n, idp.tokenUrl) : providersYaml(n));
      const r = await run(n, KIND, file, env, false);
      const t = await run(n, KIND, file, env, true);
      results.set(n, r);
      const timers = Object.entries(t.resources).map(([k, v]) => `${k} ${v}`).join(', ');
      for (const s of t.timerSites) console.log(`    timer ${s}`);
      console.log(`N=${n}: heapUsed ${M(r.heapUsed)} MB (before start ${M(r.heapBase)}), rss ${M(r.rss)} MB, external ${M(r.external)} MB; active: ${timers}; idle: ${t.timerCallbacksPerS.toFixed(1)} timer callbacks/s, ${r.idleCpuMsPerS.toFixed(2)} ms CPU/s`);
    }
    const lo = results.get(NS[0]);
    for (const n of NS.slice(1)) {
      const r = results.get(n);
      console.log(`N=${n} vs N=${NS[0]}: ${((r.heapUsed - lo.heapUsed) / (n - NS[0])).toFixed(0)} B heap a provider, ${((r.rss - lo.rss) / (n - NS[0])).toFixed(0)} B RSS a provider`);
    }
    if (process.env.SNAPSHOT === '1') {
      const hi = NS[NS.length - 1];
      const a = lo.byConstructor;
      const b = results.get(hi).byConstructor;
      const rows = Object.keys(b).map((k) => [k, b[k][0] - (a[k]?.[0] ?? 0), b[k][1] - (a[k]?.[1] ?? 0)]).sort((x, y) => y[1] - x[1]);
      const per = hi - NS[0];
      console.log(`heap snapshot, N=${hi} less N=${NS[0]}, per provider (self bytes, objects):`);
      for (const [k, bytes, count] of rows.slice(0, Number(process.env.PW_ROWS ?? 40))) console.log(`  ${(bytes / per).toFixed(1).padStart(8)} B  ${(count / per).toFixed(2).padStart(6)}  ${k}`);
      console.log(`  total ${(rows.reduce((s, r) => s + r[1], 0) / per).toFixed(0)} B a provider`);
    }
  } finally {
    await idp?.stop();
    fs.rmSync(work, { recursive: true, force: true });
  }
}

if (process.argv[2] === 'child') await child();
else await parent();
