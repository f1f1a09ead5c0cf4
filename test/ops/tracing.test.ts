// Spans seen by an in-memory exporter, in a real tokengate answering real gRPC Checks: a Check
// that waited for a refresh with retries is a child of the caller's traceparent, its refresh is
// the Check's child and the fetch the refresh's, with the retries, lock and store work as
// events. A cache hit makes no span, and nothing secret reaches an attribute or event.
import { NodeTracerProvider, InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DemoTokenServer } from '../../demo/token-server.js';
import { parentFromTraceparent, safeAttributes, setTracer, traceCheck, traceExchange } from '../../src/observability/tracing.js';
import { trace } from '@opentelemetry/api';
import { parseConfig } from '../../src/config/load.js';
import { TokenManager } from '../../src/tokens/manager.js';
import { startTestApp, type TestApp } from '../support/app.js';
import { envoyRequest, injected, metadata } from '../support/envoy-request.js';
import { ExchangeIdp, perCallerSource } from '../support/exchange-idp.js';

const CALLER_TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const CALLER_SPAN = '00f067aa0ba902b7';
const CALLER_CREDENTIAL = 'Bearer caller-own-credential-9f8e7d6c5b4a';

function allStrings(spans: readonly ReadableSpan[]): string {
  return JSON.stringify(spans.map((s) => ({
    name: s.name, attributes: s.attributes, status: s.status,
    events: s.events.map((e) => ({ name: e.name, attributes: e.attributes })),
  })));
}

