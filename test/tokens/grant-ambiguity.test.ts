// Issue #12, finding 1: a refresh_token grant whose outcome is unknown (timed out, reset after
// sending, garbled 2xx) may have rotated the refresh token at the IdP. The token it presented is
// spent from then on: never presented again (no retry, no later refresh, no other replica, no
// restart) unless the IdP declared a reuse interval and we are inside it. The cached token keeps
// serving and the grant shows `needs_attention` until an operator configures a new one.
// Real loopback IdP that rotates, detects reuse and revokes the family; real Redis.
import { randomBytes } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { DemoTokenServer } from '../../demo/token-server.js';
import { createLogger } from '../../src/observability/logger.js';
import { Metrics } from '../../src/observability/metrics.js';
import { MemoryStore } from '../../src/store/memory-store.js';
import type { TokenStore } from '../../src/store/store.js';
import { TokenManager } from '../../src/tokens/manager.js';
import { REDIS_URL, redisAvailable } from '../support/redis.js';
import { deleteKeys } from '../support/replicas.js';
import { connect, storeConfig } from '../store/helpers.js';
import { rtSource } from '../support/world.js';

const INITIAL = 'rt-configured-initial';
const withRedis = await redisAvailable();

type StoreKind = 'memory' | 'redis';
const kinds: StoreKind[] = withRedis ? ['memory', 'redis'] : ['memory'];

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe.each(kinds)('ambiguous refresh_token grants (%s store)', (kind) => {
  let idp: DemoTokenServer;
  let prefix: string;
  const key = randomBytes(32);
  const managers: TokenManager[] = [];
  let memory: MemoryStore;

  beforeEach(async () => {
    idp = new DemoTokenServer({ refreshTokens: [INITIAL], tokenTtlSeconds: 300 });
    await idp.start();
    prefix = `tgtest-ambig-${randomBytes(4).toString('hex')}:`;
    memory = new MemoryStore();
  });

  afterEach(async () => {
    await Promise.all(managers.splice(0).map((m) => m.close(1_000)));
    await idp.stop();
    if (kind === 'redis') await deleteKeys(REDIS_URL, prefix);
  });

  function yaml(opts: { refreshToken?: string; reuseInterval?: string; timeout?: string; retries?: number; tokenUrl?: string; backoff?: string } = {}): string {
    return `
providers:
  p:
    source: ${rtSource(idp, opts.refreshToken ?? INITIAL, { tokenUrl: opts.tokenUrl, extra: opts.reuseInterval ? { reuseInterval: opts.reuseInterval } : {} })}
    resilience: { timeout: ${opts.timeout ?? '300ms'}, retries: ${opts.retries ?? 2}, backoff: ${opts.backoff ?? '{ base: 10ms, max: 20ms }'} }
`;
  }

  async function store(): Promise<TokenStore> {
    // The memory store is one process's: "another replica" and "a restart" only exist with Redis.
    return kind === 'memory' ? memory : connect(storeConfig(REDIS_URL, prefix, key));
  }

  async function replica(opts: Parameters<typeof yaml>[0] & { logs?: string[]; metrics?: Metrics } = {}): Promise<TokenManager> {
    const config = parseConfig(yaml(opts));
    const logs = opts.logs ?? [];
    const m = new TokenManager(config.providers.values(), {
      store: await store(), keyPrefix: prefix,
      logger: createLogger({ level: 'info', sink: (l) => logs.push(l) }),
      ...(opts.metrics ? { metrics: opts.metrics } : {}),
    });
    managers.push(m);
    await m.warmUp();
    return m;
  }

  function expectGrantIntact(): void {
    expect(idp.reuseDetectedCount).toBe(0);
    expect(idp.anyFamilyRevoked).toBe(false);
    expect(idp.maxPresentations).toBeLessThanOrEqual(1);
  }

  it('a slow IdP revokes the grant', async () => {
    const logs: string[] = [];
    const metrics = new Metrics();
    const m = await replica({ logs, metrics });
    const served = idp.issuedAccessTokens[0]!;
    const rt2 = idp.issuedRefreshTokens[0]!;
    // The IdP takes 600 ms against a 300 ms timeout, then rotates RT2 anyway: the answer is lost.
    idp.setBehaviourSequence([{ kind: 'delay', ms: 600 }]);
    await expect(m.refresh('p')).rejects.toMatchObject({ code: 'ERR_GRANT_AMBIGUOUS' });
    await sleep(700); // the delayed grant has been carried out at the IdP
    expect(idp.presentations(rt2)).toBe(1);
    // Later refreshes (scheduled, admin, cold) never present RT2 again.
    await expect(m.refresh('p')).rejects.toMatchObject({ code: 'ERR_GRANT_AMBIGUOUS' });
    expect(idp.tokenRequestCount).toBe(2);
    expectGrantIntact();
    // The cached token keeps serving; the grant shows it needs an operator.
    expect((await m.getToken('p')).value).toBe(served);
    const status = m.stats()[0]!;
    expect(status.state).toBe('needs_attention');
    expect(status.lastError).toMatchObject({ code: 'ERR_GRANT_AMBIGUOUS' });
    expect(logs.some((l) => l.includes('"level":"error"') && l.includes('refresh token outcome unknown'))).toBe(true);
    expect(logs.join('\n')).not.toContain(rt2);
    expect(metrics.render()).toMatch(/^tokengate_grant_ambiguous_total\{provider="p"\} 1$/m);
    expect(metrics.render()).toMatch(/^tokengate_grant_needs_attention\{provider="p"\} 1$/m);
  });

  it('a 2xx that arrives after the timeout (the IdP rotated) is not followed by the old token; a reload with a new refresh token recovers', async () => {
    const m = await replica();
    const rt2 = idp.issuedRefreshTokens[0]!;
    idp.setBehaviourSequence([{ kind: 'slow', ms: 600 }]);
    await expect(m.refresh('p')).rejects.toMatchObject({ code: 'ERR_GRANT_AMBIGUOUS' });
    await sleep(700);
    expect(idp.refreshTokenState(rt2)).toBe('spent'); // rotated; the successor never reached us
    expect(idp.presentations(rt2)).toBe(1);
    // The operator issues a new refresh token and reloads: a new grant, served at once.
    idp.addRefreshToken('rt-operator-new');
    await m.reload(parseConfig(yaml({ refreshToken: 'rt-operator-new' })).providers.values());
    const status = m.stats()[0]!;
    expect(status.state).toBe('valid');
    expect(status.lastError).toBeNull();
    expect((await m.getToken('p')).value).toBe(idp.issuedAccessTokens.at(-1));
    expectGrantIntact();
  });

  it.each(['garbled', 'reset_after'] as const)('a %s answer after the grant was carried out is ambiguous: no retry', async (how) => {
    const m = await replica();
    const rt2 = idp.issuedRefreshTokens[0]!;
    idp.setBehaviourSequence([{ kind: how }]);
    await expect(m.refresh('p')).rejects.toMatchObject({ code: 'ERR_GRANT_AMBIGUOUS' });
    expect(idp.presentations(rt2)).toBe(1);
    expect(idp.tokenRequestCount).toBe(2);
    expect(m.stats()[0]!.state).toBe('needs_attention');
    expectGrantIntact();
  });

  it('an answer refused for its token bytes after the grant was carried out is ambiguous: no retry with the spent token', async () => {
    const m = await replica();
    const served = idp.issuedAccessTokens[0]!;
    const rt2 = idp.issuedRefreshTokens[0]!;
    idp.setBehaviourSequence([{ kind: 'unsafe_token' }]);
    await expect(m.refresh('p')).rejects.toMatchObject({ code: 'ERR_GRANT_AMBIGUOUS' });
    expect(idp.presentations(rt2)).toBe(1);
    expect(idp.tokenRequestCount).toBe(2);
    expect((await m.getToken('p')).value).toBe(served);
    expect(m.stats()[0]!.state).toBe('needs_attention');
    expectGrantIntact();
  });

  it('an answer the IdP gives without carrying out the grant (429, 503, invalid_grant) is not ambiguous', async () => {
    const m = await replica();
    idp.setBehaviourSequence([{ kind: 'status', status: 503, body: { error: 'temporarily_unavailable' } }]);
    await m.refresh('p'); // retried: the 503 said nothing was done
    expect(idp.tokenRequestCount).toBe(3);
    expect(m.stats()[0]!.state).toBe('valid');
    expectGrantIntact();
  });

  it('connection refused (nothing sent) is retried with the same refresh token', async () => {
    const m = await replica({ retries: 20, timeout: '2s', backoff: '{ base: 50ms, max: 50ms }' });
    const rt2 = idp.issuedRefreshTokens[0]!;
    await idp.stop(); // refused until it comes back on the same port
    const back = sleep(30).then(() => idp.start());
    const done = m.refresh('p');
    await back;
    await done;
    expect(idp.presentations(rt2)).toBe(1);
    expect(m.stats()[0]!.state).toBe('valid');
    expectGrantIntact();
  });

  it('reuseInterval: a retry inside the window presents the same token once more, and succeeds', async () => {
    idp.reuseIntervalMs = 5_000;
    const m = await replica({ reuseInterval: '5s', retries: 1 });
    const rt2 = idp.issuedRefreshTokens[0]!;
    idp.setBehaviourSequence([{ kind: 'slow', ms: 600 }]);
    await m.refresh('p');
    expect(idp.presentations(rt2)).toBe(2); // the retry, inside the IdP's grace
    expect(m.stats()[0]!.state).toBe('valid');
    expect(idp.reuseDetectedCount).toBe(0);
    expect(idp.anyFamilyRevoked).toBe(false);
    await sleep(700);
  });

  it('reuseInterval: once the window has passed, the token is not presented again', async () => {
    idp.reuseIntervalMs = 200;
    const m = await replica({ reuseInterval: '200ms', retries: 2 });
    const rt2 = idp.issuedRefreshTokens[0]!;
    idp.setBehaviourSequence([{ kind: 'slow', ms: 600 }]);
    await expect(m.refresh('p')).rejects.toMatchObject({ code: 'ERR_GRANT_AMBIGUOUS' });
    await sleep(700);
    expect(idp.presentations(rt2)).toBe(1);
    await expect(m.refresh('p')).rejects.toMatchObject({ code: 'ERR_GRANT_AMBIGUOUS' });
    expect(idp.presentations(rt2)).toBe(1);
    expectGrantIntact();
  });

  if (kind === 'redis') {
    it('another replica and a restarted one never present the spent token either', async () => {
      const a = await replica();
      const b = await replica();
      const rt2 = idp.issuedRefreshTokens[0]!;
      idp.setBehaviourSequence([{ kind: 'slow', ms: 600 }]);
      await expect(a.refresh('p')).rejects.toMatchObject({ code: 'ERR_GRANT_AMBIGUOUS' });
      await expect(b.refresh('p')).rejects.toMatchObject({ code: 'ERR_GRANT_AMBIGUOUS' });
      expect(b.stats()[0]!.state).toBe('needs_attention');
      await a.close(1_000);
      const c = await replica(); // a restart: the same config, the same store
      await expect(c.refresh('p')).rejects.toMatchObject({ code: 'ERR_GRANT_AMBIGUOUS' });
      expect((await c.getToken('p')).value).toBe(idp.issuedAccessTokens[0]);
      await sleep(700);
      expect(idp.presentations(rt2)).toBe(1);
      expect(idp.tokenRequestCount).toBe(2);
      expectGrantIntact();
    });

    it('a shutdown that cuts a refresh off after sending leaves its token marked spent', async () => {
      const a = await replica({ timeout: '5s' });
      const rt2 = idp.issuedRefreshTokens[0]!;
      idp.setBehaviourSequence([{ kind: 'slow', ms: 1_000 }]);
      const cut = a.refresh('p').catch((e: unknown) => e);
      await idp.waitForRequests(2);
      await a.close(50); // the deadline passes with the grant in flight
      expect(await cut).toMatchObject({ code: 'ERR_GRANT_AMBIGUOUS' });
      const b = await replica();
      await expect(b.refresh('p')).rejects.toMatchObject({ code: 'ERR_GRANT_AMBIGUOUS' });
      await sleep(1_100);
      expect(idp.presentations(rt2)).toBe(1);
      expectGrantIntact();
    });

    it('a restart after the configured refresh token itself was spent does not present it', async () => {
      idp.setBehaviourSequence([{ kind: 'slow', ms: 600 }]);
      const a = await replica(); // the warm-up presents the configured token; the answer is lost
      expect(a.stats()[0]!.lastError).toMatchObject({ code: 'ERR_GRANT_AMBIGUOUS' });
      await a.close(1_000);
      const b = await replica();
      await expect(b.refresh('p')).rejects.toMatchObject({ code: 'ERR_GRANT_AMBIGUOUS' });
      expect(b.stats()[0]!.state).toBe('needs_attention');
      await sleep(700);
      expect(idp.presentations(INITIAL)).toBe(1);
      expectGrantIntact();
    });
  }
});

