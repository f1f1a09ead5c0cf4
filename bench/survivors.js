// What a Check leaves past the young generation at a fixed offered rate (issue #18: the routed
// slices' scavenges took twice as long as context_extensions' on the same build). One tokengate
// on node:http2 with the routes[] header rule, the raw-frame generator at RATE/s, V8's sampling
// heap profiler keeping only objects that survived a scavenge; prints the top sites.
//
//   SURV_ROLE=tokengate | floor-h2 (the limit)
//   SURV_ROUTE=1 (default) | 0    SURV_SIZE=3k   SURV_RATE=5000   SURV_SECS=4
//   SURV_PROFILE=0: no heap profiler (with BENCH_SERVER_FLAGS=--trace-gc-nvp BENCH_CHILD_LOG_DIR=dir: promoted bytes per scavenge alone)
//   SURV_INIT='{"contextExtensions":{"provider":"p0"},"headers":{"x-tenant":"blue"}}'  any request (bench/envoy-request.js)
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { BENCH_ENV, HEADER_ROUTE, providerName, providersYaml } from './configs.js';
import { Child, LOADGEN_EXEC_ARGV, sleep } from './procs.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const env = process.env;
const ROUTE = env.SURV_ROUTE !== '0';
const SIZE = env.SURV_SIZE ?? '3k';
const RATE = Number(env.SURV_RATE ?? 5000);
const SECS = Number(env.SURV_SECS ?? 4);
const flags = (env.BENCH_SERVER_FLAGS ?? '--max-semi-space-size=2').split(/\s+/).filter(Boolean);
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'survivors-'));
const file = path.join(work, 'c.yaml');
fs.writeFileSync(file, providersYaml(1, { checkServer: 'http2', headerRoute: true }));
const init = env.SURV_INIT ? { size: SIZE, ...JSON.parse(env.SURV_INIT) } : ROUTE
  ? { size: SIZE, authority: HEADER_ROUTE.authority, headers: { [HEADER_ROUTE.header[0]]: HEADER_ROUTE.header[1] } }
  : { size: SIZE, contextExtensions: { provider: providerName(0) } };
const lg = new Child('loadgen', path.join(here, 'loadgen.js'), { execArgv: LOADGEN_EXEC_ARGV });
const ROLE = env.SURV_ROLE ?? 'tokengate';
const tg = new Child(ROLE, path.join(here, 'target.js'), { args: [ROLE], env: { ...BENCH_ENV, BENCH_CONFIG: file, BENCH_FLOOR_ANSWER: JSON.stringify({ provider: providerName(0), header: 'authorization' }) }, execArgv: ['--expose-gc', ...flags] });
try {
  await lg.ready;
  const info = await tg.ready;
  await lg.call('connect', { key: 't', address: info.address, channels: 4, client: 'h2' });
  await lg.call('open', { key: 't', init, rate: RATE, durationMs: 1000, warmupMs: 200 });
  const PROFILE = env.SURV_PROFILE !== '0';
  if (PROFILE) await tg.call('allocStart', { interval: 512, survivors: true });
  const a = await tg.call('stats');
  await lg.call('open', { key: 't', init, rate: RATE, durationMs: SECS * 1000, warmupMs: 0 });
  const b = await tg.call('stats');
  const { total, sites } = PROFILE ? await tg.call('allocStop', { top: 25 }) : { total: 0, sites: [] };
  const n = b.served - a.served;
  console.log(`${ROLE} ${env.SURV_INIT ?? (ROUTE ? 'routed' : 'context_extensions')} ${SIZE} at ${RATE}/s: ${n} Checks, ${(total / n).toFixed(0)} B per Check survived a scavenge`);
  for (const [site, bytes] of sites) console.log(`${(bytes / n).toFixed(1).padStart(8)} B  ${site}`);
} finally {
  await Promise.all([lg.stop(), tg.stop()]);
  fs.rmSync(work, { recursive: true, force: true });
}
