// Reads only what a Check needs from an encoded CheckRequest, walking the protobuf wire format:
// `attributes.context_extensions[providerKey]` and, only when no provider was named that way
// and routes[] exist, `attributes.request.http` host, path, method and the headers route rules
// name. Everything else (the cookie, trace headers, peers, TLS session, body) is skipped by
// its length without being decoded, so a Check's cost does not grow with the request's size.
//
// Semantics follow the full decode (protobufjs) on every well-formed request: the last
// occurrence of a singular field wins, map entries accumulate (last key wins), a map entry
// without key or value has "". The reader is stricter than protobufjs on malformed bytes:
// a truncated varint or length, a length past its message, a declared field with the wrong
// wire type, field number 0, wire types 6/7, an unmatched group end or groups nested deeper
// than MAX_GROUP_DEPTH all throw a MalformedRequestError (grpc-js answers INTERNAL). It never
// loops without consuming input, and never recurses on attacker-chosen depth.
import type { HttpRequestView } from '../routing/route-table.js';
import { WIRE, checkRequestWire, type CheckRequestWire, type MessageWire } from './check-request-schema.js';

export class MalformedRequestError extends Error {
  readonly code = 'ERR_MALFORMED_REQUEST';
  constructor(message: string) {
    super(`malformed CheckRequest: ${message}`);
    this.name = 'MalformedRequestError';
  }
}

/** protobuf's own recursion limit is 100; Envoy's CheckRequest never contains a group. */
export const MAX_GROUP_DEPTH = 64;

/** What a Check reads from one CheckRequest. */
export interface CheckRequestFields {
  /** The encoded request, for the paths that need the full decode (debug request logs). */
  readonly raw: Buffer;
  /** `attributes.context_extensions[providerKey]`; undefined when absent. */
  readonly provider: string | undefined;
  /**
   * `attributes.request.http` with only the headers routing needs; read only when `provider`
   * is undefined and the reader has routes. Undefined when not read or absent.
   */
  readonly http: HttpRequestView | undefined;
  /** The reader that produced this: a config reload swaps readers, and a stale read is redone. */
  readonly reader: CheckRequestReader;
}

interface WantedName {
  readonly name: string;
  readonly bytes: Buffer;
  /**
   * For a header routing reads only in place of a missing `host`, `path` or `method`
   * (RouteTable's fallbacks), its FALLBACK_SLOT; else -1. Its value is kept as a span and becomes
   * a string only when that field is missing. Envoy always sends the three, so a routed Check
   * makes none of these strings.
   */
  readonly fallbackSlot: number;
  /** Its RecentStrings slot (headers routing compares, not the fallbacks: -1). */
  readonly slot: number;
}

/** The HttpRequest fields that the pseudo-header fallbacks stand in for. */
const FALLBACK_FOR: Readonly<Record<string, Fallback>> = { ':authority': 'host', host: 'host', ':path': 'path', ':method': 'method' };
type Fallback = 'host' | 'path' | 'method';
/** The fallback headers, in a fixed order: the slot of each in the reader's span arrays. */
const FALLBACK_SLOT: Readonly<Record<string, number>> = { ':authority': 0, host: 1, ':path': 2, ':method': 3 };
const FALLBACK_NAMES = [':authority', 'host', ':path', ':method'] as const;
/** What each FALLBACK_SLOT stands in for. */
const FALLBACK_KIND: readonly Fallback[] = FALLBACK_NAMES.map((n) => FALLBACK_FOR[n]!);

/**
 * What `read` returns. `raw` is made when something asks for it: the node:http2 path reads the
 * message where it lies in its DATA chunk (`readInto`), and only a slow path or a request log
 * needs the bytes as a Buffer of their own (a view is ~90 bytes per Check). A pooled call keeps
 * one of these and has it filled Check after Check.
 */
export class CheckRequestRead implements CheckRequestFields {
  private buf: Buffer = EMPTY;
  private start = 0;
  private end = 0;
  private rawView: Buffer | undefined = undefined;
  provider: string | undefined = undefined;
  http: HttpRequestView | undefined = undefined;
  /** The last `http` read into this holder, filled again by the next routed read (not a new object per Check). */
  httpView: HttpView | undefined = undefined;

