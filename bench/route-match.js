// Route matching in isolation: RouteTable.match per call, for tables of 1, 100 and 10 000
// rules, asking for the LAST rule (the worst case of a first-match scan) and for a request no
// rule matches (a full scan). Exact authorities, `*.suffix` wildcards, and host-less rules
// (path prefix only, which no authority index can skip).
import { RouteTable } from '../dist/routing/route-table.js';
import { envoyRequest } from './envoy-request.js';

function http(authority, path = '/v1/things?x=1') {
  return envoyRequest({ authority, path }).attributes.request.http;
}

const SHAPES = {
  exact: {
    route: (i) => ({ match: { authority: `svc-${i}.bench.example`, pathPrefix: '/v1/' }, provider: `p${i}` }),
    hit: (n) => http(`svc-${n - 1}.bench.example`),
  },
  wildcard: {
    route: (i) => ({ match: { authority: `*.svc-${i}.bench.example` }, provider: `p${i}` }),
    hit: (n) => http(`api.svc-${n - 1}.bench.example`),
  },
  pathOnly: {
    route: (i) => ({ match: { pathPrefix: `/svc-${i}/` }, provider: `p${i}` }),
    hit: (n) => http('api.example.com', `/svc-${n - 1}/things`),
  },
};

function nsPerCall(table, req, budgetMs) {
  let sink = 0;
  for (let i = 0; i < 200; i++) sink += table.match(req)?.length ?? 0; // warm the JIT
  let calls = 0;
  const start = process.hrtime.bigint();
  const budget = BigInt(Math.round(budgetMs * 1_000_000));
  let elapsed = 0n;
  let batch = 1;
  while (elapsed < budget) {
    for (let i = 0; i < batch; i++) sink += table.match(req)?.length ?? 0;
    calls += batch;
    batch = Math.min(batch * 2, 100_000);
    elapsed = process.hrtime.bigint() - start;
  }
  if (sink < 0) console.log(sink);
  return Number(elapsed) / calls;
}

/** @returns {{shape: string, routes: number, hitNs: number, missNs: number, provider: string|undefined}[]} */
export function routeMatchCost(sizes, budgetMs = 150) {
  const out = [];
  for (const [shape, s] of Object.entries(SHAPES)) {
    for (const n of sizes) {
      const table = new RouteTable(Array.from({ length: n }, (_, i) => s.route(i)));
      const hit = s.hit(n);
      const miss = http('nowhere.invalid', '/nothing');
      // Median of three short runs: a shared machine makes single runs jumpy.
      const med3 = (req) => [0, 1, 2].map(() => nsPerCall(table, req, budgetMs / 3)).sort((a, b) => a - b)[1];
      out.push({ shape, routes: n, provider: table.match(hit), hitNs: med3(hit), missNs: med3(miss) });
    }
  }
  return out;
}
