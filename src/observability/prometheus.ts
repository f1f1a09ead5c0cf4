// A minimal Prometheus text-format registry. Hot-path code resolves a labelled cell once and
// then only bumps a number: no label lookups, no allocation per request.

type Labels = Readonly<Record<string, string>>;

function escapeLabel(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

function labelText(names: readonly string[], values: readonly string[]): string {
  if (!names.length) return '';
  return `{${names.map((n, i) => `${n}="${escapeLabel(values[i] ?? '')}"`).join(',')}}`;
}

export interface CounterCell {
  value: number;
}

interface Metric {
  render(out: string[]): void;
}

/**
 * A series' label values from its key (the values joined by NUL; label values come from config
 * names and closed sets, never NUL). Series keep no array of their values: with ten thousand
 * providers that was two objects for each of their series, read only at scrape or reload.
 */
function labelValues(key: string, names: readonly string[]): string[] {
  return names.length === 0 ? [] : key.split('\u0000');
}

export class Counter implements Metric {
  private readonly cells = new Map<string, CounterCell>();

  constructor(readonly name: string, readonly help: string, readonly labelNames: readonly string[] = []) {}

  /** The cell for these label values; keep it and bump `.value` on the hot path. */
  cell(...values: string[]): CounterCell {
    const key = values.join('\u0000');
    let cell = this.cells.get(key);
    if (!cell) {
      cell = { value: 0 };
      this.cells.set(key, cell);
    }
    return cell;
  }

  inc(labels: Labels = {}, by = 1): void {
    this.cell(...this.labelNames.map((n) => labels[n] ?? '')).value += by;
  }

  get(labels: Labels = {}): number {
    return this.cells.get(this.labelNames.map((n) => labels[n] ?? '').join('\u0000'))?.value ?? 0;
  }

  /** Forget series whose label values match (e.g. a provider removed by reload). */
  drop(predicate: (values: readonly string[]) => boolean): void {
    for (const k of this.cells.keys()) if (predicate(labelValues(k, this.labelNames))) this.cells.delete(k);
  }

  render(out: string[]): void {
    out.push(`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} counter`);
    for (const [k, { value }] of this.cells) out.push(`${this.name}${labelText(this.labelNames, labelValues(k, this.labelNames))} ${value}`);
  }
}

export class Histogram implements Metric {
  private readonly series = new Map<string, { counts: number[]; sum: number; count: number }>();

  constructor(readonly name: string, readonly help: string, readonly buckets: readonly number[], readonly labelNames: readonly string[] = []) {}

  observe(seconds: number, ...values: string[]): void {
    const key = values.join('\u0000');
    let s = this.series.get(key);
    if (!s) {
      s = { counts: new Array<number>(this.buckets.length).fill(0), sum: 0, count: 0 };
      this.series.set(key, s);
    }
    for (let i = 0; i < this.buckets.length; i++) if (seconds <= this.buckets[i]!) s.counts[i]!++;
    s.sum += seconds;
    s.count++;
  }

  drop(predicate: (values: readonly string[]) => boolean): void {
    for (const k of this.series.keys()) if (predicate(labelValues(k, this.labelNames))) this.series.delete(k);
  }

  render(out: string[]): void {
    out.push(`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} histogram`);
    for (const [k, s] of this.series) {
      const values = labelValues(k, this.labelNames);
      const names = [...this.labelNames, 'le'];
      this.buckets.forEach((b, i) => out.push(`${this.name}_bucket${labelText(names, [...values, String(b)])} ${s.counts[i]}`));
      out.push(`${this.name}_bucket${labelText(names, [...values, '+Inf'])} ${s.count}`);
      out.push(`${this.name}_sum${labelText(this.labelNames, values)} ${s.sum}`);
      out.push(`${this.name}_count${labelText(this.labelNames, values)} ${s.count}`);
    }
  }
}

/** A gauge whose samples are computed at scrape time. */
export class CollectedGauge implements Metric {
  protected readonly type: 'gauge' | 'counter' = 'gauge';

  constructor(
    readonly name: string,
    readonly help: string,
    readonly labelNames: readonly string[],
    private readonly collect: () => Iterable<[values: string[], value: number]>,
  ) {}

  render(out: string[]): void {
    out.push(`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} ${this.type}`);
    for (const [values, v] of this.collect()) out.push(`${this.name}${labelText(this.labelNames, values)} ${v}`);
  }
}

/** A counter whose value is read from the runtime at scrape time (e.g. CPU seconds). */
export class CollectedCounter extends CollectedGauge {
  protected override readonly type = 'counter';
}

export class Registry {
  private readonly metrics: Metric[] = [];

  add<M extends Metric>(m: M): M {
    this.metrics.push(m);
    return m;
  }

  render(): string {
    const out: string[] = [];
    for (const m of this.metrics) m.render(out);
    return `${out.join('\n')}\n`;
  }
}
