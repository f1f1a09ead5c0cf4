// Upstream rejection of a per-caller token: Envoy's access log (a real StreamAccessLogs stream)
// reports an upstream 401 for a request served with one caller's exchanged token; that caller
// alone is evicted and exchanges afresh on their next Check. Other callers keep their tokens,
// and with cache.shared the other callers' shared records stay readable by another replica.
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { envoyRequest, injected, metadata, type CheckResponse } from '../support/envoy-request.js';
import { startTestApp, type TestApp } from '../support/app.js';
import { ExchangeIdp, perCallerSource } from '../support/exchange-idp.js';
import { REDIS_URL, redisAvailable } from '../support/redis.js';
import { AccessLogSender, accessLogMessages, httpLogEntry } from './helpers.js';

function yaml(idp: ExchangeIdp, store = '', shared = false): string {
  return `
listen: { grpc: 127.0.0.1:0, admin: off }
${store}
providers:
  orders:
    source: ${perCallerSource(idp, { scheme: 'Bearer' })}
    cache: { maxEntries: 100${shared ? ', shared: true' : ''} }
    refresh: { waitBudget: 5s }
    resilience: { retries: 0, timeout: 3s }
`;
}

const check = (t: TestApp, token: string): Promise<CheckResponse> =>
  t.client.check(envoyRequest({ contextExtensions: { provider: 'orders' }, headers: { authorization: `Bearer ${token}` } }));
const exchangesFor = (idp: ExchangeIdp, token: string): number => idp.received.filter((s) => s === token).length;
const settle = (): Promise<void> => new Promise((r) => setTimeout(r, 150));

const redisUp = await redisAvailable();

describe('per-caller tokens and Envoy\'s access log (upstream rejection)', () => {
  let idp: ExchangeIdp;
  let apps: TestApp[] = [];
  let senders: AccessLogSender[] = [];
  beforeAll(async () => { idp = await new ExchangeIdp().start(); });
  afterAll(async () => idp?.stop());
  afterEach(async () => {
    for (const s of senders) s.close();
    await Promise.all(apps.map((a) => a.close()));
    apps = [];
    senders = [];
    idp.reset();
  });

  async function start(text: string): Promise<{ t: TestApp; envoy: AccessLogSender }> {
    const t = await startTestApp(text);
    apps.push(t);
    const envoy = new AccessLogSender(t.app.grpcAddress);
    senders.push(envoy);
    return { t, envoy };
  }

  it('a 401 via_upstream for alice\'s token evicts alice only, once; her next Check exchanges afresh; bob keeps his', async () => {
    const { t, envoy } = await start(yaml(idp));
    const [alice, bob] = await Promise.all(['alice', 'bob'].map((sub) => idp.subjectToken({ sub })));
    const a1 = metadata(await check(t, alice!)).token_id!;
    const b1 = metadata(await check(t, bob!)).token_id!;
    expect(a1).toBeTruthy();
    const rejections = () => t.app.metrics.upstreamRejections.get({ provider: 'orders', status: '401' });

    // Statuses or details that are not an upstream 401 change nothing.
    await envoy.send(accessLogMessages([[
      httpLogEntry({ status: 403, provider: 'orders', tokenId: a1 }),
      httpLogEntry({ status: 401, details: 'ext_authz_denied', provider: 'orders', tokenId: a1 }),
    ]]));
    await settle();
    expect(metadata(await check(t, alice!))).toMatchObject({ token_id: a1, source: 'cache' });

    // Envoy batches: the same rejected token in several entries of one flush, and again later.
    const entry = httpLogEntry({ status: 401, provider: 'orders', tokenId: a1 });
    await envoy.send(accessLogMessages([[entry, entry], [entry]]));
    await settle();
    expect(rejections()).toBe(3);
    expect(t.app.manager.perCaller('orders')!.size).toBe(1);
    const fresh = await check(t, alice!);
    expect(metadata(fresh).source).toBe('refreshed');
    expect(metadata(fresh).token_id).not.toBe(a1);
    expect(exchangesFor(idp, alice!)).toBe(2);
    // Bob: the same token from the cache, no new exchange.
    expect(metadata(await check(t, bob!))).toMatchObject({ token_id: b1, source: 'cache' });
    expect(exchangesFor(idp, bob!)).toBe(1);

    // The old id once more (a slow request): nothing is evicted, no exchange.
    await envoy.send(accessLogMessages([[entry]]));
    await settle();
    expect(metadata(await check(t, alice!))).toMatchObject({ token_id: metadata(fresh).token_id, source: 'cache' });
    expect(exchangesFor(idp, alice!)).toBe(2);
    const invalidated = t.logs.filter((l) => l.includes('"token.invalidated"')).map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(invalidated).toEqual([expect.objectContaining({ provider: 'orders', token_id: a1, by: 'access_log', upstream_status: 401 })]);
    for (const l of t.logs) expect(l).not.toContain(alice!);
  });

  it('an unknown token id or a provider name it does not configure evicts nobody', async () => {
    const { t, envoy } = await start(yaml(idp));
    const alice = await idp.subjectToken({ sub: 'alice' });
    const a1 = metadata(await check(t, alice)).token_id!;
    await envoy.send(accessLogMessages([[
      httpLogEntry({ status: 401, provider: 'orders', tokenId: 'AAAAAAAAAAAA' }),
      httpLogEntry({ status: 401, provider: 'nope', tokenId: a1 }),
    ]]));
    await settle();
    expect(metadata(await check(t, alice))).toMatchObject({ token_id: a1, source: 'cache' });
    expect(exchangesFor(idp, alice)).toBe(1);
  });

  it.skipIf(!redisUp)('cache.shared: the rejected record is not adopted again; other callers\' shared records stay for other replicas', async () => {
    const prefix = `tgtest-pc-als-${randomBytes(4).toString('hex')}:`;
    const store = `store:\n  type: redis\n  redis: { url: "${REDIS_URL}", keyPrefix: "${prefix}" }\n  encryptionKey: ${randomBytes(32).toString('base64')}`;
    const redis = new Redis(REDIS_URL);
    try {
      const { t, envoy } = await start(yaml(idp, store, true));
      const [alice, bob] = await Promise.all(['alice', 'bob'].map((sub) => idp.subjectToken({ sub })));
      const a1 = metadata(await check(t, alice!)).token_id!;
      const bobValue = injected(await check(t, bob!))?.header?.value;
      await envoy.send(accessLogMessages([[httpLogEntry({ status: 401, provider: 'orders', tokenId: a1 })]]));
      await settle();
      // Alice: the shared record still holds the refused token; this replica exchanges instead of adopting it.
      const fresh = await check(t, alice!);
      expect(metadata(fresh).token_id).not.toBe(a1);
      expect(exchangesFor(idp, alice!)).toBe(2);
      // A second replica serves bob from his shared record: it was never touched.
      const { t: t2 } = await start(yaml(idp, store, true));
      expect(injected(await check(t2, bob!))?.header?.value).toBe(bobValue);
      expect(exchangesFor(idp, bob!)).toBe(1);
      // …and alice from her new record, not the refused one.
      expect(metadata(await check(t2, alice!)).token_id).toBe(metadata(fresh).token_id);
      expect(exchangesFor(idp, alice!)).toBe(2);
    } finally {
      const keys = await redis.keys(`${prefix}*`);
      if (keys.length) await redis.del(...keys);
      redis.disconnect();
    }
  });
});
