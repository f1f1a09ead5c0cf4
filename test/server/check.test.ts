// The Check contract over real gRPC, decoded with Envoy's own protos.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { DemoTokenServer } from '../../demo/token-server.js';
import { startTestApp, type TestApp } from '../support/app.js';
import { ccSource, startIdp, startWorld, type IdpWorld, type World } from '../support/world.js';
import { parseConfig } from '../../src/config/load.js';
import { deniedBody, deniedHeader, envoyRequest, injected, metadata, type CheckResponse } from '../support/envoy-request.js';
import { encodeCheckRequest } from '../security/support/raw-check.js';

function ccProvider(name: string, idp: DemoTokenServer, extra = ''): string {
  return `
  ${name}:
    source: ${ccSource(idp)}
${extra}`;
}

describe('Check: the injected credential', () => {
  let w: World;
  beforeAll(async () => {
    w = await startWorld({ idp: { tokenTtlSeconds: 3600 }, yaml: ({ idp }) => `
providers:${ccProvider('cc', idp, `    inject: { removeHeaders: [x-client-credential, cookie] }`)}
  apikey:
    source: { type: static, token: "static-key-1234" }
    inject: { header: X-Api-Key, format: "{token}" }
routes:
  - match: { authority: api.example.com }
    provider: cc
` });
  });
  afterAll(async () => {
    await w?.close();
  });

  it('answers an Envoy-shaped request with OK, the header set to overwrite, and the metadata', async () => {
    const res = await w.client.check(envoyRequest({ authority: 'api.example.com', headers: { 'x-request-id': 'abc' } }));
    expect(res.status?.code ?? 0).toBe(0);
    expect(res.denied_response).toBeUndefined();
    const h = injected(res)!;
    expect(h.header).toEqual({ key: 'authorization', value: `Bearer ${w.idp.issuedAccessTokens[0]}` });
    expect(h.append).toEqual({ value: false });
    expect(h.append_action).toBe('OVERWRITE_IF_EXISTS_OR_ADD');
    expect(res.ok_response?.headers).toHaveLength(1);
    expect(res.ok_response?.headers_to_remove).toEqual(['x-client-credential', 'cookie']);
    const md = metadata(res);
    expect(md).toEqual({ provider: 'cc', token_id: expect.stringMatching(/^[A-Za-z0-9_-]{12}$/), source: 'cache' });
    expect(md.token_id).not.toContain(w.idp.issuedAccessTokens[0]!.slice(0, 8));
  });

  it('replaces a client-supplied credential instead of appending to it', async () => {
    const res = await w.client.check(envoyRequest({ authority: 'api.example.com', headers: { authorization: 'Bearer client-forged' } }));
    const headers = res.ok_response?.headers ?? [];
    expect(headers.filter((x) => x.header?.key === 'authorization')).toHaveLength(1);
    expect(injected(res)?.header?.value).toBe(`Bearer ${w.idp.issuedAccessTokens[0]}`);
    expect(injected(res)?.append?.value).toBe(false);
  });

  it('uses the provider named in context_extensions over the routes, with its own header and format', async () => {
    const res = await w.client.check(envoyRequest({ authority: 'api.example.com', contextExtensions: { provider: 'apikey' } }));
    expect(injected(res, 'x-api-key')?.header?.value).toBe('static-key-1234');
    expect(injected(res)).toBeUndefined();
    expect(metadata(res).provider).toBe('apikey');
  });

  it('fetched the token once for all of the above', () => {
    expect(w.idp.tokenRequestCount).toBe(1);
  });
});

