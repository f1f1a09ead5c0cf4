// Renders the subset of Helm's Go templates that deploy/helm/tokengate uses, so the tests can
// check the chart's output without a helm binary (none is packaged for this machine). The
// subset: {{ .Values.x }}, .Release.*, .Chart.*, `define`/`include`, `if`/`else`/`end`,
// pipelines, whitespace trimming ({{- -}}), and the functions default, required, quote,
// toYaml, nindent, indent, sha256sum, not. Anything else is an error, so the chart cannot
// drift into syntax this renderer would silently misread.
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';

type Value = unknown;
interface Ctx { readonly Values: Record<string, Value>; readonly Release: Record<string, Value>; readonly Chart: Record<string, Value>; readonly [k: string]: Value }

type Node =
  | { kind: 'text'; text: string }
  | { kind: 'expr'; expr: string }
  | { kind: 'if'; cond: string; then: Node[]; else: Node[] };

function tokenize(src: string): ({ t: 'text'; v: string } | { t: 'action'; v: string })[] {
  const out: ({ t: 'text'; v: string } | { t: 'action'; v: string })[] = [];
  const re = /\{\{(-?)\s*([\s\S]*?)\s*(-?)\}\}/g;
  let last = 0;
  let trimNext = false;
  for (let m = re.exec(src); m; m = re.exec(src)) {
    let text = src.slice(last, m.index);
    if (trimNext) text = text.replace(/^\s+/, '');
    if (m[1]) text = text.replace(/\s+$/, '');
    out.push({ t: 'text', v: text });
    out.push({ t: 'action', v: m[2]! });
    trimNext = m[3] === '-';
    last = re.lastIndex;
  }
  let tail = src.slice(last);
  if (trimNext) tail = tail.replace(/^\s+/, '');
  out.push({ t: 'text', v: tail });
  return out;
}

function parse(src: string, defines: Map<string, Node[]>): Node[] {
  const tokens = tokenize(src);
  let i = 0;
  const block = (until: readonly string[]): { nodes: Node[]; end: string } => {
    const nodes: Node[] = [];
    while (i < tokens.length) {
      const tok = tokens[i++]!;
      if (tok.t === 'text') {
        if (tok.v) nodes.push({ kind: 'text', text: tok.v });
        continue;
      }
      const a = tok.v;
      if (a.startsWith('/*')) continue;
      if (until.includes(a)) return { nodes, end: a };
      const def = /^define "([^"]+)"$/.exec(a);
      if (def) {
        defines.set(def[1]!, block(['end']).nodes);
        continue;
      }
      const cond = /^if (.+)$/.exec(a);
      if (cond) {
        const then = block(['else', 'end']);
        const otherwise = then.end === 'else' ? block(['end']).nodes : [];
        nodes.push({ kind: 'if', cond: cond[1]!, then: then.nodes, else: otherwise });
        continue;
      }
      if (/^(range|with|else if|template|block|tpl)\b/.test(a) || a === 'else' || a === 'end') throw new Error(`helm-lite: unsupported action {{ ${a} }}`);
      nodes.push({ kind: 'expr', expr: a });
    }
    if (until.length) throw new Error(`helm-lite: missing {{ ${until.join(' / ')} }}`);
    return { nodes, end: '' };
  };
  return block([]).nodes;
}

function words(cmd: string): string[] {
  return cmd.match(/"(?:[^"\\]|\\.)*"|\S+/g) ?? [];
}

function truthy(v: Value): boolean {
  if (v === undefined || v === null || v === false || v === 0 || v === '') return false;
  if (Array.isArray(v)) return v.length > 0;
  if (typeof v === 'object') return Object.keys(v).length > 0;
  return true;
}

function toYaml(v: Value): string {
  if (v === undefined || v === null) return 'null';
  return YAML.stringify(v, { sortMapEntries: true, lineWidth: 0 }).replace(/\n$/, '');
}

function str(v: Value): string {
  if (v === undefined || v === null) return '';
  return typeof v === 'object' ? JSON.stringify(v) : String(v);
}

export class HelmLite {
  private readonly defines = new Map<string, Node[]>();
  private readonly templates = new Map<string, Node[]>();

  constructor(private readonly chartDir: string) {
    const dir = path.join(chartDir, 'templates');
    for (const f of fs.readdirSync(dir).sort()) {
      const nodes = parse(fs.readFileSync(path.join(dir, f), 'utf8'), this.defines);
      if (!f.startsWith('_')) this.templates.set(f, nodes);
    }
  }

