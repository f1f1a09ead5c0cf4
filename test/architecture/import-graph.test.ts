// The layer checker itself: on a small tree with a known violation and known cycles it must
// report exactly those, naming both files and the rule.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkRules, findFileCycles, findFolderCycles, reachableFrom, readImportGraph, type ImportGraph } from './import-graph.js';
import { GRPC, LAYER_RULES } from './layers.js';

const FIXTURE: Record<string, string> = {
  'config/types.ts': `export interface C { a: number }\n`,
  // resilience → tokens: an arrow that must never exist.
  'resilience/breaker.ts': `import { TokenError } from '../tokens/errors.js';\nexport const b = TokenError;\n`,
  'tokens/errors.ts': `export class TokenError extends Error {}\n`,
  'tokens/manager.ts': `import type { C } from '../config/types.js';\nimport { b } from '../resilience/breaker.js';\nexport const m = (c: C) => [c, b];\n`,
  // A file cycle through a type-only import one way and a dynamic import the other.
  'store/a.ts': `import type { B } from './b.js';\nexport type A = B;\n`,
  'store/b.ts': `export type B = number;\nexport const load = () => import('./a.js');\n`,
  // Sibling folders importing each other; each also uses its parent's shared file (allowed).
  'tokens/http/endpoint.ts': `import { s } from '../sources/signer.js';\nimport { TokenError } from '../errors.js';\nexport const e = [s, TokenError];\n`,
  'tokens/sources/signer.ts': `export const s = 1;\n`,
  'tokens/sources/client.ts': `import { e } from '../http/endpoint.js';\nexport const c = e;\n`,
  'index.ts': `export { m } from './tokens/manager.js';\nexport * from './app.js';\n`,
  // The product reaching out of src/ for the demo's fake IdP.
  'server/dev-idp.ts': `export { DemoTokenServer } from '../../demo/token-server.js';\n`,
  'app.ts': `import * as grpc from '@grpc/grpc-js';\nimport { load } from 'protobufjs/minimal.js';\nexport const app = [grpc, load];\n`,
};

let root: string;
let graph: ImportGraph;

beforeAll(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'tokengate-layers-'));
  for (const [file, text] of Object.entries(FIXTURE)) {
    fs.mkdirSync(path.dirname(path.join(root, file)), { recursive: true });
    fs.writeFileSync(path.join(root, file), text);
  }
  graph = readImportGraph(root);
});

afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

describe('the import-graph checker', () => {
  it('reads static, type-only, re-export and dynamic imports, and packages by name', () => {
    expect(graph.edges.get('store/a.ts')).toEqual(['store/b.ts']);
    expect(graph.edges.get('store/b.ts')).toEqual(['store/a.ts']);
    expect(graph.edges.get('index.ts')).toEqual(['app.ts', 'tokens/manager.ts']);
    expect(graph.edges.get('app.ts')).toEqual(['@grpc/grpc-js', 'protobufjs']);
  });

  it('reports an arrow that must never exist, naming the rule and both files', () => {
    const messages = checkRules(graph, LAYER_RULES).map((v) => v.message);
    expect(messages).toContain(
      'resilience-store-routing-do-not-import-tokens-or-server: resilience/breaker.ts imports tokens/errors.ts (they are tools the token layer and the server use; each has its own types and errors)',
    );
    expect(messages.some((m) => m.startsWith('nothing-below-imports-app-or-cli: index.ts imports app.ts'))).toBe(true);
    expect(messages.some((m) => m.startsWith('product-stays-in-src: server/dev-idp.ts imports ../demo/token-server.js'))).toBe(true);
    // config types imported by tokens, and tokens/http using its parent's errors.ts, are fine.
    expect(messages.filter((m) => m.includes('config/types.ts') || m.includes('http/endpoint.ts'))).toEqual([]);
  });

  it('reports a file cycle, in order', () => {
    expect(findFileCycles(graph).map((v) => v.message)).toEqual(['no-circular-imports: store/a.ts → store/b.ts → store/a.ts']);
  });

  it('reports folder cycles with the files that make them', () => {
    const messages = findFolderCycles(graph).map((v) => v.message).sort();
    expect(messages).toEqual([
      'no-circular-folders: resilience → tokens → resilience (resilience/breaker.ts → tokens/errors.ts; tokens/manager.ts → resilience/breaker.ts)',
      'no-circular-folders: tokens/http → tokens/sources → tokens/http (tokens/http/endpoint.ts → tokens/sources/signer.ts; tokens/sources/client.ts → tokens/http/endpoint.ts)',
    ]);
  });

  it('follows an entry through every file it loads', () => {
    expect([...reachableFrom(graph, 'index.ts')].filter((n) => GRPC.test(n)).sort()).toEqual(['@grpc/grpc-js', 'protobufjs']);
  });

  it('is quiet on a clean graph', () => {
    const clean: ImportGraph = { edges: new Map([['tokens/manager.ts', ['config/types.ts', 'store/store.ts']], ['config/types.ts', []], ['store/store.ts', []]]) };
    expect([...checkRules(clean, LAYER_RULES), ...findFileCycles(clean), ...findFolderCycles(clean)]).toEqual([]);
  });
});
