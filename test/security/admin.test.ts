// The admin surfaces (HTTP, and TokenAdmin on the gRPC listener): loopback by default, mutations
// only with admin.token (403 / PERMISSION_DENIED when none is configured, 401 / UNAUTHENTICATED
// for a missing or wrong one), and no token material in any response.
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { tokenAdminClient } from '../../src/server/admin-grpc.js';
import { DemoTokenServer } from '../../demo/token-server.js';
import { startTestApp, type TestApp } from '../support/app.js';
import { envoyRequest, injected } from '../support/envoy-request.js';

const CLIENT_SECRET = 'admin-test-client-secret-5f6e';
const ADMIN_TOKEN = 'admin-test-bearer-token-0123456789abcdef';
const MUTATIONS = ['/v1/tokens/cc/refresh', '/v1/tokens/cc/invalidate', '/v1/reload'];

interface Answer {
  status: number;
  headers: Record<string, string>;
  body: string;
}

type AdminMethod = 'ListTokens' | 'Invalidate' | 'Refresh';

/** One TokenAdmin call on the gRPC listener: the answer or the error, as text for the scans. */
function grpcCall(t: TestApp, method: AdminMethod, authorization?: string): Promise<{ code: number; text: string }> {
  const Ctor = tokenAdminClient();
  const client = new Ctor(t.app.grpcAddress, grpc.credentials.createInsecure()) as unknown as grpc.Client & Record<AdminMethod, (req: unknown, md: grpc.Metadata, cb: (err: grpc.ServiceError | null, res: unknown) => void) => void>;
  const md = new grpc.Metadata();
  if (authorization !== undefined) md.set('authorization', authorization);
  return new Promise((resolve) => {
    client[method]({ provider: 'cc' }, md, (err, res) => {
      client.close();
      resolve(err ? { code: err.code, text: `${err.details} ${JSON.stringify(err.metadata.getMap())}` } : { code: 0, text: JSON.stringify(res) });
    });
  });
}

async function call(t: TestApp, method: string, path: string, headers: Record<string, string> = {}): Promise<Answer> {
  const res = await fetch(`http://${t.app.adminAddress}${path}`, { method, headers });
  return { status: res.status, headers: Object.fromEntries(res.headers), body: await res.text() };
}

function config(idp: DemoTokenServer, withToken: boolean): string {
  return `
listen: { grpc: 127.0.0.1:0, admin: 127.0.0.1:0 }
${withToken ? 'admin: { token: "${env:ADMIN_TOKEN}" }' : ''}
providers:
  cc:
    source: { type: client_credentials, tokenUrl: "${idp.tokenUrl}", clientId: demo-client, clientSecret: "\${env:CLIENT_SECRET}" }
    resilience: { retries: 0 }
`;
}

