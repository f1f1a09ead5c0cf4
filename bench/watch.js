// What a process did with its time while a latency window ran: every GC pause (when, how long,
// which kind) and the event loop's delay. The load generator and every server under test run
// the same watcher, so a tail sample can be laid against the pauses of both ends.
import { constants, monitorEventLoopDelay, PerformanceObserver, performance } from 'node:perf_hooks';

const KINDS = {
  [constants.NODE_PERFORMANCE_GC_MAJOR]: 'major',
  [constants.NODE_PERFORMANCE_GC_MINOR]: 'minor',
  [constants.NODE_PERFORMANCE_GC_INCREMENTAL]: 'incremental',
  [constants.NODE_PERFORMANCE_GC_WEAKCB]: 'weakcb',
};

export class Watch {
  constructor() {
    this.pauses = [];
    this.observer = undefined;
    this.loop = undefined;
  }

  start() {
    this.pauses = [];
    const origin = performance.timeOrigin;
    this.observer = new PerformanceObserver((list) => {
      for (const e of list.getEntries()) this.pauses.push({ at: origin + e.startTime, ms: e.duration, kind: KINDS[e.detail?.kind] ?? 'other' });
    });
    this.observer.observe({ entryTypes: ['gc'] });
    // 10 ms resolution, as tokengate's own runtime metrics use: cheap enough not to be the noise.
    this.loop = monitorEventLoopDelay({ resolution: 10 });
    this.loop.enable();
    return {};
  }

  /** Stops watching; GC pauses as epoch-ms intervals, and the loop delay's summary in ms. */
  stop() {
    this.observer?.disconnect();
    this.loop?.disable();
    const h = this.loop;
    const ms = (ns) => ns / 1e6;
    const byKind = {};
    for (const p of this.pauses) {
      const k = (byKind[p.kind] ??= { n: 0, totalMs: 0, maxMs: 0 });
      k.n++;
      k.totalMs += p.ms;
      k.maxMs = Math.max(k.maxMs, p.ms);
    }
    return {
      pauses: this.pauses,
      gc: byKind,
      loop: h && h.count > 0 ? { p50: ms(h.percentile(50)), p99: ms(h.percentile(99)), max: ms(h.max), mean: ms(h.mean) } : undefined,
    };
  }
}
