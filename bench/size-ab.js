// A/B of tokengate builds across request sizes, against the node:http2 limit: saturating CPU
// per Check (process.cpuUsage of the server, every thread) in alternating rounds, per size.
// For trying a change on the size term without the whole sizes matrix (bench/run.js).
//
//   node bench/size-ab.js [rounds=8] [sizes=0.4k,8k] [windowMs=1200]
//   SIZE_AB_TARGETS="limit tg-ctx tg-route base:tg-ctx base:tg-route"   (a `twin:` prefix: A/A)
//   SIZE_AB_FULL_GC=1: a full GC in each server before its window (FINDINGS, "What the promoted kilobyte was")
//
// `base:` runs another checkout's bench/target.js (SIZE_AB_BASE, a directory holding bench/,
// dist/, proto/ and node_modules/): the build before a change, in the same time window.
// Prints, per target and size, the median and lowest CPU µs per Check, their ratio to the
// limit of the same round, and the size term of issue #18: (CPU at the largest size − the
// limit's growth in µs) ÷ CPU at the smallest size, from medians, from lows, and per round.
import { spawn as spawnProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { BENCH_ENV, HEADER_ROUTE, providerName, providersYaml, routeAuthority } from './configs.js';
import { Child, sleep } from './procs.js';
import { median } from './stats.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const rounds = Number(process.argv[2] ?? 8);
const sizes = (process.argv[3] ?? '0.4k,8k').split(',');
const windowMs = Number(process.argv[4] ?? 1200);
const wanted = (process.env.SIZE_AB_TARGETS ?? 'limit tg-ctx tg-route').split(/\s+/).filter(Boolean);
const baseDir = process.env.SIZE_AB_BASE;
const flags = (process.env.BENCH_SERVER_FLAGS ?? '--max-semi-space-size=2').split(/\s+/).filter(Boolean);
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'size-ab-'));
const children = [];
const cpuUs = (u) => u.user + u.system;
const log = (m) => process.stderr.write(`[size-ab] ${m}\n`);

const extraExec = (process.env.SIZE_AB_EXEC ?? '').split(/\s+/).filter(Boolean);
function spawn(name, script, role, env, readyTimeoutMs = 60_000) {
  const c = new Child(name, script, { args: [role], env, execArgv: ['--expose-gc', ...flags, ...extraExec], readyTimeoutMs });
  children.push(c);
  // SIZE_AB_LOGDIR: each server's stdout and stderr (e.g. SIZE_AB_EXEC=--trace-gc) in a file.
  if (process.env.SIZE_AB_LOGDIR) {
    const out = fs.createWriteStream(path.join(process.env.SIZE_AB_LOGDIR, `${name.replace(/[^\w.-]/g, '_')}.log`));
    c.proc.stdout.on('data', (d) => out.write(d));
    c.proc.stderr.on('data', (d) => out.write(d));
  }
  return c;
}

