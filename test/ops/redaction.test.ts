// A full operating scenario with request logs on, then a scan of everything tokengate said to
// the outside (every log line, every admin HTTP and gRPC answer, the /metrics text) for every
// credential that passed through it: none may appear.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exportPKCS8, generateKeyPair } from 'jose';
import { DemoTokenServer } from '../../demo/token-server.js';
import { createNodeTransport, type HttpTransport } from '../../src/tokens/http/transport.js';
import { envoyRequest, injected } from '../support/envoy-request.js';
import { startWorld, until, type World } from '../support/world.js';
import { AccessLogSender, accessLogMessages, httpLogEntry, leaks, type Secret } from './helpers.js';

const ADMIN_TOKEN = 'redaction-admin-token-6c1f0e2d9b';
const CC_SECRET = 'cc-secret-4f9a1c2e7d3b8a6f';
const RT_SECRET = 'rt-secret-9e8d7c6b5a4f3e2d';
const RT_INITIAL = 'rt_initial_0f1e2d3c4b5a69788796a5b4c3d2e1f0';
const ERR_SECRET = 'err-secret-1a2b3c4d5e6f7a8b';
const JB_KEY = 'jwt-bearer-hs256-key-0123456789abcdef';
const SELF_KEY = 'self-signed-hs256-key-fedcba9876543210';
const PROVIDERS = ['cc', 'rt', 'pkj', 'jb', 'self', 'err'] as const;