  constructor(public reader: CheckRequestReader) {}

  get raw(): Buffer {
    if (this.rawView === undefined) this.rawView = this.start === 0 && this.end === this.buf.length ? this.buf : this.buf.subarray(this.start, this.end);
    return this.rawView;
  }

  /** The message is buf[start, end), read by `reader`. */
  from(reader: CheckRequestReader, buf: Buffer, start: number, end: number): void {
    this.reader = reader;
    this.buf = buf;
    this.start = start;
    this.end = end;
    this.rawView = undefined;
    this.provider = undefined;
    this.http = undefined;
  }

  /** Lets go of the message and what was read from it (a pooled holder must keep no request alive). */
  clear(): void {
    this.from(this.reader, EMPTY, 0, 0);
    const v = this.httpView;
    if (v !== undefined) v.method = v.path = v.host = v.headers = undefined;
  }
}

const EMPTY = Buffer.alloc(0);

/** `attributes.request.http` as routing reads it; its fields are overwritten by every read into the holder that keeps it. */
class HttpView implements HttpRequestView {
  method: string | undefined = undefined;
  path: string | undefined = undefined;
  host: string | undefined = undefined;
  headers: Record<string, string> | undefined = undefined;
}

/**
 * A cursor over one message's bytes [pos, end); `end` narrows while a nested message is read.
 * Each reader keeps one (`at`), as reads are synchronous and never nest.
 */
class Cursor {
  pos: number;
  end: number;
  constructor(public buf: Buffer, start: number, end: number) {
    this.pos = start;
    this.end = end;
  }

  /** Starts over on buf[start, end). */
  at(buf: Buffer, start: number, end: number): this {
    this.buf = buf;
    this.pos = start;
    this.end = end;
    return this;
  }

  /** A varint that must fit in 32 bits (tags and lengths). */
  uint32(): number {
    const buf = this.buf;
    // Fast path: tags and most lengths here fit one or two bytes.
    if (this.end - this.pos >= 2) {
      const b0 = buf[this.pos]!;
      if (b0 < 0x80) {
        this.pos++;
        return b0;
      }
      const b1 = buf[this.pos + 1]!;
      if (b1 < 0x80) {
        this.pos += 2;
        return (b0 & 0x7f) | (b1 << 7);
      }
    }
    let result = 0;
    for (let shift = 0; shift < 35; shift += 7) {
      if (this.pos >= this.end) throw new MalformedRequestError('truncated varint');
      const b = buf[this.pos++]!;
      if (shift === 28 && b > 0x0f) throw new MalformedRequestError('varint does not fit 32 bits');
      result += (b & 0x7f) * 2 ** shift;
      if (b < 0x80) return result;
    }
    throw new MalformedRequestError('varint does not fit 32 bits');
  }

