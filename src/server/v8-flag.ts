// A V8 flag tokengate sets for its own process, unless the command line already decided it.
// Both of tokengate's (heap-growth.ts, pretenuring.ts) are read by V8 at run time, and both
// may be named on the command line to keep or change V8's own choice.
import v8 from 'node:v8';

/** Who decided a flag: tokengate's default, or the command line that named it. */
export type FlagDecision = 'tokengate' | 'command line';

/** Sets V8 flags (v8.setFlagsFromString; tests pass a recorder). */
export type SetFlags = (flags: string) => void;

/**
 * Sets `flag` unless an argument of `execArgv` matches `named` (the flag in any spelling,
 * negated or with a value). Returns who decided.
 */
export function defaultV8Flag(flag: string, named: RegExp, execArgv: readonly string[] = process.execArgv, setFlags: SetFlags = v8.setFlagsFromString): FlagDecision {
  if (execArgv.some((arg) => named.test(arg))) return 'command line';
  setFlags(flag);
  return 'tokengate';
}
