// Issue #12 finding 10 / #13 item 4: the fake IdP (whose /control endpoint needs no
// authentication) is a test and demo fixture; the npm package carries none of its code.
// Reads what `npm pack` would publish, from the built tree (npm test builds first).
import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../support/demo-files.js';

interface PackEntry {
  files: { path: string }[];
}

describe('the npm package', () => {
  const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
  const out = execFileSync(npm, ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: REPO_ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  const files = (JSON.parse(out) as PackEntry[])[0]!.files.map((f) => f.path);

  it('ships the product: the CLI, the library entry, the server entry and the protos', () => {
    expect(files).toEqual(expect.arrayContaining(['dist/cli.js', 'dist/index.js', 'dist/server-entry.js', 'proto/tokengate/admin/v1/admin.proto']));
  });

  it('holds no demo code (no fake IdP, no echo upstream, no example OAuth server)', () => {
    const code = files.filter((f) => /\.(js|ts|mjs|cjs|mts)$/.test(f));
    expect(code.filter((f) => /(^|\/)(demo|dist-demo)\/|token-server|echo-upstream|examples\/oidc-provider\//.test(f))).toEqual([]);
  });
});
