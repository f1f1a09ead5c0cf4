// Where a Check's cost grows with the request's size: the node:http2 limit and tokengate's
// node:http2 Check path (by context_extensions and by a routes[] header rule) under
// --cpu-prof, saturated by the h2 load generator at each request size, one profile window per
// (server, size). Prints CPU per Check (process.cpuUsage: every thread, GC helpers included),
// the profiler's busy µs per Check (main thread only), and per layer / top self functions.
//
//   node bench/size-profile.js [sizes=0.4k,8k] [windowMs=2000]
//   SIZE_PROFILE_TOP=12 SIZE_PROFILE_OUT=/tmp/x.json
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { BENCH_ENV, HEADER_ROUTE, providerName, providersYaml } from './configs.js';
import { Child, sleep } from './procs.js';
import { summariseProfile } from './profile.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const sizes = (process.argv[2] ?? '0.4k,8k').split(',');
const windowMs = Number(process.argv[3] ?? 2000);
const top = Number(process.env.SIZE_PROFILE_TOP ?? 12);
const flags = (process.env.BENCH_SERVER_FLAGS ?? '--max-semi-space-size=2').split(/\s+/).filter(Boolean);
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'size-profile-'));
const children = [];
const cpuUs = (u) => u.user + u.system;

function start(name, role, env, prof = true) {
  const dir = path.join(work, name);
  const c = new Child(name, path.join(here, 'target.js'), { args: [role], env, execArgv: ['--expose-gc', ...flags, ...(prof ? ['--cpu-prof', '--cpu-prof-dir', dir] : [])] });
  children.push(c);
  return { name, dir, child: c };
}

try {
  const lg = new Child('loadgen', path.join(here, 'loadgen.js'), { execArgv: ['--expose-gc'] });
  children.push(lg);
  await lg.ready;
  const file = path.join(work, 'tg.yaml');
  fs.writeFileSync(file, providersYaml(1, { headerRoute: true, checkServer: 'http2' }));
  const tg = start('tokengate-h2', 'tokengate', { ...BENCH_ENV, BENCH_CONFIG: file });
  const tgInfo = await tg.child.ready;
  await lg.call('connect', { key: 'probe', address: tgInfo.address, channels: 1, client: 'grpc-js' });
  const a = await lg.call('probe', { key: 'probe', init: { contextExtensions: { provider: providerName(0) } } });
  await lg.call('disconnect', { key: 'probe' });
  const h = a.ok_response?.headers?.[0];
  const floorAnswer = { provider: providerName(0), header: h?.header?.key, headerValue: h?.header?.value, tokenId: a.dynamic_metadata?.fields?.token_id?.stringValue, source: a.dynamic_metadata?.fields?.source?.stringValue };
  const limit = start('limit', 'floor-h2', { BENCH_FLOOR_ANSWER: JSON.stringify(floorAnswer) });
  const limitInfo = await limit.child.ready;
  const ctx = (size) => ({ size, contextExtensions: { provider: providerName(0) } });
  const routed = (size) => ({ size, authority: HEADER_ROUTE.authority, headers: { [HEADER_ROUTE.header[0]]: HEADER_ROUTE.header[1] } });
  const targets = [
    { key: 'limit', proc: limit, address: limitInfo.address, init: ctx },
    { key: 'tg-ctx', proc: tg, address: tgInfo.address, init: ctx },
    { key: 'tg-route', proc: tg, address: tgInfo.address, init: routed },
  ];
  for (const t of targets) await lg.call('connect', { key: t.key, address: t.address, channels: 4, client: 'h2' });
  const windows = [];
  for (const size of sizes) {
    for (const t of targets) {
      const init = t.init(size);
      await lg.call('closed', { key: t.key, init, concurrency: 64, durationMs: 600 }); // warm-up
      const run = lg.call('closed', { key: t.key, init, concurrency: 64, durationMs: windowMs + 500 });
      await sleep(250);
      const s0 = await t.proc.child.call('stats');
      await sleep(windowMs);
      const s1 = await t.proc.child.call('stats');
      await run;
      const served = s1.served - s0.served;
      windows.push({ key: t.key, size, proc: t.proc, from: s0.hr, to: s1.hr, served, cpuPerCheckUs: (cpuUs(s1.cpu) - cpuUs(s0.cpu)) / served, rate: served / ((s1.hr - s0.hr) / 1e6) });
    }
  }
  for (const t of targets) await lg.call('disconnect', { key: t.key });
  await tg.child.stop();
  await limit.child.stop();
  const out = [];
  for (const w of windows) {
    const f = fs.readdirSync(w.proc.dir).find((x) => x.endsWith('.cpuprofile'));
    const s = summariseProfile(path.join(w.proc.dir, f), { fromUs: w.from, toUs: w.to });
    const per = (ms) => +((ms * 1000) / w.served).toFixed(2);
    const row = {
      target: w.key,
      size: w.size,
      rate: Math.round(w.rate),
      cpuPerCheckUs: +w.cpuPerCheckUs.toFixed(1),
      busyUsPerCheck: per(s.busyMs),
      layers: Object.fromEntries(s.layers.map((l) => [l.layer, per(l.ms)])),
      topSelf: s.topSelf.slice(0, top).map((r) => `${per(r.ms)} ${r.fn}`),
      tokengate: s.tokengateInclusive.slice(0, 6).map((r) => `${per(r.ms)} ${r.fn}`),
    };
    out.push(row);
    console.log(JSON.stringify(row, null, 1));
  }
  if (process.env.SIZE_PROFILE_OUT) fs.writeFileSync(process.env.SIZE_PROFILE_OUT, JSON.stringify(out, null, 1));
  if (process.env.SIZE_PROFILE_KEEP) for (const p of [tg, limit]) for (const f of fs.readdirSync(p.dir)) fs.copyFileSync(path.join(p.dir, f), path.join(process.env.SIZE_PROFILE_KEEP, `${p.name}.cpuprofile`));
  await lg.stop();
} finally {
  await Promise.all(children.map((c) => c.stop(2_000).catch(() => undefined)));
  fs.rmSync(work, { recursive: true, force: true });
}
