// Seeded fuzzing of the Check endpoint: random bytes and mutated encodings as raw gRPC messages
// (malformed protobuf), and structurally valid requests with random field values. Every call must
// be answered (a CheckResponse, or INTERNAL for bytes that do not decode), no handler may fail
// unexpectedly, and afterwards a normal Check still gets the right answer.
//
// Reproduce a failure with TOKENGATE_FUZZ_SEED=<seed printed on failure>.
import { randomInt } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { startTestApp, type TestApp } from '../support/app.js';
import { CheckClient, envoyRequest, injected, type CheckResponse } from '../support/envoy-request.js';
import { RawCheckClient, encodeCheckRequest, type RawOutcome } from './support/raw-check.js';

const TOKEN = 'fuzz-static-bearer-token';
const API_KEY = 'fuzz-static-api-key';
const ATTACKER = 'ATTACKER';
const COUNTS = { random: 1_200, mutated: 1_600, structured: 1_200 };
const CONCURRENCY = 48;
/** Generous: a loaded 2-core CI box queues calls; only a hang (or a dead server) should trip it. */
const DEADLINE_MS = 20_000;

/** mulberry32: small, fast, good enough to drive a fuzzer reproducibly. */
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
  /** Strings with the characters that break naive code: controls, separators, surrogates, long runs. */
  str(maxLen = 40): string {
    const alphabet = ['a', 'Z', '0', '-', '_', ':', '/', '.', '*', ',', ' ', '\t', '\r', '\n', '\u0000', '\u007f', '\u00e9', '\u202e', '\ud83d\ude00', '\ud800', '%', '"', '\\', '{', '}', '$', '='];
    if (this.chance(0.05)) return this.pick(['', '__proto__', 'constructor', 'toString', 'provider', 'authorization', ATTACKER]);
    if (this.chance(0.03)) return this.pick(alphabet).repeat(1 + this.int(5_000));
    let s = '';
    const n = this.int(maxLen);
    for (let i = 0; i < n; i++) s += this.pick(alphabet);
    return s;
  }
}

const HEADER_NAMES = ['authorization', 'Authorization', 'AUTHORIZATION', 'x-api-key', 'X-Api-Key', 'x-tenant', 'host', ':authority', ':path', ':method', 'cookie', 'provider'];
const AUTHORITIES = ['api.example.com', 'API.EXAMPLE.COM:443', 'a.keys.example', 'keys.example', '[::1]:80', 'api.example.com.', ''];

function structured(g: Gen): Record<string, unknown> {
  const headers: Record<string, string> = {};
  const n = g.int(12);
  for (let i = 0; i < n; i++) {
    const k = g.chance(0.5) ? g.pick(HEADER_NAMES) : g.str(20);
    headers[k] = g.chance(0.3) ? `Bearer ${ATTACKER}${g.str(10)}` : g.str();
  }
  const req = envoyRequest({
    authority: g.chance(0.6) ? g.pick(AUTHORITIES) : g.str(),
    path: g.chance(0.5) ? g.pick(['/v1/x', '/v1/', '/v2', '/']) + g.str(10) : g.str(),
    method: g.chance(0.7) ? g.pick(['GET', 'POST', 'get', 'DELETE']) : g.str(8),
    headers,
    // context_extensions come from Envoy's route config, not from the client: a provider name
    // is echoed in the unknown_provider answer by design, so it carries no client marker here.
    ...(g.chance(0.3) ? { contextExtensions: g.chance(0.6) ? { provider: g.pick(['st', 'key', '', 'nope', g.str().replaceAll(ATTACKER, 'a')]) } : { [g.str(10)]: g.str() } } : {}),
  }) as { attributes: Record<string, any> };
  // Drop or blank parts of the structure now and then.
  const http = req.attributes.request.http as Record<string, unknown>;
  for (const f of ['host', 'path', 'method', 'headers', 'id', 'scheme']) if (g.chance(0.1)) delete http[f];
  if (g.chance(0.05)) delete req.attributes.request;
  if (g.chance(0.03)) return {};
  return req;
}

function mutate(g: Gen, buf: Buffer): Buffer {
  let b = Buffer.from(buf);
  const rounds = 1 + g.int(3);
  for (let r = 0; r < rounds; r++) {
    const at = b.length ? g.int(b.length) : 0;
    switch (g.int(7)) {
      case 0: // flip a bit
        if (b.length) b[at] = b[at]! ^ (1 << g.int(8));
        break;
      case 1: // random byte
        if (b.length) b[at] = g.int(256);
        break;
      case 2: // truncate
        b = b.subarray(0, at);
        break;
      case 3: // insert random bytes
        b = Buffer.concat([b.subarray(0, at), g.bytes(1 + g.int(16)), b.subarray(at)]);
        break;
      case 4: // duplicate a slice
        b = Buffer.concat([b.subarray(0, at), b.subarray(at, at + g.int(64)), b.subarray(at)]);
        break;
      case 5: // delete a slice
        b = Buffer.concat([b.subarray(0, at), b.subarray(at + 1 + g.int(32))]);
        break;
      case 6: // an overlong / huge varint
        b = Buffer.concat([b.subarray(0, at), Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]), b.subarray(at)]);
        break;
    }
  }
  return b;
}

