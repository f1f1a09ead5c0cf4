// The demo's contract, end to end without Envoy: for every route in envoy/envoy.yaml, replay the
// CheckRequest Envoy would send (authority, path under the route's prefix, the route's
// context_extensions, Envoy's header handling incl. disallowed_headers) to a real tokengate
// started in-process from examples/demo/tokengate.yaml, with a DemoTokenServer as the IdP, and
// check the answer Envoy needs: OK, `Authorization: Bearer <issued token>`, overwrite semantics
// that hold on every Envoy version, and the dynamic metadata the access-log filter keys on.
import { randomUUID } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { jwtVerify } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTokengate } from '../../src/app.js';
import { loadConfigFile } from '../../src/config/load.js';
import { DemoTokenServer } from '../../demo/token-server.js';
import { createLogger } from '../../src/observability/logger.js';
import { authorizationClient } from '../../src/server/protos.js';
import { envoyRoutes, readYaml, repoPath, type EnvoyRoute, type Obj } from '../support/demo-files.js';

type Tokengate = Awaited<ReturnType<typeof startTokengate>>;

interface HeaderValueOption {
  header?: { key?: string; value?: string };
  append?: { value?: boolean };
  append_action?: string;
}
interface CheckResponse {
  status?: { code?: number; message?: string };
  ok_response?: { headers?: HeaderValueOption[]; headers_to_remove?: string[] };
  denied_response?: { status?: { code?: string | number }; body?: string };
  dynamic_metadata?: { fields?: Record<string, { stringValue?: string; string_value?: string }> };
}
type CheckFn = (req: unknown, md: grpc.Metadata, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res: CheckResponse) => void) => void;

const envoy = readYaml('envoy/envoy.yaml');
const ROUTES = envoyRoutes(envoy);
const HCM = envoy['static_resources'].listeners[0].filter_chains[0].filters[0].typed_config as Obj;
const EXT_AUTHZ = (HCM['http_filters'] as Obj[]).find((f) => f['name'] === 'envoy.filters.http.ext_authz')!['typed_config'] as Obj;
/** The dynamic-metadata key the feedback access log filters on (`token_id`). */
const FEEDBACK_KEY = (() => {
  const log = (HCM['access_log'] as Obj[]).find((a) => a['name'] === 'envoy.access_loggers.http_grpc')!;
  const meta = (log['filter'].and_filter.filters as Obj[]).find((f) => f['metadata_filter'])!['metadata_filter'];
  return (meta.matcher.path as Obj[]).map((s) => s['key']).join('.');
})();

/** Headers a curl client sends through Envoy's listener; the credentials must never reach tokengate. */
const CLIENT_HEADERS: Record<string, string> = {
  'user-agent': 'curl/8.5.0',
  accept: '*/*',
  authorization: 'Bearer client-supplied-token',
  cookie: 'session=client-cookie',
};

/** Envoy's disallowed_headers (exact matches) applied to the client's headers. */
function forwardedToAuthz(headers: Record<string, string>): Record<string, string> {
  const patterns = (EXT_AUTHZ['disallowed_headers']?.patterns ?? []) as Obj[];
  const blocked = (name: string): boolean =>
    patterns.some((p) => (p['ignore_case'] ? String(p['exact']).toLowerCase() === name : p['exact'] === name) || (p['prefix'] && name.startsWith(p['prefix'])));
  return Object.fromEntries(Object.entries(headers).filter(([k]) => !blocked(k.toLowerCase())));
}

/**
 * The CheckRequest Envoy sends for `curl localhost:10000<prefix>anything?demo=1` on `route`, or
 * undefined where Envoy sends none (ext_authz disabled on the route).
 */
