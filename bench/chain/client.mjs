// Client: CONC calls in flight on each of CONNS connections (closed loop), or RATE calls a second
// spread over CONNS connections (open loop), until told to stop.
import { RawH2Caller as Raw } from '../raw-h2.js';
import { H2Caller } from '../h2-caller.js';
import { framed } from '../h2-call.js';
const Caller = process.env.CLIENT === 'h2' ? H2Caller : Raw;
const [address, conc, conns] = [process.argv[2], Number(process.argv[3] ?? 64), Number(process.argv[4] ?? 1)];
const rate = Number(process.env.RATE ?? 0);
setInterval(() => undefined, 1000);
const frame = framed(Buffer.alloc(3000, 1));
let stop = false;
const callers = [];
for (let k = 0; k < conns; k++) { const c = new Caller(address); await c.ready(); callers.push(c); }
if (rate > 0) {
  const done = (err) => { if (err) { console.error(err); process.exit(1); } };
  const t0 = performance.now();
  let sent = 0;
  const tick = () => {
    const due = Math.floor(((performance.now() - t0) * rate) / 1000);
    while (sent < due) callers[sent++ % conns].send(frame, done, 0);
    if (!stop) setTimeout(tick, 1);
  };
  tick();
} else {
  for (const c of callers) {
    const done = (err) => { if (err) { console.error(err); process.exit(1); } if (!stop) c.send(frame, done, 0); };
    for (let i = 0; i < conc; i++) c.send(frame, done, 0);
  }
}
process.on('message', () => { stop = true; setTimeout(() => process.exit(0), 100); });
