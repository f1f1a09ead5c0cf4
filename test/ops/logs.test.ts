// The operator's log contract: one line per token fetch outcome, one per breaker transition,
// no request-level lines unless asked for.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { envoyRequest } from '../support/envoy-request.js';
import { startWorld, until, type World } from '../support/world.js';

interface Line {
  level: string;
  msg: string;
  provider?: string;
  breaker?: string;
}

describe('logs: token fetch outcomes and breaker transitions', () => {
  let w: World;
  const lines = () => w.logs.map((l) => JSON.parse(l) as Line);

  beforeAll(async () => {
    w = await startWorld({
      // Down for the warm-up and one cold fetch: the breaker opens; its probe then succeeds.
      beforeApp: (idp) => idp.setBehaviourSequence([{ kind: 'status', status: 503 }, { kind: 'status', status: 503 }]),
      yaml: ({ cc }) => `
log: { level: debug }
providers:
  flaky:
    source: ${cc()}
    resilience:
      retries: 0
      breaker: { window: 10s, volumeThreshold: 2, errorThresholdPercentage: 50, resetTimeout: 300ms }
`,
    });
    // The cold Check fails the second fetch: the breaker opens.
    await w.client.check(envoyRequest({ contextExtensions: { provider: 'flaky' } }));
    await until(() => w.app.manager.provider('flaky')?.status().state === 'valid', 5_000, 'the probe to succeed');
    for (let i = 0; i < 5; i++) await w.client.check(envoyRequest({ contextExtensions: { provider: 'flaky' } }));
  });
  afterAll(async () => {
    await w?.close();
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
    const m = w.app.metrics.fetches;
    expect(fetched).toHaveLength(m.get({ provider: 'flaky', outcome: 'success' }));
    expect(fetched).toHaveLength(1);
    expect(failed).toHaveLength(m.get({ provider: 'flaky', outcome: 'ERR_IDP_UNAVAILABLE' }));
    expect(failed).toHaveLength(2);
    expect(w.idp.tokenRequestCount).toBe(3);
  });

  it('no request-level lines without log.requests, even at debug', () => {
    expect(lines().filter((l) => l.msg === 'check')).toEqual([]);
  });
});
