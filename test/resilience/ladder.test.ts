// After hard expiry with the IdP down, the fallback ladder decides, in order: expired grace →
// emergency token → onTokenUnavailable. Time is a ManualClock: minutes pass in milliseconds.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import { startWorld, type World, type YamlContext } from '../support/world.js';
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
  let w: World;
  const provider = (cc: YamlContext['cc'], name: string, resilience: string) => `
  ${name}:
    source: ${cc()}
    refresh: { waitBudget: 50ms, jitter: 0% }
    resilience: { retries: 0, breaker: { volumeThreshold: 1, errorThresholdPercentage: 10, resetTimeout: 1h }${resilience} }`;

  beforeAll(async () => {
    // 60 s tokens: skew 3 s → hard expiry 57 s after the fetch; refresh due at 27 s.
    w = await startWorld({
      idp: { tokenTtlSeconds: 60, now: () => clock.now() },
      clock,
      env: { EMERGENCY: 'break-glass-token' },
      yaml: ({ cc }) => `
defaults: { onTokenUnavailable: deny }
providers:${provider(cc, 'plain', '')}${provider(cc, 'grace', ', serveExpiredFor: 5m')}${provider(cc, 'emergency', ', emergencyToken: "${env:EMERGENCY}"')}
  open:
    source: { type: static, token: unused }
`,
    });
  });
  afterAll(async () => {
    await w?.close();
  });

  const check = (provider: string) => w.client.check(envoyRequest({ contextExtensions: { provider } }));

  it('serves every provider from the cache while the IdP is up', async () => {
    for (const p of ['plain', 'grace', 'emergency']) expect(metadata(await check(p)).source).toBe('cache');
    expect(w.idp.tokenRequestCount).toBe(3);
  });

  it('keeps serving the cached (stale) token until hard expiry when the IdP goes down', async () => {
    w.idp.setBehaviour({ kind: 'status', status: 500 });
    await advance(clock, 40_000);
    for (const p of ['plain', 'grace', 'emergency']) {
      const res = await check(p);
      expect(metadata(res).source).toBe('stale');
      expect(injected(res)?.header?.value).toMatch(/^Bearer /);
    }
    // Each provider's scheduled refresh failed once and opened its breaker: no more calls.
    expect(w.idp.tokenRequestCount).toBe(6);
    expect(w.app.manager.stats().filter((s) => s.name !== 'open').map((s) => s.breaker)).toEqual(['open', 'open', 'open']);
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
    expect(injected(grace)?.header?.value).toBe(`Bearer ${w.idp.issuedAccessTokens[1]}`);

    const emergency = await check('emergency');
    expect(metadata(emergency).source).toBe('emergency');
    expect(injected(emergency)?.header?.value).toBe('Bearer break-glass-token');
    expect(w.app.manager.stats().map((s) => s.state)).toEqual(['expired', 'expired', 'expired', 'valid']);
    expect(w.idp.tokenRequestCount).toBe(6);
  });

  it('ends the grace after serveExpiredFor', async () => {
    await advance(clock, 5 * 60_000, 10_000);
    const res = await check('grace');
    expect(deniedBody(res)).toMatchObject({ error: 'token_unavailable', provider: 'grace' });
  });
});

describe('onTokenUnavailable: allow', () => {
  it('answers OK without a credential when no token can be had', async () => {
    const w = await startWorld({
      beforeApp: (idp) => idp.setBehaviour({ kind: 'status', status: 502 }),
      yaml: ({ cc }) => `
defaults: { onTokenUnavailable: allow }
providers:
  p:
    source: ${cc()}
    refresh: { waitBudget: 50ms }
    resilience: { retries: 0 }
`,
    });
    try {
      const res = await w.client.check(envoyRequest({ contextExtensions: { provider: 'p' } }));
      expect(res.status?.code ?? 0).toBe(0);
      expect(res.ok_response?.headers ?? []).toEqual([]);
      expect(metadata(res)).toEqual({ provider: 'p', source: 'none' });
    } finally {
      await w.close();
    }
  });
});
