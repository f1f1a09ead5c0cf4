// The Fetcher on its own, against a loopback token endpoint: retries on transient answers and
// never on refusals, Retry-After waited out on the injected clock (and shared by every fetcher
// that talks to the endpoint), the breaker that stops calling a failing endpoint and lets its
// listener know when a probe may go, and close() cutting a fetch in progress. The fetcher is
// told what to fetch (a FetchRequest): nothing here builds a provider.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import { parseConfig } from '../../src/config/load.js';
import type { ProviderConfig } from '../../src/config/types.js';
import { createLogger } from '../../src/observability/logger.js';
import { Metrics } from '../../src/observability/metrics.js';
import { RetryAfterGate } from '../../src/resilience/retry-after-gate.js';
import { TokenError } from '../../src/tokens/errors.js';
import { Fetcher, type BreakerListener } from '../../src/tokens/fetcher.js';
import { createSource } from '../../src/tokens/sources/index.js';
import type { TokenSource } from '../../src/tokens/sources/source.js';
import { ScriptedIdp, settle } from './support/scripted-idp.js';
import { until } from '../support/until.js';

const SECRET = 'fetcher-test-client-secret';

function providerConfig(tokenUrl: string, resilience: string, source = 'client_credentials'): ProviderConfig {
  const yaml = `
providers:
  p:
    source: { type: ${source}, tokenUrl: "${tokenUrl}", clientId: c, clientSecret: "\${env:S}"${source === 'refresh_token' ? ', refreshToken: "${env:S}"' : ''} }
    resilience: ${resilience}
`;
  return parseConfig(yaml, { env: { S: SECRET } }).providers.get('p')!;
}

interface World {
  clock: ManualClock;
  idp: ScriptedIdp;
  gate: RetryAfterGate;
  metrics: Metrics;
  logs: Record<string, unknown>[];
  config: ProviderConfig;
  source: TokenSource;
  fetcher: Fetcher;
  halfOpen: number;
}

let world: World | undefined;
const extra: { stop(): Promise<void> }[] = [];

async function start(resilience: string, opts: { gate?: RetryAfterGate; clock?: ManualClock } = {}): Promise<World> {
  const clock = opts.clock ?? new ManualClock();
  const idp = await new ScriptedIdp(clock).start();
  const config = providerConfig(idp.tokenUrl, resilience);
  const logs: Record<string, unknown>[] = [];
  const logger = createLogger({ level: 'debug', sink: (line) => logs.push(JSON.parse(line) as Record<string, unknown>) });
  const gate = opts.gate ?? new RetryAfterGate();
  const metrics = new Metrics();
  const w = { clock, idp, gate, metrics, logs, config, source: createSource(config.source), halfOpen: 0 } as World;
  const listener: BreakerListener = { breakerHalfOpen: () => void w.halfOpen++ };
  // Full jitter at 0.5: each backoff is half its cap, so the test knows how far to move the clock.
  w.fetcher = new Fetcher(config, { clock, gate, logger, metrics }, () => 0.5, listener);
  return w;
}

const retriesLogged = (w: World) => w.logs.filter((l) => l.msg === 'retrying token request').length;

/** Waits (real time) for the n-th retry to be logged, then moves the clock past its backoff. */
async function passBackoff(w: World, n: number): Promise<void> {
  await until(() => retriesLogged(w) >= n);
  const last = w.logs.filter((l) => l.msg === 'retrying token request').at(-1)!;
  w.clock.advance(last.delayMs as number);
}

async function rejection(p: Promise<unknown>): Promise<TokenError> {
  const err = await p.then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(TokenError);
  return err as TokenError;
}

afterEach(async () => {
  world?.fetcher.close();
  world?.source.close?.();
  await world?.idp.stop();
  world = undefined;
  await Promise.all(extra.splice(0).map((s) => s.stop()));
});

