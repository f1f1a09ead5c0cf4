// A strict parser for the Prometheus text exposition format 0.0.4: what a scraper would refuse
// (or silently mangle) is an error here. Families must be declared once (one HELP, one TYPE,
// before their samples), their samples contiguous; histograms need cumulative buckets ending
// in le="+Inf" equal to _count; counters never go negative.

export interface PromSample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

export interface PromFamily {
  readonly name: string;
  readonly type: 'counter' | 'gauge' | 'histogram' | 'summary' | 'untyped';
  readonly help: string | undefined;
  readonly samples: PromSample[];
}

const METRIC = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const TYPES = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped']);

function parseValue(text: string, line: number): number {
  if (text === '+Inf') return Infinity;
  if (text === '-Inf') return -Infinity;
  if (text === 'NaN') return NaN;
  if (!/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(text)) throw new Error(`line ${line}: bad value ${JSON.stringify(text)}`);
  return Number(text);
}

function parseLabels(text: string, line: number): Record<string, string> {
  const labels: Record<string, string> = {};
  let i = 0;
  while (i < text.length) {
    const eq = text.indexOf('=', i);
    if (eq < 0) throw new Error(`line ${line}: label without =`);
    const name = text.slice(i, eq);
    if (!LABEL.test(name)) throw new Error(`line ${line}: bad label name ${JSON.stringify(name)}`);
    if (name in labels) throw new Error(`line ${line}: duplicate label ${name}`);
    if (text[eq + 1] !== '"') throw new Error(`line ${line}: label value must be quoted`);
    let j = eq + 2;
    let value = '';
    for (;;) {
      const c = text[j];
      if (c === undefined) throw new Error(`line ${line}: unterminated label value`);
      if (c === '"') break;
      if (c === '\\') {
        const n = text[j + 1];
        if (n === 'n') value += '\n';
        else if (n === '\\' || n === '"') value += n;
        else throw new Error(`line ${line}: bad escape \\${n ?? ''}`);
        j += 2;
        continue;
      }
      if (c === '\n') throw new Error(`line ${line}: raw newline in label value`);
      value += c;
      j++;
    }
    labels[name] = value;
    i = j + 1;
    if (i < text.length) {
      if (text[i] !== ',') throw new Error(`line ${line}: expected , between labels`);
      i++;
    }
  }
  return labels;
}

/** The family a sample name belongs to (histogram and summary series carry suffixes). */
function familyOf(name: string, families: ReadonlyMap<string, { type: string }>): string {
  for (const suffix of ['_bucket', '_sum', '_count']) {
    if (name.endsWith(suffix)) {
      const base = name.slice(0, -suffix.length);
      const f = families.get(base);
      if (f && (f.type === 'histogram' || (f.type === 'summary' && suffix !== '_bucket'))) return base;
    }
  }
  return name;
}

export function parsePrometheusText(text: string): Map<string, PromFamily> {
  if (text.length && !text.endsWith('\n')) throw new Error('the exposition must end with a newline');
  const families = new Map<string, PromFamily & { samples: PromSample[]; closed: boolean; help: string | undefined }>();
  let current: string | undefined;
  const open = (name: string, line: number) => {
    let f = families.get(name);
    if (f?.closed) throw new Error(`line ${line}: family ${name} appears twice (its lines are not contiguous)`);
    if (!f) {
      f = { name, type: 'untyped', help: undefined, samples: [], closed: false };
      families.set(name, f);
    }
    if (current !== undefined && current !== name) families.get(current)!.closed = true;
    current = name;
    return f;
  };
  const lines = text.split('\n');
  lines.pop();
  lines.forEach((raw, idx) => {
    const line = idx + 1;
    if (raw === '') return;
    if (raw.startsWith('#')) {
      const m = /^# (HELP|TYPE) (\S+)(?: (.*))?$/.exec(raw);
      if (!m) return; // a plain comment
      const [, kind, name, rest] = m as unknown as [string, 'HELP' | 'TYPE', string, string | undefined];
      if (!METRIC.test(name)) throw new Error(`line ${line}: bad metric name ${name}`);
      const f = open(name, line);
      if (kind === 'HELP') {
        if (f.help !== undefined) throw new Error(`line ${line}: second HELP for ${name}`);
        f.help = rest ?? '';
      } else {
        if (f.type !== 'untyped' || f.samples.length) throw new Error(`line ${line}: second or late TYPE for ${name}`);
        if (!rest || !TYPES.has(rest)) throw new Error(`line ${line}: bad type ${rest ?? ''}`);
        (f as { type: string }).type = rest;
      }
      return;
    }
    const m = /^([^\s{]+)(?:\{(.*)\})?[ \t]+(\S+)(?:[ \t]+(-?\d+))?$/.exec(raw);
    if (!m) throw new Error(`line ${line}: unparseable sample ${JSON.stringify(raw)}`);
    const name = m[1]!;
    if (!METRIC.test(name)) throw new Error(`line ${line}: bad metric name ${name}`);
    const f = open(familyOf(name, families), line);
    const sample = { name, labels: parseLabels(m[2] ?? '', line), value: parseValue(m[3]!, line) };
    if (f.type === 'counter' && !(sample.value >= 0)) throw new Error(`line ${line}: counter ${name} is ${sample.value}`);
    f.samples.push(sample);
  });
  for (const f of families.values()) if (f.type === 'histogram') checkHistogram(f);
  return families;
}

function checkHistogram(f: PromFamily): void {
  const series = new Map<string, { buckets: [number, number][]; count?: number; sum?: number }>();
  for (const s of f.samples) {
    const { le, ...rest } = s.labels;
    const key = JSON.stringify(Object.entries(rest).sort());
    const e = series.get(key) ?? { buckets: [] };
    series.set(key, e);
    if (s.name === `${f.name}_bucket`) {
      if (le === undefined) throw new Error(`${s.name} without le`);
      e.buckets.push([parseValue(le, 0), s.value]);
    } else if (s.name === `${f.name}_count`) e.count = s.value;
    else if (s.name === `${f.name}_sum`) e.sum = s.value;
    else throw new Error(`histogram ${f.name} has a stray series ${s.name}`);
  }
  for (const [key, e] of series) {
    const last = e.buckets.at(-1);
    if (!last || last[0] !== Infinity) throw new Error(`histogram ${f.name}${key}: no le="+Inf" bucket`);
    if (e.count === undefined || e.sum === undefined) throw new Error(`histogram ${f.name}${key}: _count or _sum missing`);
    if (last[1] !== e.count) throw new Error(`histogram ${f.name}${key}: +Inf bucket ${last[1]} != _count ${e.count}`);
    for (let i = 1; i < e.buckets.length; i++) {
      const [pl, pc] = e.buckets[i - 1]!;
      const [l, c] = e.buckets[i]!;
      if (!(l > pl) || c < pc) throw new Error(`histogram ${f.name}${key}: buckets not increasing at le=${l}`);
    }
  }
}
