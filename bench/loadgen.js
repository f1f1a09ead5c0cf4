// The load generator, in its own process: @grpc/grpc-js clients over several HTTP/2
// connections (one channel each: a local subchannel pool and a distinct channel option), the
// same encoded Envoy-shaped CheckRequest for every target. Closed loop for saturating
// throughput at a fixed concurrency; open loop (paced) for latency at a fixed offered rate;
// bursts for refresh storms. Answers are passed through undecoded on the measured paths so the
// generator spends as little of the shared CPU as it can. Besides grpc-js, two lean callers of
// the same calls: node:http2's client (`h2`, h2-caller.js) and raw HTTP/2 frames (`raw`,
// raw-h2.js, the cheapest: the fixed-rate p99's default).
import { PerformanceObserver } from 'node:perf_hooks';
import * as grpc from '@grpc/grpc-js';
import { CHECK_METHOD, checkCodec, encodedRequest } from './envoy-request.js';
import { framed, kIndex } from './h2-call.js';
import { H2Caller } from './h2-caller.js';
import { announceReady, serveParent } from './procs.js';
import { RawH2Caller } from './raw-h2.js';
import { latencySummary } from './stats.js';
import { Watch } from './watch.js';

const passThrough = (b) => b;
const targets = new Map();
const requests = new Map();

function requestFor(init) {
  const key = JSON.stringify(init ?? {});
  let buf = requests.get(key);
  if (!buf) {
    buf = encodedRequest(init ?? {});
    requests.set(key, buf);
  }
  return buf;
}

function clientsFor(key) {
  const c = targets.get(key);
  if (!c) throw new Error(`no target ${key}: connect first`);
  return c;
}

async function connect({ key, address, channels, client = 'grpc-js' }) {
  const old = targets.get(key);
  if (old) for (const c of old) c.close();
  if (client === 'h2' || client === 'raw') {
    const Caller = client === 'raw' ? RawH2Caller : H2Caller;
    const callers = Array.from({ length: channels }, () => new Caller(address));
    await Promise.all(callers.map((c) => c.ready()));
    targets.set(key, callers);
    return { channels: callers.length, client };
  }
  const clients = [];
  for (let i = 0; i < channels; i++) {
    clients.push(new grpc.Client(address, grpc.credentials.createInsecure(), {
      'grpc.use_local_subchannel_pool': 1,
      'bench.channel_index': i, // distinct options: never one shared connection
      'grpc.max_receive_message_length': 4 * 1024 * 1024,
    }));
  }
  await Promise.all(clients.map((c) => new Promise((resolve, reject) => c.waitForReady(Date.now() + 10_000, (err) => (err ? reject(err) : resolve())))));
  targets.set(key, clients);
  return { channels: clients.length, client };
}

function call(client, buf, decode, deadlineMs, cb) {
  const opts = deadlineMs ? { deadline: Date.now() + deadlineMs } : {};
  client.makeUnaryRequest(CHECK_METHOD, passThrough, decode ? checkCodec().decodeResponse : passThrough, buf, new grpc.Metadata(), opts, cb);
}

/** One decoded Check: the answer shape, for the report. */
function probe({ key, init }) {
  const [client] = clientsFor(key);
  return new Promise((resolve, reject) => call(client, requestFor(init), true, 5_000, (err, res) => (err ? reject(err) : resolve(res))));
}

/**
 * Per-caller benches: `callers` requests that differ only in the caller's own credential
 * (`authorization: Bearer <callerToken(i)>`), encoded once each and kept for the process.
 */
const callerSets = new Map();
function callerToken(i, length = 600) {
  const head = `caller${i}.`;
  return head + 'Q'.repeat(Math.max(0, length - head.length));
}
function callerRequests(init, callers) {
  const key = `${JSON.stringify(init ?? {})}#${callers}`;
  let bufs = callerSets.get(key);
  if (!bufs) {
    bufs = Array.from({ length: callers }, (_, i) => encodedRequest({ ...init, headers: { ...(init?.headers ?? {}), authorization: `Bearer ${callerToken(i)}` } }));
    callerSets.set(key, bufs);
  }
  return bufs;
}

/** Every one of `callers` callers exactly once (at most `concurrency` at a time): fills a per-caller cache. */
function sweep({ key, init, callers, concurrency = 64 }) {
  const clients = clientsFor(key);
  const bufs = callerRequests(init, callers);
  let next = 0;
  let ok = 0;
  let errors = 0;
  let lastError;
  const started = performance.now();
  return new Promise((resolve) => {
    let active = 0;
    const issue = () => {
      if (next >= bufs.length) {
        if (active === 0) resolve({ ok, errors, lastError, ms: performance.now() - started });
        return;
      }
      const i = next++;
      active++;
      call(clients[i % clients.length], bufs[i], false, 0, (err) => {
        active--;
        if (err) {
          errors++;
          lastError = err.message;
        } else ok++;
        issue();
      });
    };
    for (let c = 0; c < concurrency; c++) issue();
  });
}

