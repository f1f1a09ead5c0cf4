// ${env:NAME}, ${env:NAME:-default} and ${file:PATH} in string values. Substitution happens on the
// parsed YAML tree, value by value, so a secret with YAML-special characters cannot break parsing.
import fs from 'node:fs';
import path from 'node:path';
import type { StringPool } from './string-pool.js';

export interface SubstituteContext {
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly baseDir: string;
  /**
   * Pools substituted values: each read of process.env makes a new copy of the variable, one
   * per provider when ten thousand name the same secret.
   */
  readonly strings?: StringPool;
}

/** The string after substitution, `unset` (the whole value was an unset variable), or a problem. */
export type Substituted =
  | { readonly kind: 'value'; readonly value: string; readonly substituted: boolean }
  | { readonly kind: 'unset'; readonly reason: string }
  | { readonly kind: 'error'; readonly problem: string };

const REF = /\$\{(env|file):([^}]*)\}/g;
const WHOLE = /^\$\{(env|file):([^}]*)\}$/;

function resolveRef(kind: string, body: string, ctx: SubstituteContext): Substituted {
  if (kind === 'env') {
    const sep = body.indexOf(':-');
    const name = sep === -1 ? body : body.slice(0, sep);
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) return { kind: 'error', problem: `"\${env:${name}}" is not a valid variable name` };
    const value = ctx.env[name];
    if (value !== undefined && value !== '') return { kind: 'value', value, substituted: true };
    if (sep !== -1) return { kind: 'value', value: body.slice(sep + 2), substituted: true };
    return { kind: 'unset', reason: `environment variable ${name} is not set` };
  }
  const file = path.resolve(ctx.baseDir, body);
  try {
    // Mounted secrets usually end in a newline that is not part of the secret.
    return { kind: 'value', value: fs.readFileSync(file, 'utf8').replace(/\r?\n$/, ''), substituted: true };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'unreadable';
    return { kind: 'error', problem: `cannot read file ${file} (${code})` };
  }
}

export function substitute(raw: string, ctx: SubstituteContext): Substituted {
  const s = substituteOnce(raw, ctx);
  return s.kind === 'value' && s.substituted && ctx.strings ? { kind: 'value', value: ctx.strings.intern(s.value), substituted: true } : s;
}

function substituteOnce(raw: string, ctx: SubstituteContext): Substituted {
  if (!raw.includes('${')) return { kind: 'value', value: raw, substituted: false };
  const whole = WHOLE.exec(raw);
  if (whole) return resolveRef(whole[1]!, whole[2]!, ctx);
  let problem: string | undefined;
  const value = raw.replace(REF, (_m, kind: string, body: string) => {
    const r = resolveRef(kind, body, ctx);
    if (r.kind === 'value') return r.value;
    problem ??= r.kind === 'unset' ? r.reason : r.problem;
    return '';
  });
  if (problem) return { kind: 'error', problem };
  if (value.includes('${')) return { kind: 'error', problem: 'unsupported substitution (use ${env:NAME}, ${env:NAME:-default} or ${file:PATH})' };
  return { kind: 'value', value, substituted: true };
}
