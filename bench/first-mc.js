// `node bench/first-mc.js [default|nogc|cap]`: where the limit's (floor-h2's) mark-compacts come
// and what they cost. The limit as run.js starts it (default), without the forced GC at start-up
// (nogc: BENCH_START_GC=0) or with tokengate's heap growth cap (cap: BENCH_LIMIT_HEAP_CAP=1), under
// --trace-gc-nvp, 2-s closed-loop rounds (64 in flight, 3 KB) of the raw generator until two
// mark-compacts after start-up; prints each mark-compact's pause, the external-string and
// evacuation phases and old space before → after (FINDINGS, "The stalls in the p99 slices").
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Child, LOADGEN_EXEC_ARGV } from './procs.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const mode = process.argv[2] ?? 'default';
const env = { default: {}, nogc: { BENCH_START_GC: '0' }, cap: { BENCH_LIMIT_HEAP_CAP: '1' } }[mode];
if (!env) throw new Error(`mode: default, nogc or cap, not ${mode}`);
const lg = new Child('loadgen', path.join(here, 'loadgen.js'), { execArgv: LOADGEN_EXEC_ARGV });
const limit = new Child('floor-h2', path.join(here, 'target.js'), { args: ['floor-h2'], env, execArgv: ['--expose-gc', '--max-semi-space-size=2', '--trace-gc-nvp'] });
const marks = [];
let partial = '';
limit.proc.stdout.on('data', (chunk) => {
  const lines = (partial + chunk).split('\n');
  partial = lines.pop();
  for (const l of lines) {
    if (!/gc=mc /.test(l)) continue;
    const kv = Object.fromEntries([...l.matchAll(/([\w.]+)=([\d.]+)/g)].map((m) => [m[1], Number(m[2])]));
    marks.push({ t: Number(/ (\d+) ms:/.exec(l)?.[1]), ...kv });
  }
});
const info = await limit.ready;
await lg.ready;
await lg.call('connect', { key: 'l', address: info.address, channels: 4, client: 'raw' });
for (let i = 0; i < 24 && marks.filter((m) => m.t > 3000).length < 2; i++) {
  await lg.call('closed', { key: 'l', init: { size: '3k', contextExtensions: { provider: 'p0' } }, concurrency: 64, durationMs: 2000 });
}
const mb = (b) => (b / 1e6).toFixed(1);
for (const m of marks) process.stdout.write(`${mode} t=${m.t} ms  pause ${m.pause}  external strings ${m['clear.external_string_table']}  evacuate ${m.evacuate}  old space ${mb(m.total_size_before)} → ${mb(m.total_size_after)} MB\n`);
await limit.stop();
await lg.stop();
process.exit(0);
