// The cache-hit answer of a per-caller provider, spliced per hit from one template per provider
// instead of kept per caller. Every cached caller's answer is the same encoded CheckResponse but
// for a few strings (the exchanged token, its type, its id, the verified subject) and the length
// prefixes that enclose them. Keeping one answer per caller cost ~270 bytes of live heap each
// with short tokens, ~1.3 KB with real JWTs; a larger live heap also postpones V8's mark-compacts,
// and with them the release of the malloc'd memory each finished Check's http2 stream leaves
// behind (bench/FINDINGS.md, per-caller section, "Why the main arena grew").
//
// The template is cut from what the real encoder produced for the same answer with sentinel
// strings in place of the caller's values, so field order, tags and constant parts are the
// encoder's own; `AnswerTemplate.fromEncoder` proves the splice byte-identical to the encoder on
// sample values (short and long, non-ASCII) before it is used, and refuses otherwise.

import { PREFIX_BYTES, writePrefix } from './framed-answer.js';

/** The caller's strings a template leaves open, in this order. */
export type SlotValues = readonly [token: string, tokenType: string, tokenId: string, subject: string];

/** Sentinels standing for each slot in the encoded sample (control characters: no config or header has them). */
export const SENTINELS: SlotValues = ['\u0001tg:token\u0002', '\u0001tg:type\u0002', '\u0001tg:id\u0002', '\u0001tg:subject\u0002'];

/** A length-delimited field holding slots: its tag is constant, its length computed per splice. */
interface Nested {
  readonly parts: readonly Part[];
}
/** Constant bytes, a slot's index, or a nested length-delimited field's content. */
type Part = Buffer | number | Nested;

/** Messages nest this deep around a slot's string: e.g. ok_response → headers → header → value. */
const LEAF_DEPTH = 4;

export class TemplateError extends Error {
  readonly code = 'ERR_ANSWER_TEMPLATE';
}

/** Buffer's own UTF-8 writer (what `write(s, at, n, 'utf8')` ends in), without its argument parsing. */
interface Utf8Writer {
  utf8Write(s: string, offset: number, length: number): number;
}

/** One step of a splice: constant bytes (index into consts), a slot's string, or a node's length prefix. */
interface Op {
  readonly kind: 0 | 1 | 2;
  readonly arg: number;
}

/**
 * A template compiled for the hit path: the nested fields as numbered nodes (children before
 * parents in `order`, so one pass sizes them all), and the bytes as a flat list of steps.
 */
export class AnswerTemplate {
  /** Per node: constant bytes directly inside it (its children's tags included). */
  private readonly constBytes: number[] = [];
  /** Per node: the slots directly inside it, and its child nodes. */
  private readonly slots: number[][] = [];
  private readonly children: number[][] = [];
  /** Nodes in an order where every child comes before its parent; node 0 is the message. */
  private readonly order: number[] = [];
  private readonly ops: Op[] = [];
  private readonly consts: Buffer[] = [];
  /** Each node's length during one splice (splices are synchronous, so one scratch array serves). */
  private readonly lens: Int32Array;

  private constructor(root: readonly Part[]) {
    this.compile(root, false);
    this.lens = new Int32Array(this.constBytes.length);
  }

  /**
   * The template cut from `encoded` (a CheckResponse encoding carrying SENTINELS), checked
   * against `encode(values)` for every sample; throws TemplateError when a splice differs.
   */
  static fromEncoder(encoded: Buffer, encode: (values: SlotValues) => Buffer, samples: readonly SlotValues[]): AnswerTemplate {
    // Buffer's UTF-8 writer is Node's own (undocumented) method: on a runtime without it every hit encodes.
    if (typeof (Buffer.prototype as unknown as Partial<Utf8Writer>).utf8Write !== 'function') throw new TemplateError('Buffer#utf8Write is not available');
    const sentinels = SENTINELS.map((s) => Buffer.from(s, 'utf8'));
    const t = new AnswerTemplate(parseMessage(encoded, 0, encoded.length, 0, sentinels));
    for (const s of samples) {
      const want = encode(s);
      const got = t.splice(s[0], s[1], s[2], s[3]);
      if (got.length !== want.length + PREFIX_BYTES || got.readUInt32BE(1) !== want.length || !got.subarray(PREFIX_BYTES).equals(want)) {
        throw new TemplateError('a spliced answer differs from the encoder\'s');
      }
    }
    return t;
  }

