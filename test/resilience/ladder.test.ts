// After hard expiry with the IdP down, the fallback ladder decides, in order: expired grace →
// emergency token → onTokenUnavailable. Time is a ManualClock: minutes pass in milliseconds.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import { DemoTokenServer } from '../../demo/token-server.js';
import { startTestApp, type TestApp } from '../support/app.js';
import { deniedBody, deniedHeader, envoyRequest, injected, metadata } from '../support/envoy-request.js';

/** Moves the manual clock in steps, letting real I/O (the IdP) and promise chains settle. */
async function advance(clock: ManualClock, ms: number, stepMs = 1_000): Promise<void> {
  for (let done = 0; done < ms; done += stepMs) {
    clock.advance(Math.min(stepMs, ms - done));
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe('fallback ladder after hard expiry', () => {
  const clock = new ManualClock();
  let idp: DemoTokenServer;
  let t: TestApp;
  const provider = (name: string, resilience: string) => `
  ${name}:
    source: { type: client_credentials, tokenUrl: "${idp.tokenUrl}", clientId: demo-client, clientSecret: demo-secret }
    refresh: { waitBudget: 50ms, jitter: 0% }
    resilience: { retries: 0, breaker: { volumeThreshold: 1, errorThresholdPercentage: 10, resetTimeout: 1h }${resilience} }`;

  beforeAll(async () => {
    // 60 s tokens: skew 3 s → hard expiry 57 s after the fetch; refresh due at 27 s.
    idp = new DemoTokenServer({ tokenTtlSeconds: 60, now: () => clock.now() });
    await idp.start();
    t = await startTestApp(`
listen: { grpc: 127.0.0.1:0, admin: "off" }
defaults: { onTokenUnavailable: deny }
providers:${provider('plain', '')}${provider('grace', ', serveExpiredFor: 5m')}${provider('emergency', ', emergencyToken: "${env:EMERGENCY}"')}
  open:
    source: { type: static, token: unused }
`, { clock, env: { EMERGENCY: 'break-glass-token' } });
  });
  afterAll(async () => {
    await t?.close();
    await idp?.stop();
  });

  const check = (provider: string) => t.client.check(envoyRequest({ contextExtensions: { provider } }));

  it('serves every provider from the cache while the IdP is up', async () => {
    for (const p of ['plain', 'grace', 'emergency']) expect(metadata(await check(p)).source).toBe('cache');
    expect(idp.tokenRequestCount).toBe(3);
  });

  it('keeps serving the cached (stale) token until hard expiry when the IdP goes down', async () => {
    idp.setBehaviour({ kind: 'status', status: 500 });
    await advance(clock, 40_000);
    for (const p of ['plain', 'grace', 'emergency']) {
      const res = await check(p);
      expect(metadata(res).source).toBe('stale');
      expect(injected(res)?.header?.value).toMatch(/^Bearer /);
    }
    // Each provider's scheduled refresh failed once and opened its breaker: no more calls.
    expect(idp.tokenRequestCount).toBe(6);
    expect(t.app.manager.stats().filter((s) => s.name !== 'open').map((s) => s.breaker)).toEqual(['open', 'open', 'open']);
  });

  it('after hard expiry: 503 token_unavailable with retry-after; serveExpiredFor serves the expired token; emergencyToken serves the emergency token', async () => {
    await advance(clock, 20_000); // 60 s after the fetch: past hard expiry (57 s)
    const denied = await check('plain');
    expect(denied.status?.code).toBe(14);
    expect(denied.denied_response?.status?.code).toBe('ServiceUnavailable');
    expect(deniedBody(denied)).toEqual({ error: 'token_unavailable', provider: 'plain', code: 'ERR_IDP_UNAVAILABLE' });
    expect(deniedHeader(denied, 'retry-after')).toBe('3600'); // the breaker's resetTimeout
    expect(deniedHeader(denied, 'content-type')).toBe('application/json');

    const grace = await check('grace');
    expect(metadata(grace).source).toBe('expired_grace');
    expect(injected(grace)?.header?.value).toBe(`Bearer ${idp.issuedAccessTokens[1]}`);

    const emergency = await check('emergency');
    expect(metadata(emergency).source).toBe('emergency');
    expect(injected(emergency)?.header?.value).toBe('Bearer break-glass-token');
    expect(t.app.manager.stats().map((s) => s.state)).toEqual(['expired', 'expired', 'expired', 'valid']);
    expect(idp.tokenRequestCount).toBe(6);
  });

  it('ends the grace after serveExpiredFor', async () => {
    await advance(clock, 5 * 60_000, 10_000);
    const res = await check('grace');
    expect(deniedBody(res)).toMatchObject({ error: 'token_unavailable', provider: 'grace' });
  });
});

describe('onTokenUnavailable: allow', () => {
  it('answers OK without a credential when no token can be had', async () => {
    const idp = new DemoTokenServer();
    await idp.start();
    idp.setBehaviour({ kind: 'status', status: 502 });
    const t = await startTestApp(`
listen: { grpc: 127.0.0.1:0, admin: "off" }
defaults: { onTokenUnavailable: allow }
providers:
  p:
    source: { type: client_credentials, tokenUrl: "${idp.tokenUrl}", clientId: demo-client, clientSecret: demo-secret }
    refresh: { waitBudget: 50ms }
    resilience: { retries: 0 }
`);
    try {
      const res = await t.client.check(envoyRequest({ contextExtensions: { provider: 'p' } }));
      expect(res.status?.code ?? 0).toBe(0);
      expect(res.ok_response?.headers ?? []).toEqual([]);
      expect(metadata(res)).toEqual({ provider: 'p', source: 'none' });
    } finally {
      await t.close();
      await idp.stop();
    }
  });
});
