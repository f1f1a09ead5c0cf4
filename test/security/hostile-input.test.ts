// Hostile CheckRequests: oversized, compressed bombs, deep nesting, huge/many/strange headers.
// Each is answered or refused deliberately, the server keeps serving, and a normal caller on
// its own connection keeps getting answers while the hostile ones run (its latency is printed,
// never asserted: wall-clock limits make flaky tests on a busy 2-core machine).
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GRPC_SERVER_OPTIONS } from '../../src/app.js';
import { startTestApp, type TestApp } from '../support/app.js';
import { CheckClient, deniedBody, envoyRequest, injected, type CheckResponse } from '../support/envoy-request.js';
import { RawCheckClient, deeplyNestedCheckRequest, encodeCheckRequest, patchBytes, type RawOutcome } from './support/raw-check.js';

const TOKEN = 'hostile-input-static-token';
/** Generous deadlines: a loaded 2-core box queues calls; only a hang should trip them. */
const DEADLINE_MS = 20_000;

type Patient = Pick<CheckClient, 'check' | 'close'>;
function patient(c: CheckClient): Patient {
  return { check: (req) => c.check(req, DEADLINE_MS), close: () => c.close() };
}
const MAX = GRPC_SERVER_OPTIONS['grpc.max_receive_message_length'] as number;

const routed = (headers: Record<string, string> = {}) => envoyRequest({ authority: 'api.example.com', headers });

function expectInjected(res: CheckResponse): void {
  expect(res.status?.code ?? 0).toBe(0);
  expect(injected(res)?.header?.value).toBe(`Bearer ${TOKEN}`);
}

function manyHeaders(n: number, valueSize: number): Record<string, string> {
  const h: Record<string, string> = {};
  const v = 'v'.repeat(valueSize);
  for (let i = 0; i < n; i++) h[`x-h-${i}`] = v;
  return h;
}

/** Placeholders patched into invalid UTF-8 after encoding (same byte length). */
const BAD_KEY = 'BADKEY01';
const BAD_VALUE = 'BADVALUE';
const BAD_HOST = 'BADHOST1';
const INVALID_UTF8 = Buffer.from([0xff, 0xfe, 0xc3, 0x28, 0xa0, 0xa1, 0xed, 0xa0]); // bad lead bytes, broken and surrogate sequences

function nonUtf8Request(): Buffer {
  const req = routed({ [BAD_KEY]: 'x', 'x-bad': BAD_VALUE, authorization: `Bearer ${BAD_VALUE}` });
  let buf = encodeCheckRequest(req);
  buf = patchBytes(buf, BAD_KEY, INVALID_UTF8);
  return patchBytes(buf, BAD_VALUE, INVALID_UTF8);
}

function nonUtf8HostRequest(): Buffer {
  return patchBytes(encodeCheckRequest(envoyRequest({ authority: `${BAD_HOST}.example.com` })), BAD_HOST, INVALID_UTF8);
}