  skipVarint(): void {
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) throw new MalformedRequestError('truncated varint');
      if (this.buf[this.pos++]! < 0x80) return;
    }
    throw new MalformedRequestError('varint longer than 10 bytes');
  }

  /** Moves past a length-delimited payload and returns where it starts (it ends at `pos`). */
  len(): number {
    const n = this.uint32();
    if (n > this.end - this.pos) throw new MalformedRequestError('length past the end of its message');
    const start = this.pos;
    this.pos += n;
    return start;
  }

  skipFixed(n: number): void {
    if (n > this.end - this.pos) throw new MalformedRequestError('truncated fixed-width field');
    this.pos += n;
  }

  /**
   * The next tag (field number × 8 + wire type). Field number 0, and a field the message
   * declares arriving with another wire type, are malformed.
   */
  tag(m: MessageWire<string>): number {
    const t = this.uint32();
    const field = t >>> 3;
    if (field === 0) throw new MalformedRequestError('field number 0');
    const allowed = field < m.wireTypesByField.length ? m.wireTypesByField[field]! : (m.wireTypes.get(field) ?? 0);
    if (allowed !== 0 && (allowed & (1 << (t & 7))) === 0) throw new MalformedRequestError(`${m.name} field ${field} has wire type ${t & 7}`);
    return t;
  }

  /**
   * Enters the length-delimited payload that starts here: the cursor is narrowed to it, and
   * the end it had is returned. Read the payload to its end, then restore `end` to that value;
   * `pos` is then just past the field.
   */
  enter(): number {
    const at = this.len();
    const outer = this.end;
    this.end = this.pos;
    this.pos = at;
    return outer;
  }

  /**
   * Reads the rest of this message for the last occurrence of the length-delimited field
   * `tag` (a singular submessage: the last one wins), skipping every other field. Found: the
   * cursor is narrowed to that payload and true returned. Not found: false, cursor at the end.
   */
  narrowToLast(m: MessageWire<string>, tag: number): boolean {
    let start = -1;
    let end = -1;
    while (this.pos < this.end) {
      const t = this.tag(m);
      if (t === tag) {
        start = this.len();
        end = this.pos;
      } else this.skip(t);
    }
    if (start === -1) return false;
    this.pos = start;
    this.end = end;
    return true;
  }

  /** Skips one field's payload by its wire type; groups iteratively, with a depth bound. */
  skip(tag: number): void {
    switch (tag & 7) {
      case WIRE.VARINT: return this.skipVarint();
      case WIRE.I64: return this.skipFixed(8);
      case WIRE.LEN: this.len(); return;
      case WIRE.I32: return this.skipFixed(4);
      case WIRE.SGROUP: return this.skipGroup(tag >>> 3);
      case WIRE.EGROUP: throw new MalformedRequestError('group end without a group');
      default: throw new MalformedRequestError(`invalid wire type ${tag & 7}`);
    }
  }

  private skipGroup(field: number): void {
    const open = [field];
    while (open.length > 0) {
      const t = this.uint32();
      const f = t >>> 3;
      if (f === 0) throw new MalformedRequestError('field number 0');
      const wt = t & 7;
      if (wt === WIRE.EGROUP) {
        if (open.pop() !== f) throw new MalformedRequestError('group end does not match its start');
      } else if (wt === WIRE.SGROUP) {
        if (open.length >= MAX_GROUP_DEPTH) throw new MalformedRequestError('groups nested too deep');
        open.push(f);
      } else {
        this.skip(t);
      }
    }
  }
}

const LEN_OF = (field: number): number => field * 8 + WIRE.LEN;

function bytesEqual(buf: Buffer, start: number, end: number, want: Buffer): boolean {
  if (end - start !== want.length) return false;
  for (let i = 0; i < want.length; i++) if (buf[start + i] !== want[i]) return false;
  return true;
}

function asciiLowerEquals(buf: Buffer, start: number, end: number, lower: Buffer): boolean {
  if (end - start !== lower.length) return false;
  for (let i = 0; i < lower.length; i++) {
    let b = buf[start + i]!;
    if (b >= 0x41 && b <= 0x5a) b += 0x20;
    if (b !== lower[i]) return false;
  }
  return true;
}

/**
 * The header values a read found, by name, with no prototype chain a name could reach (a
 * header called `constructor` or `__proto__` is a plain key), like `Object.create(null)`; but
 * made by a constructor whose prototype is an empty null-prototype object, the object starts
 * with fast properties instead of a hash table: 127 fewer bytes per routed Check (FINDINGS).
 */
const HeaderValues = function HeaderValues(this: Record<string, string>) {} as unknown as new () => Record<string, string>;
HeaderValues.prototype = Object.create(null) as object;

/** Values up to this many bytes are remembered; longer ones are decoded every time. */
const RECENT_MAX_BYTES = 64;

/**
 * The last string read in each slot (the provider, method, path, host and each routing header),
 * with its bytes: a value whose bytes equal the last one's is that string again, so a Check
 * for the same host, method or provider as the one before makes no new string (a byte compare
 * instead of a decode into V8), and the string's hash, computed by the route table's or lane
 * map's lookup, is already there. The string is the one decoding would give: same bytes, same
 * UTF-8. Only the routing reader remembers (a per-caller subject token is never kept).
 */
class RecentStrings {
  private readonly bytes: Uint8Array;
  private readonly lengths: Int32Array;
  private readonly strings: string[];

