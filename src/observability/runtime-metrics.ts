// The runtime's health under the names prom-client's default collectors use, so existing Node
// dashboards and alerts work unchanged. Written here rather than taken from prom-client: its
// collectors cannot be stopped (the GC observer and the event-loop histogram stay enabled for
// the life of the process), and its registry renders asynchronously next to our synchronous
// one. Everything is read at scrape time except GC pauses and event-loop delay, which Node
// measures natively; neither holds the event loop open, and stop() turns both off.
import { readdirSync, readFileSync } from 'node:fs';
import { constants, monitorEventLoopDelay, PerformanceObserver, type IntervalHistogram, type PerformanceEntry } from 'node:perf_hooks';
import { CollectedCounter, CollectedGauge, Histogram, type Registry } from './prometheus.js';

const GC_BUCKETS = [0.001, 0.01, 0.1, 1, 2, 5];
const NS = 1e9;

const GC_KINDS: Readonly<Record<number, string>> = {
  [constants.NODE_PERFORMANCE_GC_MAJOR]: 'major',
  [constants.NODE_PERFORMANCE_GC_MINOR]: 'minor',
  [constants.NODE_PERFORMANCE_GC_INCREMENTAL]: 'incremental',
  [constants.NODE_PERFORMANCE_GC_WEAKCB]: 'weakcb',
};

export interface BuildInfo {
  readonly version: string;
}

/** Open file descriptors, or undefined where /proc is not there (macOS, Windows). */
function openFds(): number | undefined {
  try {
    // The directory handle used to list it is one of the entries.
    return readdirSync('/proc/self/fd').length - 1;
  } catch {
    return undefined;
  }
}

function maxFds(): number | undefined {
  try {
    const m = /^Max open files\s+(\d+)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

function single(v: number | undefined): Iterable<[string[], number]> {
  return v === undefined || !Number.isFinite(v) ? [] : [[[], v]];
}

export class RuntimeMetrics {
  private readonly loopDelay: IntervalHistogram;
  private readonly gcObserver: PerformanceObserver;
  private readonly gcDuration: Histogram;
  private readonly startTime = Math.round((Date.now() - process.uptime() * 1000) / 1000);
  private stopped = false;
  // The event-loop percentiles cover the time since the previous scrape.
  private lastLoop = { min: 0, max: 0, mean: 0, p50: 0, p90: 0, p99: 0 };

  constructor(registry: Registry, build: BuildInfo) {
    this.loopDelay = monitorEventLoopDelay({ resolution: 10 });
    this.loopDelay.enable();
    this.gcDuration = registry.add(new Histogram('nodejs_gc_duration_seconds', 'Garbage collection duration by kind, one of major, minor, incremental or weakcb.', GC_BUCKETS, ['kind']));
    this.gcObserver = new PerformanceObserver((list) => {
      for (const entry of list.getEntries()) this.gcDuration.observe(entry.duration / 1000, gcKind(entry));
    });
    this.gcObserver.observe({ entryTypes: ['gc'] });

    const gauge = (name: string, help: string, read: () => number | undefined) =>
      registry.add(new CollectedGauge(name, help, [], () => single(read())));
    const counter = (name: string, help: string, read: () => number) =>
      registry.add(new CollectedCounter(name, help, [], () => single(read())));

    registry.add(new CollectedGauge('tokengate_build_info', 'tokengate build: version and Node.js version; always 1.', ['version', 'node'], () => [[[build.version, process.version], 1]]));
    counter('process_cpu_user_seconds_total', 'Total user CPU time spent in seconds.', () => process.cpuUsage().user / 1e6);
    counter('process_cpu_system_seconds_total', 'Total system CPU time spent in seconds.', () => process.cpuUsage().system / 1e6);
    counter('process_cpu_seconds_total', 'Total user and system CPU time spent in seconds.', () => {
      const u = process.cpuUsage();
      return (u.user + u.system) / 1e6;
    });
    gauge('process_start_time_seconds', 'Start time of the process since unix epoch in seconds.', () => this.startTime);
    gauge('process_resident_memory_bytes', 'Resident memory size in bytes.', () => process.memoryUsage.rss());
    gauge('process_open_fds', 'Number of open file descriptors.', openFds);
    gauge('process_max_fds', 'Maximum number of open file descriptors.', maxFds);
    gauge('nodejs_eventloop_lag_seconds', 'Mean event loop delay since the previous scrape, in seconds.', () => this.sampleLoop().mean);
    gauge('nodejs_eventloop_lag_min_seconds', 'The minimum recorded event loop delay.', () => this.lastLoop.min);
    gauge('nodejs_eventloop_lag_max_seconds', 'The maximum recorded event loop delay.', () => this.lastLoop.max);
    gauge('nodejs_eventloop_lag_p50_seconds', 'The 50th percentile of the recorded event loop delays.', () => this.lastLoop.p50);
    gauge('nodejs_eventloop_lag_p90_seconds', 'The 90th percentile of the recorded event loop delays.', () => this.lastLoop.p90);
    gauge('nodejs_eventloop_lag_p99_seconds', 'The 99th percentile of the recorded event loop delays.', () => this.lastLoop.p99);
    gauge('nodejs_heap_size_total_bytes', 'Process heap size from Node.js in bytes.', () => process.memoryUsage().heapTotal);
    gauge('nodejs_heap_size_used_bytes', 'Process heap size used from Node.js in bytes.', () => process.memoryUsage().heapUsed);
    gauge('nodejs_external_memory_bytes', 'Node.js external memory size in bytes.', () => process.memoryUsage().external);
    gauge('nodejs_active_handles_total', 'Number of active libuv handles.', () => process.getActiveResourcesInfo().length);
  }

  /** Reads and resets the event-loop histogram; the other lag gauges render what it read. */
  private sampleLoop(): RuntimeMetrics['lastLoop'] {
    const h = this.loopDelay;
    // An empty histogram reports min as a huge number; say 0 rather than nonsense.
    this.lastLoop = h.count === 0 || this.stopped
      ? { min: 0, max: 0, mean: 0, p50: 0, p90: 0, p99: 0 }
      : { min: h.min / NS, max: h.max / NS, mean: h.mean / NS, p50: h.percentile(50) / NS, p90: h.percentile(90) / NS, p99: h.percentile(99) / NS };
    h.reset();
    return this.lastLoop;
  }

  /** Turns the native event-loop and GC monitors off (tokengate is shutting down). */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.loopDelay.disable();
    this.gcObserver.disconnect();
  }
}

function gcKind(entry: PerformanceEntry): string {
  const detail = (entry as PerformanceEntry & { detail?: { kind?: number } }).detail;
  return GC_KINDS[detail?.kind ?? -1] ?? 'unknown';
}
