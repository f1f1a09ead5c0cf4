// `import { TokenManager } from 'tokengate'` must load no gRPC code: the library is the token
// layer; the server is under 'tokengate/server'. Checked on the built package (dist/, as npm
// ships it) in a fresh Node process, by the CommonJS module cache that grpc-js, proto-loader,
// grpc-health-check and protobufjs (all CommonJS) land in when anything loads them. The same
// probe on 'tokengate/server' must see them, so the check cannot pass by looking nowhere.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { exports: Record<string, { default: string }> };
const GRPC_PACKAGES = ['@grpc/grpc-js', '@grpc/proto-loader', 'grpc-health-check', 'protobufjs'];

/** Imports one package entry in a new process; returns the packages it loaded from node_modules. */
function packagesLoadedBy(subpath: string, exportName: string): string[] {
  const entry = pkg.exports[subpath]?.default;
  if (!entry) throw new Error(`package.json exports has no ${subpath}`);
  const url = pathToFileURL(path.join(ROOT, entry)).href;
  const script = `
    import { createRequire } from 'node:module';
    const mod = await import(${JSON.stringify(url)});
    if (typeof mod[${JSON.stringify(exportName)}] !== 'function') throw new Error('no ${exportName} export');
    const loaded = new Set();
    for (const file of Object.keys(createRequire(${JSON.stringify(url)}).cache)) {
      const m = /node_modules[\\\\/]((?:@[^\\\\/]+[\\\\/])?[^\\\\/]+)/.exec(file);
      if (m) loaded.add(m[1].replace(/\\\\/g, '/'));
    }
    process.stdout.write(JSON.stringify([...loaded].sort()));`;
  const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], { cwd: ROOT, encoding: 'utf8' });
  return JSON.parse(out) as string[];
}

describe("the package's entries", () => {
  it("'tokengate' (TokenManager) loads no gRPC code", () => {
    const loaded = packagesLoadedBy('.', 'TokenManager');
    expect(loaded.filter((p) => GRPC_PACKAGES.includes(p)), `'tokengate' loaded ${loaded.join(', ')}`).toEqual([]);
  });

  it("'tokengate/server' (startTokengate) does load it: the probe sees gRPC when it is there", () => {
    const loaded = packagesLoadedBy('./server', 'startTokengate');
    expect(loaded).toEqual(expect.arrayContaining(GRPC_PACKAGES));
  });
});