/**
 * Closed loop: `concurrency` calls always in flight for `durationMs`. With `callers`, each call
 * is the next caller's request in turn (per-caller benches); else the same request every time.
 */
function closed({ key, init, concurrency, durationMs, callers }) {
  const clients = clientsFor(key);
  return closedRotating(clients, callers ? callerRequests(init, callers) : [requestFor(init)], concurrency, durationMs);
}

/** Closed loop: each of `concurrency` callers sends its next request (the next of `bufs`) as soon as one is answered. */
function closedRotating(clients, bufs, concurrency, durationMs) {
  let ok = 0;
  let errors = 0;
  let lastError;
  let stopping = false;
  let active = 0;
  let n = 0;
  const started = performance.now();
  return new Promise((resolve) => {
    const finish = () => resolve({ ok, errors, lastError, elapsedMs: performance.now() - started, rate: ok / ((performance.now() - started) / 1000) });
    const issue = (i) => {
      active++;
      const buf = bufs[n++ % bufs.length];
      call(clients[i % clients.length], buf, false, 0, (err) => {
        active--;
        if (err) {
          errors++;
          lastError = err.message;
        } else ok++;
        if (!stopping) issue(i);
        else if (active === 0) finish();
      });
    };
    for (let i = 0; i < concurrency; i++) issue(i);
    setTimeout(() => {
      stopping = true;
    }, durationMs);
  });
}

/**
 * Open loop: calls sent on a schedule of `rate` per second for `durationMs`, whatever the
 * answers do; latency from each call's send to its answer. The schedule runs on 1 ms timers
 * (a busy loop would steal the server's CPU on a 2-core machine), so sends come in small
 * bursts; `lag` is how late each send was against the ideal schedule (the generator's own
 * stalls: when it is a large part of the p99, the p99 measures the generator). With
 * `samples: true` every recorded call's latency and lag come back, for pooling over slices;
 * the generator's own GC pauses inside the window come back as `generatorGc`, its own CPU time
 * per call (process.cpuUsage over the run) as `generatorCpuUsPerCall`. With `times: true`,
 * each recorded call's send time (`sentAt`, epoch ms) and call index (`sentIndex`: its
 * connection is index % connections); `startedAt` (epoch ms) is the schedule's origin, where
 * call i was due at startedAt + i / rate (bench/stalls.js lays stalls against GC pauses with them).
 */
