// A token server that degrades while Checks flow: the cached token keeps serving while it is
// valid, and the IdP sees exactly the requests the retry and breaker settings allow.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DemoTokenServer, type Behaviour } from '../../demo/token-server.js';
import { ccSource, startWorld, type World } from '../support/world.js';
import { envoyRequest, injected, metadata } from '../support/envoy-request.js';
import { until } from '../support/until.js';

const RETRIES = 2;

function yaml(idp: DemoTokenServer): string {
  return `
providers:
  p:
    source: ${ccSource(idp)}
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
  let w: World;
  beforeEach(async () => {
    // 3 s tokens: hard expiry at 2.85 s (skew 150 ms), refresh due at 1.35 s (lead 1.5 s).
    w = await startWorld({ idp: { tokenTtlSeconds: 3 }, yaml: ({ idp }) => yaml(idp) });
  });
  afterEach(async () => {
    await w?.close();
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
    expect(w.idp.tokenRequestCount).toBe(1);
    const first = `Bearer ${w.idp.issuedAccessTokens[0]}`;
    w.idp.setBehaviour(behaviour);
    // Timed from the fetch itself, not from when the world was ready: on a loaded machine
    // startup can take long enough that a fixed 2.5 s loop ran past the hard expiry.
    const fetchedAt = w.idp.requests[0]!.at;
    const answers: { value?: string; source?: string; code: number }[] = [];
    // Until just before hard expiry (2.85 s after the fetch).
    while (Date.now() - fetchedAt < 2_500) {
      const res = await w.client.check(envoyRequest({ contextExtensions: { provider: 'p' } }));
      answers.push({ value: injected(res)?.header?.value, source: metadata(res).source, code: res.status?.code ?? 0 });
      await new Promise((r) => setTimeout(r, 25));
    }
    expect(answers.every((a) => a.code === 0 && a.value === first)).toBe(true);
    expect(answers[0]!.source).toBe('cache');
    if (code) await until(() => w.app.metrics.fetches.get({ provider: 'p', outcome: code }) === 1, 2_000);
    expect(w.idp.tokenRequestCount).toBe(1 + outageRequests);
    const status = w.app.manager.stats()[0]!;
    expect(status.breaker).toBe(breaker);
    if (code) {
      expect(answers.at(-1)!.source).toBe('stale');
      expect(status).toMatchObject({ state: 'stale', lastError: { code } });
      expect(w.app.metrics.fetches.get({ provider: 'p', outcome: code })).toBe(1);
    } else {
      expect(status.state).toBe('refreshing');
    }
  });
});

describe('429 with Retry-After', () => {
  it('no token request reaches the IdP before the advertised time, from any caller of that endpoint', async () => {
    const w = await startWorld({
      idp: { tokenTtlSeconds: 300 },
      beforeApp: (idp) => idp.setBehaviourSequence([{ kind: 'rate_limited', retryAfter: '2' }]),
      yaml: ({ cc }) => `
providers:
  a:
    source: ${cc()}
    refresh: { waitBudget: 50ms }
    resilience: { retries: 1, backoff: { base: 10ms, max: 10ms } }
`,
      waitReady: false,
    });
    try {
      await w.idp.waitForRequests(1);
      const limitedAt = w.idp.requests[0]!.at;
      expect(w.idp.requests[0]!.status).toBe(429);
      // Meanwhile Checks are answered from the ladder (no token yet: 503 with Retry-After).
      const res = await w.client.check(envoyRequest({ contextExtensions: { provider: 'a' } }));
      expect(res.denied_response?.status?.code).toBe('ServiceUnavailable');
      await w.app.ready;
      expect(w.idp.tokenRequestCount).toBe(2);
      expect(w.idp.requests[1]!.at - limitedAt).toBeGreaterThanOrEqual(1_990);
      expect(w.idp.requests[1]!.status).toBe(200);
    } finally {
      await w.close();
    }
  });

  it('the gate holds across providers sharing one token endpoint', async () => {
    const idp = new DemoTokenServer();
    await idp.start();
    const { TokenManager } = await import('../../src/tokens/manager.js');
    const { parseConfig } = await import('../../src/config/load.js');
    const cfg = parseConfig(`
providers:
  a: { source: ${ccSource(idp)}, resilience: { retries: 1, backoff: { base: 10ms, max: 10ms } } }
  b: { source: ${ccSource(idp)}, resilience: { retries: 1, backoff: { base: 10ms, max: 10ms } } }
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
    const w = await startWorld({
      beforeApp: (idp) => idp.setBehaviour({ kind: 'oauth_error', error: 'invalid_client', description: 'client authentication failed', status: 401 }),
      yaml: ({ cc }) => `
providers:
  p:
    source: ${cc()}
    resilience: { retries: 3, breaker: { volumeThreshold: 1, resetTimeout: 60s } }
`,
    });
    try {
      expect(w.idp.tokenRequestCount).toBe(1);
      const status = w.app.manager.stats()[0]!;
      expect(status).toMatchObject({ breaker: 'closed', lastError: { code: 'ERR_IDP_REJECTED', error: 'invalid_client', error_description: 'client authentication failed' } });
      // Loud: logged at error level with the IdP's words.
      expect(w.logs.some((l) => l.includes('"level":"error"') && l.includes('invalid_client'))).toBe(true);
      // Cold Checks do not hammer the IdP with a refused credential: they answer from the ladder.
      const answers = await Promise.all(Array.from({ length: 20 }, () => w.client.check(envoyRequest({ contextExtensions: { provider: 'p' } }))));
      expect(answers.every((a) => a.denied_response?.status?.code === 'ServiceUnavailable')).toBe(true);
      expect(w.idp.tokenRequestCount).toBe(1);
      // Fixed credentials are picked up at once: the breaker never stood in the way.
      w.idp.setBehaviour({ kind: 'ok' });
      await w.app.manager.refresh('p');
      expect(w.idp.tokenRequestCount).toBe(2);
      expect(w.app.manager.stats()[0]!.state).toBe('valid');
    } finally {
      await w.close();
    }
  });
});

