// The per-caller cache at the token layer: LRU and byte bounds, refresh ahead only for callers
// still calling, backoff after a failed exchange, and 100 000 distinct callers within bounds.
// A transport function stands in for the network where the point is volume, not the wire.
import v8 from 'node:v8';
import vm from 'node:vm';
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../../src/clock.js';
import { parseConfig } from '../../../src/config/load.js';
import { Metrics } from '../../../src/observability/metrics.js';
import { createLogger, silentLogger, type Logger } from '../../../src/observability/logger.js';
import { RetryAfterGate } from '../../../src/resilience/retry-after-gate.js';
import type { HttpRequest, HttpResponse } from '../../../src/tokens/http/transport.js';
import { PerCallerProvider } from '../../../src/tokens/per-caller/per-caller-provider.js';
import { SharedCallers } from '../../../src/tokens/per-caller/shared-callers.js';
import { MemoryStore } from '../../../src/store/memory-store.js';

function provider(cache: string, opts: { clock?: ManualClock; refresh?: string; verify?: string; logger?: Logger; transport: (req: HttpRequest) => Promise<HttpResponse> }) {
  const config = parseConfig(`
providers:
  p:
    source:
      type: token_exchange
      tokenUrl: http://127.0.0.1:9/token
      clientId: gw
      clientSecret: s
      audience: https://api.example
      subjectToken: { request: { header: authorization }${opts.verify ? `, verify: ${opts.verify}` : ''} }
    cache: { ${cache} }
    refresh: { ${opts.refresh ?? 'waitBudget: 5s'} }
    resilience: { retries: 0 }
`, { env: {} }).providers.get('p')!;
  const metrics = new Metrics();
  const clock = opts.clock ?? new ManualClock(Date.now());
  return { p: new PerCallerProvider(config, { clock, gate: new RetryAfterGate(), logger: opts.logger ?? silentLogger, metrics, transport: opts.transport }), metrics, clock };
}

/** An IdP answering at once: the exchanged token names the subject it was issued for. */
function fastIdp(expiresIn = 3600, record = true) {
  const seen: string[] = [];
  let count = 0;
  let fail: number | undefined;
  const transport = async (req: HttpRequest): Promise<HttpResponse> => {
    const subject = new URLSearchParams(req.body).get('subject_token')!;
    count++;
    if (record) seen.push(subject);
    if (fail) return { status: fail, headers: {}, body: '{"error":"temporarily_unavailable"}' };
    return { status: 200, headers: { 'content-type': 'application/json' }, body: JSON.stringify({ access_token: `x.${subject}`, token_type: 'Bearer', expires_in: expiresIn, issued_token_type: 'urn:ietf:params:oauth:token-type:access_token' }) };
  };
  return { transport, seen, count: () => count, setFail: (s: number | undefined) => (fail = s) };
}

const bearer = (s: string) => `Bearer ${s}`;

/** A real collection before a heap reading, so the reading is what is retained. */
function retainedHeap(): number {
  v8.setFlagsFromString('--expose-gc');
  const gc = vm.runInNewContext('gc') as () => void;
  gc();
  gc();
  return process.memoryUsage().heapUsed;
}