  constructor(slots: number) {
    this.bytes = new Uint8Array(slots * RECENT_MAX_BYTES);
    this.lengths = new Int32Array(slots).fill(-1);
    this.strings = new Array<string>(slots).fill('');
  }

  get(slot: number, buf: Buffer, start: number, end: number): string {
    const n = end - start;
    if (n > RECENT_MAX_BYTES) return buf.toString('utf8', start, end);
    const bytes = this.bytes;
    const at = slot * RECENT_MAX_BYTES;
    if (this.lengths[slot] === n) {
      let i = 0;
      while (i < n && bytes[at + i] === buf[start + i]) i++;
      if (i === n) return this.strings[slot]!;
    }
    const str = buf.toString('utf8', start, end);
    for (let i = 0; i < n; i++) bytes[at + i] = buf[start + i]!;
    this.lengths[slot] = n;
    this.strings[slot] = str;
    return str;
  }
}

/** RecentStrings slots of the fields every reader reads; routing headers follow. */
const SLOT_PROVIDER = 0;
const SLOT_METHOD = 1;
const SLOT_PATH = 2;
const SLOT_HOST = 3;
const FIRST_HEADER_SLOT = 4;

export class CheckRequestReader {
  private readonly w: CheckRequestWire;
  private readonly providerKey: Buffer;
  /** Header names routing reads, by byte length (a key is compared only with names of its length). */
  private readonly wanted: readonly (readonly WantedName[] | undefined)[] | undefined;
  // The tags the loops switch on, computed once.
  private readonly tAttributes: number;
  private readonly tRequest: number;
  private readonly tContextExtensions: number;
  private readonly tHttp: number;
  private readonly tMethod: number;
  private readonly tPath: number;
  private readonly tHost: number;
  private readonly tHeaders: number;
  private readonly tHeaderMap: number;
  private readonly tMapKey: number;
  private readonly tMapValue: number;
  private readonly tHmHeaders: number;
  private readonly tHvKey: number;
  private readonly tHvValue: number;
  private readonly tHvRawValue: number;
  /** The one cursor of this reader's reads (synchronous, never nested); let go of its buffer after each. */
  private readonly cursor = new Cursor(EMPTY, 0, 0);
  /** The spans `entry` found (reads are synchronous, so one set per reader is enough). */
  private ks = 0;
  private ke = 0;
  private vs = 0;
  private ve = 0;
  /** Value spans of the fallback headers of the request being read, by FALLBACK_SLOT (-1: absent). */
  private readonly fallbackStart = [-1, -1, -1, -1];
  private readonly fallbackEnd = [-1, -1, -1, -1];
  /** Set when the reader remembers its last strings (`options.remember`). */
  private readonly recent: RecentStrings | undefined;
  /** The map entry tags as one byte each, for the entry fast path (-1: they take more than one). */
  private readonly keyByte: number;
  private readonly valueByte: number;

