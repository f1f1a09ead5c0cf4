// Config file → frozen Config, or a ConfigError with `path: problem` lines.
import fs from 'node:fs';
import path from 'node:path';
import { parseDocument } from 'yaml';
import { ConfigError } from './errors.js';
import { readConfig } from './schema.js';
import type { Config, ConfigProblem } from './types.js';

export interface ParseOptions {
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** Where relative ${file:…} paths resolve. */
  readonly baseDir?: string;
}

export function parseConfig(text: string, opts: ParseOptions = {}): Config {
  const doc = parseDocument(text, { uniqueKeys: true, prettyErrors: false });
  if (doc.errors.length) {
    // YAML errors quote positions, not values: safe to show.
    throw new ConfigError(doc.errors.map((e) => ({ path: '(yaml)', problem: e.message.split('\n')[0] ?? 'syntax error' })));
  }
  const problems: ConfigProblem[] = [];
  const warnings: ConfigProblem[] = [];
  const config = readConfig(doc.toJS({ maxAliasCount: 100 }), {
    env: opts.env ?? process.env,
    baseDir: opts.baseDir ?? process.cwd(),
    problems,
    warnings,
  });
  if (!config) throw new ConfigError(problems);
  return config;
}

export function loadConfigFile(file: string, env?: Readonly<Record<string, string | undefined>>): Config {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError([{ path: '(file)', problem: `cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? 'error'})` }], { cause: err });
  }
  return parseConfig(text, { ...(env ? { env } : {}), baseDir: path.dirname(path.resolve(file)) });
}
