// The contract lives in the repository: no source comment points at a file outside it
// (DESIGN.md, NOTES, ../shared), and every docs/ file a comment names exists.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

function sources(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const full = path.join(dir, e.name);
    return e.isDirectory() ? sources(full) : e.name.endsWith('.ts') ? [full] : [];
  });
}

const files = sources(path.join(ROOT, 'src')).map((f) => ({ name: path.relative(ROOT, f), text: fs.readFileSync(f, 'utf8') }));

describe('src/ is self-contained', () => {
  it('no comment cites DESIGN.md, NOTES or a shared folder outside the repository', () => {
    const outside = /\bDESIGN(\.md)?\b|\bNOTES(\.md)?\b|\.\.\/shared\b|\/work\/shared/;
    const hits = files.flatMap(({ name, text }) => text.split('\n').flatMap((line, i) => (outside.test(line) ? [`${name}:${i + 1}: ${line.trim()}`] : [])));
    expect(hits).toEqual([]);
  });

  it('every docs/ file a comment names exists', () => {
    const missing = files.flatMap(({ name, text }) => [...text.matchAll(/\bdocs\/[\w.-]+\.md\b/g)].map((m) => m[0]).filter((doc) => !fs.existsSync(path.join(ROOT, doc))).map((doc) => `${name}: ${doc}`));
    expect(missing).toEqual([]);
  });
});