  /**
   * @param providerKey the context_extensions key that names a provider
   * @param headerNames lower-case header names routing reads; undefined: no routes, http is never read
   * @param fallbackOnly those of `headerNames` among `:authority`, `host`, `:path`, `:method` that
   *   are read only when `host` (missing or empty), `path` or `method` (missing) is: read
   *   lazily (RouteTable.fallbackOnlyHeaderNames). Other readers pass none and get every name.
   * @param options.remember reuse the last string of each field when its bytes repeat (RecentStrings):
   *   for the routing reader, whose values (provider, host, method, rule headers) repeat from Check to Check
   */
  constructor(providerKey: string, headerNames: readonly string[] | undefined, wire: CheckRequestWire = checkRequestWire(), fallbackOnly: readonly string[] = [], options: { readonly remember?: boolean } = {}) {
    this.w = wire;
    this.providerKey = Buffer.from(providerKey, 'utf8');
    if (headerNames !== undefined) {
      const lazy = new Set(fallbackOnly.filter((n) => FALLBACK_FOR[n] !== undefined));
      const byLength: WantedName[][] = [];
      let slot = FIRST_HEADER_SLOT;
      for (const name of new Set(headerNames)) {
        const bytes = Buffer.from(name, 'utf8');
        (byLength[bytes.length] ??= []).push(lazy.has(name) ? { name, bytes, fallbackSlot: FALLBACK_SLOT[name]!, slot: -1 } : { name, bytes, fallbackSlot: -1, slot: slot++ });
      }
      this.wanted = byLength;
      this.recent = options.remember ? new RecentStrings(slot) : undefined;
    } else this.recent = options.remember ? new RecentStrings(FIRST_HEADER_SLOT) : undefined;
    this.tAttributes = LEN_OF(wire.checkRequest.field.attributes);
    this.tRequest = LEN_OF(wire.attributeContext.field.request);
    this.tContextExtensions = LEN_OF(wire.attributeContext.field.context_extensions);
    this.tHttp = LEN_OF(wire.request.field.http);
    this.tMethod = LEN_OF(wire.httpRequest.field.method);
    this.tPath = LEN_OF(wire.httpRequest.field.path);
    this.tHost = LEN_OF(wire.httpRequest.field.host);
    this.tHeaders = LEN_OF(wire.httpRequest.field.headers);
    this.tHeaderMap = LEN_OF(wire.httpRequest.field.header_map);
    // context_extensions and headers are both map<string,string>: the same entry numbers.
    if (wire.stringMapEntry.field.key !== wire.headersEntry.field.key || wire.stringMapEntry.field.value !== wire.headersEntry.field.value) {
      throw new Error('map entry field numbers differ between context_extensions and headers');
    }
    this.tMapKey = LEN_OF(wire.stringMapEntry.field.key);
    this.tMapValue = LEN_OF(wire.stringMapEntry.field.value);
    this.keyByte = this.tMapKey < 0x80 ? this.tMapKey : -1;
    this.valueByte = this.tMapValue < 0x80 ? this.tMapValue : -1;
    this.tHmHeaders = LEN_OF(wire.headerMap.field.headers);
    this.tHvKey = LEN_OF(wire.headerValue.field.key);
    this.tHvValue = LEN_OF(wire.headerValue.field.value);
    this.tHvRawValue = LEN_OF(wire.headerValue.field.raw_value);
  }

  /**
   * `attributes.request.http` with this reader's header names, whatever context_extensions
   * say: for a path that needs one or two headers of a request Check already answered from
   * its raw bytes (e.g. a per-caller subject token), without the full decode.
   */
  readHttp(raw: Buffer): HttpRequestView | undefined {
    if (this.wanted === undefined) throw new Error('readHttp needs a reader with header names');
    const out = new CheckRequestRead(this);
    this.readSpan(raw, 0, raw.length, out, true);
    return out.http;
  }

  /** The request deserialiser for Check. Throws MalformedRequestError on malformed bytes. */
  read(raw: Buffer): CheckRequestRead {
    const out = new CheckRequestRead(this);
    this.readSpan(raw, 0, raw.length, out, false);
    return out;
  }

  /**
   * `read` of the message at buf[start, end), in place (no view of it), into `into` when given:
   * a holder whose last request nobody reads any more (the node:http2 path's pooled calls).
   */
  readInto(buf: Buffer, start: number, end: number, into: CheckRequestRead | undefined): CheckRequestRead {
    const out = into ?? new CheckRequestRead(this);
    this.readSpan(buf, start, end, out, false);
    return out;
  }

  private readSpan(buf: Buffer, start: number, end: number, out: CheckRequestRead, alwaysHttp: boolean): void {
    out.from(this, buf, start, end);
    const c = this.cursor.at(buf, start, end);
    try {
      if (c.narrowToLast(this.w.checkRequest, this.tAttributes)) this.attributes(c, alwaysHttp, out);
    } finally {
      c.buf = EMPTY;
    }
  }

  private attributes(c: Cursor, alwaysHttp: boolean, out: CheckRequestRead): void {
    const m = this.w.attributeContext;
    const end = c.end;
    let provider: string | undefined;
    let request = -1;
    let requestEnd = -1;
    while (c.pos < end) {
      const t = c.tag(m);
      if (t === this.tContextExtensions) {
        c.enter();
        const v = this.mapEntry(c, this.providerKey);
        c.end = end;
        if (v !== undefined) provider = v;
      } else if (t === this.tRequest) {
        request = c.len();
        requestEnd = c.pos;
      } else c.skip(t);
    }
    let http: HttpView | undefined;
    if ((alwaysHttp || provider === undefined) && this.wanted !== undefined && request !== -1) {
      c.pos = request;
      c.end = requestEnd;
      http = this.request(c, out.httpView);
      if (http !== undefined) out.httpView = http;
    }
    out.provider = provider;
    out.http = http;
  }

