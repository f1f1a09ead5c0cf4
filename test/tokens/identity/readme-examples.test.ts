// The README's workload-identity examples are configs the validator (and the JSON Schema) accept.
import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { judge } from '../../support/config-schema.js';
import { repoPath } from '../../support/demo-files.js';

const blocks = [...fs.readFileSync(repoPath('README.md'), 'utf8').matchAll(/```yaml\n(# workload-identity example: ([^\n]+)\n[\s\S]*?)```/g)]
  .map((m) => [m[2]!, m[1]!] as const);

describe('README workload-identity examples', () => {
  it('there is one per platform', () => {
    expect(blocks.map(([name]) => name)).toEqual([
      'Entra federated credential', 'GCP federation + impersonation', 'GCP metadata server', 'Azure IMDS', 'mTLS client',
    ]);
  });
  for (const [name, text] of blocks) {
    it(`${name} is valid for the validator and the schema`, () => {
      const v = judge(text, {});
      expect(v.validator.map((p) => `${p.path}: ${p.problem}`)).toEqual([]);
      expect(v.schema).toEqual([]);
    });
  }
});