  /** Each template's output, by file name, for these values merged over values.yaml. */
  render(overrides: Record<string, Value> = {}, release = { Name: 'tokengate', Namespace: 'default' }): Map<string, string> {
    const chart = YAML.parse(fs.readFileSync(path.join(this.chartDir, 'Chart.yaml'), 'utf8')) as Record<string, Value>;
    const values = merge(YAML.parse(fs.readFileSync(path.join(this.chartDir, 'values.yaml'), 'utf8')) as Record<string, Value>, overrides);
    const ctx: Ctx = {
      Values: values,
      Release: { ...release, Service: 'Helm' },
      Chart: { Name: chart['name'], Version: chart['version'], AppVersion: chart['appVersion'] },
    };
    const out = new Map<string, string>();
    for (const [name, nodes] of this.templates) out.set(name, this.run(nodes, ctx));
    return out;
  }

  /** All rendered manifests, parsed (empty documents dropped). */
  manifests(overrides: Record<string, Value> = {}): Record<string, any>[] {
    const docs: Record<string, any>[] = [];
    for (const [name, text] of this.render(overrides)) {
      for (const d of YAML.parseAllDocuments(text)) {
        if (d.errors.length) throw new Error(`${name}: ${d.errors[0]!.message}\n${text}`);
        const js = d.toJS() as Record<string, any> | null;
        if (js) docs.push(js);
      }
    }
    return docs;
  }

  private run(nodes: readonly Node[], ctx: Ctx): string {
    let s = '';
    for (const n of nodes) {
      if (n.kind === 'text') s += n.text;
      else if (n.kind === 'expr') s += str(this.pipeline(n.expr, ctx));
      else s += this.run(truthy(this.pipeline(n.cond, ctx)) ? n.then : n.else, ctx);
    }
    return s;
  }

  private pipeline(expr: string, ctx: Ctx): Value {
    let piped: Value;
    let first = true;
    for (const cmd of expr.split(/\s\|\s/)) {
      const w = words(cmd.trim());
      piped = this.call(w, ctx, first ? [] : [piped]);
      first = false;
    }
    return piped;
  }

  private arg(w: string, ctx: Ctx): Value {
    if (w.startsWith('"')) return JSON.parse(w) as string;
    if (/^-?\d+$/.test(w)) return Number(w);
    if (w === '.') return ctx;
    if (w.startsWith('.')) {
      let v: Value = ctx;
      for (const k of w.slice(1).split('.')) v = v && typeof v === 'object' ? (v as Record<string, Value>)[k] : undefined;
      return v;
    }
    throw new Error(`helm-lite: unsupported argument ${w}`);
  }

  private call(w: string[], ctx: Ctx, piped: Value[]): Value {
    const [head, ...rest] = w;
    if (head === undefined) throw new Error('helm-lite: empty command');
    const isFunction = /^[a-z][A-Za-z0-9]*$/.test(head);
    if (!isFunction) {
      if (rest.length || piped.length) throw new Error(`helm-lite: ${head} takes no arguments`);
      return this.arg(head, ctx);
    }
    const args = [...rest.map((a) => this.arg(a, ctx)), ...piped];
    switch (head) {
      case 'include': {
        const body = this.defines.get(String(args[0]));
        if (!body) throw new Error(`helm-lite: no define ${String(args[0])}`);
        return this.run(body, args[1] as Ctx);
      }
      case 'default': return truthy(args[1]) ? args[1] : args[0];
      case 'required':
        if (!truthy(args[1])) throw new Error(`helm-lite: required: ${String(args[0])}`);
        return args[1];
      case 'quote': return JSON.stringify(str(args[0]));
      case 'toYaml': return toYaml(args[0]);
      case 'nindent': return `\n${indent(Number(args[0]), str(args[1]))}`;
      case 'indent': return indent(Number(args[0]), str(args[1]));
      case 'sha256sum': return createHash('sha256').update(str(args[0])).digest('hex');
      case 'not': return !truthy(args[0]);
      default: throw new Error(`helm-lite: unsupported function ${head}`);
    }
  }
}

function indent(n: number, s: string): string {
  const pad = ' '.repeat(n);
  return s.split('\n').map((l) => pad + l).join('\n');
}

function merge(base: Record<string, Value>, over: Record<string, Value>): Record<string, Value> {
  const out: Record<string, Value> = { ...base };
  for (const [k, v] of Object.entries(over)) {
    const b = out[k];
    out[k] = v && typeof v === 'object' && !Array.isArray(v) && b && typeof b === 'object' && !Array.isArray(b) ? merge(b as Record<string, Value>, v as Record<string, Value>) : v;
  }
  return out;
}
