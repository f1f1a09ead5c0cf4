// The audit trail, read back from the log lines a real tokengate writes: one line per token
// minted and invalidated (by the admin API, Envoy's access-log feedback, a reload) and per admin
// action, each with its stable `event`, written even when log.level is error, never a secret.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DemoTokenServer } from '../../demo/token-server.js';
import { startTokengate, type Tokengate } from '../../src/app.js';
import { parseConfig } from '../../src/config/load.js';
import { createLogger } from '../../src/observability/logger.js';
import { removeTmpDir, tmpDir } from '../support/replicas.js';
import { AdminClient } from '../support/admin-client.js';
import { until } from '../support/until.js';
import { AccessLogSender, accessLogMessages, httpLogEntry } from './helpers.js';

const ADMIN_TOKEN = 'audit-admin-token-0123456789abcdef';

type Line = Record<string, unknown>;

describe('audit events', () => {
  let idp: DemoTokenServer;
  let app: Tokengate;
  let admin: AdminClient;
  const raw: string[] = [];
  const dir = tmpDir('audit');
  const file = path.join(dir, 'tokengate.yaml');
  const yaml = (scope: string) => `
listen: { grpc: 127.0.0.1:0, admin: 127.0.0.1:0 }
admin: { token: "${ADMIN_TOKEN}" }
log: { level: error }
providers:
  cc:
    source: { type: client_credentials, tokenUrl: "${idp.tokenUrl}", clientId: demo-client, clientSecret: demo-secret, scope: "${scope}" }
  local:
    source: { type: jwt, key: "an-hs256-secret-that-is-long-enough-0123", claims: { iss: x }, ttl: 30m }
routes:
  - match: { authority: api.example.com }
    provider: cc
`;

  const audits = (): Line[] => raw.map((l) => JSON.parse(l) as Line).filter((l) => l.audit === 1);
  const events = (event: string): Line[] => audits().filter((l) => l.event === event);

  beforeAll(async () => {
    idp = new DemoTokenServer();
    await idp.start();
    fs.writeFileSync(file, yaml('a'));
    // log.level error: every ordinary info line is dropped; audit lines are not.
    const logger = createLogger({ level: 'error', sink: (l) => raw.push(l) });
    app = await startTokengate(parseConfig(fs.readFileSync(file, 'utf8'), { env: {} }), { logger, configPath: file });
    await app.ready;
    admin = new AdminClient({ http: app.adminAddress!, grpc: app.grpcAddress });
  });

  afterAll(async () => {
    admin?.close();
    await app?.close(2_000);
    await idp?.stop();
    removeTmpDir(dir);
  });

  it('token.minted for each token a source hands out, at any log level', () => {
    expect(raw.map((l) => JSON.parse(l) as Line).some((l) => l.msg === 'token fetched')).toBe(false);
    const minted = events('token.minted');
    expect(minted.map((l) => l.provider).sort()).toEqual(['cc', 'local']);
    const cc = minted.find((l) => l.provider === 'cc')!;
    expect(cc).toMatchObject({ level: 'info', msg: 'token.minted', source_type: 'client_credentials', token_id: app.manager.handle('cc')!.peek()!.tokenId });
    expect(cc.expires_in_s).toBeGreaterThan(250); // the demo IdP's 300 s tokens, skew taken off
    expect(typeof cc.time).toBe('string');
  });

  it('admin HTTP: a refused caller is admin.denied; invalidate is admin.invalidate plus token.invalidated by admin', async () => {
    expect((await admin.http('POST', '/v1/tokens/cc/invalidate')).status).toBe(401);
    expect((await admin.http('POST', '/v1/tokens/cc/invalidate', `${ADMIN_TOKEN}x`)).status).toBe(401);
    expect(events('admin.denied').map((l) => l.reason)).toEqual(['no_credentials', 'bad_credentials']);

    const before = app.manager.handle('cc')!.peek()!.tokenId;
    expect((await admin.http('POST', '/v1/tokens/cc/invalidate', ADMIN_TOKEN)).status).toBe(200);
    expect(events('admin.invalidate')).toEqual([expect.objectContaining({ provider: 'cc', invalidated: true, token_id: before })]);
    expect(events('token.invalidated')).toEqual([expect.objectContaining({ provider: 'cc', token_id: before, by: 'admin' })]);
    // The refresh it starts mints the next token.
    await until(() => events('token.minted').filter((l) => l.provider === 'cc').length === 2);
  });

  it('admin gRPC: Refresh is admin.refresh with its outcome and the new token id', async () => {
    await admin.call('Refresh', { provider: 'cc' }, ADMIN_TOKEN);
    const [refresh] = events('admin.refresh');
    expect(refresh).toMatchObject({ provider: 'cc', outcome: 'ok', token_id: app.manager.handle('cc')!.peek()!.tokenId });
    idp.setBehaviour({ kind: 'oauth_error', error: 'invalid_client', status: 401 });
    try {
      expect(await admin.error('Refresh', { provider: 'cc' }, ADMIN_TOKEN)).toBeDefined();
    } finally {
      idp.setBehaviour({ kind: 'ok' });
    }
    expect(events('admin.refresh').at(-1)).toMatchObject({ provider: 'cc', outcome: 'ERR_IDP_REJECTED' });
  });

  it('access-log feedback: token.invalidated by access_log with the upstream status', async () => {
    // A fresh token first (the failed refresh above left the cached one in place).
    const tokenId = app.manager.handle('cc')!.peek()!.tokenId;
    const envoy = new AccessLogSender(app.grpcAddress);
    try {
      await envoy.send(accessLogMessages([[httpLogEntry({ status: 401, provider: 'cc', tokenId })]]));
    } finally {
      envoy.close();
    }
    await until(() => events('token.invalidated').some((l) => l.by === 'access_log'));
    expect(events('token.invalidated').filter((l) => l.by === 'access_log')).toEqual([
      expect.objectContaining({ provider: 'cc', token_id: tokenId, upstream_status: 401 }),
    ]);
  });

  it('reload: admin.reload and config.reload; a provider whose source changed drops its token (token.invalidated by reload)', async () => {
    await until(() => app.manager.handle('cc')?.peek() !== undefined);
    const old = app.manager.handle('cc')!.peek()!.tokenId;
    const localId = app.manager.handle('local')!.peek()!.tokenId;
    fs.writeFileSync(file, yaml('b'));
    const res = await admin.http('POST', '/v1/reload', ADMIN_TOKEN);
    expect(res.status).toBe(200);
    expect(events('admin.reload')).toEqual([expect.objectContaining({ ok: true, problems: 0 })]);
    expect(events('config.reload')).toEqual([expect.objectContaining({ ok: true, changed: ['cc'], added: [], removed: [] })]);
    const byReload = events('token.invalidated').filter((l) => l.by === 'reload');
    expect(byReload).toEqual([expect.objectContaining({ provider: 'cc', token_id: old })]);
    // The unchanged provider kept its token: nothing about it.
    expect(events('token.invalidated').some((l) => l.token_id === localId)).toBe(false);

    fs.writeFileSync(file, 'providers: [');
    expect((await app.reload()).ok).toBe(false);
    expect(events('config.reload').at(-1)).toMatchObject({ ok: false });
    expect(events('config.reload').at(-1)!.problems).toBeGreaterThan(0);
  });

  it('no audit line carries a token or a secret, and every one has a documented event name', () => {
    const documented = new Set(['token.minted', 'token.exchanged', 'token.invalidated', 'admin.invalidate', 'admin.refresh', 'admin.reload', 'admin.denied', 'config.reload']);
    const lines = audits();
    expect(lines.length).toBeGreaterThan(8);
    for (const l of lines) expect(documented.has(String(l.event)), String(l.event)).toBe(true);
    const text = raw.join('\n');
    for (const secret of [...idp.issuedAccessTokens, 'demo-secret', ADMIN_TOKEN, 'an-hs256-secret-that-is-long-enough-0123']) expect(text).not.toContain(secret);
  });
});