  /** The string of raw[start, end): remembered per slot when this reader remembers. */
  private str(slot: number, raw: Buffer, start: number, end: number): string {
    return this.recent === undefined || slot < 0 ? raw.toString('utf8', start, end) : this.recent.get(slot, raw, start, end);
  }

  /**
   * One map<string,string> entry in [c.pos, c.end): its value when its key equals `key`, else
   * undefined. The key is compared in place; only a wanted entry's value becomes a string.
   * Leaves the cursor at c.end.
   */
  private mapEntry(c: Cursor, key: Buffer): string | undefined {
    this.entry(c);
    return bytesEqual(c.buf, this.ks, this.ke, key) ? this.str(SLOT_PROVIDER, c.buf, this.vs, this.ve) : undefined;
  }

  /**
   * The key and value spans of the map<string,string> entry in [c.pos, c.end), into
   * ks/ke/vs/ve (an absent key or value is the empty span: ""). Leaves the cursor at c.end.
   */
  private entry(c: Cursor): void {
    const start = c.pos;
    // Fast path: how every encoder writes an entry, the key then the value, each with a
    // one-byte tag and a one- or two-byte length, together filling the entry. Anything else
    // (absent or repeated fields, unknown fields, other order) takes the general loop below.
    const buf = c.buf;
    const end = c.end;
    if (end - start >= 4 && buf[start] === this.keyByte) {
      const kl = buf[start + 1]!;
      const ke = start + 2 + kl;
      if (kl < 0x80 && ke + 2 <= end && buf[ke] === this.valueByte) {
        let vs = ke + 2;
        let vl = buf[ke + 1]!;
        // A two-byte length when the first has its continuation bit; a longer one: general loop.
        if (vl >= 0x80) vl = vs < end && buf[vs]! < 0x80 ? (vl & 0x7f) | (buf[vs++]! << 7) : -1;
        if (vl !== -1 && vs + vl === end) {
          this.ks = start + 2;
          this.ke = ke;
          this.vs = vs;
          this.ve = end;
          c.pos = end;
          return;
        }
      }
    }
    this.entrySlow(c);
  }

  private entrySlow(c: Cursor): void {
    const m = this.w.stringMapEntry;
    const start = c.pos;
    this.ks = this.ke = this.vs = this.ve = start;
    while (c.pos < c.end) {
      const t = c.tag(m);
      if (t === this.tMapKey) {
        this.ks = c.len();
        this.ke = c.pos;
      } else if (t === this.tMapValue) {
        this.vs = c.len();
        this.ve = c.pos;
      } else c.skip(t);
    }
  }

  private request(c: Cursor, reuse: HttpView | undefined): HttpView | undefined {
    return c.narrowToLast(this.w.request, this.tHttp) ? this.http(c, reuse) : undefined;
  }

