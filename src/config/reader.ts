// A strict reader over one YAML mapping: every key read is remembered, every other key is an
// error, and every problem names its path. Values are never quoted back (they may be secrets).
import type { ConfigProblem } from './types.js';
import { parseDuration } from './duration.js';
import { substitute, type SubstituteContext } from './substitute.js';

export interface ReadContext extends SubstituteContext {
  readonly problems: ConfigProblem[];
  readonly warnings: ConfigProblem[];
}

interface FieldOptions {
  readonly required?: boolean;
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  return typeof value === 'object' ? 'a mapping' : `a ${typeof value}`;
}

export function isMapping(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function join(path: string, key: string | number): string {
  if (typeof key === 'number') return `${path}[${key}]`;
  const safe = /^[A-Za-z_][A-Za-z0-9_-]*$/.test(key) ? key : JSON.stringify(key);
  return path ? `${path}.${safe}` : safe;
}

export class Reader {
  private readonly seen = new Set<string>();

  constructor(
    readonly raw: Record<string, unknown>,
    readonly path: string,
    readonly ctx: ReadContext,
  ) {}

  static of(raw: unknown, path: string, ctx: ReadContext): Reader | undefined {
    if (raw === undefined || raw === null) return new Reader({}, path, ctx);
    if (!isMapping(raw)) {
      ctx.problems.push({ path, problem: `expected a mapping, got ${describe(raw)}` });
      return undefined;
    }
    return new Reader(raw, path, ctx);
  }

  problem(key: string | undefined, problem: string): undefined {
    this.ctx.problems.push({ path: key === undefined ? this.path : join(this.path, key), problem });
    return undefined;
  }

  warn(key: string, problem: string): void {
    this.ctx.warnings.push({ path: join(this.path, key), problem });
  }

  has(key: string): boolean {
    return this.raw[key] !== undefined && this.raw[key] !== null;
  }

  /** The raw value (marked as read). */
  value(key: string): unknown {
    this.seen.add(key);
    return this.raw[key];
  }

  /** Reports keys nobody read. Call last. */
  done(): void {
    for (const key of Object.keys(this.raw)) {
      if (!this.seen.has(key)) this.problem(key, 'unknown key');
    }
  }

  /** A scalar as text after substitution; undefined when absent, unset or broken (reported). */
  private text(key: string, opts: FieldOptions & { secret?: boolean }): string | undefined {
    const raw = this.value(key);
    const path = join(this.path, key);
    if (raw === undefined || raw === null) {
      if (opts.required) this.problem(key, 'is required');
      return undefined;
    }
    if (typeof raw === 'number' || typeof raw === 'boolean') return String(raw);
    if (typeof raw !== 'string') return this.problem(key, `expected a string, got ${describe(raw)}`);
    const s = substitute(raw, this.ctx);
    if (s.kind === 'error') return this.problem(key, s.problem);
    if (s.kind === 'unset') {
      if (opts.required) this.problem(key, `is required (${s.reason})`);
      return undefined;
    }
    if (opts.secret && !s.substituted && s.value !== '') {
      this.ctx.warnings.push({ path, problem: 'holds a literal secret; use ${env:NAME} or ${file:PATH}' });
    }
    return s.value;
  }

  str(key: string, opts: FieldOptions & { secret?: boolean; pattern?: RegExp; patternHint?: string } = {}): string | undefined {
    const raw = this.value(key);
    // A whole number is taken as its digits (client ids often are numbers); anything else that
    // is not text is a mistake worth naming.
    if (typeof raw === 'boolean' || (typeof raw === 'number' && !Number.isSafeInteger(raw))) return this.problem(key, `expected a string, got ${describe(raw)}`);
    const s = this.text(key, opts);
    if (s === undefined) return undefined;
    if (s === '' && opts.required) return this.problem(key, 'must not be empty');
    if (opts.pattern && !opts.pattern.test(s)) return this.problem(key, opts.patternHint ?? 'has an invalid format');
    return s;
  }

  oneOf<T extends string>(key: string, allowed: readonly T[], fallback: T): T;
  oneOf<T extends string>(key: string, allowed: readonly T[], fallback?: undefined, opts?: FieldOptions): T | undefined;
  oneOf<T extends string>(key: string, allowed: readonly T[], fallback?: T, opts: FieldOptions = {}): T | undefined {
    const s = this.text(key, opts);
    if (s === undefined) return fallback;
    if (!(allowed as readonly string[]).includes(s)) {
      this.problem(key, `must be one of ${allowed.join(', ')}`);
      return fallback;
    }
    return s as T;
  }

  num(key: string, fallback: number, opts: { min?: number; max?: number; integer?: boolean } = {}): number {
    const s = this.text(key, {});
    if (s === undefined) return fallback;
    const n = Number(s);
    if (s.trim() === '' || !Number.isFinite(n)) return this.problem(key, 'expected a number') ?? fallback;
    if (opts.integer && !Number.isInteger(n)) return this.problem(key, 'expected a whole number') ?? fallback;
    if (opts.min !== undefined && n < opts.min) return this.problem(key, `must be at least ${opts.min}`) ?? fallback;
    if (opts.max !== undefined && n > opts.max) return this.problem(key, `must be at most ${opts.max}`) ?? fallback;
    return n;
  }

  bool(key: string, fallback: boolean): boolean {
    const s = this.text(key, {});
    if (s === undefined) return fallback;
    if (s === 'true') return true;
    if (s === 'false') return false;
    return this.problem(key, 'expected true or false') ?? fallback;
  }

  duration(key: string, fallback: number, opts?: { min?: number; max?: number }): number;
  duration(key: string, fallback: undefined, opts?: { min?: number; max?: number }): number | undefined;
  duration(key: string, fallback: number | undefined, opts: { min?: number; max?: number } = {}): number | undefined {
    const s = this.text(key, {});
    if (s === undefined) return fallback;
    const ms = parseDuration(s);
    if (ms === undefined) return this.problem(key, 'expected a duration such as 250ms, 30s, 5m or 1h') ?? fallback;
    if (opts.min !== undefined && ms < opts.min) return this.problem(key, `must be at least ${opts.min}ms`) ?? fallback;
    if (opts.max !== undefined && ms > opts.max) return this.problem(key, `must be at most ${opts.max}ms`) ?? fallback;
    return ms;
  }

  /** `10%` or a fraction such as 0.1. */
  fraction(key: string, fallback: number): number {
    const s = this.text(key, {});
    if (s === undefined) return fallback;
    const pct = /^(\d+(?:\.\d+)?)%$/.exec(s.trim());
    const n = pct ? Number(pct[1]) / 100 : Number(s);
    if (!Number.isFinite(n) || n < 0 || n > 1) return this.problem(key, 'expected a percentage such as 10%') ?? fallback;
    return n;
  }

  child(key: string): Reader | undefined {
    return Reader.of(this.value(key), join(this.path, key), this.ctx);
  }

  list(key: string): { value: unknown; path: string }[] {
    const raw = this.value(key);
    if (raw === undefined || raw === null) return [];
    if (!Array.isArray(raw)) {
      this.problem(key, `expected a list, got ${describe(raw)}`);
      return [];
    }
    return raw.map((value, i) => ({ value, path: join(join(this.path, key), i) }));
  }

  /**
   * A list of non-empty strings, each wrong entry reported at its own path. With `orOne`, a
   * single string stands for a list of one (RFC 8693 audience and resource may repeat).
   */
  stringList(key: string, opts: { orOne?: boolean } = {}): string[] {
    if (opts.orOne) {
      if (!Array.isArray(this.value(key))) {
        const one = this.str(key);
        return one ? [one] : [];
      }
    }
    const out: string[] = [];
    for (const { value, path } of this.list(key)) {
      if (typeof value !== 'string' || value === '') this.ctx.problems.push({ path, problem: 'expected a non-empty string' });
      else out.push(value);
    }
    return out;
  }

  /** A mapping of string → string (after substitution). */
  stringMap(key: string): Record<string, string> {
    const r = this.child(key);
    const out: Record<string, string> = {};
    if (!r) return out;
    for (const k of Object.keys(r.raw)) {
      const v = r.str(k, { required: true });
      if (v !== undefined) out[k] = v;
    }
    return out;
  }
}
