// Regression (issue 14): a caller whose upstream refuses every exchanged token cost one exchange
// per request (each refusal evicts, the next Check exchanges again), bounded only by the token
// endpoint's budget. Now the third refusal within ten minutes holds that caller: their Checks
// are answered 401 invalid_subject_token from memory for cache.negativeTtl, no exchange; one
// more refusal right after a hold holds again; a quiet ten minutes forgets the count.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import { deniedBody, envoyRequest, metadata, type CheckResponse } from '../support/envoy-request.js';
import { startTestApp, type TestApp } from '../support/app.js';
import { ExchangeIdp, perCallerSource } from '../support/exchange-idp.js';
import { until } from '../support/until.js';
import { AccessLogSender, accessLogMessages, httpLogEntry } from './helpers.js';

const yaml = (idp: ExchangeIdp) => `
listen: { grpc: 127.0.0.1:0, admin: off }
providers:
  orders:
    source: ${perCallerSource(idp, { scheme: 'Bearer' })}
    cache: { maxEntries: 100, negativeTtl: 30s }
    refresh: { waitBudget: 5s }
    resilience: { retries: 0, timeout: 3s }
`;

describe('a caller whose every exchanged token the upstream refuses', () => {
  let idp: ExchangeIdp;
  let t: TestApp | undefined;
  let envoy: AccessLogSender | undefined;
  beforeAll(async () => { idp = await new ExchangeIdp().start(); });
  afterAll(async () => idp?.stop());
  afterEach(async () => {
    envoy?.close();
    await t?.close();
    idp.reset();
  });

  const check = (token: string): Promise<CheckResponse> =>
    t!.client.check(envoyRequest({ contextExtensions: { provider: 'orders' }, headers: { authorization: `Bearer ${token}` } }));
  const exchangesFor = (token: string): number => idp.received.filter((s) => s === token).length;
  const cached = (): number => t!.app.manager.perCaller('orders')!.size;

  /** The upstream answers 401 to the token this Check injected; Envoy's access log says so. */
  async function refusedUpstream(res: CheckResponse): Promise<void> {
    const before = cached();
    await envoy!.send(accessLogMessages([[httpLogEntry({ status: 401, provider: 'orders', tokenId: metadata(res).token_id! })]]));
    await until(() => cached() === before - 1, 5_000, 'the refused caller evicted');
  }

  it('is held after three refusals: 401 from memory, no exchange, until negativeTtl; recovers when the upstream accepts again', async () => {
    const clock = new ManualClock(Date.now());
    t = await startTestApp(yaml(idp), { clock });
    envoy = new AccessLogSender(t.app.grpcAddress);
    const [alice, bob] = await Promise.all(['alice', 'bob'].map((sub) => idp.subjectToken({ sub })));
    const b1 = metadata(await check(bob!)).token_id;

    for (let i = 1; i <= 3; i++) {
      const res = await check(alice!);
      expect(res.status?.code ?? 0).toBe(0);
      expect(exchangesFor(alice!)).toBe(i);
      await refusedUpstream(res);
      clock.advance(1_000);
    }
    // Held: answered 401 from memory however often alice calls; no exchange.
    for (let i = 0; i < 5; i++) {
      const res = await check(alice!);
      expect(res.denied_response?.status?.code).toBe('Unauthorized');
      expect(deniedBody(res)).toEqual({ error: 'invalid_subject_token', provider: 'orders' });
      expect(res.denied_response?.headers?.find((h) => h.header?.key === 'www-authenticate')?.header?.value).toBe('Bearer error="invalid_token"');
    }
    expect(exchangesFor(alice!)).toBe(3);
    expect(t.app.metrics.exchangeHolds.get({ provider: 'orders' })).toBe(1);
    const warned = t.logs.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.msg === 'upstream keeps refusing this caller\'s exchanged tokens; answering 401 without exchanging');
    expect(warned).toEqual([expect.objectContaining({ provider: 'orders', refusals: 3, hold_s: 30 })]);
    // Bob is untouched.
    expect(metadata(await check(bob!))).toMatchObject({ token_id: b1, source: 'cache' });

    // After negativeTtl: one exchange; refused again at once, held again at once.
    clock.advance(31_000);
    const retry = await check(alice!);
    expect(retry.status?.code ?? 0).toBe(0);
    expect(exchangesFor(alice!)).toBe(4);
    await refusedUpstream(retry);
    expect((await check(alice!)).denied_response?.status?.code).toBe('Unauthorized');
    expect(exchangesFor(alice!)).toBe(4);

    // The upstream accepts again: after the hold alice is served, and stays served from the cache.
    clock.advance(31_000);
    const served = await check(alice!);
    expect(served.status?.code ?? 0).toBe(0);
    expect(metadata(await check(alice!))).toMatchObject({ token_id: metadata(served).token_id, source: 'cache' });
    expect(exchangesFor(alice!)).toBe(5);

    // Ten quiet minutes later the count has started again: one refusal costs one exchange, no hold.
    clock.advance(11 * 60_000);
    await refusedUpstream(await check(alice!));
    expect((await check(alice!)).status?.code ?? 0).toBe(0);
    expect(exchangesFor(alice!)).toBe(6);
  });

  it('refusals far apart never hold a caller', async () => {
    const clock = new ManualClock(Date.now());
    t = await startTestApp(yaml(idp), { clock });
    envoy = new AccessLogSender(t.app.grpcAddress);
    const carol = await idp.subjectToken({ sub: 'carol', expSeconds: Math.floor(clock.now() / 1000) + 7200 });
    for (let i = 1; i <= 5; i++) {
      const res = await check(carol);
      expect(res.status?.code ?? 0).toBe(0);
      await refusedUpstream(res);
      clock.advance(11 * 60_000);
    }
    expect(exchangesFor(carol)).toBe(5);
    expect(t.app.metrics.exchangeHolds.get({ provider: 'orders' })).toBe(0);
  });
});
