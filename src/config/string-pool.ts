// One flat copy of each distinct config string, shared by every provider and route that uses it.
//
// Why (issue #18, bench/FINDINGS.md "A provider's heap, again"): js-yaml hands out substrings of
// the document, which V8 keeps as sliced strings (13 characters and up) that hold the whole YAML
// text alive, 2.3 MB for ten thousand providers; every `${env:…}` lookup returns a fresh copy of
// the variable (process.env makes one per read); and ten thousand providers repeat "jwt",
// "HS256" or "/v1/" as ten thousand separate strings. Each string is one more object for every
// mark-compact to visit. The pool lives only while one config is read.

/**
 * V8 makes neither a sliced nor a concatenated string shorter than this (SlicedString and
 * ConsString kMinLength): shorter strings are always flat already.
 */
const MIN_SLICED_LENGTH = 13;

/**
 * A flat copy of `s` that references no other string. JSON.parse builds every string value it
 * returns as a new sequential string (it never slices its input); the round trip keeps every
 * code unit, lone surrogates included (JSON.stringify escapes them).
 */
export function flatString(s: string): string {
  return s.length < MIN_SLICED_LENGTH ? s : (JSON.parse(JSON.stringify(s)) as string);
}

export class StringPool {
  private readonly seen = new Map<string, string>();

  /** The pool's flat copy of `s` (the first one it was given, flattened). */
  intern(s: string): string {
    let v = this.seen.get(s);
    if (v === undefined) {
      v = flatString(s);
      this.seen.set(v, v);
    }
    return v;
  }

  /**
   * Replaces every string value of a freshly parsed YAML tree, in place, with its pooled copy.
   * Mapping keys are pooled first as they are (V8 keeps property names flat and internalized),
   * so a value naming a key, e.g. a route's `provider: p1`, becomes that very string. A node
   * reached again through a YAML alias is walked once (aliases can nest exponentially).
   */
  internTree(node: unknown, visited = new Set<object>()): unknown {
    if (typeof node === 'string') return this.intern(node);
    if (typeof node !== 'object' || node === null || visited.has(node)) return node;
    visited.add(node);
    if (Array.isArray(node)) {
      for (let i = 0; i < node.length; i++) node[i] = this.internTree(node[i], visited);
    } else {
      const o = node as Record<string, unknown>;
      for (const k of Object.keys(o)) {
        if (!this.seen.has(k)) this.seen.set(k, k);
        o[k] = this.internTree(o[k], visited);
      }
    }
    return node;
  }
}
