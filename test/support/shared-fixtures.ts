// Shared fixtures live beside the repository (`../shared/`), or where TOKENGATE_SHARED says.
import fs from 'node:fs';
import path from 'node:path';
import { REPO_ROOT } from './demo-files.js';

export function sharedPath(rel: string): string {
  const candidates = [process.env.TOKENGATE_SHARED, path.resolve(REPO_ROOT, '../shared'), '/work/shared'].filter((d): d is string => !!d);
  const dir = candidates.find((d) => fs.existsSync(d)) ?? candidates[0]!;
  return path.join(dir, rel);
}