describe('sourceHash', () => {
  it('declaring reuseInterval keeps the store key (and with it the rotated refresh token)', async () => {
    const { sourceHash } = await import('../../src/tokens/manager.js');
    const src = (extra: string) => parseConfig(`providers: { p: { source: { type: refresh_token, tokenUrl: "https://idp.example/t", clientId: c, refreshToken: r${extra} } } }`).providers.get('p')!.source;
    expect(sourceHash(src(', reuseInterval: 10s'))).toBe(sourceHash(src('')));
    expect(sourceHash(src(', scope: other'))).not.toBe(sourceHash(src('')));
  });
});

describe('which network failures are ambiguous', () => {
  const { signal } = new AbortController();
  const err = (code: string) => Object.assign(new Error(code), { code });

  it.each(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'CERT_HAS_EXPIRED'])('%s: nothing was sent', async (code) => {
    const { classifyNetworkError } = await import('../../src/tokens/http/transport.js');
    expect(classifyNetworkError(err(code), signal).ambiguous).toBe(false);
  });

  it('a reset or an unknown error after the request may have been sent is ambiguous', async () => {
    const { classifyNetworkError } = await import('../../src/tokens/http/transport.js');
    expect(classifyNetworkError(err('ECONNRESET'), signal).ambiguous).toBe(true);
    expect(classifyNetworkError(err('ECONNRESET'), signal, false).ambiguous).toBe(false);
    const timedOut = new AbortController();
    timedOut.abort(new Error('timeout'));
    const e = classifyNetworkError(err('ABORT_ERR'), timedOut.signal, true);
    expect(e).toMatchObject({ code: 'ERR_IDP_TIMEOUT', ambiguous: true });
    expect(classifyNetworkError(err('ABORT_ERR'), timedOut.signal, false)).toMatchObject({ code: 'ERR_IDP_TIMEOUT', ambiguous: false });
  });
});
