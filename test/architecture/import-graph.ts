// Reads the import graph of a source tree with the TypeScript compiler's own pre-processor and
// checks it against layer rules (docs/architecture.md). Every kind of import counts: static,
// type-only, `export … from` and dynamic `import()`, because each one is an arrow a reader
// has to follow, and a type-only import today is a value import after the next edit.
import fs from 'node:fs';
import path from 'node:path';
import ts from 'typescript';

/** Files are named relative to the root, with '/' separators: `tokens/manager.ts`. */
export interface ImportGraph {
  /** file → files and packages it imports. Packages appear by name (`@grpc/grpc-js`). */
  readonly edges: ReadonlyMap<string, readonly string[]>;
}

export interface LayerRule {
  readonly name: string;
  /** Why the arrow must not exist; printed with the violation. */
  readonly why: string;
  readonly from: RegExp;
  /** Matched against a relative file name or a package name. */
  readonly to: RegExp;
  /** Files the rule does not apply to, even though `from` matches them. */
  readonly except?: RegExp;
}

export interface Violation {
  readonly rule: string;
  readonly from: string;
  readonly to: string;
  readonly message: string;
}

function listTs(dir: string, root: string, out: string[]): void {
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) listTs(full, root, out);
    else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts')) out.push(path.relative(root, full).split(path.sep).join('/'));
  }
}

/** The package a bare specifier names: `@grpc/grpc-js/build/x` → `@grpc/grpc-js`. */
function packageName(spec: string): string {
  const parts = spec.split('/');
  return spec.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0]!;
}

export function readImportGraph(root: string): ImportGraph {
  const files: string[] = [];
  listTs(root, root, files);
  files.sort();
  const known = new Set(files);
  const edges = new Map<string, string[]>();
  for (const file of files) {
    const text = fs.readFileSync(path.join(root, file), 'utf8');
    // readImportFiles + detectJavaScriptImports: import/export-from (type-only included) and import().
    const info = ts.preProcessFile(text, true, true);
    const targets = new Set<string>();
    for (const { fileName: spec } of info.importedFiles) {
      if (spec.startsWith('node:')) continue;
      if (!spec.startsWith('.')) {
        targets.add(packageName(spec));
        continue;
      }
      const joined = path.posix.normalize(path.posix.join(path.posix.dirname(file), spec));
      // Outside the root (demo/, test/): kept by its relative name so a rule can refuse it.
      if (joined.startsWith('../')) {
        targets.add(joined);
        continue;
      }
      const candidates = [joined.replace(/\.js$/, '.ts'), joined, `${joined}.ts`, `${joined}/index.ts`];
      const hit = candidates.find((c) => known.has(c));
      if (!hit) throw new Error(`${file}: cannot resolve import '${spec}'`);
      targets.add(hit);
    }
    edges.set(file, [...targets].sort());
  }
  return { edges };
}

export function checkRules(graph: ImportGraph, rules: readonly LayerRule[]): Violation[] {
  const out: Violation[] = [];
  for (const [from, targets] of graph.edges) {
    for (const rule of rules) {
      if (!rule.from.test(from) || rule.except?.test(from)) continue;
      for (const to of targets) {
        if (!rule.to.test(to)) continue;
        out.push({ rule: rule.name, from, to, message: `${rule.name}: ${from} imports ${to} (${rule.why})` });
      }
    }
  }
  return out;
}

/** Strongly connected components with more than one member, or a member importing itself. */
function cyclesOf(nodes: readonly string[], next: (n: string) => readonly string[]): string[][] {
  let index = 0;
  const idx = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const out: string[][] = [];
  const visit = (v: string): void => {
    idx.set(v, index);
    low.set(v, index);
    index++;
    stack.push(v);
    onStack.add(v);
    for (const w of next(v)) {
      if (!idx.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) {
        low.set(v, Math.min(low.get(v)!, idx.get(w)!));
      }
    }
    if (low.get(v) === idx.get(v)) {
      const scc: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        scc.push(w);
      } while (w !== v);
      if (scc.length > 1 || next(v).includes(v)) out.push(scc.sort());
    }
  };
  for (const n of nodes) if (!idx.has(n)) visit(n);
  return out;
}

/** One concrete loop through a component, so the message names the files in order. */
function loopThrough(members: readonly string[], next: (n: string) => readonly string[]): string[] {
  const inside = new Set(members);
  const start = members[0]!;
  const prev = new Map<string, string>();
  const queue = [start];
  while (queue.length) {
    const v = queue.shift()!;
    for (const w of next(v)) {
      if (!inside.has(w)) continue;
      if (w === start) {
        const path = [start];
        for (let u = v; u !== start; u = prev.get(u)!) path.splice(1, 0, u);
        return [...path, start];
      }
      if (!prev.has(w)) {
        prev.set(w, v);
        queue.push(w);
      }
    }
  }
  return [...members, start];
}

/** File-level cycles: a file that, through its imports, ends up importing itself. */
export function findFileCycles(graph: ImportGraph): Violation[] {
  const next = (n: string) => (graph.edges.get(n) ?? []).filter((t) => graph.edges.has(t));
  return cyclesOf([...graph.edges.keys()], next).map((scc) => {
    const loop = loopThrough(scc, next);
    return { rule: 'no-circular-imports', from: loop[0]!, to: loop[1]!, message: `no-circular-imports: ${loop.join(' → ')}` };
  });
}

/**
 * The folder a file belongs to; a file at the root is a part of its own (app.ts, cli.ts).
 */
function partOf(file: string): string {
  const dir = path.posix.dirname(file);
  return dir === '.' ? file : dir;
}

/**
 * Folder-level cycles: two folders that import each other (directly or around a loop). A folder
 * may use the shared files of a folder that contains it (tokens/http → tokens/errors.ts): the
 * parent composes its children, and the children share its vocabulary; that is not a loop.
 */
export function findFolderCycles(graph: ImportGraph): Violation[] {
  const arrows = new Map<string, Map<string, [string, string]>>();
  for (const [from, targets] of graph.edges) {
    const a = partOf(from);
    for (const to of targets) {
      if (!graph.edges.has(to)) continue;
      const b = partOf(to);
      if (a === b || a.startsWith(`${b}/`)) continue;
      let m = arrows.get(a);
      if (!m) arrows.set(a, (m = new Map()));
      if (!m.has(b)) m.set(b, [from, to]);
    }
  }
  const next = (n: string) => [...(arrows.get(n)?.keys() ?? [])];
  return cyclesOf([...arrows.keys()], next).map((scc) => {
    const loop = loopThrough(scc, next);
    const via = loop.slice(0, -1).map((p, i) => {
      const [f, t] = arrows.get(p)!.get(loop[i + 1]!)!;
      return `${f} → ${t}`;
    });
    const first = arrows.get(loop[0]!)!.get(loop[1]!)!;
    return { rule: 'no-circular-folders', from: first[0], to: first[1], message: `no-circular-folders: ${loop.join(' → ')} (${via.join('; ')})` };
  });
}

/** Every file and package `start` loads, directly or through other files. */
export function reachableFrom(graph: ImportGraph, start: string): Set<string> {
  const seen = new Set<string>([start]);
  const queue = [start];
  while (queue.length) {
    for (const t of graph.edges.get(queue.shift()!) ?? []) {
      if (seen.has(t)) continue;
      seen.add(t);
      if (graph.edges.has(t)) queue.push(t);
    }
  }
  return seen;
}