describe('per-caller cache', () => {
  it('evicts the least recently used caller at maxEntries', async () => {
    const idp = fastIdp();
    const { p, metrics } = provider('maxEntries: 2', idp);
    const now = () => Date.now();
    for (const c of ['a1', 'b1']) expect((await p.acquire(bearer(c))).kind).toBe('token');
    expect(p.lookup(bearer('a1'), now())).toBeDefined(); // a1 is now the most recent
    await p.acquire(bearer('c1')); // evicts b1
    expect(p.size).toBe(2);
    expect(p.lookup(bearer('b1'), now())).toBeUndefined();
    expect(p.lookup(bearer('a1'), now())).toBeDefined();
    expect(p.lookup(bearer('c1'), now())).toBeDefined();
    expect(metrics.exchangeCacheEvictions.get({ provider: 'p' })).toBe(1);
    await p.close();
  });

  it('holds the byte bound whatever the token sizes', async () => {
    const idp = fastIdp();
    const { p } = provider('maxEntries: 100000, maxBytes: 65536', idp);
    for (let i = 0; i < 200; i++) await p.acquire(bearer(`caller${i}${'A'.repeat(2000)}`));
    const s = p.status();
    expect(s.approximateBytes).toBeLessThanOrEqual(65536);
    expect(s.entries).toBeGreaterThan(3);
    expect(s.entries).toBeLessThan(200);
    await p.close();
  });

  it('a forged, longer or shorter token never finds another caller\'s entry', async () => {
    const idp = fastIdp();
    const { p } = provider('maxEntries: 10', idp);
    const got = await p.acquire(bearer('alicetoken'));
    expect(got.kind === 'token' && got.entry.accessToken).toBe('x.alicetoken');
    for (const other of ['alicetoke', 'alicetokenX', 'ALICETOKEN']) expect(p.lookup(bearer(other), Date.now())).toBeUndefined();
    expect(p.lookup(`bearer alicetoken`, Date.now())?.accessToken).toBe('x.alicetoken'); // scheme is case-insensitive
    await p.close();
  });

  it('refreshes ahead only for callers still calling', async () => {
    const idp = fastIdp(1200);
    const clock = new ManualClock(Date.now());
    const { p } = provider('maxEntries: 10', { ...idp, clock, refresh: 'waitBudget: 5s, before: 5m, jitter: 0' });
    await p.acquire(bearer('active'));
    await p.acquire(bearer('idle'));
    expect(idp.seen).toEqual(['active', 'idle']);
    clock.advance(16 * 60_000); // inside the refresh window of both
    expect(p.lookup(bearer('active'), clock.now())).toBeDefined(); // serves and starts one refresh
    expect(p.lookup(bearer('active'), clock.now())).toBeDefined(); // no second one
    await new Promise((r) => setTimeout(r, 50));
    expect(idp.seen).toEqual(['active', 'idle', 'active']);
    await p.close();
  });

  it('after a failed exchange the caller is answered 503 from memory for a moment, then tried again', async () => {
    const idp = fastIdp();
    const clock = new ManualClock(Date.now());
    const { p } = provider('maxEntries: 10', { ...idp, clock });
    idp.setFail(503);
    expect((await p.acquire(bearer('x'))).kind).toBe('unavailable');
    expect((await p.acquire(bearer('x'))).kind).toBe('unavailable');
    expect(idp.seen).toHaveLength(1);
    clock.advance(2_500);
    idp.setFail(undefined);
    expect((await p.acquire(bearer('x'))).kind).toBe('token');
    expect(idp.seen).toHaveLength(2);
    await p.close();
  });

  it('100 000 distinct callers: entries and bytes stay within the configured bound, the newest are served', async () => {
    const idp = fastIdp(3600, false);
    const { p, metrics } = provider('maxEntries: 20000, maxBytes: 8388608', idp);
    const heapBefore = retainedHeap();
    for (let i = 0; i < 100_000; i += 500) {
      await Promise.all(Array.from({ length: 500 }, (_, j) => p.acquire(bearer(`caller-${i + j}-${'t'.repeat(300)}`))));
    }
    const s = p.status();
    expect(s.entries).toBeLessThanOrEqual(20_000);
    expect(s.approximateBytes).toBeLessThanOrEqual(8 * 1024 * 1024);
    expect(s.evictions).toBe(100_000 - s.entries);
    expect(metrics.exchanges.get({ provider: 'p', outcome: 'issued' })).toBe(100_000);
    expect(idp.count()).toBe(100_000);
    expect(p.lookup(bearer(`caller-99999-${'t'.repeat(300)}`), Date.now())).toBeDefined();
    expect(p.lookup(bearer(`caller-0-${'t'.repeat(300)}`), Date.now())).toBeUndefined();
    // What stays after a collection follows the bound, not the number of callers seen.
    const retained = retainedHeap() - heapBefore;
    expect(retained).toBeLessThan(3 * 8 * 1024 * 1024);
    await p.close();
  }, 120_000);
});

