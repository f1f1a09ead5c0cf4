// What JavaScript cannot see about a string: whether two equal strings are one object, and
// whether one is a slice or a concatenation of others (and so keeps them alive). Asked of V8
// through its runtime functions, enabled for code compiled from here on in this test process.
import v8 from 'node:v8';

v8.setFlagsFromString('--allow-natives-syntax');

const referenceEqual = new Function('a', 'b', 'return %ReferenceEqual(a, b)') as (a: unknown, b: unknown) => boolean;
const haveSameMap = new Function('a', 'b', 'return %HaveSameMap(a, b)') as (a: unknown, b: unknown) => boolean;

/** True when `a` and `b` are the same heap object (not merely equal). */
export function sameObject(a: unknown, b: unknown): boolean {
  return referenceEqual(a, b);
}

/** True when `s` is a sliced or concatenated (one-byte) string: it holds on to other strings. */
export function referencesOtherStrings(s: string): boolean {
  // One of each kind, made afresh: a collection may replace a kept concatenation by its flat
  // result. Both kinds exist only from 13 characters on.
  const doc = 'abcdefghijklmnopqrstuvwxyz'.repeat(4);
  return haveSameMap(s, doc.slice(1, 40)) || haveSameMap(s, doc.slice(0, 30) + doc.slice(50, 80));
}