describe('traces (in-memory exporter)', () => {
  const exporter = new InMemorySpanExporter();
  const provider = new NodeTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
  let idp: DemoTokenServer;
  let t: TestApp;

  beforeAll(async () => {
    // The AsyncLocalStorage context manager, as tracing-sdk.ts installs it.
    provider.register();
    setTracer(provider.getTracer('tokengate'));
    idp = new DemoTokenServer();
    await idp.start();
    // Warm-up fails (3 attempts), then the Check's own refresh fails twice and succeeds.
    idp.setBehaviourSequence(Array.from({ length: 5 }, () => ({ kind: 'status' as const, status: 500 })));
    t = await startTestApp(`
listen: { grpc: 127.0.0.1:0, admin: "off" }
providers:
  cc:
    source: { type: client_credentials, tokenUrl: "${idp.tokenUrl}", clientId: demo-client, clientSecret: demo-secret }
    refresh: { waitBudget: 5s }
    resilience: { timeout: 2s, retries: 2, backoff: { base: 10ms, max: 20ms }, breaker: { volumeThreshold: 100 } }
routes:
  - match: { authority: api.example.com }
    provider: cc
`);
  });

  afterAll(async () => {
    await t?.close();
    await idp?.stop();
    setTracer(undefined);
    await provider.shutdown();
    trace.disable();
  });

  it('a Check that waited: child of the caller\'s traceparent; refresh → fetch with retries; no secret anywhere', async () => {
    const warmUp = exporter.getFinishedSpans().filter((s) => s.name === 'tokengate.refresh');
    expect(warmUp.map((s) => s.attributes['tokengate.refresh.reason'])).toEqual(['warm_up']);
    expect(warmUp[0]!.parentSpanContext).toBeUndefined();
    expect(warmUp[0]!.status.message).toBe('ERR_IDP_UNAVAILABLE');
    exporter.reset();

    const res = await t.client.check(envoyRequest({ headers: { traceparent: `00-${CALLER_TRACE}-${CALLER_SPAN}-01`, authorization: CALLER_CREDENTIAL } }));
    expect(injected(res)?.header?.value).toBe(`Bearer ${idp.issuedAccessTokens[0]}`);
    const spans = exporter.getFinishedSpans();

    const check = spans.find((s) => s.name === 'tokengate.check')!;
    expect(check).toBeDefined();
    expect(check.kind).toBe(1); // SERVER
    expect(check.spanContext().traceId).toBe(CALLER_TRACE);
    expect(check.parentSpanContext?.spanId).toBe(CALLER_SPAN);
    expect(check.attributes).toMatchObject({ 'tokengate.provider': 'cc', 'tokengate.source': 'refreshed' });

    const refresh = spans.find((s) => s.name === 'tokengate.refresh')!;
    expect(refresh.parentSpanContext?.spanId).toBe(check.spanContext().spanId);
    expect(refresh.attributes).toMatchObject({ 'tokengate.provider': 'cc', 'tokengate.refresh.reason': 'cold' });
    // Store work (memory store: read, then the write) as events on the refresh.
    expect(refresh.events.map((e) => e.name)).toEqual(expect.arrayContaining(['store.read', 'store.write']));

    const fetch = spans.find((s) => s.name === 'tokengate.token.fetch')!;
    expect(fetch.parentSpanContext?.spanId).toBe(refresh.spanContext().spanId);
    expect(fetch.kind).toBe(2); // CLIENT
    const retries = fetch.events.filter((e) => e.name === 'retry');
    expect(retries.map((e) => e.attributes?.attempt)).toEqual([1, 2]);
    expect(fetch.attributes['tokengate.token_id']).toMatch(/^[A-Za-z0-9_-]+$/);
    expect(new Set(spans.map((s) => s.spanContext().traceId))).toEqual(new Set([CALLER_TRACE]));

    const text = allStrings(spans);
    for (const secret of [...idp.issuedAccessTokens, 'demo-secret', CALLER_CREDENTIAL, 'caller-own-credential']) expect(text).not.toContain(secret);
  });

  it('a cache hit makes no span', async () => {
    exporter.reset();
    for (let i = 0; i < 5; i++) {
      const res = await t.client.check(envoyRequest({ headers: { traceparent: `00-${CALLER_TRACE}-${CALLER_SPAN}-01` } }));
      expect(injected(res)?.header?.value).toBe(`Bearer ${idp.issuedAccessTokens[0]}`);
    }
    await new Promise((r) => setTimeout(r, 50));
    expect(exporter.getFinishedSpans().map((s) => s.name)).toEqual([]);
  });

  it('a Check without traceparent that waits starts its own trace; the refresh an access-log purge starts is a root', async () => {
    exporter.reset();
    expect(t.app.manager.invalidate('cc', undefined, 'admin')).toBe(true);
    const res = await t.client.check(envoyRequest());
    expect(injected(res)?.header?.value).toMatch(/^Bearer /);
    await new Promise((r) => setTimeout(r, 50));
    const spans = exporter.getFinishedSpans();
    const refresh = spans.find((s) => s.name === 'tokengate.refresh')!;
    expect(refresh.attributes['tokengate.refresh.reason']).toBe('invalidated');
    expect(refresh.parentSpanContext).toBeUndefined();
    for (const check of spans.filter((s) => s.name === 'tokengate.check')) {
      expect(check.parentSpanContext).toBeUndefined();
      expect(check.spanContext().traceId).not.toBe(CALLER_TRACE);
    }
  });

  it('the breaker\'s decisions: the transition to open on the fetch that tripped it, a refused fetch as breaker.rejected', async () => {
    const down = new DemoTokenServer();
    await down.start();
    down.setBehaviour({ kind: 'status', status: 503 });
    const config = parseConfig(`providers: { p: { source: { type: client_credentials, tokenUrl: "${down.tokenUrl}", clientId: demo-client, clientSecret: demo-secret },
      resilience: { retries: 1, backoff: { base: 10ms, max: 10ms }, breaker: { volumeThreshold: 2, errorThresholdPercentage: 50, resetTimeout: 30s } } } }`);
    const tokens = new TokenManager(config.providers.values());
    try {
      exporter.reset();
      // The breaker counts a fetch (its retries included) as one call: the second trips it.
      await expect(tokens.refresh('p')).rejects.toMatchObject({ code: 'ERR_IDP_UNAVAILABLE' });
      await expect(tokens.refresh('p')).rejects.toMatchObject({ code: 'ERR_IDP_UNAVAILABLE' });
      await expect(tokens.refresh('p')).rejects.toMatchObject({ code: 'ERR_BREAKER_OPEN' });
      const fetches = exporter.getFinishedSpans().filter((s) => s.name === 'tokengate.token.fetch');
      expect(fetches).toHaveLength(3);
      const breakerEvents = (f: ReadableSpan) => f.events.filter((e) => e.name.startsWith('breaker')).map((e) => [e.name, e.attributes?.state]);
      expect(fetches.map(breakerEvents)).toEqual([[], [['breaker.state', 'open']], [['breaker.rejected', 'open']]]);
      expect(fetches[1]!.events.filter((e) => e.name === 'retry')).toHaveLength(1);
      expect(fetches[2]!.attributes['tokengate.breaker']).toBe('open');
      expect(fetches[2]!.status.message).toBe('ERR_BREAKER_OPEN');
    } finally {
      await tokens.close();
      await down.stop();
    }
  });

  it('a failing fetch ends its span with the error code only (an IdP\'s words stay out)', async () => {
    exporter.reset();
    idp.setBehaviour({ kind: 'oauth_error', error: 'invalid_client', description: 'client demo-secret is not allowed', status: 401 });
    await expect(t.app.manager.refresh('cc')).rejects.toMatchObject({ code: 'ERR_IDP_REJECTED' });
    idp.setBehaviour({ kind: 'ok' });
    const spans = exporter.getFinishedSpans();
    const fetch = spans.find((s) => s.name === 'tokengate.token.fetch')!;
    expect(fetch.status).toEqual({ code: 2, message: 'ERR_IDP_REJECTED' });
    expect(fetch.attributes['error.type']).toBe('ERR_IDP_REJECTED');
    expect(allStrings(spans)).not.toContain('demo-secret');
  });
});

