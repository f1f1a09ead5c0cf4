// Regression (issue 14): an upstream's refusal of a per-caller token reached only the replica
// that got Envoy's access log. With cache.shared the other replicas kept serving the refused
// token from memory and the shared record stayed, so a replica started later adopted it again.
// Now the refusal is carried to every replica (evicted there, remembered as refused), the
// shared record is removed if it still holds that token, and all of it happens once per token.
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { envoyRequest, metadata, type CheckResponse } from '../support/envoy-request.js';
import { startTestApp, type TestApp } from '../support/app.js';
import { ExchangeIdp, perCallerSource } from '../support/exchange-idp.js';
import { REDIS_URL, redisAvailable } from '../support/redis.js';
import { RedisServer } from '../support/redis-server.js';
import { until } from '../support/until.js';
import { AccessLogSender, accessLogMessages, httpLogEntry } from '../ops/helpers.js';

const run = await redisAvailable();

describe.skipIf(!run)('per-caller tokens refused upstream, across replicas (cache.shared)', () => {
  let idp: ExchangeIdp;
  let prefix = '';
  const encryptionKey = randomBytes(32).toString('base64');
  let apps: TestApp[] = [];
  let senders: AccessLogSender[] = [];
  let redis: Redis;
  const closers: (() => void)[] = [];

  const yaml = (url = REDIS_URL) => `
listen: { grpc: 127.0.0.1:0, admin: off }
store:
  type: redis
  redis: { url: "${url}", keyPrefix: "${prefix}" }
  encryptionKey: ${encryptionKey}
providers:
  orders:
    source: ${perCallerSource(idp, { scheme: 'Bearer' })}
    cache: { maxEntries: 100, shared: true }
    refresh: { waitBudget: 10s }
    resilience: { retries: 0, timeout: 3s }
`;

  beforeAll(async () => {
    idp = await new ExchangeIdp().start();
    redis = new Redis(REDIS_URL);
  });
  afterEach(async () => {
    for (const c of closers.splice(0)) c();
    for (const s of senders.splice(0)) s.close();
    await Promise.all(apps.splice(0).map((a) => a.close()));
    const keys = await redis.keys(`${prefix}*`);
    if (keys.length) await redis.del(...keys);
    idp.reset();
  });
  afterAll(async () => {
    redis.disconnect();
    await idp?.stop();
  });

  async function replicas(n: number, url = REDIS_URL): Promise<TestApp[]> {
    prefix = `tgtest-pc-refusal-${randomBytes(4).toString('hex')}:`;
    const started = await Promise.all(Array.from({ length: n }, () => startTestApp(yaml(url))));
    apps.push(...started);
    return started;
  }
  async function another(): Promise<TestApp> {
    const t = await startTestApp(yaml());
    apps.push(t);
    return t;
  }
  function envoyLog(t: TestApp): AccessLogSender {
    const s = new AccessLogSender(t.app.grpcAddress);
    senders.push(s);
    return s;
  }
  const check = (t: TestApp, token: string): Promise<CheckResponse> =>
    t.client.check(envoyRequest({ contextExtensions: { provider: 'orders' }, headers: { authorization: `Bearer ${token}` } }));
  const exchangesFor = (token: string): number => idp.received.filter((s) => s === token).length;
  const refusal = (tokenId: string) => httpLogEntry({ status: 401, provider: 'orders', tokenId });
  const cached = (t: TestApp): number => t.app.manager.perCaller('orders')!.size;
  const invalidatedLines = (ts: TestApp[], tokenId: string) => ts.flatMap((t) => t.logs).filter((l) => l.includes('"token.invalidated"') && l.includes(tokenId));

  /** Every message on the replicas' event channel, as parsed JSON. */
  async function channel(): Promise<Record<string, unknown>[]> {
    const sub = new Redis(REDIS_URL);
    const seen: Record<string, unknown>[] = [];
    sub.on('message', (_c: string, m: string) => seen.push(JSON.parse(m) as Record<string, unknown>));
    await sub.subscribe(`${prefix}events`);
    closers.push(() => sub.disconnect());
    return seen;
  }

  it('a 401 reported to one replica evicts the caller on all three; one new exchange in total; the shared record is gone; another caller is untouched', async () => {
    const [r1, r2, r3] = await replicas(3);
    const [alice, bob] = await Promise.all(['alice', 'bob'].map((sub) => idp.subjectToken({ sub })));
    // Alice and bob are served on every replica: one exchange each, the others adopt the record.
    const a1 = metadata(await check(r1!, alice!)).token_id!;
    const b1 = metadata(await check(r1!, bob!)).token_id!;
    for (const r of [r2!, r3!]) {
      expect(metadata(await check(r, alice!)).token_id).toBe(a1);
      expect(metadata(await check(r, bob!)).token_id).toBe(b1);
    }
    expect([exchangesFor(alice!), exchangesFor(bob!)]).toEqual([1, 1]);

    // Envoy in front of replica 2 streams its access log to replica 2 only.
    await envoyLog(r2!).send(accessLogMessages([[refusal(a1)]]));
    await until(() => [r1!, r2!, r3!].every((r) => cached(r) === 1), 5_000, 'alice evicted on every replica');

    // Alice's next Check, on all three at once: one new exchange, the same new token everywhere.
    const next = await Promise.all([r1!, r2!, r3!].map((r) => check(r, alice!)));
    const ids = new Set(next.map((res) => metadata(res).token_id));
    expect(ids.size).toBe(1);
    expect(ids.has(a1)).toBe(false);
    expect(exchangesFor(alice!)).toBe(2);
    // Bob: his token, from every replica's cache, no exchange.
    for (const r of [r1!, r2!, r3!]) expect(metadata(await check(r, bob!))).toMatchObject({ token_id: b1, source: 'cache' });
    expect(exchangesFor(bob!)).toBe(1);
    // One audit line for the refused token, across the three replicas.
    expect(invalidatedLines([r1!, r2!, r3!], a1).map((l) => JSON.parse(l) as Record<string, unknown>))
      .toEqual([expect.objectContaining({ provider: 'orders', token_id: a1, by: 'access_log', upstream_status: 401 })]);
  });

  it('the refused record is removed from Redis: a replica started afterwards never adopts it', async () => {
    const [r1, r2] = await replicas(2);
    const carol = await idp.subjectToken({ sub: 'carol' });
    const c1 = metadata(await check(r1!, carol)).token_id!;
    // Reported to replica 2, which never served carol: replica 1 still knows her record's key.
    await envoyLog(r2!).send(accessLogMessages([[refusal(c1)]]));
    await until(() => cached(r1!) === 0, 5_000, 'carol evicted on replica 1');
    await until(async () => (await redis.keys(`${prefix}*.c.*`)).filter((k) => k.endsWith(':token')).length === 0, 5_000, 'carol\'s shared record removed');
    // A replica that has never heard of the refusal reads the store: nothing there, so it exchanges.
    const r3 = await another();
    const fresh = metadata(await check(r3, carol));
    expect(fresh.token_id).not.toBe(c1);
    expect(exchangesFor(carol)).toBe(2);
    expect(invalidatedLines([r1!, r2!, r3], c1)).toHaveLength(1);
  });

  it('duplicate log entries for one token (batches, several Envoys, late ones) cost one removal and one published invalidation', async () => {
    const [r1, r2, r3] = await replicas(3);
    const dave = await idp.subjectToken({ sub: 'dave' });
    const d1 = metadata(await check(r1!, dave)).token_id!;
    for (const r of [r2!, r3!]) expect(metadata(await check(r, dave)).token_id).toBe(d1);
    const published = await channel();
    // Store commands naming the refused token: the compare-and-delete is the only one.
    const monitor = await redis.monitor();
    closers.push(() => monitor.disconnect());
    const commands: string[][] = [];
    monitor.on('monitor', (_time: string, args: string[]) => {
      if (args.some((a) => a === d1)) commands.push(args);
    });

    await envoyLog(r1!).send(accessLogMessages([[refusal(d1), refusal(d1)], [refusal(d1)]]));
    await until(() => [r1!, r2!, r3!].every((r) => cached(r) === 0), 5_000, 'dave evicted on every replica');
    // The same refusal again, from another Envoy to another replica, and once more later.
    await envoyLog(r3!).send(accessLogMessages([[refusal(d1)]]));
    await envoyLog(r1!).send(accessLogMessages([[refusal(d1)]]));
    await new Promise((r) => setTimeout(r, 300));

    const invalidations = published.filter((e) => e.kind === 'invalidated' && e.token_id === d1);
    expect(invalidations).toHaveLength(1);
    expect(commands.filter((a) => /^eval/i.test(a[0] ?? ''))).toHaveLength(1);
    expect(invalidatedLines([r1!, r2!, r3!], d1)).toHaveLength(1);
    // Still exactly one new exchange for dave, wherever he calls next.
    await Promise.all([r1!, r2!, r3!].map((r) => check(r, dave)));
    expect(exchangesFor(dave)).toBe(2);
  });

  it('a hung Redis delays nothing: the refusal evicts here at once, the caller exchanges on their own, the failures are counted', async () => {
    const server = await RedisServer.start();
    try {
      const [r1] = await replicas(1, server.url);
      const [frank, grace] = await Promise.all(['frank', 'grace'].map((sub) => idp.subjectToken({ sub })));
      const f1 = metadata(await check(r1!, frank!)).token_id!;
      const g1 = metadata(await check(r1!, grace!)).token_id!;
      server.pause();
      await envoyLog(r1!).send(accessLogMessages([[refusal(f1)]]));
      expect(cached(r1!)).toBe(1);
      const fresh = await check(r1!, frank!);
      expect(fresh.status?.code ?? 0).toBe(0);
      expect(metadata(fresh).token_id).not.toBe(f1);
      expect(metadata(await check(r1!, grace!))).toMatchObject({ token_id: g1, source: 'cache' });
      const errors = (op: string) => r1!.app.metrics.storeErrors.get({ op });
      await until(() => errors('remove') >= 1 && errors('publish') >= 1, 5_000, 'the failed removal and publish counted');
      expect(invalidatedLines([r1!], f1)).toHaveLength(1);
    } finally {
      server.resume();
      await Promise.all(apps.splice(0).map((a) => a.close()));
      await server.stop();
    }
  });
});
