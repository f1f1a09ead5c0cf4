// The wire reader against the full protobufjs decode: every field it extracts must equal what
// the full decode says, for thousands of generated Envoy-shaped requests (headers map or
// header_map, duplicated and unknown fields, concatenated messages), and hostile bytes must end
// in a MalformedRequestError or an answer, never another exception or a hang.
//
// Reproduce a failure with TOKENGATE_FUZZ_SEED=<seed printed on failure>.
import { randomInt } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import protobuf from 'protobufjs';
import { beforeEach, describe, expect, it, onTestFailed } from 'vitest';
import { checkRequestWire } from '../../src/server/check-request-schema.js';
import { CheckRequestReader, MAX_GROUP_DEPTH, MalformedRequestError, type CheckRequestFields } from '../../src/server/check-request-reader.js';
import { AUTHZ_PROTO, PROTO_INCLUDE_DIRS, authorizationServiceDefinition } from '../../src/server/protos.js';
import { RouteTable, type HttpRequestView } from '../../src/routing/route-table.js';
import { envoyRequest } from '../support/envoy-request.js';

const check = authorizationServiceDefinition().Check!;
const encode = (req: unknown): Buffer => check.requestSerialize(req);
const decode = (b: Buffer): Decoded => check.requestDeserialize(b) as Decoded;

interface Decoded {
  attributes?: {
    context_extensions?: Record<string, string>;
    request?: { http?: { method?: string; path?: string; host?: string; headers?: Record<string, string>; header_map?: { headers?: { key?: string; value?: string; raw_value?: Buffer }[] } } };
  };
}

const ROUTE_HEADERS = ['x-tenant', 'x-api-version', 'cookie'];
const WANTED = [':authority', 'host', ':path', ':method', ...ROUTE_HEADERS];

const lowerAscii = (s: string): string => s.replace(/[A-Z]/g, (c) => c.toLowerCase());

/** What the reader must produce, computed from the full decode. */
function expected(d: Decoded, providerKey: string, names: readonly string[] | undefined): { provider: string | undefined; http: unknown } {
  const ce = d.attributes?.context_extensions;
  const provider = ce && Object.hasOwn(ce, providerKey) ? ce[providerKey] : undefined;
  const h = d.attributes?.request?.http;
  if (provider !== undefined || names === undefined || h === undefined) return { provider, http: undefined };
  const headers: Record<string, string> = {};
  for (const n of names) if (h.headers && Object.hasOwn(h.headers, n)) headers[n] = h.headers[n]!;
  for (const e of h.header_map?.headers ?? []) {
    const k = lowerAscii(e.key ?? '');
    if (!names.includes(k) || (h.headers && Object.hasOwn(h.headers, k))) continue;
    const v = e.raw_value !== undefined ? e.raw_value.toString('utf8') : (e.value ?? '');
    headers[k] = headers[k] === undefined ? v : `${headers[k]},${v}`;
  }
  return {
    provider,
    http: {
      ...(h.method !== undefined ? { method: h.method } : {}),
      ...(h.path !== undefined ? { path: h.path } : {}),
      ...(h.host !== undefined ? { host: h.host } : {}),
      ...(Object.keys(headers).length ? { headers } : {}),
    },
  };
}

function actual(r: CheckRequestFields): { provider: string | undefined; http: unknown } {
  const h = r.http;
  return { provider: r.provider, http: h === undefined ? undefined : { ...h, ...(h.headers ? { headers: { ...h.headers } } : {}) } };
}

function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

class Gen {
  constructor(readonly rnd: () => number) {}
  int(max: number): number {
    return Math.floor(this.rnd() * max);
  }
  chance(p: number): boolean {
    return this.rnd() < p;
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)]!;
  }
  bytes(n: number): Buffer {
    const b = Buffer.alloc(n);
    for (let i = 0; i < n; i++) b[i] = this.int(256);
    return b;
  }
  str(maxLen = 30): string {
    const alphabet = ['a', 'Z', '0', '-', ':', '/', '.', ',', ' ', '\u0000', '\u00e9', '\ud83d\ude00', '\ud800', 'x-tenant', 'provider'];
    let s = '';
    const n = this.int(maxLen);
    for (let i = 0; i < n; i++) s += this.pick(alphabet);
    return s;
  }
}