describe('Check: single flight and background refresh', () => {
  let w: IdpWorld;
  let t: TestApp | undefined;
  beforeAll(async () => {
    w = await startIdp();
  });
  afterEach(async () => {
    await t?.close();
    t = undefined;
    w.idp.setBehaviour({ kind: 'ok' });
    w.idp.reset();
  });
  afterAll(async () => w?.close());

  it('500 concurrent Checks on a cold provider cause exactly one token request', async () => {
    w.idp.setBehaviour({ kind: 'delay', ms: 100 });
    t = await w.startApp(({ idp }) => `
providers:${ccProvider('cold', idp, '    refresh: { waitBudget: 2s }')}
`, { waitReady: false });
    const results = await Promise.all(Array.from({ length: 500 }, () => t!.client.check(envoyRequest({ contextExtensions: { provider: 'cold' } }))));
    expect(w.idp.tokenRequestCount).toBe(1);
    const values = new Set(results.map((r) => injected(r)?.header?.value));
    expect(values).toEqual(new Set([`Bearer ${w.idp.issuedAccessTokens[0]}`]));
    expect(results.every((r) => (r.status?.code ?? 0) === 0)).toBe(true);
    // Those that waited for the fetch say so; later arrivals were plain cache hits.
    const sources = results.map((r) => metadata(r).source);
    expect(sources).toContain('refreshed');
    expect(sources.every((s) => s === 'refreshed' || s === 'cache')).toBe(true);
  });

  it('refreshes in the background before expiry, and no Check waits on it', async () => {
    // 3 s tokens: skew 150 ms, refresh lead 1.5 s → refresh at ~1.35 s, hard expiry at 2.85 s.
    w.idp.setTokenTtl(3);
    t = await w.startApp(({ idp }) => `
providers:${ccProvider('short', idp, '    refresh: { jitter: 0% }')}
`);
    expect(w.idp.tokenRequestCount).toBe(1);
    // The refresh is slow; Checks during it must still be answered at once from the cache.
    w.idp.setBehaviour({ kind: 'delay', ms: 600 });
    const seen: { value?: string; source?: string }[] = [];
    // Timed from the first fetch, not from when the app was ready: on a loaded machine a late
    // start let a loop of fixed length reach the second token's own refresh (a third request).
    const start = w.idp.requests[0]!.at;
    while (Date.now() - start < 2_600) {
      const res = await t.client.check(envoyRequest({ contextExtensions: { provider: 'short' } }));
      seen.push({ value: injected(res)?.header?.value, source: metadata(res).source });
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(w.idp.tokenRequestCount).toBe(2);
    const [first, second] = w.idp.issuedAccessTokens;
    expect(seen[0]!.value).toBe(`Bearer ${first}`);
    expect(seen.at(-1)!.value).toBe(`Bearer ${second}`);
    // Every answer came from the cache (the synchronous hit path): nobody waited for the fetch.
    expect(seen.every((s) => s.source === 'cache')).toBe(true);
  });
});

describe('Check: routing', () => {
  let t: TestApp;
  const yaml = (unmatched: string) => `
listen: { grpc: 127.0.0.1:0, admin: "off" }
defaults: { unmatched: ${unmatched} }
providers:
  a: { source: { type: static, token: tok-a } }
  b: { source: { type: static, token: tok-b } }
  c: { source: { type: static, token: tok-c } }
  d: { source: { type: static, token: tok-d } }
routes:
  - match: { authority: api.example.com, pathPrefix: /v1/, method: POST }
    provider: a
  - match: { authority: api.example.com, pathPrefix: /v1/ }
    provider: b
  - match: { authority: "*.example.org", headers: { x-tenant: blue } }
    provider: c
  - match: { authority: "*.example.org" }
    provider: d
`;
  beforeAll(async () => {
    t = await startTestApp(yaml('allow'));
  });
  afterAll(async () => t?.close());

  const via = async (init: Parameters<typeof envoyRequest>[0]) => {
    const res = await t.client.check(envoyRequest(init));
    return injected(res)?.header?.value;
  };

  it('matches authority exactly (port and case ignored), path prefix, method and headers in order', async () => {
    expect(await via({ authority: 'api.example.com', path: '/v1/x', method: 'POST' })).toBe('Bearer tok-a');
    expect(await via({ authority: 'API.Example.com:443', path: '/v1/x', method: 'GET' })).toBe('Bearer tok-b');
    expect(await via({ authority: 'api.example.com', path: '/v2/x' })).toBeUndefined();
    expect(await via({ authority: 'eu.example.org', headers: { 'x-tenant': 'blue' } })).toBe('Bearer tok-c');
    expect(await via({ authority: 'eu.example.org:8443', headers: { 'x-tenant': 'red' } })).toBe('Bearer tok-d');
    // The wildcard needs a label in front: the bare domain does not match *.example.org.
    expect(await via({ authority: 'example.org' })).toBeUndefined();
    expect(await via({ authority: 'evil-example.org' })).toBeUndefined();
  });

  // Envoy with `encode_raw_headers: true` sends header_map (raw values, duplicates apart)
  // instead of headers: a header rule must still see the header.
  it('matches a header rule on header_map (encode_raw_headers)', async () => {
    const viaRaw = async (tenant: string) => {
      const req = envoyRequest({ authority: 'eu.example.org' }) as { attributes: { request: { http: Record<string, unknown> } } };
      const http = req.attributes.request.http;
      const headers = http.headers as Record<string, string>;
      delete http.headers;
      http.header_map = { headers: [...Object.entries(headers), ['x-tenant', tenant] as const].map(([key, v]) => ({ key, raw_value: Buffer.from(v) })) };
      return injected(await t.client.check(req))?.header?.value;
    };
    expect(await viaRaw('blue')).toBe('Bearer tok-c');
    expect(await viaRaw('red')).toBe('Bearer tok-d');
  });

  it('lets context_extensions override the routes', async () => {
    expect(await via({ authority: 'api.example.com', path: '/v1/x', method: 'POST', contextExtensions: { provider: 'd' } })).toBe('Bearer tok-d');
  });

  it('allows an unmatched request without a credential (unmatched: allow)', async () => {
    const res = await t.client.check(envoyRequest({ authority: 'other.example.net' }));
    expect(res.status?.code ?? 0).toBe(0);
    expect(res.ok_response?.headers ?? []).toEqual([]);
  });

  it('denies an unknown provider loudly: HTTP 500 with unknown_provider', async () => {
    const res = await t.client.check(envoyRequest({ contextExtensions: { provider: 'nope' } }));
    expect(res.status?.code).not.toBe(0);
    expect(res.denied_response?.status?.code).toBe('InternalServerError');
    expect(deniedBody(res)).toEqual({ error: 'unknown_provider', provider: 'nope' });
  });

  it('denies unmatched requests when unmatched: deny', async () => {
    const d = await startTestApp(yaml('deny'));
    try {
      const res = await d.client.check(envoyRequest({ authority: 'other.example.net' }));
      expect(res.status?.code).toBe(7);
      expect(res.denied_response?.status?.code).toBe('Forbidden');
      expect(deniedBody(res)).toEqual({ error: 'no_route' });
    } finally {
      await d.close();
    }
  });
});

describe('Check: bad input gets a deliberate answer and the server keeps serving', () => {
  let w: World;
  beforeAll(async () => {
    w = await startWorld({ beforeApp: (idp) => idp.setBehaviour({ kind: 'html' }), yaml: ({ cc }) => `
defaults: { unmatched: allow, onTokenUnavailable: deny }
providers:
  good: { source: { type: static, token: good-token } }
  html:
    source: ${cc()}
    resilience: { retries: 0 }
    refresh: { waitBudget: 500ms }
routes:
  - match: { authority: good.example.com }
    provider: good
` });
  });
  afterAll(async () => {
    await w?.close();
  });

  const stillServing = async () => {
    const res = await w.client.check(envoyRequest({ contextExtensions: { provider: 'good' } }));
    expect(injected(res)?.header?.value).toBe('Bearer good-token');
  };

  it('a request with no attributes, or no http request, is unmatched (allowed without credential)', async () => {
    for (const req of [{}, { attributes: {} }, { attributes: { request: {} } }]) {
      const res = await w.client.check(req);
      expect(res.status?.code ?? 0).toBe(0);
      expect(res.ok_response?.headers ?? []).toEqual([]);
    }
    await stillServing();
  });

  it('odd header casing and a 1 MB header map are answered', async () => {
    const big: Record<string, string> = {};
    for (let i = 0; i < 1024; i++) big[`x-filler-${i}`] = 'v'.repeat(1000);
    const res = await w.client.check(envoyRequest({ authority: 'GOOD.Example.COM', headers: big }));
    expect(injected(res)?.header?.value).toBe('Bearer good-token');
    await stillServing();
  });

  it('an IdP answering HTML, or 200 without access_token, gives a 503 token_unavailable deny', async () => {
    for (const [kind, code] of [['html', 'ERR_IDP_BAD_RESPONSE'], ['no_access_token', 'ERR_IDP_BAD_RESPONSE']] as const) {
      w.idp.setBehaviour({ kind });
      const res = await w.client.check(envoyRequest({ contextExtensions: { provider: 'html' } }));
      expect(res.status?.code).toBe(14);
      expect(res.denied_response?.status?.code).toBe('ServiceUnavailable');
      expect(deniedBody(res)).toMatchObject({ error: 'token_unavailable', provider: 'html' });
      expect(Number(deniedHeader(res, 'retry-after'))).toBeGreaterThanOrEqual(1);
      const status = w.app.manager.stats().find((s) => s.name === 'html')!;
      expect(status.lastError).toMatchObject({ code });
    }
    await stillServing();
  });
});

describe('Check: a request read before a reload', () => {
  let t: TestApp;
  const yaml = (headerRuleFirst: boolean) => `
listen: { grpc: 127.0.0.1:0, admin: "off" }
providers:
  a: { source: { type: static, token: tok-a } }
  b: { source: { type: static, token: tok-b } }
routes:
${headerRuleFirst ? '  - { match: { authority: api.example.com, headers: { x-tenant: blue } }, provider: b }\n' : ''}  - { match: { authority: api.example.com }, provider: a }
`;
  beforeAll(async () => {
    t = await startTestApp(yaml(false));
  });
  afterAll(async () => t?.close());

  // grpc-js deserialises a request before its handler runs; a reload in between swaps the
  // reader (it reads only the headers the old routes named), so the handler reads it again.
  it('is routed with the new routes, headers they name included', async () => {
    const check = t.app.authz.serviceDefinition.Check!;
    const request = check.requestDeserialize(encodeCheckRequest(envoyRequest({ authority: 'api.example.com', headers: { 'x-tenant': 'blue' } })));
    t.app.authz.configure(parseConfig(yaml(true), { env: {} }));
    const answer = await new Promise<Buffer>((resolve, reject) => {
      t.app.authz.check({ request } as never, (err, value) => (err ? reject(err) : resolve(check.responseSerialize(value))));
    });
    expect(injected(check.responseDeserialize(answer) as CheckResponse)?.header?.value).toBe('Bearer tok-b');
  });
});
