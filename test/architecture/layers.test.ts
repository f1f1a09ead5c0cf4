// The build's layer check: src/ against the rules in docs/architecture.md. A violation fails
// with the rule, both files and the reason.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { checkRules, findFileCycles, findFolderCycles, reachableFrom, readImportGraph } from './import-graph.js';
import { GRPC, LAYER_RULES } from './layers.js';

const SRC = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../src');
const graph = readImportGraph(SRC);

describe('src/ import layers (docs/architecture.md)', () => {
  it('reads a real graph', () => {
    expect(graph.edges.get('tokens/manager.ts')?.length).toBeGreaterThan(0);
  });

  it('has no arrow that must never exist', () => {
    expect(checkRules(graph, LAYER_RULES).map((v) => v.message)).toEqual([]);
  });

  it('has no circular imports between files', () => {
    expect(findFileCycles(graph).map((v) => v.message)).toEqual([]);
  });

  it('has no circular imports between folders', () => {
    expect(findFolderCycles(graph).map((v) => v.message)).toEqual([]);
  });

  it("the library entry reaches no gRPC code through any file it loads", () => {
    const grpc = [...reachableFrom(graph, 'index.ts')].filter((n) => GRPC.test(n));
    expect(grpc, `index.ts reaches ${grpc.join(', ')}`).toEqual([]);
  });
});