function envoyCheckRequest(route: EnvoyRoute): Record<string, unknown> | undefined {
  if (route.authzDisabled) return undefined;
  const authority = `localhost:${route.listenerPort}`;
  const path = `${route.prefix}anything?demo=1`;
  const requestId = randomUUID();
  const headers: Record<string, string> = {
    ':authority': authority,
    ':path': path,
    ':method': 'GET',
    ':scheme': 'http',
    ...Object.fromEntries(Object.entries(forwardedToAuthz(CLIENT_HEADERS)).map(([k, v]) => [k.toLowerCase(), v])),
    'x-forwarded-proto': 'http',
    'x-request-id': requestId,
    'x-envoy-expected-rq-timeout-ms': '15000',
  };
  return {
    attributes: {
      source: { address: { socket_address: { address: '172.18.0.1', port_value: 51234 } } },
      destination: { address: { socket_address: { address: '172.18.0.7', port_value: route.listenerPort } } },
      request: {
        time: { seconds: String(Math.floor(Date.now() / 1000)), nanos: 0 },
        http: { id: '8346243105683925476', method: 'GET', headers, path, host: authority, scheme: 'http', protocol: 'HTTP/1.1' },
      },
      context_extensions: route.contextExtensions,
    },
  };
}

function routeFor(provider: string): EnvoyRoute {
  const r = ROUTES.find((x) => x.contextExtensions['provider'] === provider);
  expect(r, `a route in envoy.yaml for provider ${provider}`).toBeDefined();
  return r!;
}

function authorizationHeaders(res: CheckResponse): HeaderValueOption[] {
  return (res.ok_response?.headers ?? []).filter((h) => h.header?.key?.toLowerCase() === 'authorization');
}

function metadata(res: CheckResponse): Record<string, string> {
  return Object.fromEntries(Object.entries(res.dynamic_metadata?.fields ?? {}).map(([k, v]) => [k, v.stringValue ?? v.string_value ?? '']));
}