describe('audit lines without a running tokengate', () => {
  it('token.exchanged names the caller by subject id; a hand-made Logger without audit() gets info lines', async () => {
    const { auditExchanged, auditMinted, audit } = await import('../../src/observability/audit.js');
    const lines: string[] = [];
    const logger = createLogger({ level: 'error', sink: (l) => lines.push(l) });
    auditExchanged(logger, { provider: 'obo', tokenId: 'tid', subjectId: 'sid', subject: 'alice', audience: 'https://orders.example', actor: 'gw', expiresInS: 60 });
    expect(JSON.parse(lines[0]!)).toEqual({
      level: 'info', time: expect.any(String), msg: 'token.exchanged', audit: 1, event: 'token.exchanged', provider: 'obo', token_id: 'tid',
      source_type: 'token_exchange', subject_id: 'sid', subject: 'alice', audience: 'https://orders.example', actor: 'gw', expires_in_s: 60,
    });
    // What the fetcher reports for a token_exchange source (a fixed subject: no subject_id).
    auditMinted(logger, { provider: 'sts', tokenId: 't2', sourceType: 'token_exchange', expiresInS: 300 });
    expect(JSON.parse(lines[1]!)).toEqual(expect.objectContaining({ event: 'token.exchanged', provider: 'sts', token_id: 't2', source_type: 'token_exchange' }));
    expect(JSON.parse(lines[1]!)).not.toHaveProperty('subject_id');
    auditMinted(logger, { provider: 'cc', tokenId: 't3', sourceType: 'client_credentials', expiresInS: null });
    expect(JSON.parse(lines[2]!)).toMatchObject({ event: 'token.minted', source_type: 'client_credentials', expires_in_s: null });
    const { audit: _omit, ...plain } = createLogger({ level: 'info', sink: (l) => lines.push(l) });
    audit(plain, 'admin.reload', { ok: true });
    expect(JSON.parse(lines[3]!)).toMatchObject({ level: 'info', msg: 'admin.reload', event: 'admin.reload', ok: true });
  });
});
