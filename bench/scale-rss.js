// Where a tokengate's RSS goes under load (issue #18; bench/FINDINGS.md, "The 10,000-provider
// arena"): one tokengate with N jwt providers and N routes, the scale stage's h2 closed loop
// (64 in flight over 4 connections), and the server's resident bytes by kind (V8's heap, glibc's
// main arena, thread arenas, other anonymous mappings) sampled every SAMPLE_MS while it runs.
// Options (env):
//   N=10000  MODE=ctx|route  SECS=10  SAMPLE_MS=500
//   FLAGS="--max-semi-space-size=2"  the server's V8 flags (add --heap-growing-percent=0 for V8's own factor)
//   SERVER_EXTRA="--trace-gc --trace-gc-verbose"  more flags; mark-compacts and V8's factor are printed
//   BUSY=n      n busy-loop processes competing for the cores (at most 10 minutes each)
//   GC=1        a full GC in the server at every sample (is the memory held by JS garbage?)
//   ALLOC=1     V8's sampling heap profiler, survivors only: what a Check leaves past a scavenge
//   WRAP=path   the server runs under that executable (a script that execs `heaptrack node "$@"`)
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { BENCH_ENV, providerName, providersYaml, routeAuthority } from './configs.js';
import { Child, sleep } from './procs.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const N = Number(process.env.N ?? 10_000);
const MODE = process.env.MODE ?? 'ctx';
const SECS = Number(process.env.SECS ?? 10);
const BUSY = Number(process.env.BUSY ?? 0);
const SAMPLE_MS = Number(process.env.SAMPLE_MS ?? 500);
const FLAGS = (process.env.FLAGS ?? '--max-semi-space-size=2').split(/\s+/).filter(Boolean);
const EXTRA = (process.env.SERVER_EXTRA ?? '').split(/\s+/).filter(Boolean);
const M = (b) => (b / 2 ** 20).toFixed(1);

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'scale-rss-'));
const file = path.join(work, 'c.yaml');
fs.writeFileSync(file, providersYaml(N));
const busy = Array.from({ length: BUSY }, () => spawn(process.execPath, ['-e', 'const end = Date.now() + 600000; while (Date.now() < end);'], { stdio: 'ignore' }));
const lg = new Child('loadgen', path.join(here, 'loadgen.js'), { execArgv: ['--expose-gc'] });
const realExecPath = process.execPath;
if (process.env.WRAP) process.execPath = process.env.WRAP;
const tg = new Child('tokengate', path.join(here, 'target.js'), { args: ['tokengate'], env: { ...BENCH_ENV, BENCH_CONFIG: file, ...(process.env.SERVER_ENV ? JSON.parse(process.env.SERVER_ENV) : {}) }, execArgv: ['--expose-gc', ...FLAGS, ...EXTRA], readyTimeoutMs: 300_000 });
process.execPath = realExecPath;
// With --trace-gc (--trace-gc-verbose): the server's mark-compacts and V8's growing factor, as they happen.
tg.proc.stdout.on('data', (d) => {
  for (const l of String(d).split('\n')) if (/Mark-Compact|factor|Grow:|Dampen/.test(l)) console.log(`  gc: ${l.replace(/^\[\d+:0x[0-9a-f]+\]\s*/, '').slice(0, 160)}`);
});
const line = (tag, m) => `${tag} rss ${M(m.rss)} heapTotal ${M(m.heapTotal)} oldUsed ${M(m.oldSpaceUsed)} arrayBuffers ${M(m.arrayBuffers)} main ${M(m.rssMallocMain)} arenas ${M(m.rssMallocArenas)} anon ${M(m.rssAnon)}`;
try {
  await lg.ready;
  const info = await tg.ready;
  console.log(`N=${N} MODE=${MODE} BUSY=${BUSY} flags=${FLAGS.join(' ')} ${EXTRA.join(' ')} load ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}`);
  console.log(line('after warm-up', info.mem));
  await lg.call('connect', { key: 't:h2', address: info.address, channels: 4, client: 'h2' });
  const init = MODE === 'route' ? { authority: routeAuthority(N - 1) } : { contextExtensions: { provider: providerName(N - 1) } };
  if (process.env.ALLOC === '1') await tg.call('allocStart', { interval: 1024, survivors: true });
  const a = await tg.call('stats');
  const run = lg.call('closed', { key: 't:h2', init, concurrency: 64, durationMs: SECS * 1000 });
  let done = false;
  run.then(() => { done = true; });
  let peak = 0;
  const t0 = Date.now();
  while (!done) {
    await sleep(SAMPLE_MS);
    if (process.env.GC === '1') await tg.call('memory');
    const s = await tg.call('stats');
    peak = Math.max(peak, s.mem.rssMallocMain);
    console.log(line(`t=${((Date.now() - t0) / 1000).toFixed(1)}s served ${s.served - a.served}`, s.mem));
  }
  const r = await run;
  const b = await tg.call('stats');
  if (process.env.ALLOC === '1') {
    const { total, sites } = await tg.call('allocStop');
    console.log(`survivors sampled: ${M(total)} MB, ${(total / (b.served - a.served)).toFixed(0)} B a Check; top sites:`);
    for (const [site, bytes] of sites.slice(0, 25)) console.log(`  ${(bytes / (b.served - a.served)).toFixed(1).padStart(7)} B/Check  ${site}`);
  }
  console.log(`rate ${(r.ok / (r.elapsedMs / 1000)).toFixed(0)}/s errors ${r.errors} server cpu/Check ${(((b.cpu.user + b.cpu.system) - (a.cpu.user + a.cpu.system)) / (b.served - a.served)).toFixed(1)} µs; main arena peak ${M(peak)}`);
  console.log(line('after load, no GC', await tg.call('memory', { gc: false })));
  console.log(line('after load, full GC', await tg.call('memory')));
  console.log(`load ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}`);
} finally {
  for (const b of busy) b.kill('SIGKILL');
  await tg.stop(2000);
  await lg.stop(2000);
  fs.rmSync(work, { recursive: true, force: true });
}
