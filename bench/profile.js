// Summarises a V8 .cpuprofile (node --cpu-prof): self and inclusive time per function, and
// self time per layer (tokengate, grpc-js, protobuf, node's http2/net internals, GC), for the
// samples inside a time window.
import fs from 'node:fs';
import path from 'node:path';

function layerOf(url, name) {
  if (!url) {
    if (name === '(garbage collector)') return 'gc';
    if (name === '(idle)') return 'idle';
    if (name === '(program)') return 'program (native, unattributed)';
    return 'native';
  }
  if (url.includes('@grpc/grpc-js/')) return 'grpc-js';
  if (url.includes('protobufjs') || url.includes('@grpc/proto-loader') || url.includes('@protobufjs')) return 'protobuf';
  if (url.includes('/node_modules/')) return 'other deps';
  if (url.includes('/dist/')) return 'tokengate';
  if (url.includes('/bench/')) return 'bench target';
  if (url.startsWith('node:internal/http2') || url.startsWith('node:http2')) return 'node http2';
  if (url.startsWith('node:internal/stream') || url.startsWith('node:stream') || url.startsWith('node:internal/streams')) return 'node streams';
  if (url.startsWith('node:')) return 'node other';
  return 'other deps';
}

function keyOf(cf) {
  const file = cf.url ? path.basename(cf.url.replace(/^file:\/\//, '')) : '';
  return `${cf.functionName || '(anonymous)'} ${file}${cf.url ? `:${cf.lineNumber + 1}` : ''}`;
}

/**
 * @param {string} file a .cpuprofile
 * @param {{fromUs?: number, toUs?: number}} window in the profile's clock (µs, monotonic, as process.hrtime)
 */
export function summariseProfile(file, window = {}) {
  const prof = JSON.parse(fs.readFileSync(file, 'utf8'));
  const byId = new Map();
  const parent = new Map();
  for (const n of prof.nodes) byId.set(n.id, n);
  for (const n of prof.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const self = new Map();
  const incl = new Map();
  const grpcIncl = new Map();
  const layers = new Map();
  // Every sample weighs one sampling interval. Weighing a sample by the time to the next one
  // would charge the function on the stack with the time the process sat descheduled, which on
  // a shared machine is most of the noise.
  const sortedDeltas = [...prof.timeDeltas].sort((a, b) => a - b);
  const d = sortedDeltas[Math.floor(sortedDeltas.length / 2)] || 1000;
  let t = prof.startTime;
  let total = 0;
  let busy = 0;
  for (let i = 0; i < prof.samples.length; i++) {
    t += prof.timeDeltas[i];
    if ((window.fromUs !== undefined && t < window.fromUs) || (window.toUs !== undefined && t > window.toUs)) continue;
    const node = byId.get(prof.samples[i]);
    const cf = node.callFrame;
    total += d;
    const layer = layerOf(cf.url, cf.functionName);
    layers.set(layer, (layers.get(layer) ?? 0) + d);
    if (layer === 'idle') continue;
    busy += d;
    const k = keyOf(cf);
    self.set(k, (self.get(k) ?? 0) + d);
    const seen = new Set();
    for (let id = node.id; id !== undefined; id = parent.get(id)) {
      const kk = keyOf(byId.get(id).callFrame);
      if (seen.has(kk)) continue;
      seen.add(kk);
      incl.set(kk, (incl.get(kk) ?? 0) + d);
      if (byId.get(id).callFrame.url.includes('@grpc/grpc-js/')) grpcIncl.set(kk, (grpcIncl.get(kk) ?? 0) + d);
    }
  }
  const pct = (v) => (busy ? (100 * v) / busy : 0);
  const top = (m, n) => [...m.entries()].sort((a, b) => b[1] - a[1]).slice(0, n).map(([fn, us]) => ({ fn, ms: us / 1000, pctOfBusy: pct(us) }));
  return {
    windowMs: total / 1000,
    busyMs: busy / 1000,
    layers: [...layers.entries()].filter(([l]) => l !== 'idle').sort((a, b) => b[1] - a[1]).map(([layer, us]) => ({ layer, ms: us / 1000, pctOfBusy: pct(us) })),
    topSelf: top(self, 25),
    /** Inclusive time of grpc-js's functions (callees included): where its per-call machinery goes. */
    grpcJsInclusive: top(grpcIncl, 30),
    /** Inclusive time of tokengate's own functions (what the handler costs, callees included). */
    tokengateInclusive: [...incl.entries()]
      .filter(([k]) => /\.js:\d+$/.test(k) && !/grpc|proto|node:|internal/.test(k) && [...self.keys(), ...incl.keys()].includes(k))
      .map(([fn, us]) => ({ fn, ms: us / 1000, pctOfBusy: pct(us) }))
      .filter((r) => r.pctOfBusy >= 0.05)
      .sort((a, b) => b.ms - a.ms)
      .slice(0, 25),
  };
}

if (process.argv[1] && path.resolve(process.argv[1]) === path.resolve(new URL(import.meta.url).pathname)) {
  const s = summariseProfile(process.argv[2]);
  console.log(JSON.stringify(s, null, 1));
}