describe('no credential leaves tokengate (log capture over a full scenario)', () => {
  let w: World;
  let idpErr: DemoTokenServer;
  let node: ReturnType<typeof createNodeTransport>;
  let privateKeyPem: string;
  const wire: Secret[] = []; // credentials seen on the wire to the IdPs
  const injectedTokens: Secret[] = [];
  const said: { where: string; text: string }[] = []; // everything tokengate answered
  let checks = 0;

  async function check(provider: string): Promise<void> {
    checks++;
    const res = await w.client.check(envoyRequest({ contextExtensions: { provider }, path: '/v1/things?access_token=from-the-client' }));
    const value = injected(res)?.header?.value;
    if (value) injectedTokens.push({ what: `${provider} injected token`, value: value.replace(/^Bearer /, '') });
  }

  async function adminHttp(method: 'GET' | 'POST', path: string, bearer?: string) {
    const res = await w.admin.http(method, path, bearer);
    said.push({ where: `admin HTTP ${method} ${path} → ${res.status}`, text: res.text });
    return res;
  }

  async function adminGrpc(method: 'ListTokens' | 'Invalidate' | 'Refresh', req: unknown, bearer?: string) {
    try {
      const res = await w.admin.call(method, req, bearer);
      said.push({ where: `admin gRPC ${method}`, text: JSON.stringify(res) });
      return res;
    } catch (err) {
      said.push({ where: `admin gRPC ${method} error`, text: `${(err as Error).message} ${JSON.stringify(err)}` });
      return undefined;
    }
  }

  beforeAll(async () => {
    const { publicKey, privateKey } = await generateKeyPair('ES256', { extractable: true });
    privateKeyPem = await exportPKCS8(privateKey);
    idpErr = new DemoTokenServer({ clients: { 'err-client': { secret: ERR_SECRET } } });
    await idpErr.start();
    // An IdP that echoes the credential in its error_description (some do).
    idpErr.setBehaviour({ kind: 'oauth_error', error: 'invalid_client', description: `client_secret=${ERR_SECRET} has expired`, status: 401 });

    // The transport seam records every credential sent to or received from a token endpoint.
    node = createNodeTransport();
    const transport: HttpTransport = async (req) => {
      const form = new URLSearchParams(req.body);
      for (const k of ['client_secret', 'client_assertion', 'assertion', 'refresh_token']) {
        const v = form.get(k);
        if (v) wire.push({ what: `${k} sent to the IdP`, value: v });
      }
      if (req.headers.authorization) wire.push({ what: 'Basic credentials sent to the IdP', value: req.headers.authorization.replace(/^Basic /, '') });
      const res = await node(req);
      try {
        const body = JSON.parse(res.body) as Record<string, unknown>;
        for (const k of ['access_token', 'refresh_token']) if (typeof body[k] === 'string') wire.push({ what: `${k} from the IdP`, value: body[k] as string });
      } catch { /* not JSON */ }
      return res;
    };

    const pem = JSON.stringify(privateKeyPem);
    w = await startWorld({
      idp: {
        clients: { 'cc-client': { secret: CC_SECRET }, 'rt-client': { secret: RT_SECRET }, 'pkj-client': { publicKey } },
        refreshTokens: [RT_INITIAL],
        jwtBearerKeys: { 'svc-issuer': new TextEncoder().encode(JB_KEY) },
      },
      admin: true,
      transport,
      yaml: ({ idp, cc, rt }) => `
admin: { token: "${ADMIN_TOKEN}" }
log: { level: debug, requests: true }
providers:
  cc:
    source: ${cc({ clientId: 'cc-client', clientSecret: CC_SECRET })}
  rt:
    source: ${rt(RT_INITIAL, { clientId: 'rt-client', clientSecret: RT_SECRET, extra: { authMethod: 'client_secret_post' } })}
  pkj:
    source: { type: client_credentials, tokenUrl: "${idp.tokenUrl}", clientId: pkj-client, authMethod: private_key_jwt, assertionAlgorithm: ES256, privateKey: ${pem} }
  jb:
    source:
      type: jwt_bearer
      tokenUrl: "${idp.tokenUrl}"
      assertion: { algorithm: HS256, key: "${JB_KEY}", claims: { iss: svc-issuer, sub: svc-account }, ttl: 5m }
  self:
    source: { type: jwt, key: "${SELF_KEY}", claims: { iss: access-key }, ttl: 30m }
  err:
    source: { type: client_credentials, tokenUrl: "${idpErr.tokenUrl}", clientId: err-client, clientSecret: "${ERR_SECRET}", authMethod: client_secret_post }
`,
    });

    // Traffic, with the query string carrying a credential as some clients do.
    for (const p of PROVIDERS) await check(p);

    // Admin HTTP: status, an invalidation, a refresh-token rotation, a failing refresh, a bad bearer.
    await adminHttp('GET', '/v1/tokens');
    await adminHttp('POST', '/v1/tokens/cc/invalidate', ADMIN_TOKEN);
    await adminHttp('POST', '/v1/tokens/rt/refresh', ADMIN_TOKEN);
    await adminHttp('POST', '/v1/tokens/err/refresh', ADMIN_TOKEN);
    await adminHttp('POST', '/v1/tokens/cc/refresh', 'not-the-admin-token-123');

    // Admin gRPC: the same operations from a control plane.
    await adminGrpc('ListTokens', {}, ADMIN_TOKEN);
    await adminGrpc('Invalidate', { provider: 'pkj' }, ADMIN_TOKEN);
    await adminGrpc('Refresh', { provider: 'jb' }, ADMIN_TOKEN);
    await adminGrpc('Refresh', { provider: 'err' }, ADMIN_TOKEN);
    await adminGrpc('ListTokens', {}, 'not-the-admin-token-123');

    // The upstream rejects rt's token: purge through the access log, another rotation follows.
    const rtTokenId = w.app.manager.provider('rt')!.status().tokenId!;
    const envoy = new AccessLogSender(w.app.grpcAddress);
    await envoy.send(accessLogMessages([[httpLogEntry({ status: 401, provider: 'rt', tokenId: rtTokenId })]]));
    envoy.close();
    await until(() => PROVIDERS.filter((p) => p !== 'err').every((p) => w.app.manager.provider(p)?.status().state === 'valid')
      && w.app.manager.provider('rt')!.status().tokenId !== rtTokenId, 5_000, 'every provider settled again');
    for (const p of PROVIDERS) await check(p);
    await adminHttp('GET', '/v1/tokens');
    await adminGrpc('ListTokens', {}, ADMIN_TOKEN);
    await adminHttp('GET', '/metrics');
  });
  afterAll(async () => {
    await w?.close();
    node?.close();
    await idpErr?.stop();
  });

  it('the scenario exercised every kind of credential', () => {
    const kinds = new Set(wire.map((s) => s.what));
    for (const k of ['client_secret sent to the IdP', 'client_assertion sent to the IdP', 'assertion sent to the IdP',
      'refresh_token sent to the IdP', 'Basic credentials sent to the IdP', 'access_token from the IdP', 'refresh_token from the IdP']) {
      expect(kinds, k).toContain(k);
    }
    // Three rotations: warm-up, the admin refresh, the access-log purge.
    expect(w.idp.issuedRefreshTokens.length).toBe(3);
    expect(w.idp.refreshTokenState(RT_INITIAL)).toBe('spent');
    expect(w.idp.refreshTokenState(w.idp.issuedRefreshTokens.at(-1)!)).toBe('valid');
    expect(injectedTokens.some((s) => s.what.startsWith('self'))).toBe(true);
    // And the logs say what happened, so the scan below is not vacuous.
    const msgs = w.logs.map((l) => (JSON.parse(l) as { msg: string }).msg);
    expect(msgs.filter((m) => m === 'token fetched').length).toBeGreaterThanOrEqual(8);
    expect(msgs).toContain('token refresh failed');
    expect(msgs).toContain('token invalidated');
    expect(msgs).toContain('upstream rejected the current token; refreshing');
    expect(w.logs.some((l) => l.includes('client_secret=[redacted] has expired'))).toBe(true);
  });

  it('log.requests: one debug line per Check, without the query string', () => {
    const lines = w.logs.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.msg === 'check');
    expect(lines).toHaveLength(checks);
    expect(lines[0]).toMatchObject({ level: 'debug', result: 'ok', path: '/v1/things', method: 'GET' });
    expect(lines.find((l) => l.provider === 'err')).toMatchObject({ result: 'denied', reason: 'token_unavailable' });
    expect(lines.filter((l) => l.result === 'ok').every((l) => typeof l.token_id === 'string')).toBe(true);
    expect(w.logs.join('\n')).not.toContain('from-the-client');
  });

  it('no issued token, refresh token, client secret or assertion appears in any log line, admin answer or metric', () => {
    const secrets: Secret[] = [
      ...wire,
      ...injectedTokens,
      ...w.idp.issuedAccessTokens.map((value) => ({ what: 'issued access token', value })),
      ...w.idp.issuedRefreshTokens.map((value) => ({ what: 'issued refresh token', value })),
      { what: 'initial refresh token', value: RT_INITIAL },
      ...[CC_SECRET, RT_SECRET, ERR_SECRET].map((value) => ({ what: 'client secret', value })),
      { what: 'jwt_bearer signing key', value: JB_KEY },
      { what: 'jwt signing key', value: SELF_KEY },
      { what: 'private key', value: privateKeyPem.split('\n')[1]! },
      { what: 'admin token', value: ADMIN_TOKEN },
    ];
    const places = [...w.logs.map((text, i) => ({ where: `log line ${i} (${(JSON.parse(text) as { msg: string }).msg})`, text })), ...said];
    expect(places.length).toBeGreaterThan(40);
    expect(leaks(secrets, places)).toEqual([]);
    // The scan can find things: the Check answers do carry the tokens.
    expect(injectedTokens.length).toBe(2 * (PROVIDERS.length - 1));
    expect(w.idp.issuedAccessTokens).toContain(injectedTokens[0]!.value);
  });

  it('admin answers show the IdP error, redacted', () => {
    const status = said.find((s) => s.where.startsWith('admin HTTP GET /v1/tokens'))!;
    const err = (JSON.parse(status.text) as { providers: { name: string; lastError: Record<string, unknown> | null }[] }).providers.find((p) => p.name === 'err');
    expect(err?.lastError).toMatchObject({ code: 'ERR_IDP_REJECTED', error: 'invalid_client', error_description: 'client_secret=[redacted] has expired' });
    expect(said.find((s) => s.where === 'admin gRPC Refresh error')?.text).toContain('client_secret=[redacted]');
  });
});