// ---- raw protobuf building blocks (for what Envoy's encoder would never produce) -----------------

function varint(n: number): Buffer {
  const out: number[] = [];
  let v = n;
  while (v >= 0x80) {
    out.push((v % 0x80) | 0x80);
    v = Math.floor(v / 0x80);
  }
  out.push(v);
  return Buffer.from(out);
}
const tag = (field: number, wt: number): Buffer => varint(field * 8 + wt);
const len = (field: number, payload: Buffer): Buffer => Buffer.concat([tag(field, 2), varint(payload.length), payload]);

/** An unknown field of a random wire type (incl. a nested group), with a field number no proto uses. */
function unknownField(g: Gen): Buffer {
  const f = 1000 + g.int(5000);
  switch (g.int(5)) {
    case 0: return Buffer.concat([tag(f, 0), varint(g.int(2 ** 31))]);
    case 1: return Buffer.concat([tag(f, 1), g.bytes(8)]);
    case 2: return len(f, g.bytes(g.int(40)));
    case 3: return Buffer.concat([tag(f, 5), g.bytes(4)]);
    default: return Buffer.concat([tag(f, 3), tag(f + 1, 3), tag(f + 2, 0), varint(7), tag(f + 1, 4), len(f + 3, g.bytes(3)), tag(f, 4)]);
  }
}

function generated(g: Gen): Record<string, unknown> {
  const headers: Record<string, string> = {};
  for (let i = g.int(20); i > 0; i--) headers[g.chance(0.4) ? g.pick(ROUTE_HEADERS) : g.chance(0.5) ? `x-h-${g.int(50)}` : g.str(12)] = g.str(g.chance(0.1) ? 2000 : 40);
  const req = envoyRequest({
    authority: g.chance(0.8) ? g.pick(['api.example.com', 'a.example.com:8443', '']) : g.str(),
    path: g.chance(0.8) ? `/v1/${g.str(10)}` : g.str(),
    method: g.pick(['GET', 'POST', '', 'delete']),
    headers,
    ...(g.chance(0.5) ? { contextExtensions: Object.fromEntries(Array.from({ length: g.int(4) }, () => [g.chance(0.5) ? 'provider' : g.str(10), g.str(20)])) } : {}),
  }) as { attributes: Record<string, any> };
  const http = req.attributes.request.http as Record<string, unknown>;
  for (const f of ['host', 'path', 'method', 'headers']) if (g.chance(0.1)) delete http[f];
  if (g.chance(0.3)) {
    // encode_raw_headers: the same headers as a list, duplicates not combined, values raw.
    const list = Object.entries(headers).map(([k, v]) => ({ key: g.chance(0.2) ? k.toUpperCase() : k, ...(g.chance(0.8) ? { raw_value: Buffer.from(v) } : { value: v }) }));
    if (g.chance(0.5)) list.push({ key: 'x-tenant', raw_value: Buffer.from(g.str(8)) });
    http.header_map = { headers: list };
    if (g.chance(0.7)) delete http.headers;
  }
  if (g.chance(0.05)) delete req.attributes.request;
  return req;
}

/** Valid encodings the encoder would not produce: unknown fields, concatenated messages, repeated maps. */
function reshaped(g: Gen, buf: Buffer): Buffer {
  switch (g.int(4)) {
    case 0: return Buffer.concat([buf, unknownField(g)]);
    case 1: return Buffer.concat([unknownField(g), buf, unknownField(g)]);
    case 2: return Buffer.concat([buf, encode(generated(g))]); // singular messages: the last wins
    default: {
      // an extra attributes message with just a context_extensions entry (and an unknown field)
      const entry = Buffer.concat([len(1, Buffer.from(g.pick(['provider', 'other']))), len(2, Buffer.from(g.str(10)))]);
      return Buffer.concat([buf, len(1, Buffer.concat([len(10, entry), unknownField(g)]))]);
    }
  }
}