describe('fetch: one request to the source given, through retries', () => {
  it('returns the record of a first-time success, timed from when the request was sent', async () => {
    const w = (world = await start('{ retries: 2 }'));
    w.idp.answers({ token: 'tok-1', expiresIn: 600 });
    const sentAt = w.clock.now();
    const rec = await w.fetcher.fetch({ source: w.source });
    expect(rec.accessToken).toBe('tok-1');
    expect(rec.obtainedAt).toBe(sentAt);
    // Hard expiry is the send time plus expires_in, less the skew allowance (30 s at most).
    expect(rec.expiresAt).toBe(sentAt + 600_000 - 30_000);
    expect(w.idp.requests).toBe(1);
    expect(w.idp.seen[0]!.body.get('grant_type')).toBe('client_credentials');
    expect(w.metrics.render()).toMatch(/tokengate_token_fetches_total\{provider="p",outcome="success"\} 1/);
  });

  it('retries a 503 after its backoff, on the injected clock, and succeeds', async () => {
    const w = (world = await start('{ retries: 2, backoff: { base: 1s, max: 8s } }'));
    w.idp.answers({ status: 503 }, { status: 503 }, { token: 'tok-after-two' });
    const p = w.fetcher.fetch({ source: w.source });
    await passBackoff(w, 1);
    await passBackoff(w, 2);
    const rec = await p;
    expect(rec.accessToken).toBe('tok-after-two');
    expect(w.idp.requests).toBe(3);
    // Full jitter at 0.5 of min(max, base·2^n): 500 ms, then 1 s, apart on the test clock.
    expect(w.idp.seen[1]!.at - w.idp.seen[0]!.at).toBe(500);
    expect(w.idp.seen[2]!.at - w.idp.seen[1]!.at).toBe(1_000);
  });

  it('does not send the next attempt before its backoff has passed', async () => {
    const w = (world = await start('{ retries: 1, backoff: { base: 4s, max: 8s } }'));
    w.idp.answers({ status: 503 }, { token: 'late' });
    const p = w.fetcher.fetch({ source: w.source });
    await until(() => retriesLogged(w) === 1);
    w.clock.advance(1_999); // the backoff is 2 s
    await settle();
    expect(w.idp.requests).toBe(1);
    w.clock.advance(1);
    expect((await p).accessToken).toBe('late');
    expect(w.idp.requests).toBe(2);
  });

  it('gives up after `retries` more attempts with the last error', async () => {
    const w = (world = await start('{ retries: 2, backoff: { base: 100ms, max: 1s } }'));
    w.idp.answers({ status: 503 }, { status: 502 }, { status: 503 });
    const p = w.fetcher.fetch({ source: w.source });
    await passBackoff(w, 1);
    await passBackoff(w, 2);
    const err = await rejection(p);
    expect(err.code).toBe('ERR_IDP_UNAVAILABLE');
    expect(err.status).toBe(503);
    expect(w.idp.requests).toBe(3);
    expect(w.metrics.render()).toMatch(/tokengate_token_fetches_total\{provider="p",outcome="ERR_IDP_UNAVAILABLE"\} 1/);
  });

  it('never retries a refusal (invalid_client)', async () => {
    const w = (world = await start('{ retries: 3 }'));
    w.idp.answers({ status: 401, body: { error: 'invalid_client' } }, { token: 'never-asked-for' });
    const err = await rejection(w.fetcher.fetch({ source: w.source }));
    expect(err.code).toBe('ERR_IDP_REJECTED');
    expect(err.oauthError).toBe('invalid_client');
    await settle();
    expect(w.idp.requests).toBe(1);
  });

  it('presents the refresh token it is given, and fetches from whichever source the request names', async () => {
    const w = (world = await start('{ retries: 0 }'));
    const other = await new ScriptedIdp(w.clock).start();
    extra.push(other);
    const rtConfig = providerConfig(other.tokenUrl, '{ retries: 0 }', 'refresh_token');
    const rtSource = createSource(rtConfig.source);
    other.answers({ token: 'from-the-other-endpoint', refreshToken: 'rt-2' });
    const rec = await w.fetcher.fetch({ source: rtSource, refreshToken: 'rt-1' });
    rtSource.close?.();
    expect(rec.accessToken).toBe('from-the-other-endpoint');
    expect(rec.refreshToken).toBe('rt-2');
    expect(other.seen[0]!.body.get('grant_type')).toBe('refresh_token');
    expect(other.seen[0]!.body.get('refresh_token')).toBe('rt-1');
    expect(w.idp.requests).toBe(0);
  });
});

describe('Retry-After', () => {
  it('a 503 with Retry-After: 7 is not asked again for 7 s, though its backoff is shorter', async () => {
    const w = (world = await start('{ retries: 2, backoff: { base: 100ms, max: 1s } }'));
    w.idp.answers({ status: 503, headers: { 'retry-after': '7' } }, { token: 'after-the-wait' });
    const p = w.fetcher.fetch({ source: w.source });
    await until(() => retriesLogged(w) === 1);
    w.clock.advance(6_999);
    await settle();
    expect(w.idp.requests).toBe(1);
    w.clock.advance(1);
    expect((await p).accessToken).toBe('after-the-wait');
    expect(w.idp.seen[1]!.at - w.idp.seen[0]!.at).toBe(7_000);
  });

  it('a 429 Retry-After holds back another fetcher that shares the gate and the endpoint', async () => {
    const w = (world = await start('{ retries: 0 }'));
    w.idp.answers({ status: 429, headers: { 'retry-after': '5' } }, { token: 'second-fetcher' });
    const err = await rejection(w.fetcher.fetch({ source: w.source }));
    expect(err.code).toBe('ERR_IDP_RATE_LIMITED');
    // Another provider's fetcher on the same endpoint: its first attempt waits for the gate.
    const second = new Fetcher(w.config, { clock: w.clock, gate: w.gate, logger: createLogger({ sink: () => undefined }), metrics: w.metrics }, () => 0.5);
    const p = second.fetch({ source: w.source });
    await settle();
    expect(w.idp.requests).toBe(1);
    w.clock.advance(5_000);
    expect((await p).accessToken).toBe('second-fetcher');
    expect(w.idp.seen[1]!.at - w.idp.seen[0]!.at).toBe(5_000);
    second.close();
  });
});