describe('exchange spans (for the per-caller token_exchange source)', () => {
  it('an exchange inside a Check is its CLIENT child, named by subject id only', async () => {
    const exporter = new InMemorySpanExporter();
    const provider = new NodeTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
    provider.register();
    setTracer(provider.getTracer('tokengate'));
    try {
      await traceCheck(`00-${CALLER_TRACE}-${CALLER_SPAN}-01`, { 'tokengate.provider': 'obo' }, () =>
        traceExchange('obo', 'subj-id-1', async () => 'exchanged'));
      const spans = exporter.getFinishedSpans();
      const check = spans.find((s) => s.name === 'tokengate.check')!;
      const exchange = spans.find((s) => s.name === 'tokengate.token.exchange')!;
      expect(exchange.kind).toBe(2);
      expect(exchange.parentSpanContext?.spanId).toBe(check.spanContext().spanId);
      expect(exchange.spanContext().traceId).toBe(CALLER_TRACE);
      expect(exchange.attributes).toEqual({ 'tokengate.provider': 'obo', 'tokengate.subject_id': 'subj-id-1' });
    } finally {
      setTracer(undefined);
      await provider.shutdown();
      trace.disable();
    }
  });
});

describe('a per-caller exchange in a real tokengate', () => {
  it('the waiting Check is the child of its traceparent, the exchange its CLIENT child; no subject token in any span; one audit line', async () => {
    const exporter = new InMemorySpanExporter();
    const provider = new NodeTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
    provider.register();
    setTracer(provider.getTracer('tokengate'));
    const idp = await new ExchangeIdp().start();
    let t: TestApp | undefined;
    try {
      t = await startTestApp(`
listen: { grpc: 127.0.0.1:0, admin: "off" }
providers:
  orders:
    source: ${perCallerSource(idp, { scheme: 'Bearer', verify: true })}
    cache: { maxEntries: 100 }
    refresh: { waitBudget: 5s }
`);
      const alice = await idp.subjectToken({ sub: 'alice' });
      const check = (): ReturnType<TestApp['client']['check']> => t!.client.check(envoyRequest({
        contextExtensions: { provider: 'orders' },
        headers: { authorization: `Bearer ${alice}`, traceparent: `00-${CALLER_TRACE}-${CALLER_SPAN}-01` },
      }));
      const res = await check();
      expect(injected(res)?.header?.value).toMatch(/^Bearer /);
      const spans = exporter.getFinishedSpans();
      const checkSpan = spans.find((s) => s.name === 'tokengate.check')!;
      const exchange = spans.find((s) => s.name === 'tokengate.token.exchange')!;
      expect(checkSpan.kind).toBe(1); // SERVER
      expect(checkSpan.spanContext().traceId).toBe(CALLER_TRACE);
      expect(checkSpan.parentSpanContext?.spanId).toBe(CALLER_SPAN);
      expect(checkSpan.attributes).toMatchObject({ 'tokengate.provider': 'orders', 'tokengate.answer': 'token', 'tokengate.source': 'refreshed' });
      expect(exchange.kind).toBe(2); // CLIENT
      expect(exchange.parentSpanContext?.spanId).toBe(checkSpan.spanContext().spanId);
      expect(exchange.spanContext().traceId).toBe(CALLER_TRACE);
      expect(Object.keys(exchange.attributes).sort()).toEqual(['tokengate.provider', 'tokengate.subject_id']);
      const subjectId = exchange.attributes['tokengate.subject_id'];
      expect(subjectId).toMatch(/^[A-Za-z0-9_-]{12}$/);
      // Nothing of the caller's token, nor of the exchanged one, in any span.
      const text = allStrings(spans);
      expect(text).not.toContain(alice);
      for (const part of alice.split('.')) expect(text).not.toContain(part);
      for (const issued of idp.issued.keys()) expect(text).not.toContain(issued);
      // One audit line for the one exchange, naming the same subject id; a hit adds no line and no span.
      exporter.reset();
      expect(metadata(await check()).source).toBe('cache');
      expect(exporter.getFinishedSpans()).toHaveLength(0);
      const audits = t.logs.filter((l) => l.includes('"token.exchanged"')).map((l) => JSON.parse(l) as Record<string, unknown>);
      expect(audits).toHaveLength(1);
      expect(audits[0]).toMatchObject({ audit: 1, event: 'token.exchanged', provider: 'orders', subject_id: subjectId, subject: 'alice', audience: 'https://orders.example', actor: null, token_id: metadata(res).token_id });
      expect(t.logs.join('\n')).not.toContain(alice);
    } finally {
      await t?.close();
      await idp.stop();
      setTracer(undefined);
      await provider.shutdown();
      trace.disable();
    }
  });
});

