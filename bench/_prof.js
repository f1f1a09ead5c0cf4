import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Child, sleep } from './procs.js';
import { BENCH_ENV, providersYaml } from './configs.js';
import { summariseProfile } from './profile.js';
const here = path.dirname(fileURLToPath(import.meta.url));
const dir = '/tmp/benchx/prof-' + Date.now();
fs.writeFileSync('/tmp/benchx/p1.yaml', providersYaml(1));
const tg = new Child('tokengate', path.join(here, 'target.js'), { args: ['tokengate'], env: { ...BENCH_ENV, BENCH_CONFIG: '/tmp/benchx/p1.yaml' }, execArgv: ['--cpu-prof', '--cpu-prof-dir', dir, '--cpu-prof-interval', '100'] });
const lg = new Child('loadgen', path.join(here, 'loadgen.js'));
const info = await tg.ready; await lg.ready;
await lg.call('connect', { key: 't', address: info.address, channels: 4, client: 'h2' });
const init = { contextExtensions: { provider: 'p0' } };
await lg.call('closed', { key: 't', init, concurrency: 64, durationMs: 1000 });
const run = lg.call('closed', { key: 't', init, concurrency: 64, durationMs: 5500 });
await sleep(250); const a = await tg.call('stats'); await sleep(5000); const b = await tg.call('stats'); await run;
await tg.stop(); await lg.stop();
const f = fs.readdirSync(dir)[0];
const prof = JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8'));
const s = summariseProfile(path.join(dir, f), { fromUs: a.hr, toUs: b.hr });
const served = b.served - a.served;
console.log('served', served, 'cpu us/check', ((b.cpu.user+b.cpu.system-a.cpu.user-a.cpu.system)/served).toFixed(1), 'busy us/check', (s.busyMs * 1000 / served).toFixed(1));
// tokengate functions self time
const byId = new Map(prof.nodes.map((n) => [n.id, n]));
const self = new Map(); let t = prof.startTime;
for (let i = 0; i < prof.samples.length; i++) { t += prof.timeDeltas[i]; if (t < a.hr || t > b.hr) continue; const n = byId.get(prof.samples[i]); const u = n.callFrame.url; if (!u.includes('/dist/')) continue; const k = `${n.callFrame.functionName} ${path.basename(u)}:${n.callFrame.lineNumber + 1}`; self.set(k, (self.get(k) ?? 0) + 100); }
for (const [k, v] of [...self].sort((x, y) => y[1] - x[1]).slice(0, 20)) console.log((v / served * 1000).toFixed(3).padStart(8), 'ns/check', k);
console.log(s.layers.map((l) => `${l.layer} ${(l.ms * 1000 / served).toFixed(2)}`).join('\n'));
