// The admin surfaces: HTTP for operators, tokengate.admin.v1.TokenAdmin for control planes.
// Both are thin edges over one AdminApi, so they must agree field for field.
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startWorld, until, type World } from '../support/world.js';

const ADMIN_TOKEN = 'admin-token-for-tests-0123456789';
const STATUS_FIELDS = ['name', 'state', 'expiresIn', 'tokenId', 'source', 'breaker', 'lastError'].sort();

interface HttpStatus {
  name: string;
  state: string;
  expiresIn: number | null;
  tokenId: string | null;
  source: string | null;
  breaker: string;
  lastError: Record<string, unknown> | null;
}

describe('admin API with admin.token', () => {
  let w: World;

  beforeAll(async () => {
    w = await startWorld({ admin: true, yaml: ({ cc }) => `
admin: { token: "${ADMIN_TOKEN}" }
providers:
  cc:
    source: ${cc()}
  bad:
    source: ${cc({ clientSecret: 'not-the-secret' })}
` });
  });
  afterAll(async () => {
    await w?.close();
  });

  it('GET /healthz, /readyz and /metrics', async () => {
    const health = await w.admin.http('GET', '/healthz');
    expect(health.status).toBe(200);
    expect(health.json()).toEqual({ status: 'ok' });
    const ready = await w.admin.http('GET', '/readyz');
    expect(ready.status).toBe(200);
    const metrics = await w.admin.http('GET', '/metrics');
    expect(metrics.status).toBe(200);
    expect(metrics.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(metrics.text).toContain('# TYPE tokengate_checks_total counter');
  });

  it('GET /v1/tokens: the DESIGN fields per provider, never a token', async () => {
    const res = await w.admin.http('GET', '/v1/tokens');
    expect(res.status).toBe(200);
    expect(res.headers.get('cache-control')).toBe('no-store');
    const { providers } = res.json<{ providers: HttpStatus[] }>();
    expect(providers.map((p) => p.name)).toEqual(['cc', 'bad']);
    for (const p of providers) expect(Object.keys(p).sort()).toEqual(STATUS_FIELDS);
    const [cc, bad] = providers as [HttpStatus, HttpStatus];
    expect(cc).toMatchObject({ state: 'valid', breaker: 'closed', lastError: null });
    expect(cc.tokenId).toMatch(/^[A-Za-z0-9_-]{6,}$/);
    expect(cc.expiresIn).toBeGreaterThan(250);
    expect(cc.expiresIn).toBeLessThanOrEqual(300);
    expect(bad).toMatchObject({ state: 'missing', tokenId: null, expiresIn: null, lastError: { code: 'ERR_IDP_REJECTED', error: 'invalid_client' } });
    for (const token of w.idp.issuedAccessTokens) expect(res.text).not.toContain(token);
  });

  it('POST endpoints need the admin bearer token (401 otherwise, constant-time compared)', async () => {
    const none = await w.admin.http('POST', '/v1/tokens/cc/invalidate');
    expect(none.status).toBe(401);
    expect(none.headers.get('www-authenticate')).toBe('Bearer');
    expect(none.json()).toMatchObject({ error: 'unauthenticated' });
    const wrong = await w.admin.http('POST', '/v1/tokens/cc/refresh', `${ADMIN_TOKEN}x`);
    expect(wrong.status).toBe(401);
    expect((await w.admin.http('POST', '/v1/reload', 'short')).status).toBe(401);
    expect(w.app.manager.provider('cc')?.status().state).toBe('valid');
  });

  it('POST invalidate drops the token and a new one is fetched; refresh answers the new status', async () => {
    const before = w.app.manager.provider('cc')!.status().tokenId;
    const requests = w.idp.tokenRequestCount;
    const inv = await w.admin.http('POST', '/v1/tokens/cc/invalidate', ADMIN_TOKEN);
    expect(inv.status).toBe(200);
    expect(inv.json()).toEqual({ provider: 'cc', invalidated: true });
    await w.idp.waitForRequests(requests + 1);
    await until(() => w.app.manager.provider('cc')?.status().state === 'valid');
    const afterInvalidate = w.app.manager.provider('cc')!.status().tokenId;
    expect(afterInvalidate).not.toBe(before);

    const ref = await w.admin.http('POST', '/v1/tokens/cc/refresh', ADMIN_TOKEN);
    expect(ref.status).toBe(200);
    const status = ref.json<HttpStatus>();
    expect(Object.keys(status).sort()).toEqual(STATUS_FIELDS);
    expect(status.tokenId).not.toBe(afterInvalidate);
    expect(status.state).toBe('valid');
    for (const token of w.idp.issuedAccessTokens) expect(ref.text).not.toContain(token);
  });

  it('POST answers 404 for an unknown provider or path, 502 with the IdP error for a failed refresh', async () => {
    const unknown = await w.admin.http('POST', '/v1/tokens/nope/invalidate', ADMIN_TOKEN);
    expect(unknown.status).toBe(404);
    expect(unknown.json()).toMatchObject({ error: 'not_found', provider: 'nope' });
    expect((await w.admin.http('POST', '/v1/nothing', ADMIN_TOKEN)).status).toBe(404);
    const failed = await w.admin.http('POST', '/v1/tokens/bad/refresh', ADMIN_TOKEN);
    expect(failed.status).toBe(502);
    expect(failed.json()).toMatchObject({ error: 'failed', provider: 'bad', cause: { code: 'ERR_IDP_REJECTED', error: 'invalid_client' } });
    expect(failed.text).not.toContain('not-the-secret');
  });

  it('POST /v1/reload without a config file is refused with a problem line', async () => {
    const res = await w.admin.http('POST', '/v1/reload', ADMIN_TOKEN);
    expect(res.status).toBe(400);
    expect(res.json()).toMatchObject({ ok: false, problems: [expect.stringMatching(/^\(file\): /)] });
  });

  it('gRPC TokenAdmin: UNAUTHENTICATED without or with a wrong bearer', async () => {
    expect((await w.admin.error('ListTokens', {}))?.code).toBe(grpc.status.UNAUTHENTICATED);
    expect((await w.admin.error('Invalidate', { provider: 'cc' }, 'wrong-token-0123456789'))?.code).toBe(grpc.status.UNAUTHENTICATED);
    expect((await w.admin.error('Refresh', { provider: 'cc' }, ''))?.code).toBe(grpc.status.UNAUTHENTICATED);
  });

  it('gRPC ListTokens answers what GET /v1/tokens answers (one implementation, two edges)', async () => {
    const [viaGrpc, viaHttp] = await Promise.all([
      w.admin.call<{ providers: Record<string, unknown>[] }>('ListTokens', {}, ADMIN_TOKEN),
      w.admin.http('GET', '/v1/tokens').then((r) => r.json<{ providers: HttpStatus[] }>().providers),
    ]);
    expect(viaGrpc.providers).toHaveLength(viaHttp.length);
    viaHttp.forEach((h, i) => {
      const g = viaGrpc.providers[i]!;
      expect(g).toMatchObject({ name: h.name, state: h.state, token_id: h.tokenId ?? '', source: h.source ?? '', breaker: h.breaker });
      if (h.expiresIn === null) expect(g.expires_in_seconds).toBeUndefined();
      else expect(Math.abs(Number(g.expires_in_seconds) - h.expiresIn)).toBeLessThanOrEqual(1);
      if (h.lastError) expect(g.last_error).toContain(String(h.lastError.code));
      else expect(g.last_error).toBe('');
    });
    expect(viaGrpc.providers[1]!.last_error).toMatch(/^ERR_IDP_REJECTED: .*\[invalid_client/);
  });

  it('gRPC Invalidate and Refresh: NOT_FOUND, INVALID_ARGUMENT, UNAVAILABLE, and success', async () => {
    expect((await w.admin.error('Invalidate', { provider: 'nope' }, ADMIN_TOKEN))?.code).toBe(grpc.status.NOT_FOUND);
    expect((await w.admin.error('Refresh', {}, ADMIN_TOKEN))?.code).toBe(grpc.status.INVALID_ARGUMENT);
    const failed = await w.admin.error('Refresh', { provider: 'bad' }, ADMIN_TOKEN);
    expect(failed?.code).toBe(grpc.status.UNAVAILABLE);
    expect(failed?.details).toMatch(/^refresh failed: ERR_IDP_REJECTED/);

    const before = w.app.manager.provider('cc')!.status().tokenId;
    const requests = w.idp.tokenRequestCount;
    expect(await w.admin.call('Invalidate', { provider: 'cc' }, ADMIN_TOKEN)).toEqual({ provider: 'cc', invalidated: true });
    await w.idp.waitForRequests(requests + 1);
    const refreshed = await w.admin.call<Record<string, unknown>>('Refresh', { provider: 'cc' }, ADMIN_TOKEN);
    expect(refreshed).toMatchObject({ name: 'cc', state: 'valid', breaker: 'closed', last_error: '' });
    expect(refreshed.token_id).not.toBe(before);
    expect(refreshed.token_id).toBe(w.app.manager.provider('cc')!.status().tokenId);
    for (const token of w.idp.issuedAccessTokens) expect(JSON.stringify(refreshed)).not.toContain(token);
  });
});

describe('admin API without admin.token', () => {
  let w: World;

  beforeAll(async () => {
    w = await startWorld({
      admin: true,
      // A slow first fetch, so readiness can be seen switching.
      beforeApp: (idp) => idp.setBehaviourSequence([{ kind: 'delay', ms: 400 }]),
      yaml: ({ cc }) => `
providers:
  cc:
    source: ${cc()}
`,
      waitReady: false,
    });
  });
  afterAll(async () => {
    await w?.close();
  });

  it('/readyz is 503 until every provider had its first fetch attempt, /healthz is 200 throughout', async () => {
    expect((await w.admin.http('GET', '/readyz')).status).toBe(503);
    expect((await w.admin.http('GET', '/healthz')).status).toBe(200);
    await w.app.ready;
    expect((await w.admin.http('GET', '/readyz')).status).toBe(200);
  });

  it('mutating HTTP endpoints answer 403 and say why; reads still work', async () => {
    for (const path of ['/v1/tokens/cc/invalidate', '/v1/tokens/cc/refresh', '/v1/reload']) {
      const res = await w.admin.http('POST', path, 'anything-at-all-0123456789');
      expect(res.status).toBe(403);
      expect(res.json()).toMatchObject({ error: 'disabled', message: expect.stringContaining('admin.token') });
    }
    expect((await w.admin.http('GET', '/v1/tokens')).status).toBe(200);
  });

  it('gRPC calls answer PERMISSION_DENIED and say why', async () => {
    const err = await w.admin.error('ListTokens', {}, 'anything-at-all-0123456789');
    expect(err?.code).toBe(grpc.status.PERMISSION_DENIED);
    expect(err?.details).toContain('admin.token');
  });
});