function mutate(g: Gen, buf: Buffer): Buffer {
  let b = Buffer.from(buf);
  for (let r = 1 + g.int(3); r > 0; r--) {
    const at = b.length ? g.int(b.length) : 0;
    switch (g.int(6)) {
      case 0: if (b.length) b[at] = b[at]! ^ (1 << g.int(8)); break;
      case 1: if (b.length) b[at] = g.int(256); break;
      case 2: b = b.subarray(0, at); break;
      case 3: b = Buffer.concat([b.subarray(0, at), g.bytes(1 + g.int(16)), b.subarray(at)]); break;
      case 4: b = Buffer.concat([b.subarray(0, at), b.subarray(at + 1 + g.int(32))]); break;
      default: b = Buffer.concat([b.subarray(0, at), Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]), b.subarray(at)]);
    }
  }
  return b;
}

/** Reads with the reader; a MalformedRequestError is an outcome, any other exception a failure. */
function tryRead(reader: CheckRequestReader, b: Buffer): CheckRequestFields | MalformedRequestError {
  try {
    return reader.read(b);
  } catch (err) {
    if (err instanceof MalformedRequestError) return err;
    throw err;
  }
}

describe('check request wire schema', () => {
  it('takes every field number from Envoy protos, matching an independent protobufjs reflection load', () => {
    const root = new protobuf.Root();
    root.resolvePath = (_origin, target) => {
      for (const dir of PROTO_INCLUDE_DIRS) {
        const p = path.join(dir, target);
        if (fs.existsSync(p)) return p;
      }
      return target;
    };
    root.loadSync(AUTHZ_PROTO, { keepCase: true });
    const w = checkRequestWire();
    const id = (type: string, field: string): number => root.lookupType(type).fields[field]!.id;
    const AC = 'envoy.service.auth.v3.AttributeContext';
    expect(w.checkRequest.field.attributes).toBe(id('envoy.service.auth.v3.CheckRequest', 'attributes'));
    expect(w.attributeContext.field).toEqual({ request: id(AC, 'request'), context_extensions: id(AC, 'context_extensions') });
    expect(w.request.field.http).toBe(id(`${AC}.Request`, 'http'));
    const H = `${AC}.HttpRequest`;
    expect(w.httpRequest.field).toEqual({ method: id(H, 'method'), headers: id(H, 'headers'), path: id(H, 'path'), host: id(H, 'host'), header_map: id(H, 'header_map') });
    expect(w.headerMap.field.headers).toBe(id('envoy.config.core.v3.HeaderMap', 'headers'));
    const HV = 'envoy.config.core.v3.HeaderValue';
    expect(w.headerValue.field).toEqual({ key: id(HV, 'key'), value: id(HV, 'value'), raw_value: id(HV, 'raw_value') });
    // map entries: key 1, value 2 (protobuf's map encoding)
    expect(w.stringMapEntry.field).toEqual({ key: 1, value: 2 });
    expect(w.headersEntry.field).toEqual({ key: 1, value: 2 });
    // the numbers a reader of Envoy's docs would expect (a drift here means the protos moved)
    expect([w.attributeContext.field.context_extensions, w.httpRequest.field.header_map]).toEqual([10, 13]);
  });
});

