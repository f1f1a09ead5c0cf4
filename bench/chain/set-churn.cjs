// Bisect: the pendingStreams table chain alone (FINDINGS, "The stream chain that remained"). node --expose-gc set-churn.cjs set|array gc|nogc
// A Set that holds at most one entry at a time (add then delete), with ~2 KB objects, as
// node:http2's pendingStreams does for a server stream. Promoted bytes per round after a
// forced full GC, vs none.
const v8 = require('v8');
const mode = process.argv[2];
const s = mode === 'array' ? null : new Set();
let keep = [];
function obj() { return { a: new Array(200).fill(0).map((_, i) => ({ i })) }; }
function round() { const o = obj(); if (s) { s.add(o); s.delete(o); } keep.push(o); if (keep.length > 4) keep.shift(); }
const old = () => v8.getHeapSpaceStatistics().find((x) => x.space_name === 'old_space').space_used_size;
for (let i = 0; i < 20000; i++) round();
// Rounds run across turns so that tables can be promoted as they would be under load.
if (process.argv[3] === 'gc') gc();
const o0 = old();
let n = 0;
(function loop() { for (let i = 0; i < 200; i++) round(); n += 200; if (n < 40000) setImmediate(loop); else console.log(mode, process.argv[3], `old space +${((old() - o0) / n).toFixed(0)} B/round`); })();