function open({ key, init, rate, durationMs, warmupMs, times = false, samples: wantSamples = true }) {
  // Start from an empty young generation: a scavenge of garbage left by the previous run
  // would otherwise pause the generator itself, and its pause lands in this target's p99.
  globalThis.gc?.();
  const clients = clientsFor(key);
  const buf = requestFor(init);
  // The lean callers take the framed request and one shared callback (no closure per call).
  const lean = clients[0] instanceof H2Caller || clients[0] instanceof RawH2Caller;
  const frame = framed(buf);
  const total = Math.floor((rate * (warmupMs + durationMs)) / 1000);
  const skip = Math.floor((rate * warmupMs) / 1000);
  const interval = 1000 / rate;
  const sentAt = new Float64Array(total);
  const lat = new Float64Array(total - skip);
  const lag = new Float64Array(total - skip);
  // With `times`: each recorded call's send time (epoch ms), to lay the tail against GC pauses.
  const sentEpoch = times ? new Float64Array(total - skip) : undefined;
  // …and each one's call index (its connection is index % connections: one stalled connection
  // and a stalled process look alike in a latency histogram, not in this).
  const sentIndex = times ? new Uint32Array(total - skip) : undefined;
  let recorded = 0;
  let sent = 0;
  let settled = 0;
  let errors = 0;
  let lastError;
  const gcPauses = [];
  const gcObserver = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) if (e.startTime >= windowStart) gcPauses.push(e.duration);
  });
  gcObserver.observe({ entryTypes: ['gc'] });
  let gcAnywhere = 0;
  const countAll = new PerformanceObserver((list) => {
    gcAnywhere += list.getEntries().length;
  });
  countAll.observe({ entryTypes: ['gc'] });
  const heapBefore = process.memoryUsage().heapUsed;
  // The generator's own CPU over the whole run (warm-up included, as are its calls): what
  // driving this rate costs the shared machine, per call, whichever client drives it.
  const cpuBefore = process.cpuUsage();
  const start = performance.now();
  const windowStart = start + warmupMs;
  return new Promise((resolve) => {
    const done = () => {
      const cpu = process.cpuUsage(cpuBefore);
      // Without a collection in the slice, what the heap grew by is what the generator allocated.
      const heapGrowth = process.memoryUsage().heapUsed - heapBefore;
      gcObserver.disconnect();
      countAll.disconnect();
      const round3 = (v) => Math.round(v * 1000) / 1000;
      const l = lat.subarray(0, recorded);
      const g = lag.subarray(0, recorded);
      resolve({
        offered: rate,
        sent,
        errors,
        lastError,
        achievedRate: recorded / (durationMs / 1000),
        latency: latencySummary(l),
        lag: latencySummary(g),
        generatorGc: { n: gcPauses.length, totalMs: gcPauses.reduce((a, b) => a + b, 0), maxMs: Math.max(0, ...gcPauses) },
        generatorBytesPerCall: gcAnywhere === 0 ? heapGrowth / total : undefined,
        generatorCpuUsPerCall: (cpu.user + cpu.system) / total,
        samples: wantSamples ? Array.from(l, round3) : undefined,
        lagSamples: wantSamples ? Array.from(g, round3) : undefined,
        sentAt: sentEpoch ? Array.from(sentEpoch.subarray(0, recorded), round3) : undefined,
        sentIndex: sentIndex ? Array.from(sentIndex.subarray(0, recorded)) : undefined,
        // The schedule's origin (epoch ms): where the slice's first send was due.
        startedAt: performance.timeOrigin + start,
      });
    };
    const settle = (i, err) => {
      settled++;
      if (err) {
        errors++;
        lastError = err.message;
      } else if (i >= skip) {
        const t = sentAt[i];
        lat[recorded] = performance.now() - t;
        lag[recorded] = t - (start + i * interval);
        if (sentEpoch) {
          sentEpoch[recorded] = performance.timeOrigin + t;
          sentIndex[recorded] = i;
        }
        recorded++;
      }
      if (settled === total) done();
    };
    // h2 and raw: one shared callback, the call's index on `this` (no closure per call).
    const settleLean = function (err) {
      settle(this[kIndex], err);
    };
    const send = (i) => {
      sentAt[i] = performance.now();
      const c = clients[i % clients.length];
      if (lean) c.send(frame, settleLean, i);
      else call(c, buf, false, 0, (err) => settle(i, err));
    };
    const tick = () => {
      const due = Math.min(total, Math.floor((performance.now() - start) / interval) + 1);
      while (sent < due) send(sent++);
      if (sent < total) setTimeout(tick, 1);
    };
    tick();
  });
}

/** N Checks at once (optionally right after an admin invalidation); each answer decoded. */
async function burst({ key, init, n, deadlineMs, invalidate }) {
  const clients = clientsFor(key);
  const buf = requestFor(init);
  if (invalidate) {
    const res = await fetch(invalidate.url, { method: 'POST', headers: { authorization: `Bearer ${invalidate.token}` } });
    await res.text();
    if (res.status !== 200) throw new Error(`invalidate answered ${res.status}`);
  }
  const lat = new Float64Array(n);
  const outcomes = { ok: 0, denied: 0, grpcErrors: 0 };
  const sources = {};
  let lastError;
  const t0 = performance.now();
  let lastSent = 0;
  await new Promise((resolve) => {
    let settled = 0;
    for (let i = 0; i < n; i++) {
      const t = performance.now();
      call(clients[i % clients.length], buf, true, deadlineMs, (err, res) => {
        lat[i] = performance.now() - t;
        if (err) {
          outcomes.grpcErrors++;
          lastError = err.message;
        } else if ((res.status?.code ?? 0) === 0) {
          outcomes.ok++;
          const s = res.dynamic_metadata?.fields?.source?.stringValue ?? 'none';
          sources[s] = (sources[s] ?? 0) + 1;
        } else {
          outcomes.denied++;
          lastError = res.denied_response?.body;
        }
        if (++settled === n) resolve();
      });
      lastSent = performance.now();
    }
  });
  return { n, ...outcomes, sources, lastError, dispatchMs: lastSent - t0, totalMs: performance.now() - t0, latency: latencySummary(Array.from(lat)) };
}

const watch = new Watch();
serveParent({
  connect,
  probe,
  closed,
  open,
  burst,
  sweep,
  disconnect: ({ key }) => {
    for (const c of targets.get(key) ?? []) c.close();
    targets.delete(key);
    return {};
  },
  cpu: () => process.cpuUsage(),
  watch: () => watch.start(),
  watched: () => watch.stop(),
  stop: () => {
    for (const cs of targets.values()) for (const c of cs) c.close();
  },
});
announceReady({ pid: process.pid });
