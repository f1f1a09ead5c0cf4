// V8's allocation-site pretenuring, off for a serving process.
//
// V8 counts, per allocation site (an object or array literal in a function), how many of the
// objects it allocated survived a scavenge. When that reaches 85 % of at least 100 objects in a
// scavenge of a full-size young generation, it marks the site "tenure" and recompiles the code
// that allocates there to put those objects straight into old space; V8 never revisits that
// decision by itself. node:http2 and node's streams allocate several literals per stream. If
// one stretch of streams survives (any old object still pointing at them, as node's stream Map
// did: FINDINGS, "What the promoted kilobyte was"), their sites reach 100 % and get tenured.
// From then on each stream is born half old: its pretenured objects point at the young rest of
// the stream (Duplex state, listeners, respond/sendTrailers objects), every scavenge must keep
// that young rest as the old objects' referents, so every stream's whole graph (~1.5 KB a Check)
// is promoted, survival stays at 100 % and the decision holds: the "bad mode" of FINDINGS, "The
// stream chain that remained: V8's allocation-site pretenuring". Without pretenuring, such a
// stretch is promoted once and ends.
//
// Nothing in a Check outlives its response, so pretenuring has nothing to win here.
import { defaultV8Flag, type FlagDecision, type SetFlags } from './v8-flag.js';

const FLAG = /^--(no[-_])?allocation[-_]site[-_]pretenuring$/;

/**
 * Turns off allocation-site pretenuring for this process, unless its command line decides
 * (`node --allocation-site-pretenuring` keeps V8's default). Call it before the server handles
 * traffic: V8 reads the flag at every scavenge, but a site tenured before the call stays tenured.
 * Returns who decided.
 */
export function stopPretenuring(execArgv?: readonly string[], setFlags?: SetFlags): FlagDecision {
  return defaultV8Flag('--no-allocation-site-pretenuring', FLAG, execArgv, setFlags);
}
