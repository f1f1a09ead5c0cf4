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
}

/** A cursor over one message's bytes [pos, end). */
class Cursor {
  pos: number;
  constructor(readonly buf: Buffer, start: number, readonly end: number) {
    this.pos = start;
  }

  /** A varint that must fit in 32 bits (tags and lengths). */
  uint32(): number {
    const buf = this.buf;
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

  /** The bounds of a length-delimited payload; the cursor moves past it. */
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

  /** Skips one field's payload by its wire type; groups iteratively, with a depth bound. */
  skip(wireType: number, field: number): void {
    switch (wireType) {
      case WIRE.VARINT: return this.skipVarint();
      case WIRE.I64: return this.skipFixed(8);
      case WIRE.LEN: this.len(); return;
      case WIRE.I32: return this.skipFixed(4);
      case WIRE.SGROUP: return this.skipGroup(field);
      case WIRE.EGROUP: throw new MalformedRequestError('group end without a group');
      default: throw new MalformedRequestError(`invalid wire type ${wireType}`);
    }
  }

  private skipGroup(field: number): void {
    const open = [field];
    while (open.length > 0) {
      const { field: f, wireType } = this.tag();
      if (wireType === WIRE.EGROUP) {
        if (open.pop() !== f) throw new MalformedRequestError('group end does not match its start');
      } else if (wireType === WIRE.SGROUP) {
        if (open.length >= MAX_GROUP_DEPTH) throw new MalformedRequestError('groups nested too deep');
        open.push(f);
      } else {
        this.skip(wireType, f);
      }
    }
  }

  tag(): { field: number; wireType: number } {
    const t = this.uint32();
    const field = Math.floor(t / 8);
    if (field === 0) throw new MalformedRequestError('field number 0');
    return { field, wireType: t & 7 };
  }
}

/**
 * Reads the next tag, checks a declared field's wire type, and returns the field number;
 * undeclared fields and fields not in `wanted` are the caller's to skip.
 */
function nextField(c: Cursor, m: MessageWire<string>): { field: number; wireType: number } {
  const t = c.tag();
  const allowed = m.wireTypes.get(t.field);
  if (allowed !== undefined && (allowed & (1 << t.wireType)) === 0) {
    throw new MalformedRequestError(`${m.name} field ${t.field} has wire type ${t.wireType}`);
  }
  return t;
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

export class CheckRequestReader {
  private readonly w: CheckRequestWire;
  private readonly providerKey: Buffer;
  /** Header names routing reads, by byte length (a key is compared only with names of its length). */
  private readonly wanted: ReadonlyMap<number, readonly WantedName[]> | undefined;

  /**
   * @param providerKey the context_extensions key that names a provider
   * @param headerNames lower-case header names routing reads; undefined: no routes, http is never read
   */
  constructor(providerKey: string, headerNames: readonly string[] | undefined, wire: CheckRequestWire = checkRequestWire()) {
    this.w = wire;
    this.providerKey = Buffer.from(providerKey, 'utf8');
    if (headerNames !== undefined) {
      const byLength = new Map<number, WantedName[]>();
      for (const name of new Set(headerNames)) {
        const bytes = Buffer.from(name, 'utf8');
        const list = byLength.get(bytes.length);
        if (list) list.push({ name, bytes });
        else byLength.set(bytes.length, [{ name, bytes }]);
      }
      this.wanted = byLength;
    }
  }

  /** The request deserialiser for Check. Throws MalformedRequestError on malformed bytes. */
  read(raw: Buffer): CheckRequestFields {
    const c = new Cursor(raw, 0, raw.length);
    const f = this.w.checkRequest;
    let attrs = -1;
    let attrsEnd = -1;
    while (c.pos < c.end) {
      const t = nextField(c, f);
      if (t.field === f.field.attributes && t.wireType === WIRE.LEN) {
        attrs = c.len();
        attrsEnd = c.pos;
      } else c.skip(t.wireType, t.field);
    }
    if (attrs === -1) return { raw, provider: undefined, http: undefined, reader: this };
    return this.attributes(raw, attrs, attrsEnd);
  }

  private attributes(raw: Buffer, start: number, end: number): CheckRequestFields {
    const c = new Cursor(raw, start, end);
    const f = this.w.attributeContext;
    let provider: string | undefined;
    let request = -1;
    let requestEnd = -1;
    while (c.pos < c.end) {
      const t = nextField(c, f);
      if (t.wireType !== WIRE.LEN) c.skip(t.wireType, t.field);
      else if (t.field === f.field.context_extensions) {
        const at = c.len();
        const v = this.mapEntryValue(raw, at, c.pos, this.w.stringMapEntry, (ks, ke) => raw.compare(this.providerKey, 0, this.providerKey.length, ks, ke) === 0);
        if (v !== undefined) provider = v;
      } else if (t.field === f.field.request) {
        request = c.len();
        requestEnd = c.pos;
      } else c.len();
    }
    let http: HttpRequestView | undefined;
    if (provider === undefined && this.wanted !== undefined && request !== -1) http = this.request(raw, request, requestEnd);
    return { raw, provider, http, reader: this };
  }

  /**
   * A map<string,string> entry: its value when its key fits `isWanted`, else undefined.
   * The key is compared in place; only a wanted entry's value becomes a string.
   */
  private mapEntryValue(raw: Buffer, start: number, end: number, m: MessageWire<'key' | 'value'>, isWanted: (ks: number, ke: number) => boolean): string | undefined {
    const c = new Cursor(raw, start, end);
    let ks = start;
    let ke = start; // absent key: ""
    let vs = start;
    let ve = start; // absent value: ""
    while (c.pos < c.end) {
      const t = nextField(c, m);
      if (t.wireType === WIRE.LEN && t.field === m.field.key) {
        ks = c.len();
        ke = c.pos;
      } else if (t.wireType === WIRE.LEN && t.field === m.field.value) {
        vs = c.len();
        ve = c.pos;
      } else c.skip(t.wireType, t.field);
    }
    return isWanted(ks, ke) ? raw.toString('utf8', vs, ve) : undefined;
  }

  private request(raw: Buffer, start: number, end: number): HttpRequestView | undefined {
    const c = new Cursor(raw, start, end);
    const f = this.w.request;
    let http = -1;
    let httpEnd = -1;
    while (c.pos < c.end) {
      const t = nextField(c, f);
      if (t.field === f.field.http && t.wireType === WIRE.LEN) {
        http = c.len();
        httpEnd = c.pos;
      } else c.skip(t.wireType, t.field);
    }
    return http === -1 ? undefined : this.http(raw, http, httpEnd);
  }

  private http(raw: Buffer, start: number, end: number): HttpRequestView {
    const c = new Cursor(raw, start, end);
    const f = this.w.httpRequest;
    const wanted = this.wanted!;
    let method: string | undefined;
    let path: string | undefined;
    let host: string | undefined;
    let headers: Record<string, string> | undefined;
    let headerMap = -1;
    let headerMapEnd = -1;
    const matchKey = (ks: number, ke: number): string | undefined => {
      const list = wanted.get(ke - ks);
      if (list !== undefined) for (const w of list) if (raw.compare(w.bytes, 0, w.bytes.length, ks, ke) === 0) return w.name;
      return undefined;
    };
    while (c.pos < c.end) {
      const t = nextField(c, f);
      if (t.wireType !== WIRE.LEN) {
        c.skip(t.wireType, t.field);
        continue;
      }
      const at = c.len();
      switch (t.field) {
        case f.field.method: method = raw.toString('utf8', at, c.pos); break;
        case f.field.path: path = raw.toString('utf8', at, c.pos); break;
        case f.field.host: host = raw.toString('utf8', at, c.pos); break;
        case f.field.headers: {
          let name: string | undefined;
          const v = this.mapEntryValue(raw, at, c.pos, this.w.headersEntry, (ks, ke) => (name = matchKey(ks, ke)) !== undefined);
          if (v !== undefined) (headers ??= Object.create(null) as Record<string, string>)[name!] = v;
          break;
        }
        case f.field.header_map: headerMap = at; headerMapEnd = c.pos; break;
        default: break; // id, scheme, query, body…: skipped by length
      }
    }
    if (headerMap !== -1) headers = this.headerMap(raw, headerMap, headerMapEnd, headers);
    return { ...(method !== undefined ? { method } : {}), ...(path !== undefined ? { path } : {}), ...(host !== undefined ? { host } : {}), ...(headers ? { headers } : {}) };
  }

  /**
   * `header_map` (Envoy's `encode_raw_headers`): repeated HeaderValue, duplicates not combined
   * and values in `raw_value`. Wanted ones are joined with "," the way `headers` carries them;
   * a name already in `headers` keeps that value. Keys are compared case-insensitively (ASCII).
   */
  private headerMap(raw: Buffer, start: number, end: number, fromMap: Record<string, string> | undefined): Record<string, string> | undefined {
    const c = new Cursor(raw, start, end);
    const f = this.w.headerMap;
    const hv = this.w.headerValue;
    let out = fromMap;
    const joined: Record<string, string> = Object.create(null) as Record<string, string>;
    let any = false;
    while (c.pos < c.end) {
      const t = nextField(c, f);
      if (t.field !== f.field.headers || t.wireType !== WIRE.LEN) {
        c.skip(t.wireType, t.field);
        continue;
      }
      const e = new Cursor(raw, c.len(), c.pos);
      let ks = e.pos;
      let ke = e.pos;
      let value: string | undefined;
      let rawValue: string | undefined;
      let rs = -1;
      let re = -1;
      let vs = -1;
      let ve = -1;
      while (e.pos < e.end) {
        const u = nextField(e, hv);
        if (u.wireType !== WIRE.LEN) e.skip(u.wireType, u.field);
        else if (u.field === hv.field.key) { ks = e.len(); ke = e.pos; }
        else if (u.field === hv.field.value) { vs = e.len(); ve = e.pos; }
        else if (u.field === hv.field.raw_value) { rs = e.len(); re = e.pos; }
        else e.len();
      }
      const list = this.wanted!.get(ke - ks);
      const w = list?.find((x) => asciiLowerEquals(raw, ks, ke, x.bytes));
      if (w === undefined || fromMap?.[w.name] !== undefined) continue;
      if (rs !== -1) rawValue = raw.toString('utf8', rs, re);
      else if (vs !== -1) value = raw.toString('utf8', vs, ve);
      const v = rawValue ?? value ?? '';
      joined[w.name] = joined[w.name] === undefined ? v : `${joined[w.name]},${v}`;
      any = true;
    }
    if (!any) return out;
    out ??= Object.create(null) as Record<string, string>;
    for (const k in joined) out[k] = joined[k]!;
    return out;
  }
}