describe('admin API', () => {
  let idp: DemoTokenServer;
  let open: TestApp;
  let guarded: TestApp;
  /** Every admin answer seen by any test, scanned for token material at the end. */
  const seen: Answer[] = [];
  const env = { CLIENT_SECRET, ADMIN_TOKEN };

  beforeAll(async () => {
    idp = new DemoTokenServer({ clients: { 'demo-client': { secret: CLIENT_SECRET } } });
    await idp.start();
    open = await startTestApp(config(idp, false), { env });
    guarded = await startTestApp(config(idp, true), { env });
  });
  afterAll(async () => {
    await open?.close();
    await guarded?.close();
    await idp?.stop();
  });

  const record = async (p: Promise<Answer>) => {
    const a = await p;
    seen.push(a);
    return a;
  };

  it('listens on loopback by default, and here on 127.0.0.1', () => {
    expect(parseConfig('{}', { env: {} }).listen.admin).toBe('127.0.0.1:9192');
    expect(guarded.app.adminAddress).toMatch(/^127\.0\.0\.1:\d+$/);
  });

  it('without admin.token, every mutating endpoint answers 403 with a reason, and does nothing', async () => {
    const before = idp.tokenRequestCount;
    for (const path of MUTATIONS) {
      for (const headers of [{}, { authorization: `Bearer ${ADMIN_TOKEN}` }] as Record<string, string>[]) {
        const a = await record(call(open, 'POST', path, headers));
        expect(a.status, path).toBe(403);
        expect(JSON.parse(a.body)).toMatchObject({ error: 'disabled', message: expect.stringMatching(/admin\.token/) });
      }
    }
    expect(idp.tokenRequestCount).toBe(before);
    // Read-only endpoints stay available.
    expect((await record(call(open, 'GET', '/v1/tokens'))).status).toBe(200);
  });

  it('with admin.token: a missing, malformed or wrong bearer gets 401 (WWW-Authenticate: Bearer)', async () => {
    const before = idp.tokenRequestCount;
    const wrong: Record<string, string>[] = [
      {},
      { authorization: '' },
      { authorization: 'Bearer' },
      { authorization: 'Bearer ' },
      { authorization: `Basic ${Buffer.from(`x:${ADMIN_TOKEN}`).toString('base64')}` },
      { authorization: `Bearer ${ADMIN_TOKEN.slice(0, -1)}` },
      { authorization: `Bearer ${ADMIN_TOKEN}x` },
      { authorization: `Bearer ${ADMIN_TOKEN.toUpperCase()}` },
      { authorization: `Bearer ${'x'.repeat(10_000)}` },
      { authorization: `Token ${ADMIN_TOKEN}` },
    ];
    for (const path of MUTATIONS) {
      for (const headers of wrong) {
        const a = await record(call(guarded, 'POST', path, headers));
        expect(a.status, `${path} ${JSON.stringify(headers).slice(0, 60)}`).toBe(401);
        expect(a.headers['www-authenticate']).toBe('Bearer');
        expect(JSON.parse(a.body)).toMatchObject({ error: 'unauthenticated' });
      }
    }
    expect(idp.tokenRequestCount).toBe(before);
  });

  it('with the right bearer, refresh and invalidate work (scheme is case-insensitive)', async () => {
    const before = idp.tokenRequestCount;
    const a = await record(call(guarded, 'POST', '/v1/tokens/cc/refresh', { authorization: `Bearer ${ADMIN_TOKEN}` }));
    expect(a.status).toBe(200);
    expect(JSON.parse(a.body)).toMatchObject({ name: 'cc', state: 'valid' });
    expect(idp.tokenRequestCount).toBe(before + 1);
    const b = await record(call(guarded, 'POST', '/v1/tokens/cc/invalidate', { authorization: `bearer ${ADMIN_TOKEN}` }));
    expect(b.status).toBe(200);
    expect(JSON.parse(b.body)).toEqual({ provider: 'cc', invalidated: true });
  });

  it('an unknown provider is 404 only after authentication (no probing without the token)', async () => {
    expect((await record(call(guarded, 'POST', '/v1/tokens/nope/refresh'))).status).toBe(401);
    expect((await record(call(guarded, 'POST', '/v1/tokens/nope/refresh', { authorization: `Bearer ${ADMIN_TOKEN}` }))).status).toBe(404);
  });

  it('a failed refresh reports the IdP error without echoing credentials', async () => {
    idp.setBehaviour({ kind: 'oauth_error', status: 401, error: 'invalid_client', description: `bad client secret ${CLIENT_SECRET}` });
    try {
      const a = await record(call(guarded, 'POST', '/v1/tokens/cc/refresh', { authorization: `Bearer ${ADMIN_TOKEN}` }));
      expect(a.status).toBe(502);
      const body = JSON.parse(a.body);
      expect(body).toMatchObject({ error: 'failed', provider: 'cc' });
      expect(JSON.stringify(body)).toMatch(/invalid_client/);
      expect(a.body).not.toContain(CLIENT_SECRET);
    } finally {
      idp.setBehaviour({ kind: 'ok' });
    }
  });

  it('gRPC TokenAdmin: mutations are off without admin.token (PERMISSION_DENIED), UNAUTHENTICATED without the right bearer', async () => {
    const before = idp.tokenRequestCount;
    for (const m of ['Invalidate', 'Refresh'] as const) {
      for (const auth of [undefined, `Bearer ${ADMIN_TOKEN}`]) {
        const a = await grpcCall(open, m, auth);
        seen.push({ status: a.code, headers: {}, body: a.text });
        expect(a.code, `${m} on an app without admin.token`).toBe(grpc.status.PERMISSION_DENIED);
      }
    }
    for (const m of ['ListTokens', 'Invalidate', 'Refresh'] as const) {
      for (const auth of [undefined, '', `Bearer ${ADMIN_TOKEN}x`, `Basic ${ADMIN_TOKEN}`, ADMIN_TOKEN]) {
        const a = await grpcCall(guarded, m, auth);
        seen.push({ status: a.code, headers: {}, body: a.text });
        expect(a.code, `${m} with ${String(auth).slice(0, 12)}`).toBe(grpc.status.UNAUTHENTICATED);
      }
    }
    expect(idp.tokenRequestCount).toBe(before);
    for (const m of ['ListTokens', 'Refresh'] as const) {
      const a = await grpcCall(guarded, m, `Bearer ${ADMIN_TOKEN}`);
      seen.push({ status: a.code, headers: {}, body: a.text });
      expect(a.code, m).toBe(0);
    }
    expect(idp.tokenRequestCount).toBe(before + 1);
  });

  it('no response of any endpoint holds token material', async () => {
    // Make sure there is a live token to leak: a Check served it.
    const res = await guarded.client.check(envoyRequest({ contextExtensions: { provider: 'cc' } }));
    const headerValue = injected(res)?.header?.value;
    expect(headerValue).toMatch(/^Bearer /);
    for (const [method, path] of [
      ['GET', '/healthz'], ['GET', '/readyz'], ['GET', '/metrics'], ['GET', '/v1/tokens'], ['HEAD', '/v1/tokens'],
      ['GET', '/v1/tokens/cc'], ['GET', '/nope'], ['PUT', '/v1/tokens/cc/refresh'], ['DELETE', '/v1/reload'],
    ] as const) {
      await record(call(guarded, method, path));
      await record(call(open, method, path));
    }
    await record(call(guarded, 'POST', '/v1/reload', { authorization: `Bearer ${ADMIN_TOKEN}` }));
    const secrets = [...idp.issuedAccessTokens, headerValue!, CLIENT_SECRET, ADMIN_TOKEN, Buffer.from(`demo-client:${CLIENT_SECRET}`).toString('base64')];
    expect(idp.issuedAccessTokens.length).toBeGreaterThan(0);
    expect(seen.length).toBeGreaterThan(60);
    for (const a of seen) {
      const text = `${JSON.stringify(a.headers)}\n${a.body}`;
      for (const s of secrets) expect(text.includes(s), `an admin answer holds token material: ${text.slice(0, 200)}`).toBe(false);
    }
    // The same for the logs of both apps.
    for (const line of [...open.logs, ...guarded.logs]) for (const s of secrets) expect(line.includes(s)).toBe(false);
  });
});