describe('hostile CheckRequests', () => {
  let t: TestApp;
  let normal: Patient;
  let hostile: Patient;
  let raw: RawCheckClient;

  beforeAll(async () => {
    t = await startTestApp(`
listen: { grpc: 127.0.0.1:0, admin: "off" }
providers:
  st:
    source: { type: static, token: "\${env:TOKEN}" }
routes:
  - match: { authority: api.example.com }
    provider: st
`, { env: { TOKEN } });
    // Separate connections: the hostile traffic must not share the normal caller's channel.
    normal = patient(new CheckClient(t.app.grpcAddress, undefined, { 'grpc.use_local_subchannel_pool': 1 }));
    hostile = patient(new CheckClient(t.app.grpcAddress, undefined, { 'grpc.use_local_subchannel_pool': 1 }));
    raw = new RawCheckClient(t.app.grpcAddress, { 'grpc.use_local_subchannel_pool': 1 });
  });
  afterAll(async () => {
    normal?.close();
    hostile?.close();
    raw?.close();
    await t?.close();
  });

  it('a CheckRequest above max_receive_message_length gets RESOURCE_EXHAUSTED, and the server keeps serving', async () => {
    expect(MAX).toBe(4 * 1024 * 1024);
    const err = await hostile.check(routed({ 'x-big': 'a'.repeat(MAX + 1024) })).then(() => undefined, (e: grpc.ServiceError) => e);
    expect(err?.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    expectInjected(await hostile.check(routed()));
    expectInjected(await normal.check(routed()));
  });

  it('a gzip-compressed request that inflates past the limit gets RESOURCE_EXHAUSTED (no decompression bomb)', async () => {
    const gzip = patient(new CheckClient(t.app.grpcAddress, undefined, { 'grpc.default_compression_algorithm': 2, 'grpc.use_local_subchannel_pool': 1 }));
    try {
      const err = await gzip.check(routed({ 'x-zeros': 'a'.repeat(4 * MAX) })).then(() => undefined, (e: grpc.ServiceError) => e);
      expect(err?.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
      expectInjected(await gzip.check(routed())); // compression itself is fine
    } finally {
      gzip.close();
    }
  });

  // The request reader skips metadata_context by its length and never decodes the Struct, so
  // nothing recurses on its depth; the Check is answered for what it names (nothing: unmatched).
  it('a deeply nested Struct in metadata_context is skipped unread (answered, no stack overflow)', async () => {
    const out = await raw.send(deeplyNestedCheckRequest(200_000));
    expect(out).toMatchObject({ ok: true });
    if (out.ok) expect(injected(out.response)).toBeUndefined();
    expectInjected(await normal.check(routed()));
  });

  it('a deeply nested Struct before a routed request does not keep it from its answer', async () => {
    // Two attributes messages on the wire: the last one wins, as in a full decode.
    const out = await raw.send(Buffer.concat([deeplyNestedCheckRequest(200_000), encodeCheckRequest(routed())]));
    expect(out.ok && injected(out.response)?.header?.value).toBe(`Bearer ${TOKEN}`);
  });

  it('huge, many and strange headers are each answered deliberately', async () => {
    const cases: [string, () => Promise<CheckResponse>, (r: CheckResponse) => void][] = [
      ['10 000 headers', () => hostile.check(routed(manyHeaders(10_000, 8))), expectInjected],
      ['a 1 MB header map', () => hostile.check(routed(manyHeaders(100, 10 * 1024))), expectInjected],
      ['a 100 KB header value (authorization)', () => hostile.check(routed({ authorization: `Bearer ${'z'.repeat(100 * 1024)}` })), expectInjected],
      ['a 100 KB header name', () => hostile.check(routed({ [`x-${'n'.repeat(100 * 1024)}`]: 'v' })), expectInjected],
      ['control characters in names and values', () => hostile.check(routed({ 'x-ctl\u0000\r\n': '\u0000\u0001\r\nx-injected: yes\u007f\u001b[2J', 'x-nul': '\u0000'.repeat(64) })), expectInjected],
      ['unicode oddities', () => hostile.check(routed({ 'x-bidi': '\u202e\u2066evil\u2069', 'x-emoji': '\ud83d\ude00'.repeat(1000), 'x-lone': '\ud800' })), expectInjected],
      ['a 1 MB path', () => hostile.check(envoyRequest({ authority: 'api.example.com', path: `/${'p'.repeat(1024 * 1024)}` })), expectInjected],
      ['a 1 MB authority (unmatched: allowed without a credential)', () => hostile.check(envoyRequest({ authority: `${'h'.repeat(1024 * 1024)}.example.com` })), (r) => {
        expect(r.status?.code ?? 0).toBe(0);
        expect(injected(r)).toBeUndefined();
      }],
      ['context_extensions with a 1 MB provider name (unknown provider: 500, name clipped)', () => hostile.check(envoyRequest({ contextExtensions: { provider: 'P'.repeat(1024 * 1024) } })), (r) => {
        expect(r.status?.code).toBe(grpc.status.INTERNAL);
        expect(r.denied_response?.status?.code).toBe('InternalServerError');
        const body = deniedBody(r);
        expect(body.error).toBe('unknown_provider');
        expect(String(body.provider).length).toBeLessThanOrEqual(128);
        expect(JSON.stringify(r).length).toBeLessThan(2_000);
      }],
      ['10 000 context_extensions', () => hostile.check(envoyRequest({ authority: 'api.example.com', contextExtensions: manyHeaders(10_000, 8) })), expectInjected],
      // JSON.parse makes `__proto__` an own key, as a decoder would meet it on the wire.
      ['prototype-named keys', () => hostile.check(envoyRequest({
        authority: 'api.example.com',
        headers: JSON.parse('{"__proto__":"x","constructor":"x","toString":"x","hasOwnProperty":"x","polluted":"x"}') as Record<string, string>,
        contextExtensions: JSON.parse('{"__proto__":"x","constructor":"y"}') as Record<string, string>,
      })), expectInjected],
      ['a provider name that is an Object.prototype key', () => hostile.check(envoyRequest({ contextExtensions: { provider: 'constructor' } })), (r) => {
        expect(deniedBody(r)).toMatchObject({ error: 'unknown_provider', provider: 'constructor' });
      }],
    ];
    for (const [name, send, check] of cases) {
      let res: CheckResponse;
      try {
        res = await send();
      } catch (err) {
        throw new Error(`${name}: the call failed (${(err as grpc.ServiceError).code} ${(err as Error).message})`);
      }
      try {
        check(res);
      } catch (err) {
        throw new Error(`${name}: ${(err as Error).message}`);
      }
    }
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  }, 60_000);

  it('invalid UTF-8 in header names, values and the authority is answered, not a crash', async () => {
    const a = await raw.send(nonUtf8Request());
    expect(a.ok).toBe(true);
    expectInjected((a as Extract<RawOutcome, { ok: true }>).response);
    const b = await raw.send(nonUtf8HostRequest());
    expect(b.ok).toBe(true);
    expect((b as Extract<RawOutcome, { ok: true }>).response.status?.code ?? 0).toBe(0);
  });

  it('while hostile requests run, a normal caller keeps getting the right answer', async () => {
    const latencies: number[] = [];
    let stop = false;
    const normalLoop = (async () => {
      while (!stop) {
        const t0 = performance.now();
        expectInjected(await normal.check(routed()));
        latencies.push(performance.now() - t0);
      }
    })();
    const hostileBatch = async () => {
      const work: Promise<unknown>[] = [];
      for (let i = 0; i < 4; i++) {
        work.push(hostile.check(routed(manyHeaders(10_000, 8))));
        work.push(hostile.check(routed(manyHeaders(100, 10 * 1024))));
        work.push(hostile.check(envoyRequest({ contextExtensions: { provider: 'P'.repeat(1024 * 1024) } })));
        work.push(hostile.check(routed({ 'x-big': 'a'.repeat(MAX + 1) })).catch((e: grpc.ServiceError) => expect(e.code).toBe(grpc.status.RESOURCE_EXHAUSTED)));
        work.push(raw.send(deeplyNestedCheckRequest(50_000)));
        work.push(raw.send(nonUtf8Request()));
      }
      await Promise.all(work);
    };
    const baselineStart = performance.now();
    for (let i = 0; i < 20; i++) expectInjected(await normal.check(routed()));
    const baseline = (performance.now() - baselineStart) / 20;
    try {
      await hostileBatch();
      await hostileBatch();
    } finally {
      stop = true;
      await normalLoop;
    }
    expect(latencies.length).toBeGreaterThan(0);
    const sorted = [...latencies].sort((x, y) => x - y);
    const p = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!.toFixed(1);
    console.log(`normal Check under hostile load: n=${sorted.length} baseline≈${baseline.toFixed(1)}ms p50=${p(0.5)}ms p99=${p(0.99)}ms max=${p(1)}ms`);
    expectInjected(await normal.check(routed()));
  }, 90_000);
});
