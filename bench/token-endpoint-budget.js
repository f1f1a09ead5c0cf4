// Token-endpoint budget benchmark (not part of `npm run bench`; run it on its own):
//
//   npm run build && node --expose-gc bench/token-endpoint-budget.js
//   BUDGET_PROVIDERS=10000 BUDGET_RATE=50 (defaults)   smaller: BUDGET_PROVIDERS=500 for a smoke run
//
// 10 000 providers on one loopback IdP with `maxRate: 50/s`: time to warm up (every provider
// holding a token), the IdP's peak requests in any one second, and the hot-path cost of a Check
// (a cache hit through TokenHandle.lookup) while the budget's queue is long, against the same
// lookup once the queue is empty. A hit must never touch the budget: no await, no allocation.
import http from 'node:http';
import { randomBytes } from 'node:crypto';
import { parseConfig } from '../dist/config/load.js';
import { TokenManager } from '../dist/tokens/manager.js';

const N = Number(process.env.BUDGET_PROVIDERS ?? 10_000);
const RATE = Number(process.env.BUDGET_RATE ?? 50);

const seen = [];
const server = http.createServer((req, res) => {
  req.resume();
  req.on('end', () => {
    seen.push(Date.now());
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ access_token: randomBytes(12).toString('hex'), token_type: 'Bearer', expires_in: 3600 }));
  });
});
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const origin = `http://127.0.0.1:${server.address().port}`;

const lines = [`tokenEndpoints: { "${origin}": { maxRate: ${RATE}/s, burst: ${RATE} } }`, 'providers:'];
for (let i = 0; i < N; i++) lines.push(`  p${i}: { source: { type: client_credentials, tokenUrl: "${origin}/token", clientId: p${i}, clientSecret: s } }`);
const config = parseConfig(lines.join('\n'), { env: {} });
const manager = new TokenManager(config.providers.values(), { tokenEndpoints: config.tokenEndpoints });

/** The median of three runs of lookupRun (the machine is shared: one run can be unlucky). */
function lookupCost(handles, iterations) {
  const runs = [0, 1, 2].map(() => lookupRun(handles, iterations)).sort((a, b) => a.nsPerLookup - b.nsPerLookup);
  return { ...runs[1], runsNs: runs.map((r) => r.nsPerLookup) };
}

/** ns per lookup over `iterations` cache hits on providers that hold a token, and heap growth. */
function lookupRun(handles, iterations) {
  const now = Date.now();
  let hits = 0;
  globalThis.gc?.();
  const heapBefore = process.memoryUsage().heapUsed;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < iterations; i++) if (handles[i % handles.length].lookup(now) !== undefined) hits++;
  const ns = Number(process.hrtime.bigint() - t0) / iterations;
  return { nsPerLookup: Math.round(ns * 10) / 10, hits, heapGrowthBytes: process.memoryUsage().heapUsed - heapBefore };
}

const started = Date.now();
const warm = manager.warmUp();
const readyAt = warm.then(() => Date.now() - started);
// Wait until a first batch holds tokens and the queue is long (a quarter of the providers, or
// whatever it peaks at), then measure the hot path; the same handles are measured again once
// the queue is empty.
const LONG_QUEUE = Math.min(2_500, Math.floor(N / 4));
let during;
let handles;
let peakQueued = 0;
for (;;) {
  await new Promise((r) => setTimeout(r, 500));
  const budget = manager.budgetStatus().find((b) => b.origin === origin);
  const holding = manager.names().filter((n) => manager.handle(n).peek() !== undefined);
  const shrinking = budget.queued < peakQueued;
  peakQueued = Math.max(peakQueued, budget.queued);
  if ((holding.length >= Math.min(100, N) && (budget.queued >= LONG_QUEUE || shrinking)) || budget.queued === 0) {
    handles = holding.slice(0, 100).map((n) => manager.handle(n));
    during = { queued: budget.queued, ...lookupCost(handles, 2_000_000) };
    break;
  }
}
console.log(JSON.stringify({ phase: 'during', ...during }));
for (;;) {
  const holding = manager.names().filter((n) => manager.handle(n).peek() !== undefined).length;
  if (holding === N) break;
  await new Promise((r) => setTimeout(r, 1000));
  console.log(JSON.stringify({ elapsedS: Math.round((Date.now() - started) / 1000), holding, queued: manager.budgetStatus().find((b) => b.origin === origin).queued }));
}
const warmUpMs = Date.now() - started;
const after = { queued: manager.budgetStatus().find((b) => b.origin === origin).queued, ...lookupCost(handles, 2_000_000) };
let peak = 0;
for (let i = 0, j = 0; j < seen.length; j++) {
  while (seen[j] - seen[i] >= 1000) i++;
  peak = Math.max(peak, j - i + 1);
}
const result = {
  providers: N, maxRate: RATE, readyAfterMs: await readyAt, warmUpMs, idpRequests: seen.length, idpPeakPerSecond: peak,
  // burst + rate × 1 s, measured at the IdP (arrival jitter can add one)
  allowedPeakPerSecond: RATE * 2,
  checkWhileQueueLong: during, checkQueueEmpty: after,
  hitCostRatioQueuedVsEmpty: Math.round((during.nsPerLookup / after.nsPerLookup) * 100) / 100,
};
console.log(JSON.stringify(result, null, 2));
await manager.close(0);
server.close();