describe('verify refusals before any signature check', () => {
  const jwt = (header: object, claims: object) =>
    `${Buffer.from(JSON.stringify(header)).toString('base64url')}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.c2ln`;

  it('a verify.issuer that differs from what the IdP writes (a trailing slash) says so in the log, at most once a minute per check', async () => {
    const lines: string[] = [];
    const clock = new ManualClock(Date.now());
    const idp = fastIdp();
    const { p } = provider('maxEntries: 10', {
      clock, transport: idp.transport, logger: createLogger({ level: 'info', sink: (l) => lines.push(l) }),
      verify: '{ issuer: "https://idp.example/", audience: gateway, jwksUri: "http://127.0.0.1:9/jwks", algorithms: [ES256] }',
    });
    const exp = Math.floor(clock.now() / 1000) + 600;
    const caller = (n: number) => bearer(jwt({ alg: 'ES256', kid: 'k' }, { iss: 'https://idp.example', aud: 'gateway', sub: `u${n}`, exp }));
    const notices = () => lines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.check !== undefined);

    expect(await p.acquire(caller(1))).toEqual({ kind: 'invalid_subject', reason: 'verify_failed' });
    expect(await p.acquire(caller(2))).toEqual({ kind: 'invalid_subject', reason: 'verify_failed' });
    expect(notices()).toEqual([expect.objectContaining({ provider: 'p', check: 'issuer', configured: 'https://idp.example/', token_claim: '"https://idp.example"' })]);
    // Another check speaks on its own; the same check again only after a minute.
    await p.acquire(bearer(jwt({ alg: 'none' }, { iss: 'https://idp.example/', aud: 'gateway', exp })));
    expect(notices().map((n) => n.check)).toEqual(['issuer', 'algorithm']);
    clock.advance(61_000);
    await p.acquire(caller(3));
    expect(notices().map((n) => n.check)).toEqual(['issuer', 'algorithm', 'issuer']);
    expect(idp.count()).toBe(0);
    expect(lines.join('\n')).not.toContain('c2ln');
    await p.close();
  });
});

describe('per-caller tokens shared across replicas (cache.shared)', () => {
  // Another replica's refresh is adopted when it is NEWER (obtained later), as the shared-token
  // providers' isBetter and the store's fenced write judge it, not when it expires later: an
  // IdP that shortens lifetimes (30 s → 10 s) issues a newer token expiring before ours.
  it('a refresh ahead adopts the newer shared record even when it expires sooner (shortened lifetimes cost no extra exchange)', async () => {
    const clock = new ManualClock(Date.now());
    const store = new MemoryStore(() => clock.now());
    const secret = Buffer.alloc(32, 7);
    let lifetime = 30;
    let issued = 0;
    const exchanged: string[] = [];
    const transport = async (req: HttpRequest): Promise<HttpResponse> => {
      exchanged.push(new URLSearchParams(req.body).get('subject_token')!);
      issued++;
      return { status: 200, headers: { 'content-type': 'application/json' }, body: JSON.stringify({ access_token: `ex${issued}`, token_type: 'Bearer', expires_in: lifetime, issued_token_type: 'urn:ietf:params:oauth:token-type:access_token' }) };
    };
    const config = parseConfig(`
providers:
  p:
    source: { type: token_exchange, tokenUrl: http://127.0.0.1:9/token, clientId: gw, clientSecret: s, audience: https://api.example, subjectToken: { request: { header: authorization } } }
    cache: { maxEntries: 10 }
    refresh: { waitBudget: 5s }
    resilience: { retries: 0 }
`, { env: {} }).providers.get('p')!;
    const replica = (id: string) => new PerCallerProvider(config, {
      clock, gate: new RetryAfterGate(), logger: silentLogger, metrics: new Metrics(), transport, random: () => 0,
      shared: new SharedCallers(store, clock, 'tg:', 'p', 'cfg', secret, id),
    });
    const a = replica('a');
    const b = replica('b');
    const alice = bearer('alice');
    expect((await a.acquire(alice)).kind).toBe('token'); // exchanged: 30 s, refresh due at +15 s
    const first = await b.acquire(alice); // adopted from the store
    expect(first.kind === 'token' && first.entry.accessToken).toBe('ex1');
    expect(exchanged).toHaveLength(1);

    lifetime = 10;
    clock.advance(15_000);
    expect(a.lookup(alice, clock.now())?.accessToken).toBe('ex1'); // starts A's refresh ahead
    await flush(clock);
    expect(exchanged).toHaveLength(2); // ex2: obtained at +15 s, expires at +25 s (before ex1's +30 s)
    expect(a.lookup(alice, clock.now())?.accessToken).toBe('ex2');

    clock.advance(1_000);
    expect(b.lookup(alice, clock.now())?.accessToken).toBe('ex1'); // starts B's refresh ahead
    await flush(clock);
    expect(b.lookup(alice, clock.now())?.accessToken).toBe('ex2');
    expect(exchanged, 'exchanges for alice across both replicas').toHaveLength(2);
    await a.close();
    await b.close();
  });
});

/** Lets every pending promise (and the store's and provider's zero-delay timers) settle. */
async function flush(clock: ManualClock): Promise<void> {
  for (let i = 0; i < 20; i++) {
    await new Promise((r) => setImmediate(r));
    clock.advance(0);
  }
}