describe('demo contract: what Envoy sends for each envoy.yaml route, what tokengate answers', () => {
  let idp: DemoTokenServer;
  let app: Tokengate;
  let client: grpc.Client & { Check: CheckFn };
  let jwtKey: string;
  const logs: string[] = [];

  const check = (req: unknown): Promise<CheckResponse> =>
    new Promise((resolve, reject) => {
      client.Check(req, new grpc.Metadata(), { deadline: Date.now() + 5_000 }, (err, res) => (err ? reject(err) : resolve(res)));
    });

  beforeAll(async () => {
    idp = new DemoTokenServer();
    await idp.start();
    const config = loadConfigFile(repoPath('examples/demo/tokengate.yaml'), {
      TOKENGATE_GRPC_LISTEN: '127.0.0.1:0',
      TOKENGATE_ADMIN_LISTEN: 'off',
      TOKENGATE_STORE: 'memory',
      DEMO_TOKEN_URL: idp.tokenUrl,
      // everything else (client id/secret, JWT key) from the demo config's own defaults
    });
    const source = config.providers.get('demo-jwt')!.source;
    jwtKey = source.type === 'jwt' ? source.key : '';
    app = await startTokengate(config, { logger: createLogger({ level: 'debug', sink: (l) => logs.push(l) }) });
    await app.ready;
    const Ctor = authorizationClient();
    client = new Ctor(app.grpcAddress, grpc.credentials.createInsecure()) as unknown as typeof client;
  });

  afterAll(async () => {
    client?.close();
    await app?.close();
    await idp?.stop();
  });

  it('envoy.yaml has the routes the demo walks through', () => {
    expect(ROUTES.map((r) => [r.prefix, r.authzDisabled, r.contextExtensions['provider']])).toEqual([
      ['/public/', true, undefined],
      ['/a/', false, 'demo-oauth'],
      ['/b/', false, 'demo-jwt'],
    ]);
  });

  it('the replayed request carries what Envoy sends, minus the client credentials', () => {
    const req = envoyCheckRequest(routeFor('demo-oauth')) as Obj;
    const http = req['attributes'].request.http as Obj;
    expect(http['headers']).toMatchObject({ ':authority': 'localhost:10000', ':path': '/a/anything?demo=1', ':method': 'GET', ':scheme': 'http' });
    expect(http['headers']['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    expect(Object.keys(http['headers']).every((k) => k === k.toLowerCase())).toBe(true);
    expect(http['headers']).not.toHaveProperty('authorization');
    expect(http['headers']).not.toHaveProperty('cookie');
    expect(req['attributes'].context_extensions).toEqual({ provider: 'demo-oauth' });
  });

  it('/a/ (demo-oauth): OK with Authorization: Bearer <the token the demo IdP issued>, overwriting', async () => {
    const res = await check(envoyCheckRequest(routeFor('demo-oauth')));
    expect(res.status?.code ?? 0).toBe(0);
    expect(res.denied_response).toBeUndefined();
    const headers = authorizationHeaders(res);
    expect(headers).toHaveLength(1);
    const h = headers[0]!;
    expect(h.header?.key).toBe('authorization');
    expect(idp.issuedAccessTokens.length).toBeGreaterThanOrEqual(1);
    expect(h.header?.value).toBe(`Bearer ${idp.issuedAccessTokens.at(-1)}`);
    // both, so that every Envoy version overwrites the client's own Authorization
    expect(h.append).toEqual({ value: false });
    expect(h.append_action).toBe('OVERWRITE_IF_EXISTS_OR_ADD');
    const meta = metadata(res);
    expect(meta['provider']).toBe('demo-oauth');
    expect(meta[FEEDBACK_KEY], `dynamic_metadata.${FEEDBACK_KEY}, which the feedback access log filters on`).toMatch(/\S/);
    expect(meta[FEEDBACK_KEY]).not.toContain(idp.issuedAccessTokens.at(-1)!);
  });

  it('/a/ again: served from the cache, no second token request', async () => {
    const before = idp.tokenRequestCount;
    const first = await check(envoyCheckRequest(routeFor('demo-oauth')));
    const second = await check(envoyCheckRequest(routeFor('demo-oauth')));
    expect(idp.tokenRequestCount).toBe(before);
    expect(authorizationHeaders(second)[0]?.header?.value).toBe(authorizationHeaders(first)[0]?.header?.value);
    expect(metadata(second)['source']).toBe('cache');
    expect(metadata(second)[FEEDBACK_KEY]).toBe(metadata(first)[FEEDBACK_KEY]);
  });

  it('/b/ (demo-jwt): OK with Authorization: Bearer <an HS256 JWT signed with the demo key, 30 min>', async () => {
    const res = await check(envoyCheckRequest(routeFor('demo-jwt')));
    expect(res.status?.code ?? 0).toBe(0);
    const headers = authorizationHeaders(res);
    expect(headers).toHaveLength(1);
    expect(headers[0]!.append).toEqual({ value: false });
    expect(headers[0]!.append_action).toBe('OVERWRITE_IF_EXISTS_OR_ADD');
    const [scheme, jwt] = headers[0]!.header!.value!.split(' ');
    expect(scheme).toBe('Bearer');
    const { payload, protectedHeader } = await jwtVerify(jwt!, new TextEncoder().encode(jwtKey), { issuer: 'tokengate-demo' });
    expect(protectedHeader.alg).toBe('HS256');
    expect(payload.exp! - payload.iat!).toBe(30 * 60);
    expect(metadata(res)['provider']).toBe('demo-jwt');
    expect(metadata(res)[FEEDBACK_KEY]).toMatch(/\S/);
  });

  it('/public/: Envoy sends no Check; a request no route names passes without a credential (unmatched: allow)', async () => {
    const pub = ROUTES.find((r) => r.prefix === '/public/')!;
    expect(envoyCheckRequest(pub)).toBeUndefined();
    // were the per-route setting ever lost, tokengate would still add nothing
    const res = await check(envoyCheckRequest({ ...pub, authzDisabled: false, contextExtensions: {} }));
    expect(res.status?.code ?? 0).toBe(0);
    expect(authorizationHeaders(res)).toEqual([]);
  });

  it('no token value reaches a log line', () => {
    expect(logs.length).toBeGreaterThan(0);
    const all = logs.join('\n');
    for (const token of idp.issuedAccessTokens) expect(all).not.toContain(token);
    expect(all).not.toContain(jwtKey);
  });
});