describe('the breaker', () => {
  const BREAKER = '{ retries: 0, breaker: { volumeThreshold: 2, errorThresholdPercentage: 50, resetTimeout: 300ms, window: 60s } }';

  it('opens after failures, refuses without calling the endpoint, tells its listener when a probe may go, and closes on success', async () => {
    const w = (world = await start(BREAKER));
    expect(w.fetcher.breakerState).toBe('closed');
    w.idp.answers({ status: 503 }, { status: 503 }, { token: 'probe-ok' });
    expect((await rejection(w.fetcher.fetch({ source: w.source }))).code).toBe('ERR_IDP_UNAVAILABLE');
    expect(w.fetcher.breakerState).toBe('closed');
    expect((await rejection(w.fetcher.fetch({ source: w.source }))).code).toBe('ERR_IDP_UNAVAILABLE');
    expect(w.fetcher.breakerState).toBe('open');
    const refused = await rejection(w.fetcher.fetch({ source: w.source }));
    expect(refused.code).toBe('ERR_BREAKER_OPEN');
    expect(w.idp.requests).toBe(2);
    expect(w.metrics.render()).toMatch(/tokengate_token_fetches_total\{provider="p",outcome="ERR_BREAKER_OPEN"\} 1/);
    // opossum's reset timer runs in real time (300 ms here).
    await until(() => w.halfOpen === 1, 5_000);
    expect(w.fetcher.breakerState).toBe('half_open');
    expect((await w.fetcher.fetch({ source: w.source })).accessToken).toBe('probe-ok');
    expect(w.fetcher.breakerState).toBe('closed');
    expect(w.idp.requests).toBe(3);
  });

  it('a refusal proves the endpoint is up: it never trips the breaker', async () => {
    const w = (world = await start(BREAKER));
    w.idp.fallback = { status: 400, body: { error: 'invalid_grant' } };
    for (let i = 0; i < 4; i++) expect((await rejection(w.fetcher.fetch({ source: w.source }))).code).toBe('ERR_IDP_REJECTED');
    expect(w.fetcher.breakerState).toBe('closed');
    expect(w.idp.requests).toBe(4);
    expect(w.halfOpen).toBe(0);
  });

  it('a local source (no endpoint) never creates one', async () => {
    const w = (world = await start(BREAKER));
    const yaml = 'providers:\n  s:\n    source: { type: static, token: "${env:T}" }\n';
    const staticSource = createSource(parseConfig(yaml, { env: { T: 'static-token-value' } }).providers.get('s')!.source);
    for (let i = 0; i < 3; i++) expect((await w.fetcher.fetch({ source: staticSource })).accessToken).toBe('static-token-value');
    expect(w.fetcher.breakerState).toBe('closed');
    expect(w.idp.requests).toBe(0);
  });
});

describe('close', () => {
  it('cuts a fetch in progress with ERR_SHUTTING_DOWN and refuses new ones', async () => {
    const w = (world = await start('{ retries: 3, timeout: 30s }'));
    w.idp.answers({ hang: true });
    const p = w.fetcher.fetch({ source: w.source });
    await until(() => w.idp.requests === 1);
    w.fetcher.close();
    expect((await rejection(p)).code).toBe('ERR_SHUTTING_DOWN');
    expect((await rejection(w.fetcher.fetch({ source: w.source }))).code).toBe('ERR_SHUTTING_DOWN');
    expect(w.idp.requests).toBe(1);
  });

  it('cuts every fetch in progress when several slots share the fetcher', async () => {
    const w = (world = await start('{ retries: 3, timeout: 30s }'));
    const other = await new ScriptedIdp(w.clock).start();
    extra.push(other);
    const otherSource = createSource(providerConfig(other.tokenUrl, '{ retries: 0 }').source);
    w.idp.answers({ hang: true });
    other.answers({ hang: true });
    const fetches = [w.fetcher.fetch({ source: w.source }), w.fetcher.fetch({ source: otherSource })];
    await until(() => w.idp.requests === 1 && other.requests === 1);
    w.fetcher.close();
    const errors = await Promise.all(fetches.map(rejection));
    otherSource.close?.();
    expect(errors.map((e) => e.code)).toEqual(['ERR_SHUTTING_DOWN', 'ERR_SHUTTING_DOWN']);
  });
});
