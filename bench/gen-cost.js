// What the load generator itself costs at a fixed rate, per client: its own CPU time per call
// (process.cpuUsage of the generator process over each open-loop run), the bytes it allocates
// per call, its send lag, and the server's CPU per call, against one node:http2 limit server,
// the clients taking turns (A B A B …) so drift hits them alike. CPU per call is the figure that
// does not depend on what else runs on the machine; lag and latency are printed with the load.
//
//   node bench/gen-cost.js [rounds=8] [sizes=0.4k,3k,8k] [rate=5000] [windowMs=1000]
//   GEN_COST_CLIENTS="raw h2"   (grpc-js too, if wanted); GEN_COST_CHANNELS=4 connections per client
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { providerName } from './configs.js';
import { Child, LOADGEN_EXEC_ARGV } from './procs.js';
import { median } from './stats.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const rounds = Number(process.argv[2] ?? 8);
const sizes = (process.argv[3] ?? '0.4k,3k,8k').split(',');
const rate = Number(process.argv[4] ?? 5000);
const windowMs = Number(process.argv[5] ?? 1000);
const clients = (process.env.GEN_COST_CLIENTS ?? 'raw h2').split(/\s+/).filter(Boolean);
const channels = Number(process.env.GEN_COST_CHANNELS ?? 4);
const flags = (process.env.BENCH_SERVER_FLAGS ?? '--max-semi-space-size=2').split(/\s+/).filter(Boolean);
const cpuUs = (u) => u.user + u.system;
const log = (m) => process.stderr.write(`[gen-cost] ${m}\n`);

const limit = new Child('floor-h2', path.join(here, 'target.js'), { args: ['floor-h2'], env: { BENCH_FLOOR_ANSWER: JSON.stringify({ provider: providerName(0) }) }, execArgv: ['--expose-gc', ...flags] });
const lg = new Child('loadgen', path.join(here, 'loadgen.js'), { execArgv: LOADGEN_EXEC_ARGV });
try {
  const info = await limit.ready;
  await lg.ready;
  for (const c of clients) await lg.call('connect', { key: `limit:${c}`, address: info.address, channels, client: c });
  const load = [os.loadavg()[0]];
  const out = {};
  for (const size of sizes) {
    const init = { size, contextExtensions: { provider: providerName(0) } };
    const runs = Object.fromEntries(clients.map((c) => [c, []]));
    for (let r = -1; r < rounds; r++) {
      for (const c of r % 2 === 0 ? clients : [...clients].reverse()) {
        const a = await limit.call('stats');
        const res = await lg.call('open', { key: `limit:${c}`, init, rate, durationMs: windowMs, warmupMs: 100, samples: false });
        const b = await limit.call('stats');
        if (r >= 0) runs[c].push({ ...res, serverCpuUsPerCall: (cpuUs(b.cpu) - cpuUs(a.cpu)) / (b.served - a.served) });
      }
    }
    out[size] = Object.fromEntries(clients.map((c) => {
      const v = runs[c];
      return [c, {
        generatorCpuUsPerCall: median(v.map((x) => x.generatorCpuUsPerCall)),
        generatorCpuUsPerCallMin: Math.min(...v.map((x) => x.generatorCpuUsPerCall)),
        generatorBytesPerCall: median(v.map((x) => x.generatorBytesPerCall).filter(Number.isFinite)),
        serverCpuUsPerCall: median(v.map((x) => x.serverCpuUsPerCall)),
        lagP99Ms: median(v.map((x) => x.lag.p99)),
        p50Ms: median(v.map((x) => x.latency.p50)),
        p99Ms: median(v.map((x) => x.latency.p99)),
        errors: v.reduce((n, x) => n + x.errors, 0),
      }];
    }));
    load.push(os.loadavg()[0]);
    log(`${size}: ${clients.map((c) => `${c} ${out[size][c].generatorCpuUsPerCall.toFixed(1)} µs/call (server ${out[size][c].serverCpuUsPerCall.toFixed(1)}), lag p99 ${out[size][c].lagP99Ms.toFixed(3)} ms, p99 ${out[size][c].p99Ms.toFixed(3)} ms`).join('; ')}`);
  }
  process.stdout.write(`${JSON.stringify({ rate, windowMs, rounds, channels, loadavg1: load, sizes: out }, null, 1)}\n`);
} finally {
  await lg.stop(2_000).catch(() => undefined);
  await limit.stop(2_000).catch(() => undefined);
}
