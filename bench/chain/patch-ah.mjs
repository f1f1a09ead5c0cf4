// Probe: how many native Http2Stream objects are alive (created, not yet deleted). An explicitly
// deleted one (Http2Stream::Destroy's immediate, Detach) emits its async destroy at once; one left
// "for the garbage collector" only when a GC finalizes its JS handle.
import { createHook } from 'node:async_hooks';
const ids = new Set();
let inits = 0, destroys = 0, maxLive = 0;
const hist = [];
createHook({
  init(id, type) { if (type === 'HTTP2STREAM') { ids.add(id); inits++; if (ids.size > maxLive) maxLive = ids.size; } },
  destroy(id) { if (ids.delete(id)) destroys++; },
}).enable();
setInterval(() => { hist.push(ids.size); }, 100).unref();
process.on('exit', () => console.log(`AH inits=${inits} destroys=${destroys} live=${ids.size} maxLive=${maxLive} live/100ms=${hist.join(',')}`));
globalThis.__patchSession = () => undefined;