/** SIZE_AB_PERF=1: system calls and context switches of `pid` over `ms` (perf stat; Linux). */
function perfStat(pid, ms) {
  return new Promise((resolve) => {
    const p = spawnProcess('perf', ['stat', '-x,', '-e', 'raw_syscalls:sys_enter,context-switches', '-p', String(pid), '--', 'sleep', String(ms / 1000)], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    p.stderr.on('data', (d) => (err += d));
    p.on('close', () => {
      const out = {};
      for (const line of err.split('\n')) {
        const [v, , name] = line.split(',');
        if (name === 'raw_syscalls:sys_enter') out.syscalls = Number(v);
        if (name === 'context-switches') out.contextSwitches = Number(v);
      }
      resolve(out);
    });
  });
}

try {
  const lg = new Child('loadgen', path.join(here, 'loadgen.js'), { execArgv: ['--expose-gc'] });
  children.push(lg);
  await lg.ready;
  const file = path.join(work, 'tg.yaml');
  // SIZE_AB_PROVIDERS=n: n providers and n routes (the scale stage's config); `tg-last` then
  // routes by the last route's authority, `tg-ctx` names the last provider.
  const providers = Number(process.env.SIZE_AB_PROVIDERS ?? 1);
  fs.writeFileSync(file, providersYaml(providers, { headerRoute: true, checkServer: 'http2' }));
  const procs = new Map();
  // A tokengate process per prefix: `own` (this checkout), `twin` (this checkout again: A/A),
  // `base` (SIZE_AB_BASE), or any other name, described by
  // SIZE_AB_PROC_<NAME>="<checkout dir>|VAR=1,VAR2=x" (experiments).
  const tgProc = async (where) => {
    if (!procs.has(where)) {
      let dir = path.join(here, '..');
      let env = {};
      if (where === 'base') dir = baseDir;
      else if (where !== 'own' && where !== 'twin') {
        const [d, vars = ''] = (process.env[`SIZE_AB_PROC_${where.toUpperCase()}`] ?? '').split('|');
        if (!d) throw new Error(`SIZE_AB_PROC_${where.toUpperCase()} is not set`);
        dir = d;
        env = Object.fromEntries(vars.split(',').filter(Boolean).map((kv) => kv.split('=')));
      }
      const c = spawn(`${where}-tokengate`, path.join(dir, 'bench', 'target.js'), 'tokengate', { ...BENCH_ENV, ...env, BENCH_CONFIG: file }, 300_000);
      procs.set(where, { name: `${where}-tokengate`, child: c, info: await c.ready });
    }
    return procs.get(where);
  };
  const own = await tgProc('own');
  await lg.call('connect', { key: 'probe', address: own.info.address, channels: 1, client: 'grpc-js' });
  const a = await lg.call('probe', { key: 'probe', init: { contextExtensions: { provider: providerName(0) } } });
  await lg.call('disconnect', { key: 'probe' });
  const h = a.ok_response?.headers?.[0];
  const floorAnswer = { provider: providerName(0), header: h?.header?.key, headerValue: h?.header?.value, tokenId: a.dynamic_metadata?.fields?.token_id?.stringValue, source: a.dynamic_metadata?.fields?.source?.stringValue };
  const ctx = (size) => ({ size, contextExtensions: { provider: providerName(providers - 1) } });
  const last = (size) => ({ size, authority: routeAuthority(providers - 1) });
  const routed = (size) => ({ size, authority: HEADER_ROUTE.authority, headers: { [HEADER_ROUTE.header[0]]: HEADER_ROUTE.header[1] } });
  const targets = [];
  for (const k of wanted) {
    let proc;
    if (k === 'limit' || k === 'limit2' || k === 'limitw') {
      // limitw: the limit with the Check path's connection window (BENCH_LIMIT_WINDOW), a yardstick only.
      const env = { BENCH_FLOOR_ANSWER: JSON.stringify(floorAnswer), BENCH_LIMIT_WINDOW: k === 'limitw' ? String(256 * 1024) : '0', BENCH_LIMIT_STREAM_TABLE: k === 'limitw' ? '1' : '0' };
      const c = spawn(k, path.join(here, 'target.js'), 'floor-h2', env);
      proc = { name: k, child: c, info: await c.ready };
    } else proc = await tgProc(k.includes(':') ? k.slice(0, k.indexOf(':')) : 'own');
    const init = k.endsWith('route') ? routed : k.endsWith('last') ? last : ctx;
    targets.push({ key: k, proc, init });
    await lg.call('connect', { key: k, address: proc.info.address, channels: 4, client: 'h2' });
  }
  const res = Object.fromEntries(targets.map((t) => [t.key, Object.fromEntries(sizes.map((s) => [s, []]))]));
  log(`load average ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}; ${targets.length} targets × ${sizes.length} sizes × ${rounds} rounds + warm-up`);
  for (let r = 0; r <= rounds; r++) {
    for (const size of sizes) {
      for (let i = 0; i < targets.length; i++) {
        const t = targets[(i + r) % targets.length];
        const init = t.init(size);
        // SIZE_AB_FULL_GC=1: a full GC before each window, as bench/run.js and tail.js do. A
        // full GC under load is what put node:http2's stream Map in the state that promoted
        // every stream (bench/FINDINGS.md, "What the promoted kilobyte was").
        if (process.env.SIZE_AB_FULL_GC === '1') await t.proc.child.call('memory');
        const run = lg.call('closed', { key: t.key, init, concurrency: 64, durationMs: 250 + windowMs + 150 });
        await sleep(250);
        const s0 = await t.proc.child.call('stats');
        const counted = process.env.SIZE_AB_PERF === '1' ? perfStat(t.proc.child.proc.pid, windowMs) : undefined;
        await sleep(windowMs);
        const s1 = await t.proc.child.call('stats');
        const perf = counted ? await counted : undefined;
        const out = await run;
        if (out.errors) log(`${t.key} ${size}: ${out.errors} errors (${out.lastError})`);
        const served = s1.served - s0.served;
        const gc = {};
        for (const k of Object.keys(s1.gc ?? {})) gc[k] = { perKChecks: (1000 * (s1.gc[k].n - s0.gc[k].n)) / served, usPerCheck: (1000 * (s1.gc[k].ms - s0.gc[k].ms)) / served };
        const perCheck = perf && Object.fromEntries(Object.entries(perf).map(([k, v]) => [k, v / (served * (windowMs / ((s1.hr - s0.hr) / 1000)))]));
        if (r > 0) res[t.key][size].push({ cpu: (cpuUs(s1.cpu) - cpuUs(s0.cpu)) / served, rate: served / ((s1.hr - s0.hr) / 1e6), gc, perf: perCheck, proc: t.proc.name, from: s0.now, to: s1.now, served });
      }
    }
  }
  const limit = res.limit;
  const f = (x) => x.toFixed(2);
  const lines = [];
  for (const t of targets) {
    const row = [t.key.padEnd(16)];
    for (const size of sizes) {
      const cpu = res[t.key][size].map((x) => x.cpu);
      const vs = limit ? cpu.map((c, i) => c / limit[size][i].cpu) : [];
      row.push(`${size}: ${median(cpu).toFixed(1)} µs (low ${Math.min(...cpu).toFixed(1)}) ÷limit ${limit ? `${f(median(vs))} (low ${f(Math.min(...vs))})` : '-'} ${Math.round(median(res[t.key][size].map((x) => x.rate)))}/s`);
    }
    if (limit && sizes.length > 1) {
      const [s0, s1] = [sizes[0], sizes[sizes.length - 1]];
      const term = (pick) => {
        const growth = pick(limit[s1]) - pick(limit[s0]);
        return (pick(res[t.key][s1]) - growth) / pick(res[t.key][s0]);
      };
      const perRound = res[t.key][s0].map((_, i) => {
        const g = limit[s1][i].cpu - limit[s0][i].cpu;
        return (res[t.key][s1][i].cpu - g) / res[t.key][s0][i].cpu;
      });
      row.push(`size term ${f(term((xs) => median(xs.map((x) => x.cpu))))} (medians), ${f(term((xs) => Math.min(...xs.map((x) => x.cpu))))} (lows), per-round median ${f(median(perRound))}`);
    }
    lines.push(row.join(' | '));
    if (process.env.SIZE_AB_PERF === '1') {
      for (const size of sizes) {
        const rs = res[t.key][size].filter((x) => x.perf);
        lines.push(`    per Check ${size}: ${Object.keys(rs[0]?.perf ?? {}).map((k) => `${k} ${median(rs.map((x) => x.perf[k])).toFixed(2)}`).join(', ')}`);
      }
    }
    if (process.env.BENCH_GC_STATS === '1') {
      for (const size of sizes) {
        const rs = res[t.key][size];
        const kinds = Object.keys(rs[0]?.gc ?? {});
        lines.push(`    gc ${size}: ${kinds.map((k) => `${k} ${median(rs.map((x) => x.gc[k].perKChecks)).toFixed(2)}/kCheck ${median(rs.map((x) => x.gc[k].usPerCheck)).toFixed(2)} µs/Check`).join(', ')}`);
      }
    }
  }
  console.log(lines.join('\n'));
  log(`load average ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}`);
  // With SIZE_AB_EXEC=--trace-gc-nvp and SIZE_AB_LOGDIR: bytes allocated in, and promoted out of,
  // the young generation per Check, from the scavenges inside each window (allocation does not
  // depend on the machine's load; promotion does, through how long in-flight calls live).
  if (process.env.SIZE_AB_LOGDIR && extraExec.includes('--trace-gc-nvp')) {
    await Promise.all(children.filter((c) => c !== lg).map((c) => c.stop(2_000).catch(() => undefined)));
    await sleep(300);
    const scav = new Map();
    for (const t of targets) {
      if (scav.has(t.proc.name)) continue;
      const rows = [];
      for (const line of fs.readFileSync(path.join(process.env.SIZE_AB_LOGDIR, `${t.proc.name.replace(/[^\w.-]/g, '_')}.log`), 'utf8').split('\n')) {
        const m = /\]\s+(\d+) ms: .* gc=s .*allocated=(\d+) promoted=(\d+)/.exec(line);
        if (m) rows.push({ at: Number(m[1]), allocated: Number(m[2]), promoted: Number(m[3]) });
      }
      scav.set(t.proc.name, rows);
    }
    for (const t of targets) {
      for (const size of sizes) {
        const per = res[t.key][size].map((w) => {
          const inside = scav.get(w.proc).filter((x) => x.at >= w.from && x.at <= w.to);
          return { alloc: inside.reduce((n, x) => n + x.allocated, 0) / w.served, promoted: inside.reduce((n, x) => n + x.promoted, 0) / w.served };
        });
        console.log(`${t.key.padEnd(16)} ${size}: young-gen allocation ${Math.round(median(per.map((x) => x.alloc)))} B/Check (low ${Math.round(Math.min(...per.map((x) => x.alloc)))}), promoted ${Math.round(median(per.map((x) => x.promoted)))} B/Check`);
      }
    }
  }
  if (process.env.SIZE_AB_OUT) fs.writeFileSync(process.env.SIZE_AB_OUT, JSON.stringify(res));
  await lg.stop();
} finally {
  await Promise.all(children.map((c) => c.stop(2_000).catch(() => undefined)));
  fs.rmSync(work, { recursive: true, force: true });
}