  /** The framed answer (gRPC's 5-byte prefix, then the message) for these values, in a new short-lived buffer. */
  splice(token: string, tokenType: string, tokenId: string, subject: string): Buffer {
    const l0 = Buffer.byteLength(token, 'utf8');
    const l1 = Buffer.byteLength(tokenType, 'utf8');
    const l2 = Buffer.byteLength(tokenId, 'utf8');
    const l3 = subject.length === 0 ? 0 : Buffer.byteLength(subject, 'utf8');
    const lens = this.lens;
    for (const n of this.order) {
      let len = this.constBytes[n]!;
      for (const s of this.slots[n]!) len += s === 0 ? l0 : s === 1 ? l1 : s === 2 ? l2 : l3;
      for (const c of this.children[n]!) len += varintSize(lens[c]!) + lens[c]!;
      lens[n] = len;
    }
    const size = lens[0]!;
    const out = Buffer.allocUnsafe(PREFIX_BYTES + size);
    const w = out as unknown as Utf8Writer;
    writePrefix(out, size);
    let at = PREFIX_BYTES;
    for (const op of this.ops) {
      if (op.kind === 0) {
        const c = this.consts[op.arg]!;
        out.set(c, at);
        at += c.length;
      } else if (op.kind === 1) {
        const s = op.arg;
        if (s === 0) at += w.utf8Write(token, at, l0);
        else if (s === 1) at += w.utf8Write(tokenType, at, l1);
        else if (s === 2) at += w.utf8Write(tokenId, at, l2);
        else if (l3 > 0) at += w.utf8Write(subject, at, l3);
      } else at = writeVarint(out, at, lens[op.arg]!);
    }
    return out;
  }

  /** Numbers `parts` as a node (its length prefix a step unless it is the message) and flattens it. */
  private compile(parts: readonly Part[], prefixed: boolean): number {
    const node = this.constBytes.length;
    this.constBytes.push(0);
    this.slots.push([]);
    this.children.push([]);
    if (prefixed) this.ops.push({ kind: 2, arg: node });
    for (const p of parts) {
      if (typeof p === 'number') {
        this.slots[node]!.push(p);
        this.ops.push({ kind: 1, arg: p });
      } else if (Buffer.isBuffer(p)) {
        if (p.length === 0) continue;
        this.constBytes[node] = this.constBytes[node]! + p.length;
        this.ops.push({ kind: 0, arg: this.consts.length });
        this.consts.push(p);
      } else this.children[node]!.push(this.compile(p.parts, true));
    }
    this.order.push(node);
    return node;
  }
}

function varintSize(v: number): number {
  let n = 1;
  while (v >= 0x80) {
    v = Math.floor(v / 128);
    n++;
  }
  return n;
}

function writeVarint(out: Buffer, at: number, v: number): number {
  while (v >= 0x80) {
    out[at++] = (v & 0x7f) | 0x80;
    v = Math.floor(v / 128);
  }
  out[at++] = v;
  return at;
}

function readVarint(b: Buffer, at: number, end: number): [value: number, next: number] {
  let v = 0;
  let mul = 1;
  for (;;) {
    if (at >= end) throw new TemplateError('truncated varint');
    const byte = b[at++]!;
    v += (byte & 0x7f) * mul;
    if (byte < 0x80) return [v, at];
    mul *= 128;
  }
}

function containsSentinel(b: Buffer, start: number, end: number, sentinels: readonly Buffer[]): boolean {
  return sentinels.some((s) => {
    const i = b.indexOf(s, start);
    return i >= 0 && i + s.length <= end;
  });
}

/** The parts of the message in b[start, end): constant bytes, and each field holding a sentinel opened up. */
function parseMessage(b: Buffer, start: number, end: number, depth: number, sentinels: readonly Buffer[]): Part[] {
  const parts: Part[] = [];
  let constFrom = start;
  let at = start;
  while (at < end) {
    const [tag, afterTag] = readVarint(b, at, end);
    const wire = tag % 8;
    if (wire === 0) at = readVarint(b, afterTag, end)[1];
    else if (wire === 1) at = afterTag + 8;
    else if (wire === 5) at = afterTag + 4;
    else if (wire === 2) {
      const [len, content] = readVarint(b, afterTag, end);
      const contentEnd = content + len;
      if (contentEnd > end) throw new TemplateError('truncated field');
      if (containsSentinel(b, content, contentEnd, sentinels)) {
        parts.push(Buffer.from(b.subarray(constFrom, afterTag)));
        parts.push({ parts: depth + 1 === LEAF_DEPTH ? leafParts(b, content, contentEnd, sentinels) : parseMessage(b, content, contentEnd, depth + 1, sentinels) });
        constFrom = contentEnd;
      }
      at = contentEnd;
    } else throw new TemplateError(`unexpected wire type ${wire}`);
  }
  if (at !== end) throw new TemplateError('field past its message');
  if (constFrom < end) parts.push(Buffer.from(b.subarray(constFrom, end)));
  return parts;
}

/** A string field's content: constant text around the sentinels, each becoming its slot. */
function leafParts(b: Buffer, start: number, end: number, sentinels: readonly Buffer[]): Part[] {
  const parts: Part[] = [];
  let at = start;
  for (;;) {
    let next = -1;
    let slot = -1;
    sentinels.forEach((s, i) => {
      const j = b.indexOf(s, at);
      if (j >= 0 && j + s.length <= end && (next < 0 || j < next)) {
        next = j;
        slot = i;
      }
    });
    if (next < 0) break;
    if (next > at) parts.push(Buffer.from(b.subarray(at, next)));
    parts.push(slot);
    at = next + sentinels[slot]!.length;
  }
  if (at < end) parts.push(Buffer.from(b.subarray(at, end)));
  return parts;
}
