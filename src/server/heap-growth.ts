// How far V8 lets the old generation grow before its next mark-compact, for a serving process.
//
// node:http2 hands every received header value that is not in HPACK's static table to
// JavaScript as an external string: the string's bytes stay in nghttp2's refcounted buffer, and
// a small malloc'd resource (plus, when the value is used as a key, a V8 invalidated-slot entry)
// points at them. V8 allocates external strings in old space, so none of that is freed before
// the next mark-compact, and V8's heuristics never see it (~0.4 KB a Check in glibc's main
// arena). After each mark-compact V8 sets the next one at the live size times a factor of 1.1
// to 4, chosen from how fast it collected versus how fast the process was allocating. A process
// whose last mark-compact followed a busy stretch (a start-up warm-up, a loaded machine) gets 4:
// with 10,000 providers (~55 MB live) that is ~165 MB of old-space growth, hundreds of thousands
// of Checks, before the next mark-compact, and glibc keeps the arena's pages resident after it
// (bench/FINDINGS.md, "The 10,000-provider arena").
//
// A fixed factor of 1 + HEAP_GROWING_PERCENT/100 bounds that garbage to a share of the live
// heap, whatever the machine was doing at the last collection. It only spaces mark-compacts:
// the heap's cap (--max-old-space-size) is unchanged.
import { defaultV8Flag, type FlagDecision, type SetFlags } from './v8-flag.js';

/** The old generation may grow by this share of what the last mark-compact kept. */
export const HEAP_GROWING_PERCENT = 50;

const FLAG = /^--heap[-_]growing[-_]percent(=|$)/;

/**
 * Fixes V8's heap growing factor for this process, unless its command line already names one
 * (`node --heap-growing-percent=N`; `0` there restores V8's own choice). The flag is not allowed
 * in NODE_OPTIONS, hence the command line; it is read after every mark-compact, so setting it at
 * run time takes effect from the next one. Returns who decided.
 */
export function capHeapGrowth(execArgv?: readonly string[], setFlags?: SetFlags): FlagDecision {
  return defaultV8Flag(`--heap-growing-percent=${HEAP_GROWING_PERCENT}`, FLAG, execArgv, setFlags);
}
