// /metrics carries the runtime's health (prom-client's names) and tokengate_build_info beside
// tokengate's own series, in an exposition a strict Prometheus parser accepts; the runtime
// monitors stop when tokengate closes.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { packageVersion } from '../../src/observability/build-info.js';
import { Registry } from '../../src/observability/prometheus.js';
import { RuntimeMetrics } from '../../src/observability/runtime-metrics.js';
import { parsePrometheusText, type PromFamily } from '../support/prom-text.js';
import { startWorld, until, type World } from '../support/world.js';

/** Allocates enough short-lived garbage for V8 to run at least one scavenge. */
function churn(): number {
  let keep = 0;
  for (let i = 0; i < 200_000; i++) keep += [i, { i }, `x${i}`].length;
  return keep;
}

const RUNTIME_FAMILIES: Record<string, PromFamily['type']> = {
  tokengate_build_info: 'gauge',
  process_cpu_user_seconds_total: 'counter',
  process_cpu_system_seconds_total: 'counter',
  process_cpu_seconds_total: 'counter',
  process_start_time_seconds: 'gauge',
  process_resident_memory_bytes: 'gauge',
  process_open_fds: 'gauge',
  process_max_fds: 'gauge',
  nodejs_eventloop_lag_seconds: 'gauge',
  nodejs_eventloop_lag_p50_seconds: 'gauge',
  nodejs_eventloop_lag_p99_seconds: 'gauge',
  nodejs_heap_size_total_bytes: 'gauge',
  nodejs_heap_size_used_bytes: 'gauge',
  nodejs_external_memory_bytes: 'gauge',
  nodejs_gc_duration_seconds: 'histogram',
};

describe('GET /metrics: runtime series', () => {
  let w: World;
  let families: Map<string, PromFamily>;
  const scrape = async () => parsePrometheusText((await w.admin.http('GET', '/metrics')).text);

  beforeAll(async () => {
    w = await startWorld({ admin: true, yaml: ({ cc }) => `
providers:
  cc:
    source: ${cc()}
` });
    await w.check({ contextExtensions: { provider: 'cc' } });
    churn();
    // GC entries reach the observer asynchronously.
    await until(() => (w.app.metrics.render().match(/^nodejs_gc_duration_seconds_count\{.*\} [1-9]/m)) !== null, 5_000, 'a GC observation');
    families = await scrape();
  });
  afterAll(async () => {
    await w?.close();
  });

  it('the whole exposition parses strictly: one HELP and one TYPE per family, contiguous, valid histograms', () => {
    // parsePrometheusText throws on any of those; reaching here means it accepted the scrape.
    for (const f of families.values()) {
      expect(f.help, f.name).toBeTruthy();
      expect(f.type, f.name).not.toBe('untyped');
    }
  });

  it('has the runtime families with prom-client’s names and types, next to tokengate’s own', () => {
    for (const [name, type] of Object.entries(RUNTIME_FAMILIES)) expect(families.get(name)?.type, name).toBe(type);
    const checks = families.get('tokengate_checks_total')!.samples.filter((s) => s.value > 0);
    expect(checks).toEqual([{ name: 'tokengate_checks_total', labels: expect.objectContaining({ provider: 'cc', result: 'ok' }), value: 1 }]);
    expect(families.get('tokengate_token_fetch_duration_seconds')?.type).toBe('histogram');
  });

  it('tokengate_build_info{version,node} is 1 with this package and this Node', () => {
    expect(families.get('tokengate_build_info')!.samples).toEqual([
      { name: 'tokengate_build_info', labels: { version: packageVersion(), node: process.version }, value: 1 },
    ]);
    expect(packageVersion()).toMatch(/^\d+\.\d+\.\d+/);
  });

  it('the values are plausible: memory, CPU, fds, heap, GC by kind', () => {
    const v = (name: string) => families.get(name)!.samples[0]!.value;
    expect(v('process_resident_memory_bytes')).toBeGreaterThan(10 * 2 ** 20);
    expect(v('nodejs_heap_size_used_bytes')).toBeGreaterThan(0);
    expect(v('nodejs_heap_size_used_bytes')).toBeLessThanOrEqual(v('nodejs_heap_size_total_bytes'));
    expect(v('process_cpu_seconds_total')).toBeGreaterThan(0);
    // Read in order (user, system, total): the total includes at least what came before.
    expect(v('process_cpu_seconds_total')).toBeGreaterThanOrEqual(v('process_cpu_user_seconds_total'));
    // stdin/stdout/stderr plus the listeners at least.
    expect(v('process_open_fds')).toBeGreaterThan(3);
    expect(v('process_open_fds')).toBeLessThan(v('process_max_fds'));
    expect(v('process_start_time_seconds')).toBeLessThanOrEqual(Date.now() / 1000);
    expect(v('nodejs_eventloop_lag_p99_seconds')).toBeGreaterThanOrEqual(v('nodejs_eventloop_lag_p50_seconds'));
    const kinds = new Set(families.get('nodejs_gc_duration_seconds')!.samples.map((s) => s.labels.kind));
    expect([...kinds].every((k) => ['major', 'minor', 'incremental', 'weakcb'].includes(k!))).toBe(true);
  });

  it('the event-loop lag covers the time since the previous scrape', async () => {
    const busyUntil = Date.now() + 60;
    await new Promise<void>((resolve) => setTimeout(() => {
      while (Date.now() < busyUntil) { /* block the loop */ }
      resolve();
    }, 0));
    await new Promise((r) => setTimeout(r, 30));
    const after = await scrape();
    expect(after.get('nodejs_eventloop_lag_max_seconds')!.samples[0]!.value).toBeGreaterThan(0.04);
  });
});

