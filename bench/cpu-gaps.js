// `taskset -c N node bench/cpu-gaps.js [gapMs]`: a heartbeat pinned to one CPU. It sleeps 1 ms
// at a time (Atomics.wait: no event loop, no timers, no allocation) and prints, as one JSON line
// on stdout, every wake-up that came more than gapMs (default 10) late: when the CPU it is
// pinned to ran nothing of its for that long. On an idle CPU that can only be the CPU itself not
// running (a virtual CPU the host did not schedule: this machine reports no steal time), or a
// task that held it without being preempted. bench/stalls.js lays these gaps against the stalls
// of the fixed-rate slices.
import fs from 'node:fs';

const gapMs = Number(process.argv[2] ?? 10);
const cell = new Int32Array(new SharedArrayBuffer(4));
const origin = performance.timeOrigin;
let last = performance.now();
let wakes = 0;
fs.writeSync(1, `${JSON.stringify({ ready: true, pid: process.pid })}\n`);
for (;;) {
  Atomics.wait(cell, 0, 0, 1);
  const now = performance.now();
  wakes++;
  if (now - last > gapMs) fs.writeSync(1, `${JSON.stringify({ at: origin + last, ms: now - last, wakes })}\n`);
  last = now;
}
