// A token server that degrades while Checks flow: the cached token keeps serving while it is
// valid, and the IdP sees exactly the requests the retry and breaker settings allow.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DemoTokenServer, type Behaviour } from '../../demo/token-server.js';
import { startTestApp, type TestApp } from '../support/app.js';
import { envoyRequest, injected, metadata } from '../support/envoy-request.js';
import { until } from '../support/until.js';

const RETRIES = 2;

function yaml(idp: DemoTokenServer): string {
  return `
listen: { grpc: 127.0.0.1:0, admin: "off" }
providers:
  p:
    source: { type: client_credentials, tokenUrl: "${idp.tokenUrl}", clientId: demo-client, clientSecret: demo-secret }
    refresh: { jitter: 0%, waitBudget: 100ms }
    resilience:
      timeout: 300ms
      retries: ${RETRIES}
      backoff: { base: 10ms, max: 20ms }
      # The window also holds the warm-up fetch that succeeded: one failed fetch (all its
      # retries) makes it 1 failure in 2 calls, 50% > 25%, and the breaker opens for the rest of the test.
      breaker: { window: 60s, volumeThreshold: 1, errorThresholdPercentage: 25, resetTimeout: 60s }
`;
}

describe('outage while the cached token is valid', () => {
  let idp: DemoTokenServer;
  let t: TestApp;
  beforeEach(async () => {
    // 3 s tokens: hard expiry at 2.85 s (skew 150 ms), refresh due at 1.35 s (lead 1.5 s).
    idp = new DemoTokenServer({ tokenTtlSeconds: 3 });
    await idp.start();
    t = await startTestApp(yaml(idp));
  });
  afterEach(async () => {
    await t?.close();
    await idp?.stop();
  });

  // [name, behaviour, error code, IdP requests during the outage, breaker at the end]
  const cases: [string, Behaviour, string | null, number, string][] = [
    ['500', { kind: 'status', status: 500, body: { error: 'server_error' } }, 'ERR_IDP_UNAVAILABLE', 1 + RETRIES, 'open'],
    ['hang', { kind: 'hang' }, 'ERR_IDP_TIMEOUT', 1 + RETRIES, 'open'],
    ['connection reset', { kind: 'reset' }, 'ERR_IDP_UNAVAILABLE', 1 + RETRIES, 'open'],
    ['HTML page', { kind: 'html' }, 'ERR_IDP_BAD_RESPONSE', 1 + RETRIES, 'open'],
    // The first retry waits out Retry-After (2 s), which falls after the observed window.
    ['429 with Retry-After: 2', { kind: 'rate_limited', retryAfter: '2' }, null, 1, 'closed'],
  ];

  it.each(cases)('%s: Checks keep the cached token; the IdP sees exactly the requests retries and breaker allow', async (_name, behaviour, code, outageRequests, breaker) => {
    expect(idp.tokenRequestCount).toBe(1);
    const first = `Bearer ${idp.issuedAccessTokens[0]}`;
    idp.setBehaviour(behaviour);
    const started = Date.now();
    const answers: { value?: string; source?: string; code: number }[] = [];
    // Until just before hard expiry (2.85 s after the fetch).
    while (Date.now() - started < 2_500) {
      const res = await t.client.check(envoyRequest({ contextExtensions: { provider: 'p' } }));
      answers.push({ value: injected(res)?.header?.value, source: metadata(res).source, code: res.status?.code ?? 0 });
      await new Promise((r) => setTimeout(r, 25));
    }
    expect(answers.every((a) => a.code === 0 && a.value === first)).toBe(true);
    expect(answers[0]!.source).toBe('cache');
    expect(idp.tokenRequestCount).toBe(1 + outageRequests);
    const status = t.app.manager.stats()[0]!;
    expect(status.breaker).toBe(breaker);
    if (code) {
      expect(answers.at(-1)!.source).toBe('stale');
      expect(status).toMatchObject({ state: 'stale', lastError: { code } });
      expect(t.app.metrics.fetches.get({ provider: 'p', outcome: code })).toBe(1);
    } else {
      expect(status.state).toBe('refreshing');
    }
  });
});