describe('RuntimeMetrics lifecycle', () => {
  it('stop() disconnects the GC observer and the event-loop monitor', async () => {
    const registry = new Registry();
    const rt = new RuntimeMetrics(registry, { version: '0.0.0-test' });
    const gcCount = () => Number(/^nodejs_gc_duration_seconds_count\{kind="minor"\} (\d+)/m.exec(registry.render())?.[1] ?? 0);
    churn();
    await until(() => gcCount() > 0, 5_000, 'a minor GC observation');
    rt.stop();
    await new Promise((r) => setTimeout(r, 20));
    const frozen = gcCount();
    churn();
    await new Promise((r) => setTimeout(r, 50));
    expect(gcCount()).toBe(frozen);
    expect(registry.render()).toMatch(/^nodejs_eventloop_lag_p99_seconds 0$/m);
    rt.stop(); // idempotent
  });
});

describe('parsePrometheusText (the strict parser itself)', () => {
  const bad: Record<string, string> = {
    'duplicate HELP': '# HELP a x\n# HELP a y\n# TYPE a gauge\na 1\n',
    'duplicate TYPE': '# HELP a x\n# TYPE a gauge\n# TYPE a gauge\na 1\n',
    'family split in two': '# TYPE a gauge\na{x="1"} 1\n# TYPE b gauge\nb 1\na{x="2"} 2\n',
    'histogram without +Inf': '# TYPE h histogram\nh_bucket{le="1"} 1\nh_sum 1\nh_count 1\n',
    'histogram buckets decreasing': '# TYPE h histogram\nh_bucket{le="1"} 2\nh_bucket{le="+Inf"} 1\nh_sum 1\nh_count 1\n',
    'negative counter': '# TYPE c counter\nc -1\n',
    'bad escape': '# TYPE a gauge\na{x="\\t"} 1\n',
    'no trailing newline': '# TYPE a gauge\na 1',
    'bad value': '# TYPE a gauge\na one\n',
  };
  for (const [what, text] of Object.entries(bad)) it(`rejects: ${what}`, () => expect(() => parsePrometheusText(text)).toThrow());
  it('accepts a well-formed histogram and escaped labels', () => {
    const f = parsePrometheusText('# HELP h x\n# TYPE h histogram\nh_bucket{k="a\\"b",le="1"} 1\nh_bucket{k="a\\"b",le="+Inf"} 2\nh_sum{k="a\\"b"} 3\nh_count{k="a\\"b"} 2\n');
    expect(f.get('h')!.samples[0]!.labels).toEqual({ k: 'a"b', le: '1' });
  });
});
