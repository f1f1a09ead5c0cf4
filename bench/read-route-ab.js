// What tokengate's own code does to find a Check's provider, in isolation and A/B against another
// checkout: CheckRequestReader.read + RouteTable.match on the bench's Envoy-shaped requests
// (routed by the size matrix's header rule; named by context_extensions), per request size.
// Load-independent bytes per call, and CPU per call as the lowest of alternating rounds in one
// process (both builds loaded side by side), so a noisy machine moves both alike.
//
//   READ_AB_BASE=<checkout with dist/> node bench/read-route-ab.js [rounds=9]
//   (without READ_AB_BASE: this checkout only)
//
// Bytes: each (build, case, size) runs in a child with --trace-gc-nvp, and the `allocated` of
// the scavenges during 2,000,000 calls is summed (a scavenge's figure is exact; only the young
// generation's bytes left over at the end are not counted: < 16 MB over 2,000,000 calls).
import { spawnSync } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { HEADER_ROUTE } from './configs.js';
import { encodedRequest } from './envoy-request.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const SIZES = ['0.4k', '3k', '8k'];
const ROUTES = [
  { match: { authority: 'svc-0.bench.example', pathPrefix: '/v1/' }, provider: 'p0' },
  { match: { authority: HEADER_ROUTE.authority, headers: { [HEADER_ROUTE.header[0]]: HEADER_ROUTE.header[1] } }, provider: 'p0' },
];
const routedInit = (size, p = '/v1/things?x=1') => ({ size, path: p, authority: HEADER_ROUTE.authority, headers: { [HEADER_ROUTE.header[0]]: HEADER_ROUTE.header[1] } });

/** The requests of one case: a Check cycles through them. */
function requests(kind, size) {
  if (kind === 'ctx') return [encodedRequest({ size, contextExtensions: { provider: 'p0' } })];
  if (kind === 'route-varied-path') return [encodedRequest(routedInit(size, '/v1/things?x=1')), encodedRequest(routedInit(size, '/v1/things?x=2'))];
  return [encodedRequest(routedInit(size))];
}
const KINDS = ['route', 'route-varied-path', 'ctx'];

/** The routing reader AuthzService builds, from a checkout's dist/ (older ones ignore `remember`). */
async function build(dir) {
  const { CheckRequestReader } = await import(path.join(dir, 'dist/server/check-request-reader.js'));
  const { RouteTable } = await import(path.join(dir, 'dist/routing/route-table.js'));
  const table = new RouteTable(ROUTES);
  const reader = new CheckRequestReader('provider', table.headerNames, undefined, table.fallbackOnlyHeaderNames, { remember: true });
  return (raw) => {
    const r = reader.read(raw);
    return r.provider ?? table.match(r.http);
  };
}

let sink = 0;
function loop(find, raws, n) {
  for (let i = 0; i < n; i++) sink += find(raws[i % raws.length]).length;
}

if (process.argv[2] === '--bytes') {
  // Child: one (build, kind, size), bytes counted by the parent from --trace-gc-nvp.
  const [, , , dir, kind, size] = process.argv;
  const find = await build(dir);
  const raws = requests(kind, size);
  loop(find, raws, 200_000);
  globalThis.gc();
  process.stdout.write('START\n');
  loop(find, raws, 2_000_000);
  process.stdout.write(`END ${sink}\n`);
} else {
  const rounds = Number(process.argv[2] ?? 9);
  const dirs = { own: path.join(here, '..'), ...(process.env.READ_AB_BASE ? { base: process.env.READ_AB_BASE } : {}) };
  const finds = {};
  for (const [k, d] of Object.entries(dirs)) finds[k] = await build(d);
  const bytes = (dir, kind, size) => {
    const out = spawnSync(process.execPath, ['--expose-gc', '--trace-gc-nvp', fileURLToPath(import.meta.url), '--bytes', dir, kind, size], { encoding: 'utf8', maxBuffer: 1 << 26 }).stdout;
    let on = false;
    let sum = 0;
    for (const line of out.split('\n')) {
      if (line === 'START') on = true;
      else if (line.startsWith('END')) on = false;
      else if (on && / gc=s /.test(line)) sum += Number(/allocated=(\d+)/.exec(line)?.[1] ?? 0);
    }
    return sum / 2_000_000;
  };
  process.stdout.write(`load average ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}; ${Object.keys(dirs).join(' vs ')}; CPU = lowest of ${rounds} alternating rounds of 100,000 calls\n`);
  for (const size of SIZES) {
    const cells = [];
    for (const kind of KINDS) {
      const raws = requests(kind, size);
      const best = {};
      for (let r = 0; r < rounds; r++) {
        const order = r % 2 ? Object.keys(finds).reverse() : Object.keys(finds);
        for (const k of order) {
          if (r === 0) loop(finds[k], raws, 100_000);
          const c0 = process.cpuUsage();
          loop(finds[k], raws, 100_000);
          const c = process.cpuUsage(c0);
          best[k] = Math.min(best[k] ?? Infinity, ((c.user + c.system) * 1000) / 100_000);
        }
      }
      const parts = Object.keys(finds).map((k) => `${k} ${best[k].toFixed(0)} ns ${bytes(dirs[k], kind, size).toFixed(0)} B`);
      cells.push(`${kind}: ${parts.join(' | ')}`);
    }
    process.stdout.write(`${size.padEnd(5)} ${cells.join('; ')}\n`);
  }
  process.stdout.write(`load average ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}\n`);
}