describe('429 with Retry-After', () => {
  it('no token request reaches the IdP before the advertised time, from any caller of that endpoint', async () => {
    const idp = new DemoTokenServer({ tokenTtlSeconds: 300 });
    await idp.start();
    idp.setBehaviourSequence([{ kind: 'rate_limited', retryAfter: '2' }]);
    const provider = (name: string) => `
  ${name}:
    source: { type: client_credentials, tokenUrl: "${idp.tokenUrl}", clientId: demo-client, clientSecret: demo-secret }
    refresh: { waitBudget: 50ms }
    resilience: { retries: 1, backoff: { base: 10ms, max: 10ms } }`;
    const t = await startTestApp(`
listen: { grpc: 127.0.0.1:0, admin: "off" }
providers:${provider('a')}
`, { waitReady: false });
    try {
      await idp.waitForRequests(1);
      const limitedAt = idp.requests[0]!.at;
      expect(idp.requests[0]!.status).toBe(429);
      // Meanwhile Checks are answered from the ladder (no token yet: 503 with Retry-After).
      const res = await t.client.check(envoyRequest({ contextExtensions: { provider: 'a' } }));
      expect(res.denied_response?.status?.code).toBe('ServiceUnavailable');
      await t.app.ready;
      expect(idp.tokenRequestCount).toBe(2);
      expect(idp.requests[1]!.at - limitedAt).toBeGreaterThanOrEqual(1_990);
      expect(idp.requests[1]!.status).toBe(200);
    } finally {
      await t.close();
      await idp.stop();
    }
  });

  it('the gate holds across providers sharing one token endpoint', async () => {
    const idp = new DemoTokenServer();
    await idp.start();
    const { TokenManager } = await import('../../src/tokens/manager.js');
    const { parseConfig } = await import('../../src/config/load.js');
    const cfg = parseConfig(`
providers:
  a: { source: { type: client_credentials, tokenUrl: "${idp.tokenUrl}", clientId: demo-client, clientSecret: demo-secret }, resilience: { retries: 1, backoff: { base: 10ms, max: 10ms } } }
  b: { source: { type: client_credentials, tokenUrl: "${idp.tokenUrl}", clientId: demo-client, clientSecret: demo-secret }, resilience: { retries: 1, backoff: { base: 10ms, max: 10ms } } }
`);
    const m = new TokenManager(cfg.providers.values());
    try {
      idp.setBehaviourSequence([{ kind: 'rate_limited', retryAfter: '1' }]);
      const a = m.refresh('a');
      await idp.waitForRequests(1);
      const limitedAt = idp.requests[0]!.at;
      // Once a's 429 has been read, b must not call the endpoint before Retry-After either.
      await new Promise((r) => setTimeout(r, 100));
      const b = m.refresh('b');
      await Promise.all([a, b]);
      expect(idp.tokenRequestCount).toBe(3);
      for (const r of idp.requests.slice(1)) expect(r.at - limitedAt).toBeGreaterThanOrEqual(990);
    } finally {
      await m.close(0);
      await idp.stop();
    }
  });
});

describe('permanent rejections', () => {
  it('invalid_client is not retried, does not trip the breaker, and does not wait for its window', async () => {
    const idp = new DemoTokenServer();
    await idp.start();
    idp.setBehaviour({ kind: 'oauth_error', error: 'invalid_client', description: 'client authentication failed', status: 401 });
    const t = await startTestApp(`
listen: { grpc: 127.0.0.1:0, admin: "off" }
providers:
  p:
    source: { type: client_credentials, tokenUrl: "${idp.tokenUrl}", clientId: demo-client, clientSecret: demo-secret }
    resilience: { retries: 3, breaker: { volumeThreshold: 1, resetTimeout: 60s } }
`);
    try {
      expect(idp.tokenRequestCount).toBe(1);
      const status = t.app.manager.stats()[0]!;
      expect(status).toMatchObject({ breaker: 'closed', lastError: { code: 'ERR_IDP_REJECTED', error: 'invalid_client', error_description: 'client authentication failed' } });
      // Loud: logged at error level with the IdP's words.
      expect(t.logs.some((l) => l.includes('"level":"error"') && l.includes('invalid_client'))).toBe(true);
      // Cold Checks do not hammer the IdP with a refused credential: they answer from the ladder.
      const answers = await Promise.all(Array.from({ length: 20 }, () => t.client.check(envoyRequest({ contextExtensions: { provider: 'p' } }))));
      expect(answers.every((a) => a.denied_response?.status?.code === 'ServiceUnavailable')).toBe(true);
      expect(idp.tokenRequestCount).toBe(1);
      // Fixed credentials are picked up at once: the breaker never stood in the way.
      idp.setBehaviour({ kind: 'ok' });
      await t.app.manager.refresh('p');
      expect(idp.tokenRequestCount).toBe(2);
      expect(t.app.manager.stats()[0]!.state).toBe('valid');
    } finally {
      await t.close();
      await idp.stop();
    }
  });
});

describe('recovery', () => {
  it('the breaker half-opens, one probe succeeds, and Checks get the fresh token', async () => {
    const idp = new DemoTokenServer({ tokenTtlSeconds: 3 });
    await idp.start();
    const t = await startTestApp(`
listen: { grpc: 127.0.0.1:0, admin: "off" }
providers:
  p:
    source: { type: client_credentials, tokenUrl: "${idp.tokenUrl}", clientId: demo-client, clientSecret: demo-secret }
    refresh: { jitter: 0% }
    resilience: { retries: 0, breaker: { volumeThreshold: 1, errorThresholdPercentage: 25, resetTimeout: 600ms } }
`);
    try {
      const first = `Bearer ${idp.issuedAccessTokens[0]}`;
      idp.setBehaviour({ kind: 'status', status: 503 });
      // The scheduled refresh (~1.35 s) fails and opens the breaker.
      await idp.waitForRequests(2, 3_000);
      await until(() => t.app.manager.stats()[0]!.breaker === 'open');
      const check = async () => t.client.check(envoyRequest({ contextExtensions: { provider: 'p' } }));
      expect(injected(await check())?.header?.value).toBe(first);
      idp.setBehaviour({ kind: 'ok' });
      // Half-open after 600 ms: the probe is tokengate's own refresh.
      await idp.waitForRequests(3, 3_000);
      await new Promise((r) => setTimeout(r, 50));
      const res = await check();
      expect(injected(res)?.header?.value).toBe(`Bearer ${idp.issuedAccessTokens[1]}`);
      expect(metadata(res).source).toBe('cache');
      expect(t.app.manager.stats()[0]).toMatchObject({ breaker: 'closed', state: 'valid', lastError: null });
      expect(idp.tokenRequestCount).toBe(3);
    } finally {
      await t.close();
      await idp.stop();
    }
  });
});