describe('recovery', () => {
  it('the breaker half-opens, one probe succeeds, and Checks get the fresh token', async () => {
    const w = await startWorld({ idp: { tokenTtlSeconds: 3 }, yaml: ({ cc }) => `
providers:
  p:
    source: ${cc()}
    refresh: { jitter: 0% }
    resilience: { retries: 0, breaker: { volumeThreshold: 1, errorThresholdPercentage: 25, resetTimeout: 600ms } }
` });
    try {
      const first = `Bearer ${w.idp.issuedAccessTokens[0]}`;
      w.idp.setBehaviour({ kind: 'status', status: 503 });
      // The scheduled refresh (~1.35 s) fails and opens the breaker.
      await w.idp.waitForRequests(2, 3_000);
      await until(() => w.app.manager.stats()[0]!.breaker === 'open');
      const check = async () => w.client.check(envoyRequest({ contextExtensions: { provider: 'p' } }));
      expect(injected(await check())?.header?.value).toBe(first);
      w.idp.setBehaviour({ kind: 'ok' });
      // Half-open after 600 ms: the probe is tokengate's own refresh.
      await w.idp.waitForRequests(3, 3_000);
      await new Promise((r) => setTimeout(r, 50));
      const res = await check();
      expect(injected(res)?.header?.value).toBe(`Bearer ${w.idp.issuedAccessTokens[1]}`);
      expect(metadata(res).source).toBe('cache');
      expect(w.app.manager.stats()[0]).toMatchObject({ breaker: 'closed', state: 'valid', lastError: null });
      expect(w.idp.tokenRequestCount).toBe(3);
    } finally {
      await w.close();
    }
  });
});
