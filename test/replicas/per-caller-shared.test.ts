// cache.shared: three replicas on one real Redis cost one exchange per caller in total; the
// Redis keys and values reveal neither the subject token nor its plain hash; evicting a caller
// locally leaves the shared record for the other replicas.
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { subjectKey } from '../../src/tokens/per-caller/subject-token.js';
import { envoyRequest, injected } from '../support/envoy-request.js';
import { startTestApp, type TestApp } from '../support/app.js';
import { ExchangeIdp, perCallerSource } from '../support/exchange-idp.js';
import { REDIS_URL, redisAvailable } from '../support/redis.js';

const run = await redisAvailable();

describe.skipIf(!run)('per-caller tokens across replicas (cache.shared)', () => {
  let idp: ExchangeIdp;
  const prefix = `tgtest-percaller-${randomBytes(4).toString('hex')}:`;
  const key = randomBytes(32).toString('base64');
  let replicas: TestApp[] = [];
  let redis: Redis;

  const yaml = (maxEntries: number) => `
listen: { grpc: 127.0.0.1:0, admin: off }
store:
  type: redis
  redis: { url: "${REDIS_URL}", keyPrefix: "${prefix}" }
  encryptionKey: ${key}
providers:
  orders:
    source: ${perCallerSource(idp)}
    cache: { maxEntries: ${maxEntries}, shared: true }
    refresh: { waitBudget: 10s }
    resilience: { retries: 0, timeout: 3s }
`;

  beforeAll(async () => {
    idp = await new ExchangeIdp().start();
    redis = new Redis(REDIS_URL);
  });
  afterAll(async () => {
    await Promise.all(replicas.map((r) => r.close()));
    const keys = await redis.keys(`${prefix}*`);
    if (keys.length) await redis.del(...keys);
    redis.disconnect();
    await idp?.stop();
  });

  const check = (r: TestApp, token: string) => r.client.check(envoyRequest({ contextExtensions: { provider: 'orders' }, headers: { authorization: `Bearer ${token}` } }));

  it('a cold caller arriving at three replicas at once costs one exchange; all three serve the same token', async () => {
    replicas = await Promise.all([1, 2, 3].map(() => startTestApp(yaml(2))));
    idp.delayMs = 150;
    const callers = await Promise.all(['alice', 'bob', 'carol'].map((sub) => idp.subjectToken({ sub })));
    const answers = await Promise.all(callers.flatMap((token) => replicas.map((r) => check(r, token).then((res) => ({ token, res })))));
    for (const token of callers) {
      expect(idp.received.filter((s) => s === token), 'exchanges for one caller').toHaveLength(1);
      const values = new Set(answers.filter((a) => a.token === token).map((a) => injected(a.res)?.header?.value));
      expect(values.size).toBe(1);
      expect([...values][0]).toMatch(/^Bearer ex_/);
    }
    // Neither the subject token nor its SHA-256 (the local cache key) is readable in Redis.
    const keys = await redis.keys(`${prefix}*`);
    expect(keys.length).toBeGreaterThanOrEqual(3);
    for (const token of callers) {
      for (const k of keys) {
        for (const enc of ['base64url', 'hex', 'base64'] as const) expect(k).not.toContain(Buffer.from(subjectKey(token), 'latin1').toString(enc));
        expect(k).not.toContain(token.slice(0, 40));
        const v = (await redis.type(k)) === 'string' ? await redis.get(k) : JSON.stringify(await redis.hgetall(k));
        expect(v ?? '').not.toContain(token.slice(0, 40));
        for (const issued of idp.issued.keys()) expect(v ?? '').not.toContain(issued);
      }
    }
  });

  it('a caller evicted locally is found again in the shared store, not exchanged again', async () => {
    const [r1] = replicas;
    const before = idp.received.length;
    // maxEntries 2: three more callers on replica 1 evict alice there.
    for (const sub of ['dave', 'erin', 'frank']) await check(r1!, await idp.subjectToken({ sub }));
    const exchangedForNew = idp.received.length - before;
    expect(exchangedForNew).toBe(3);
    const alice = [...idp.issued.values()].find((i) => i.sub === 'alice')!.subjectToken;
    const res = await check(r1!, alice);
    expect(injected(res)?.header?.value).toMatch(/^Bearer ex_alice_/);
    expect(idp.received.length - before).toBe(3);
  });
});