describe('tracing helpers', () => {
  it('traceparent: W3C version 00, sampled flag; malformed, all-zero or version ff ids are no parent', () => {
    const ctx = parentFromTraceparent(`00-${CALLER_TRACE}-${CALLER_SPAN}-01`)!;
    expect(trace.getSpanContext(ctx)).toMatchObject({ traceId: CALLER_TRACE, spanId: CALLER_SPAN, traceFlags: 1, isRemote: true });
    expect(trace.getSpanContext(parentFromTraceparent(`00-${CALLER_TRACE}-${CALLER_SPAN}-00`)!)?.traceFlags).toBe(0);
    // A later version may append fields; version 00 may not.
    expect(parentFromTraceparent(`01-${CALLER_TRACE}-${CALLER_SPAN}-01-extra`)).toBeDefined();
    for (const bad of [undefined, '', 'garbage', `00-${CALLER_TRACE}-${CALLER_SPAN}-01-extra`, `ff-${CALLER_TRACE}-${CALLER_SPAN}-01`,
      `00-${'0'.repeat(32)}-${CALLER_SPAN}-01`, `00-${CALLER_TRACE}-${'0'.repeat(16)}-01`, `00-${CALLER_TRACE.slice(1)}-${CALLER_SPAN}-01`]) {
      expect(parentFromTraceparent(bad), String(bad)).toBeUndefined();
    }
  });

  it('attributes named like credentials are dropped; token ids and codes stay', () => {
    expect(safeAttributes({
      'tokengate.provider': 'p', 'tokengate.token_id': 'abc', 'error.type': 'ERR_X', attempt: 2,
      access_token: 'x', 'tokengate.token': 'x', refresh_token: 'x', 'tokengate.subject_token': 'x', client_secret: 'x', assertion: 'x', authorization: 'x', missing: undefined,
    })).toEqual({ 'tokengate.provider': 'p', 'tokengate.token_id': 'abc', 'error.type': 'ERR_X', attempt: 2 });
  });
});
