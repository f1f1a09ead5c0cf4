// The operator's log contract: one line per token fetch outcome, one per breaker transition,
// no request-level lines unless asked for.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DemoTokenServer } from '../../demo/token-server.js';
import { startTestApp, type TestApp } from '../support/app.js';
import { envoyRequest } from '../support/envoy-request.js';
import { until } from './helpers.js';

interface Line {
  level: string;
  msg: string;
  provider?: string;
  breaker?: string;
}

describe('logs: token fetch outcomes and breaker transitions', () => {
  let idp: DemoTokenServer;
  let t: TestApp;
  const lines = () => t.logs.map((l) => JSON.parse(l) as Line);

  beforeAll(async () => {
    idp = new DemoTokenServer();
    await idp.start();
    // Down for the warm-up and one cold fetch: the breaker opens; its probe then succeeds.
    idp.setBehaviourSequence([{ kind: 'status', status: 503 }, { kind: 'status', status: 503 }]);
    t = await startTestApp(`
listen: { grpc: 127.0.0.1:0, admin: "off" }
log: { level: debug }
providers:
  flaky:
    source: { type: client_credentials, tokenUrl: "${idp.tokenUrl}", clientId: demo-client, clientSecret: demo-secret }
    resilience:
      retries: 0
      breaker: { window: 10s, volumeThreshold: 2, errorThresholdPercentage: 50, resetTimeout: 300ms }
`);
    // The cold Check fails the second fetch: the breaker opens.
    await t.client.check(envoyRequest({ contextExtensions: { provider: 'flaky' } }));
    await until(() => t.app.manager.provider('flaky')?.status().state === 'valid', 5_000, 'the probe to succeed');
    for (let i = 0; i < 5; i++) await t.client.check(envoyRequest({ contextExtensions: { provider: 'flaky' } }));
  });
  afterAll(async () => {
    await t?.close();
    await idp?.stop();
  });

  it('one line per breaker transition: open, half_open, closed', () => {
    const transitions = lines().filter((l) => l.msg === 'breaker state changed');
    expect(transitions.map((l) => [l.level, l.provider, l.breaker])).toEqual([
      ['warn', 'flaky', 'open'],
      ['warn', 'flaky', 'half_open'],
      ['warn', 'flaky', 'closed'],
    ]);
  });

  it('one line per token fetch outcome, matching tokengate_token_fetches_total', () => {
    const all = lines().filter((l) => l.provider === 'flaky');
    const fetched = all.filter((l) => l.msg === 'token fetched');
    const failed = all.filter((l) => l.msg === 'token refresh failed');
    const m = t.app.metrics.fetches;
    expect(fetched).toHaveLength(m.get({ provider: 'flaky', outcome: 'success' }));
    expect(fetched).toHaveLength(1);
    expect(failed).toHaveLength(m.get({ provider: 'flaky', outcome: 'ERR_IDP_UNAVAILABLE' }));
    expect(failed).toHaveLength(2);
    expect(idp.tokenRequestCount).toBe(3);
  });

  it('no request-level lines without log.requests, even at debug', () => {
    expect(lines().filter((l) => l.msg === 'check')).toEqual([]);
  });
});