  private http(c: Cursor, reuse: HttpView | undefined): HttpView {
    const m = this.w.httpRequest;
    const raw = c.buf;
    const end = c.end;
    const wanted = this.wanted!;
    let method: string | undefined;
    let path: string | undefined;
    let host: string | undefined;
    let headers: Record<string, string> | undefined;
    let headerMap = -1;
    let headerMapEnd = -1;
    let fallbacks = false;
    while (c.pos < end) {
      const t = c.tag(m);
      if (t === this.tHeaders) {
        // A headers entry: find its key among the wanted names without making a string of it.
        c.enter();
        this.entry(c);
        c.end = end;
        const { ks, ke, vs, ve } = this;
        const list = wanted[ke - ks];
        if (list !== undefined) {
          for (let i = 0; i < list.length; i++) {
            const w = list[i]!;
            if (bytesEqual(raw, ks, ke, w.bytes)) {
              const slot = w.fallbackSlot;
              if (slot !== -1) {
                // Kept as a span: the last occurrence wins, as in the map's full decode.
                this.fallbackStart[slot] = vs;
                this.fallbackEnd[slot] = ve;
                fallbacks = true;
              } else (headers ??= new HeaderValues())[w.name] = this.str(w.slot, raw, vs, ve);
              break;
            }
          }
        }
      } else if (t === this.tMethod) {
        const at = c.len();
        method = this.str(SLOT_METHOD, raw, at, c.pos);
      } else if (t === this.tPath) {
        const at = c.len();
        path = this.str(SLOT_PATH, raw, at, c.pos);
      } else if (t === this.tHost) {
        const at = c.len();
        host = this.str(SLOT_HOST, raw, at, c.pos);
      } else if (t === this.tHeaderMap) {
        headerMap = c.len();
        headerMapEnd = c.pos;
      } else c.skip(t); // id, scheme, query, body…: skipped by length
    }
    if (fallbacks) headers = this.neededFallbacks(raw, headers, host, path, method);
    if (headerMap !== -1) {
      c.pos = headerMap;
      c.end = headerMapEnd;
      headers = this.headerMap(c, headers);
    }
    // An absent field is undefined, as routing reads it (`host || …`, `path ?? …`).
    const out = reuse ?? new HttpView();
    out.method = method;
    out.path = path;
    out.host = host;
    out.headers = headers;
    return out;
  }

  /**
   * The fallback headers this request needs (`:authority`/`host` without a non-empty `host`,
   * `:path` without `path`, `:method` without `method`) as strings in `headers`; resets the spans.
   */
  private neededFallbacks(raw: Buffer, headers: Record<string, string> | undefined, host: string | undefined, path: string | undefined, method: string | undefined): Record<string, string> | undefined {
    const start = this.fallbackStart;
    const end = this.fallbackEnd;
    for (let slot = 0; slot < FALLBACK_NAMES.length; slot++) {
      if (start[slot] === -1) continue;
      const kind = FALLBACK_KIND[slot];
      const needed = kind === 'host' ? !host : kind === 'path' ? path === undefined : method === undefined;
      if (needed) (headers ??= new HeaderValues())[FALLBACK_NAMES[slot]!] = raw.toString('utf8', start[slot], end[slot]);
      start[slot] = -1;
      end[slot] = -1;
    }
    return headers;
  }

  /**
   * `header_map` (Envoy's `encode_raw_headers`): repeated HeaderValue, duplicates not combined
   * and values in `raw_value`. Wanted ones are joined with "," the way `headers` carries them;
   * a name already in `headers` keeps that value. Keys are compared case-insensitively (ASCII).
   */
  private headerMap(c: Cursor, fromMap: Record<string, string> | undefined): Record<string, string> | undefined {
    const m = this.w.headerMap;
    const hv = this.w.headerValue;
    const raw = c.buf;
    const end = c.end;
    let joined: Record<string, string> | undefined;
    while (c.pos < end) {
      const t = c.tag(m);
      if (t !== this.tHmHeaders) {
        c.skip(t);
        continue;
      }
      c.enter();
      const at = c.pos;
      let ks = at;
      let ke = at;
      let vs = -1;
      let ve = -1;
      let rs = -1;
      let re = -1;
      while (c.pos < c.end) {
        const u = c.tag(hv);
        if (u === this.tHvKey) { ks = c.len(); ke = c.pos; }
        else if (u === this.tHvValue) { vs = c.len(); ve = c.pos; }
        else if (u === this.tHvRawValue) { rs = c.len(); re = c.pos; }
        else c.skip(u);
      }
      c.end = end;
      const w = this.wanted![ke - ks]?.find((x) => asciiLowerEquals(raw, ks, ke, x.bytes));
      if (w === undefined || fromMap?.[w.name] !== undefined) continue;
      const v = rs !== -1 ? raw.toString('utf8', rs, re) : vs !== -1 ? raw.toString('utf8', vs, ve) : '';
      joined ??= new HeaderValues();
      joined[w.name] = joined[w.name] === undefined ? v : `${joined[w.name]},${v}`;
    }
    if (joined === undefined) return fromMap;
    const out = fromMap ?? new HeaderValues();
    for (const k in joined) out[k] = joined[k]!;
    return out;
  }
}
