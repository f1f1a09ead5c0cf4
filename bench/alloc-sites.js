// `node bench/alloc-sites.js`: what a Check allocates, by allocating function, for the node:http2
// limit and tokengate builds side by side (issue #18, FINDINGS "What a Check allocates"). Each
// target serves a closed loop in alternating rounds while V8's sampling heap profiler runs in it
// (collected objects kept: an estimate of every byte allocated, short-lived garbage included);
// the samples of all rounds are summed per target and divided by the Checks served. Printed:
// bytes per Check per target, then the functions whose bytes differ most from the first target's
// (the limit), then, per tokengate target, the bytes under each of tokengate's own frames.
//
//   ALLOC_TARGETS="limit=floor-h2,tg=http2,base=http2@/path/to/other/bench/target.js"
//   ALLOC_SIZE=3k  ALLOC_ROUTE=1 (routes[] header rule instead of context_extensions)
//   ALLOC_ROUNDS=4  ALLOC_WINDOW_MS=2000  ALLOC_CONCURRENCY=4  ALLOC_INTERVAL=64 (bytes per sample)
//   BENCH_SERVER_FLAGS (default: the Docker image's --max-semi-space-size=2)
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { BENCH_ENV, HEADER_ROUTE, providerName, providersYaml } from './configs.js';
import { Child, LOADGEN_EXEC_ARGV, sleep } from './procs.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const SIZE = process.env.ALLOC_SIZE ?? '3k';
const ROUTED = process.env.ALLOC_ROUTE === '1';
const ROUNDS = Number(process.env.ALLOC_ROUNDS ?? 4);
const WINDOW_MS = Number(process.env.ALLOC_WINDOW_MS ?? 2000);
const CONCURRENCY = Number(process.env.ALLOC_CONCURRENCY ?? 4);
const INTERVAL = Number(process.env.ALLOC_INTERVAL ?? 64);
const SPEC = process.env.ALLOC_TARGETS ?? 'limit=floor-h2,tg=http2';
const FLAGS = (process.env.BENCH_SERVER_FLAGS ?? '--max-semi-space-size=2').split(/\s+/).filter(Boolean);
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'alloc-sites-'));
const log = (m) => process.stderr.write(`[alloc-sites] ${m}\n`);
const init = ROUTED
  ? { size: SIZE, authority: HEADER_ROUTE.authority, headers: { [HEADER_ROUTE.header[0]]: HEADER_ROUTE.header[1] } }
  : { size: SIZE, contextExtensions: { provider: providerName(0) } };

const children = [];
try {
  const lg = new Child('loadgen', path.join(here, 'loadgen.js'), { execArgv: LOADGEN_EXEC_ARGV });
  children.push(lg);
  await lg.ready;
  const targets = [];
  for (const s of SPEC.split(',')) {
    const [name, rest] = [s.slice(0, s.indexOf('=')), s.slice(s.indexOf('=') + 1)];
    const [role, script = path.join(here, 'target.js')] = rest.split('@');
    let c;
    if (role === 'http2') {
      const file = path.join(work, `${name}.yaml`);
      fs.writeFileSync(file, providersYaml(1, { checkServer: 'http2', headerRoute: ROUTED }));
      c = new Child(name, script, { args: ['tokengate'], env: { ...BENCH_ENV, BENCH_CONFIG: file }, execArgv: ['--expose-gc', ...FLAGS] });
    } else {
      c = new Child(name, script, { args: [role], env: { BENCH_FLOOR_ANSWER: JSON.stringify({ provider: providerName(0), header: 'authorization' }) }, execArgv: ['--expose-gc', ...FLAGS] });
    }
    children.push(c);
    const info = await c.ready;
    await lg.call('connect', { key: name, address: info.address, channels: 4, client: 'h2' });
    targets.push({ name, role, child: c, sites: new Map(), total: 0, served: 0 });
  }
  log(`${SIZE} ${ROUTED ? 'routes[]' : 'context_extensions'}, ${CONCURRENCY} in flight, ${ROUNDS} rounds × ${WINDOW_MS} ms (+ a warm-up round), 1 sample per ${INTERVAL} B; load ${os.loadavg().map((v) => v.toFixed(2)).join(' ')}`);
  for (let r = 0; r <= ROUNDS; r++) {
    for (let i = 0; i < targets.length; i++) {
      const t = targets[(i + r) % targets.length];
      await t.child.call('memory');
      const run = lg.call('closed', { key: t.name, init, concurrency: CONCURRENCY, durationMs: 300 + WINDOW_MS + 200 });
      await sleep(300);
      const a = await t.child.call('stats');
      await t.child.call('allocStart', { interval: INTERVAL });
      await sleep(WINDOW_MS);
      const sampled = await t.child.call('allocStop', { top: null });
      const b = await t.child.call('stats');
      await run;
      if (r === 0) continue; // warm-up: the JIT's first tiers allocate differently
      t.served += b.served - a.served;
      t.total += sampled.total;
      for (const [k, v] of sampled.sites) t.sites.set(k, (t.sites.get(k) ?? 0) + v);
    }
  }
  const per = (t, v) => v / t.served;
  process.stdout.write(`\n${SIZE}, ${ROUTED ? 'routes[] header rule' : 'context_extensions'}, ${CONCURRENCY} in flight, ${ROUNDS} rounds; load ${os.loadavg().map((v) => v.toFixed(2)).join(' ')}\n`);
  for (const t of targets) process.stdout.write(`${t.name.padEnd(8)} ${per(t, t.total).toFixed(0).padStart(6)} B per Check (${t.served} Checks sampled)\n`);
  // By allocating function (whoever called it).
  const byFn = (t) => {
    const m = new Map();
    for (const [k, v] of t.sites) {
      const fn = k.split('  <=  ')[0];
      m.set(fn, (m.get(fn) ?? 0) + per(t, v));
    }
    return m;
  };
  const [first, ...rest] = targets;
  const f0 = byFn(first);
  for (const t of rest) {
    const ft = byFn(t);
    const keys = new Set([...f0.keys(), ...ft.keys()]);
    const diff = [...keys].map((k) => [k, (ft.get(k) ?? 0) - (f0.get(k) ?? 0)]).sort((x, y) => Math.abs(y[1]) - Math.abs(x[1]));
    process.stdout.write(`\n${t.name} − ${first.name}, by allocating function (B per Check; |Δ| ≥ 15):\n`);
    for (const [k, d] of diff) if (Math.abs(d) >= 15) process.stdout.write(`${d.toFixed(0).padStart(7)}  ${k}\n`);
    if (t.role === 'http2') {
      const byOurs = new Map();
      for (const [k, v] of t.sites) {
        const [fn, ours] = k.split('  <=  ');
        if (ours === '(node only)') continue;
        const key = `${ours}  ::  ${fn}`;
        byOurs.set(key, (byOurs.get(key) ?? 0) + per(t, v));
      }
      process.stdout.write(`\n${t.name}: under tokengate's own frames (innermost  ::  allocating function; B per Check ≥ 5):\n`);
      for (const [k, v] of [...byOurs].sort((x, y) => y[1] - x[1])) if (v >= 5) process.stdout.write(`${v.toFixed(0).padStart(7)}  ${k}\n`);
    }
  }
  await lg.stop();
} finally {
  await Promise.all(children.map((c) => c.stop(2_000).catch(() => undefined)));
  fs.rmSync(work, { recursive: true, force: true });
}
