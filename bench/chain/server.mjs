// Repro (not deterministic yet; FINDINGS, "The stream chain that remained: not found yet"): the
// bench's limit (node:http2, StreamTable installed, 256 KiB window) under client.mjs, a forced GC
// 5,000 Checks in, then promoted bytes per request over N requests (run.sh sums --trace-gc-nvp).
//   TABLE=0 (node's Map)  GC=0 | 1 (gc()) | minor2 (two scavenges)  N  CONC CONNS RATE CLIENT=h2|raw
//   PATCH=file.mjs setting globalThis.__patchSession(session) (bisecting; patch-noop.mjs for timing)
import http2 from 'node:http2';
import v8 from 'node:v8';
import { fork } from 'node:child_process';
import { PerformanceObserver, constants } from 'node:perf_hooks';
import { installStreamTable } from '../../dist/server/h2/stream-table.js';
const table = process.env.TABLE !== '0';
const N = Number(process.env.N ?? 20000);
const frame = Buffer.alloc(5 + 100);
const HEADERS = { ':status': 200, 'content-type': 'application/grpc' };
const TRAILERS = { 'grpc-status': '0' };
let served = 0;
let majors = 0;
new PerformanceObserver((l) => { for (const e of l.getEntries()) if (e.detail.kind === constants.NODE_PERFORMANCE_GC_MAJOR) majors++; }).observe({ entryTypes: ['gc'] });
const server = http2.createServer();
server.on('session', (s) => { s.setLocalWindowSize(256 * 1024); if (table) installStreamTable(s); globalThis.__patchSession?.(s); });
const marks = [];
server.on('stream', (stream) => {
  stream.on('error', () => undefined);
  stream.on('data', () => undefined);
  stream.on('end', () => {
    served++;
    for (const m of marks) if (m.at === served) m.fn();
    stream.respond(HEADERS, { waitForTrailers: true });
    stream.on('wantTrailers', () => stream.sendTrailers(TRAILERS));
    stream.end(frame);
  });
});
if (process.env.PATCH) await import(process.env.PATCH);
await new Promise((r) => server.listen(0, '127.0.0.1', r));
const child = fork(new URL('./client.mjs', import.meta.url), [`127.0.0.1:${server.address().port}`, process.env.CONC ?? '64', process.env.CONNS ?? '1'], { execArgv: [] });
const old = () => v8.getHeapSpaceStatistics().find((s) => s.space_name === 'old_space').space_used_size;
const result = await new Promise((resolve) => {
  const WARM = 5000;
  let o0, m0;
  marks.push({ at: WARM, fn: () => { if (process.env.GC === 'minor2') setTimeout(() => { gc({ type: 'minor' }); gc({ type: 'minor' }); }, Math.random() * 5); else if (process.env.GC !== '0') setTimeout(gc, Math.random() * 5); } });
  marks.push({ at: WARM + 2000, fn: () => { o0 = old(); m0 = majors; console.log('MARK start'); } });
  marks.push({ at: WARM + 2000 + N, fn: () => { console.log('MARK end'); resolve({ perReq: (old() - o0) / N, majors: majors - m0 }); } });
});
child.send('stop');
console.log(`table=${table} gc=${process.env.GC !== '0'} old space +${result.perReq.toFixed(0)} B/request over ${N}, mark-compacts during: ${result.majors}`);
server.close(); setTimeout(() => process.exit(0), 300);