describe('check request reader', () => {
  const seed = Number(process.env.TOKENGATE_FUZZ_SEED ?? randomInt(2 ** 31));
  beforeEach(() => onTestFailed(() => console.error(`reader fuzz seed: TOKENGATE_FUZZ_SEED=${seed}`)));
  const withRoutes = new CheckRequestReader('provider', WANTED);
  const withoutRoutes = new CheckRequestReader('provider', undefined);
  // The routing reader's configuration: it remembers the last string of each field (RecentStrings).
  const remembering = new CheckRequestReader('provider', WANTED, undefined, [], { remember: true });
  const rememberingNoRoutes = new CheckRequestReader('provider', undefined, undefined, [], { remember: true });

  it('extracts exactly what the full decode says, for generated Envoy-shaped requests', () => {
    const g = new Gen(prng(seed));
    let routed = 0;
    for (let i = 0; i < 3_000; i++) {
      let b = encode(generated(g));
      if (g.chance(0.3)) b = reshaped(g, b);
      const d = decode(b);
      expect(actual(withRoutes.read(b)), `request ${i}`).toEqual(expected(d, 'provider', WANTED));
      expect(actual(withoutRoutes.read(b)), `request ${i} (no routes)`).toEqual(expected(d, 'provider', undefined));
      expect(actual(remembering.read(b)), `request ${i} (remembering)`).toEqual(expected(d, 'provider', WANTED));
      expect(actual(rememberingNoRoutes.read(b)), `request ${i} (remembering, no routes)`).toEqual(expected(d, 'provider', undefined));
      if (withRoutes.read(b).http?.headers) routed++;
      // readHttp: the same http view whatever context_extensions name
      const noContext: Decoded = { attributes: { ...d.attributes, context_extensions: undefined } };
      const h = withRoutes.readHttp(b);
      expect(h === undefined ? undefined : { ...h, ...(h.headers ? { headers: { ...h.headers } } : {}) }, `request ${i} (readHttp)`).toEqual(expected(noContext, 'provider', WANTED).http);
    }
    expect(routed).toBeGreaterThan(300); // the generator does reach the header path
  });

  it('reads in place into one reused holder exactly what read() gives, wherever the message lies and whatever the holder read before', () => {
    // The node:http2 path reads a Check where it lies in its DATA chunk, into the holder its pooled
    // call keeps: nothing of an earlier request (provider, http, headers, bytes) may show through.
    const g = new Gen(prng(seed ^ 0x5eed));
    const holders = [remembering.readInto(Buffer.alloc(0), 0, 0, undefined), withRoutes.readInto(Buffer.alloc(0), 0, 0, undefined)];
    let routed = 0;
    for (let i = 0; i < 2_000; i++) {
      let b = encode(generated(g));
      if (g.chance(0.3)) b = reshaped(g, b);
      if (g.chance(0.2)) b = mutate(g, b);
      // No attributes at all: nothing read, so nothing of the last request may be left either.
      if (g.chance(0.05)) b = g.chance(0.5) ? Buffer.alloc(0) : unknownField(g);
      const before = g.bytes(g.int(12));
      const chunk = Buffer.concat([before, b, g.bytes(g.int(12))]);
      for (const [k, reader] of [remembering, withRoutes].entries()) {
        const want = tryRead(reader, b);
        let got: CheckRequestFields | MalformedRequestError;
        try {
          got = reader.readInto(chunk, before.length, before.length + b.length, holders[k]);
        } catch (err) {
          if (!(err instanceof MalformedRequestError)) throw err;
          got = err;
        }
        if (want instanceof MalformedRequestError) {
          expect(got, `request ${i}`).toBeInstanceOf(MalformedRequestError);
          continue;
        }
        expect(got, `request ${i}: the same holder`).toBe(holders[k]);
        const r = got as CheckRequestFields;
        expect(actual(r), `request ${i}`).toEqual(actual(want));
        expect(r.raw.equals(b), `request ${i}: raw`).toBe(true);
        expect(r.reader).toBe(reader);
        if (r.http?.headers) routed++;
      }
    }
    expect(routed).toBeGreaterThan(200);
    const h = holders[0]!;
    h.clear();
    expect([h.raw.length, h.provider, h.http, h.httpView?.host, h.httpView?.headers]).toEqual([0, undefined, undefined, undefined, undefined]);
  });

  it('routes exactly as the full read when the pseudo-header fallbacks are read only for a missing host, path or method', () => {
    // Rules on authority, path, method and headers; one rule names `:authority` itself, so that
    // name stays eager while `host`, `:path` and `:method` are read only as fallbacks.
    const route = (match: Record<string, unknown>, provider: string) => ({ match, provider }) as never;
    for (const [rules, lazyNames] of [
      [[route({ authority: 'api.example.com', method: 'POST' }, 'post'), route({ authority: 'a.example.com', pathPrefix: '/v1/' }, 'a'), route({ pathPrefix: '/v1/a' }, 'v1a'), route({ headers: { 'x-tenant': 'blue' } }, 'blue')], [':authority', 'host', ':path', ':method']],
      [[route({ headers: { ':authority': 'api.example.com' } }, 'pseudo'), route({ authority: 'a.example.com' }, 'a'), route({ method: 'GET' }, 'get')], ['host', ':path', ':method']],
    ] as const) {
      const table = new RouteTable(rules as never);
      expect([...table.fallbackOnlyHeaderNames].sort()).toEqual([...lazyNames].sort());
      const lazy = new CheckRequestReader('provider', table.headerNames, undefined, table.fallbackOnlyHeaderNames);
      const eager = new CheckRequestReader('provider', table.headerNames);
      const g = new Gen(prng(seed + 1));
      let fellBack = 0;
      for (let i = 0; i < 3_000; i++) {
        const req = generated(g) as { attributes?: { request?: { http?: Record<string, any> } } };
        const http = req.attributes?.request?.http;
        if (http && g.chance(0.5)) {
          // the generator's hosts and paths, so that rules match often
          if (http.headers && g.chance(0.5)) http.headers['x-tenant'] = g.pick(['blue', 'red']);
          if (g.chance(0.3)) delete http.host;
        }
        const b = encode(req);
        const want = eager.readHttp(b);
        const got = lazy.readHttp(b);
        expect(table.match(got), `request ${i}`).toBe(table.match(want));
        if (want?.headers?.[':authority'] !== undefined && got?.headers?.[':authority'] === undefined) fellBack++;
      }
      if (lazyNames.includes(':authority' as never)) expect(fellBack).toBeGreaterThan(100); // the lazy path was taken
    }
  });

  it('makes no fallback strings for a request that has host, path and method', () => {
    const table = new RouteTable([{ match: { authority: 'api.example.com' }, provider: 'p' }] as never);
    const lazy = new CheckRequestReader('provider', table.headerNames, undefined, table.fallbackOnlyHeaderNames);
    const http = lazy.read(encode(envoyRequest({ authority: 'api.example.com', headers: { 'x-tenant': 'blue' } }))).http as HttpRequestView;
    expect(http.headers).toBeUndefined();
    expect([http.host, http.path, http.method]).toEqual(['api.example.com', '/v1/things?x=1', 'GET']);
    expect(table.match(http)).toBe('p');
    // Without host, :authority is read (and routes).
    const req = envoyRequest({ authority: 'api.example.com' }) as { attributes: { request: { http: Record<string, unknown> } } };
    delete req.attributes.request.http.host;
    const noHost = lazy.read(encode(req)).http as HttpRequestView;
    expect({ ...noHost.headers }).toEqual({ ':authority': 'api.example.com' });
    expect(table.match(noHost)).toBe('p');
  });

  it('reads a header sent in header_map (encode_raw_headers), joining duplicates as headers would', () => {
    const req = envoyRequest({ authority: 'api.example.com' }) as { attributes: { request: { http: Record<string, unknown> } } };
    const http = req.attributes.request.http;
    delete http.headers;
    http.header_map = { headers: [{ key: 'X-Tenant', raw_value: Buffer.from('a') }, { key: 'cookie', raw_value: Buffer.from('c=1') }, { key: 'x-tenant', raw_value: Buffer.from('b') }, { key: 'x-other', raw_value: Buffer.from('z') }] };
    const r = withRoutes.read(encode(req));
    expect({ ...r.http!.headers }).toEqual({ 'x-tenant': 'a,b', cookie: 'c=1' });
    expect(r.http!.host).toBe('api.example.com');
  });

  it('remembers strings only for identical bytes: a value of the same length that differs is read anew', () => {
    const reader = new CheckRequestReader('provider', WANTED, undefined, [], { remember: true });
    const long = 'v'.repeat(63);
    const cases: [string, string, string, string][] = [
      // provider, host, method, x-tenant: each step changes one field to a value of the same length
      ['p1', 'api.example.com', 'GET', 'blue'],
      ['p2', 'api.example.com', 'GET', 'blue'],
      ['p2', 'api.example.org', 'GET', 'blue'],
      ['p2', 'api.example.org', 'PUT', 'blue'],
      ['p2', 'api.example.org', 'PUT', 'bluE'],
      ['p2', 'api.example.org', 'PUT', `${long}a`],
      ['p2', 'api.example.org', 'PUT', `${long}b`],
      ['p2', 'api.example.org', 'PUT', `${long}ab`], // longer than what is remembered
      ['p2', 'api.example.org', 'PUT', `${long}ac`],
      ['p1', 'api.example.com', 'GET', 'blue'],
    ];
    for (const [provider, authority, method, tenant] of cases) {
      const b = encode(envoyRequest({ authority, method, headers: { 'x-tenant': tenant } }));
      expect(reader.read(b).http, `${authority} ${method} ${tenant}`).toMatchObject({ host: authority, method, headers: { 'x-tenant': tenant } });
      const named = encode(envoyRequest({ contextExtensions: { provider } }));
      expect(reader.read(named).provider).toBe(provider);
    }
  });

  it('reads map entries whose value length takes one, two or three bytes, and entries written in another order', () => {
    for (const n of [0, 1, 127, 128, 200, 16_383, 16_384, 70_000]) {
      const v = 'x'.repeat(n);
      const r = withRoutes.read(encode(envoyRequest({ headers: { 'x-tenant': v }, contextExtensions: { provider: v } })));
      expect(r.provider?.length, `provider of ${n} bytes`).toBe(n);
      const h = remembering.read(encode(envoyRequest({ headers: { 'x-tenant': v } }))).http;
      expect(h?.headers?.['x-tenant']?.length, `header of ${n} bytes`).toBe(n);
    }
    // value before key, and a key without value: what the fast path leaves to the general loop
    const entry = (...parts: Buffer[]): Buffer => Buffer.concat(parts);
    const w = checkRequestWire();
    const ce = (payload: Buffer): Buffer => len(w.checkRequest.field.attributes, len(w.attributeContext.field.context_extensions, payload));
    const key = len(w.stringMapEntry.field.key, Buffer.from('provider'));
    const value = len(w.stringMapEntry.field.value, Buffer.from('p9'));
    expect(remembering.read(ce(entry(value, key))).provider).toBe('p9');
    expect(remembering.read(ce(entry(key))).provider).toBe('');
    expect(remembering.read(ce(entry(key, value, value))).provider).toBe('p9');
  });

  it('reads headers named __proto__ and constructor as plain keys, and the headers object inherits nothing', () => {
    const names = ['__proto__', 'constructor', 'x-tenant'];
    const reader = new CheckRequestReader('provider', names, undefined, [], { remember: true });
    // JSON.parse: an object literal would take `__proto__` as the prototype, not as a key
    const sent = JSON.parse('{"__proto__":"a","constructor":"c","x-tenant":"t"}') as Record<string, string>;
    const viaMap = reader.read(encode(envoyRequest({ headers: sent }))).http!.headers!;
    const req = envoyRequest({}) as { attributes: { request: { http: Record<string, unknown> } } };
    delete req.attributes.request.http.headers;
    req.attributes.request.http.header_map = { headers: Object.entries(sent).map(([key, v]) => ({ key, raw_value: Buffer.from(v) })) };
    const viaList = reader.read(encode(req)).http!.headers!;
    for (const h of [viaMap, viaList]) {
      expect(Object.keys(h).sort()).toEqual(['__proto__', 'constructor', 'x-tenant']);
      expect([h['__proto__'], h['constructor'], h['x-tenant']]).toEqual(['a', 'c', 't']);
      expect('toString' in h || 'hasOwnProperty' in h).toBe(false);
    }
    const none = reader.read(encode(envoyRequest({ headers: { 'x-tenant': 't' } }))).http!.headers!;
    expect([none['constructor'], none['toString' as string]]).toEqual([undefined, undefined]);
  });

  it('names only the wanted headers and never takes a key from the prototype', () => {
    const reader = new CheckRequestReader('constructor', ['__proto__', 'x-tenant']);
    const b = encode(envoyRequest({ headers: { 'x-tenant': 't', 'x-unwanted': 'u' } }));
    const r = reader.read(b);
    expect(r.provider).toBeUndefined();
    expect({ ...r.http!.headers }).toEqual({ 'x-tenant': 't' });
  });

  it('agrees with the full decode on mutated and random bytes whenever both accept them, and otherwise throws only MalformedRequestError', () => {
    const g = new Gen(prng(seed ^ 0x5eed));
    const base = Array.from({ length: 50 }, () => encode(generated(g)));
    let rejected = 0;
    for (let i = 0; i < 6_000; i++) {
      const b = g.chance(0.1) ? g.bytes(g.int(200)) : mutate(g, g.pick(base));
      const r = tryRead(withRoutes, b);
      if (r instanceof MalformedRequestError) {
        rejected++;
        expect(r.code).toBe('ERR_MALFORMED_REQUEST');
        continue;
      }
      let d: Decoded;
      try {
        d = decode(b);
      } catch {
        continue; // the reader skipped garbage inside a field it does not read: fine
      }
      expect(actual(r), `mutation ${i}: ${b.toString('base64')}`).toEqual(expected(d, 'provider', WANTED));
      expect(actual(remembering.read(b)), `mutation ${i} (remembering): ${b.toString('base64')}`).toEqual(expected(d, 'provider', WANTED));
    }
    expect(rejected).toBeGreaterThan(100);
  });

  const malformed: [string, Buffer][] = [
    ['a truncated varint tag', Buffer.from([0x8a])],
    ['a truncated length', Buffer.from([0x0a, 0x80])],
    ['a length past the end', Buffer.concat([tag(1, 2), varint(50), Buffer.alloc(10)])],
    ['a length past its enclosing message', len(1, Buffer.concat([tag(10, 2), varint(30), Buffer.alloc(5)]))],
    ['a huge length', Buffer.concat([tag(1, 2), Buffer.from([0xff, 0xff, 0xff, 0xff, 0x0f])])],
    ['a varint over 32 bits as a length', Buffer.concat([tag(1, 2), Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0x01])])],
    ['a varint over 10 bytes', Buffer.concat([tag(2000, 0), Buffer.alloc(11, 0xff), Buffer.from([0x01])])],
    ['attributes with the wrong wire type', Buffer.concat([tag(1, 0), varint(5)])],
    ['context_extensions with the wrong wire type', len(1, Buffer.concat([tag(10, 5), Buffer.alloc(4)]))],
    ['a map key with the wrong wire type', len(1, len(10, Buffer.concat([tag(1, 0), varint(1)])))],
    ['field number 0', Buffer.from([0x02, 0x00])],
    ['wire type 6', Buffer.concat([tag(5, 6)])],
    ['wire type 7', Buffer.concat([tag(5, 7)])],
    ['a group end without a start', Buffer.concat([tag(2000, 4)])],
    ['a group end that does not match', Buffer.concat([tag(2000, 3), tag(2001, 4)])],
    ['an unterminated group', Buffer.concat([tag(2000, 3), tag(2001, 0), varint(1)])],
    ['a truncated fixed64', Buffer.concat([tag(2000, 1), Buffer.alloc(3)])],
    ['a truncated fixed32', Buffer.concat([tag(2000, 5), Buffer.alloc(2)])],
    ['a truncated header entry inside http', len(1, len(4, len(2, len(3, Buffer.from([0x0a, 0x09, 0x78]))))) ],
  ];
  for (const [what, bytes] of malformed) {
    it(`rejects ${what} with MalformedRequestError`, () => {
      expect(() => withRoutes.read(bytes)).toThrow(MalformedRequestError);
    });
  }

  it('rejects groups nested past the limit without recursing, and skips ones within it', () => {
    const nest = (depth: number): Buffer => {
      const open: Buffer[] = [];
      const close: Buffer[] = [];
      for (let i = 0; i < depth; i++) {
        open.push(tag(2000 + (i % 100), 3));
        close.push(tag(2000 + (i % 100), 4));
      }
      return Buffer.concat([...open, ...close.reverse()]);
    };
    const ok = Buffer.concat([nest(MAX_GROUP_DEPTH), encode(envoyRequest({ contextExtensions: { provider: 'p' } }))]);
    expect(withRoutes.read(ok).provider).toBe('p');
    expect(() => withRoutes.read(nest(MAX_GROUP_DEPTH + 1))).toThrow(MalformedRequestError);
    // deep enough that a recursive skipper would overflow the stack
    expect(() => withRoutes.read(nest(200_000))).toThrow(MalformedRequestError);
    // inside a nested message too
    expect(() => withRoutes.read(len(1, len(4, nest(100_000))))).toThrow(MalformedRequestError);
  });

  it('reads the empty message as "nothing named"', () => {
    expect(actual(withRoutes.read(Buffer.alloc(0)))).toEqual({ provider: undefined, http: undefined });
  });
});
