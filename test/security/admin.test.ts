// The admin surfaces (HTTP, and TokenAdmin on the gRPC listener): loopback by default, mutations
// only with admin.token (403 / PERMISSION_DENIED when none is configured, 401 / UNAUTHENTICATED
// for a missing or wrong one), and no token material in any response.
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import type { AdminRpc } from '../support/admin-client.js';
import { startWorld, type TestApp, type World, type YamlContext } from '../support/world.js';
import { envoyRequest, injected } from '../support/envoy-request.js';

const CLIENT_SECRET = 'admin-test-client-secret-5f6e';
const ADMIN_TOKEN = 'admin-test-bearer-token-0123456789abcdef';
const MUTATIONS = ['/v1/tokens/cc/refresh', '/v1/tokens/cc/invalidate', '/v1/reload'];

interface Answer {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** One TokenAdmin call on the gRPC listener, `authorization` sent as it is: the answer or the error, as text for the scans. */
async function grpcCall(t: TestApp, method: AdminRpc, authorization?: string): Promise<{ code: number; text: string }> {
  try {
    const res = await t.admin.call(method, { provider: 'cc' }, authorization === undefined ? undefined : { authorization });
    return { code: 0, text: JSON.stringify(res) };
  } catch (err) {
    const e = err as grpc.ServiceError;
    return { code: e.code, text: `${e.details} ${JSON.stringify(e.metadata.getMap())}` };
  }
}

async function call(t: TestApp, method: string, path: string, headers: { authorization?: string } = {}): Promise<Answer> {
  const res = await t.admin.http(method, path, headers.authorization === undefined ? undefined : { authorization: headers.authorization });
  return { status: res.status, headers: Object.fromEntries(res.headers), body: res.text };
}

function config({ cc }: YamlContext, withToken: boolean): string {
  return `
${withToken ? 'admin: { token: "${env:ADMIN_TOKEN}" }' : ''}
providers:
  cc:
    source: ${cc({ clientSecret: '${env:CLIENT_SECRET}' })}
    resilience: { retries: 0 }
`;
}

describe('admin API', () => {
  let w: World;
  let open: TestApp;
  let guarded: TestApp;
  /** Every admin answer seen by any test, scanned for token material at the end. */
  const seen: Answer[] = [];
  const env = { CLIENT_SECRET, ADMIN_TOKEN };

  beforeAll(async () => {
    w = await startWorld({ idp: { clients: { 'demo-client': { secret: CLIENT_SECRET } } }, admin: true, env, yaml: (ctx) => config(ctx, false) });
    open = w;
    guarded = await w.startApp((ctx) => config(ctx, true), { admin: true, env });
  });
  afterAll(async () => {
    await w?.close();
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
    const before = w.idp.tokenRequestCount;
    for (const path of MUTATIONS) {
      for (const headers of [{}, { authorization: `Bearer ${ADMIN_TOKEN}` }] as Record<string, string>[]) {
        const a = await record(call(open, 'POST', path, headers));
        expect(a.status, path).toBe(403);
        expect(JSON.parse(a.body)).toMatchObject({ error: 'disabled', message: expect.stringMatching(/admin\.token/) });
      }
    }
    expect(w.idp.tokenRequestCount).toBe(before);
    // Read-only endpoints stay available.
    expect((await record(call(open, 'GET', '/v1/tokens'))).status).toBe(200);
  });

  it('with admin.token: a missing, malformed or wrong bearer gets 401 (WWW-Authenticate: Bearer)', async () => {
    const before = w.idp.tokenRequestCount;
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
    expect(w.idp.tokenRequestCount).toBe(before);
  });

  it('with the right bearer, refresh and invalidate work (scheme is case-insensitive)', async () => {
    const before = w.idp.tokenRequestCount;
    const a = await record(call(guarded, 'POST', '/v1/tokens/cc/refresh', { authorization: `Bearer ${ADMIN_TOKEN}` }));
    expect(a.status).toBe(200);
    expect(JSON.parse(a.body)).toMatchObject({ name: 'cc', state: 'valid' });
    expect(w.idp.tokenRequestCount).toBe(before + 1);
    const b = await record(call(guarded, 'POST', '/v1/tokens/cc/invalidate', { authorization: `bearer ${ADMIN_TOKEN}` }));
    expect(b.status).toBe(200);
    expect(JSON.parse(b.body)).toEqual({ provider: 'cc', invalidated: true });
  });

  it('an unknown provider is 404 only after authentication (no probing without the token)', async () => {
    expect((await record(call(guarded, 'POST', '/v1/tokens/nope/refresh'))).status).toBe(401);
    expect((await record(call(guarded, 'POST', '/v1/tokens/nope/refresh', { authorization: `Bearer ${ADMIN_TOKEN}` }))).status).toBe(404);
  });

  it('a failed refresh reports the IdP error without echoing credentials', async () => {
    w.idp.setBehaviour({ kind: 'oauth_error', status: 401, error: 'invalid_client', description: `bad client secret ${CLIENT_SECRET}` });
    try {
      const a = await record(call(guarded, 'POST', '/v1/tokens/cc/refresh', { authorization: `Bearer ${ADMIN_TOKEN}` }));
      expect(a.status).toBe(502);
      const body = JSON.parse(a.body);
      expect(body).toMatchObject({ error: 'failed', provider: 'cc' });
      expect(JSON.stringify(body)).toMatch(/invalid_client/);
      expect(a.body).not.toContain(CLIENT_SECRET);
    } finally {
      w.idp.setBehaviour({ kind: 'ok' });
    }
  });

  it('gRPC TokenAdmin: mutations are off without admin.token (PERMISSION_DENIED), UNAUTHENTICATED without the right bearer', async () => {
    const before = w.idp.tokenRequestCount;
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
    expect(w.idp.tokenRequestCount).toBe(before);
    for (const m of ['ListTokens', 'Refresh'] as const) {
      const a = await grpcCall(guarded, m, `Bearer ${ADMIN_TOKEN}`);
      seen.push({ status: a.code, headers: {}, body: a.text });
      expect(a.code, m).toBe(0);
    }
    expect(w.idp.tokenRequestCount).toBe(before + 1);
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
    const secrets = [...w.idp.issuedAccessTokens, headerValue!, CLIENT_SECRET, ADMIN_TOKEN, Buffer.from(`demo-client:${CLIENT_SECRET}`).toString('base64')];
    expect(w.idp.issuedAccessTokens.length).toBeGreaterThan(0);
    expect(seen.length).toBeGreaterThan(60);
    for (const a of seen) {
      const text = `${JSON.stringify(a.headers)}\n${a.body}`;
      for (const s of secrets) expect(text.includes(s), `an admin answer holds token material: ${text.slice(0, 200)}`).toBe(false);
    }
    // The same for the logs of both apps.
    for (const line of [...open.logs, ...guarded.logs]) for (const s of secrets) expect(line.includes(s)).toBe(false);
  });
});