/** What any answer must look like, whatever the request was. */
function checkAnswer(res: CheckResponse, what: string): void {
  const code = res.status?.code ?? 0;
  expect([0, 7, 13, 14], `${what}: status ${code}`).toContain(code);
  const headers = res.ok_response?.headers ?? [];
  expect(headers.length, `${what}: more than one injected header`).toBeLessThanOrEqual(1);
  for (const h of headers) {
    expect([`authorization=Bearer ${TOKEN}`, `x-api-key=${API_KEY}`], `${what}: injected ${h.header?.key}`).toContain(`${h.header?.key}=${h.header?.value}`);
    expect(h.append?.value).toBe(false);
    expect(h.append_action).toBe('OVERWRITE_IF_EXISTS_OR_ADD');
  }
  expect(JSON.stringify(res).includes(ATTACKER), `${what}: the answer echoes client input`).toBe(false);
}

describe('Check fuzzing', () => {
  let t: TestApp;
  let raw: RawCheckClient[];
  let client: CheckClient;
  const seed = Number(process.env.TOKENGATE_FUZZ_SEED ?? randomInt(2 ** 31));

  beforeAll(async () => {
    t = await startTestApp(`
listen: { grpc: 127.0.0.1:0, admin: "off" }
providers:
  st:
    source: { type: static, token: "\${env:TOKEN}" }
  key:
    source: { type: static, token: "\${env:API_KEY}" }
    inject: { header: x-api-key, format: "{token}" }
routes:
  - match: { authority: api.example.com, pathPrefix: /v1/ }
    provider: st
  - match: { authority: "*.keys.example", method: GET }
    provider: key
  - match: { headers: { x-tenant: blue } }
    provider: st
`, { env: { TOKEN, API_KEY } });
    raw = [new RawCheckClient(t.app.grpcAddress), new RawCheckClient(t.app.grpcAddress)];
    client = new CheckClient(t.app.grpcAddress);
  });
  afterAll(async () => {
    for (const r of raw ?? []) r.close();
    client?.close();
    await t?.close();
  });

  it('answers thousands of random, mutated and random-valued CheckRequests, then a normal Check correctly', async () => {
    onTestFailed(() => {
      console.error(`fuzz seed: ${seed} (rerun with TOKENGATE_FUZZ_SEED=${seed})`);
    });
    const g = new Gen(prng(seed));
    const started = performance.now();
    const tally: Record<string, number> = {};
    const count = (k: string) => (tally[k] = (tally[k] ?? 0) + 1);
    const unhandled: unknown[] = [];
    const onUnhandled = (e: unknown) => unhandled.push(e);
    process.on('unhandledRejection', onUnhandled);

    const rawOutcome = (o: RawOutcome, what: string) => {
      if (o.ok) {
        checkAnswer(o.response, what);
        count(`${what}: answered ${o.response.status?.code ?? 0}`);
      } else {
        // Bytes that do not decode are refused by the server: INTERNAL, never a hang or a reset.
        expect(o.code, `${what}: ${o.code} ${o.details}`).toBe(grpc.status.INTERNAL);
        count(`${what}: refused`);
      }
    };

    // Jobs are generated up front from the seed so the same seed replays the same requests.
    type Job = () => Promise<void>;
    const jobs: Job[] = [];
    for (let i = 0; i < COUNTS.random; i++) {
      const bytes = g.bytes(g.chance(0.9) ? g.int(512) : g.int(64 * 1024));
      const r = raw[i % 2]!;
      jobs.push(async () => rawOutcome(await r.send(bytes, DEADLINE_MS), 'random'));
    }
    for (let i = 0; i < COUNTS.mutated; i++) {
      const bytes = mutate(g, encodeCheckRequest(structured(g)));
      const r = raw[i % 2]!;
      jobs.push(async () => rawOutcome(await r.send(bytes, DEADLINE_MS), 'mutated'));
    }
    for (let i = 0; i < COUNTS.structured; i++) {
      const req = structured(g);
      jobs.push(async () => {
        let res: CheckResponse;
        try {
          res = await client.check(req, DEADLINE_MS);
        } catch (err) {
          throw new Error(`structured: a valid request got a gRPC error ${(err as grpc.ServiceError).code}: ${(err as Error).message}`);
        }
        checkAnswer(res, 'structured');
        count(`structured: answered ${res.status?.code ?? 0}`);
      });
    }
    // Shuffle (seeded) so the kinds interleave on the wire.
    for (let i = jobs.length - 1; i > 0; i--) {
      const j = g.int(i + 1);
      [jobs[i], jobs[j]] = [jobs[j]!, jobs[i]!];
    }
    let next = 0;
    const worker = async () => {
      while (next < jobs.length) await jobs[next++]!();
    };
    try {
      await Promise.all(Array.from({ length: CONCURRENCY }, worker));
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
    const seconds = ((performance.now() - started) / 1000).toFixed(1);
    console.log(`fuzz seed ${seed}: ${jobs.length} requests in ${seconds}s`, tally);

    expect(unhandled).toEqual([]);
    // The handler never hit its "unexpected" branch: every input took a deliberate path.
    expect(t.logs.filter((l) => l.includes('Check failed unexpectedly'))).toEqual([]);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    // Some of each kind must have got through to the handler, or the fuzzer is not fuzzing.
    expect(Object.keys(tally).some((k) => k.startsWith('mutated: answered'))).toBe(true);
    expect(Object.keys(tally).some((k) => k.startsWith('random: refused'))).toBe(true);

    const res = await client.check(envoyRequest({ authority: 'api.example.com', path: '/v1/things', headers: { authorization: `Bearer ${ATTACKER}` } }));
    expect(res.status?.code ?? 0).toBe(0);
    expect(injected(res)?.header?.value).toBe(`Bearer ${TOKEN}`);
    const keyed = await client.check(envoyRequest({ authority: 'a.keys.example', headers: { 'x-api-key': ATTACKER } }));
    expect(injected(keyed, 'x-api-key')?.header?.value).toBe(API_KEY);
  }, 120_000);
});
