// The test world itself: the defaults it fills in, that close tears everything down, and that
// `until` says what it waited for.
import { describe, expect, it } from 'vitest';
import { injected } from './envoy-request.js';
import { startTestApp } from './app.js';
import { parseConfig } from '../../src/config/load.js';
import { ccSource, rtSource, startWorld, until, worldYaml } from './world.js';

describe('test world', () => {
  it('defaults: gRPC on 127.0.0.1:0, admin off, one client_credentials provider p; close stops app and IdP', async () => {
    const w = await startWorld();
    const idpUrl = w.idp.tokenUrl;
    try {
      expect(w.app.adminAddress).toBeUndefined();
      const res = await w.check({ contextExtensions: { provider: 'p' } });
      expect(injected(res)?.header?.value).toBe(`Bearer ${w.idp.issuedAccessTokens[0]}`);
      const other = await w.startApp('', { admin: true });
      expect(other.app.adminAddress).toMatch(/^127\.0\.0\.1:\d+$/);
      expect((await other.admin.http('GET', '/healthz')).status).toBe(200);
    } finally {
      await w.close();
      await w.close(); // twice is fine
    }
    await expect(w.check({ contextExtensions: { provider: 'p' } })).rejects.toThrow();
    await expect(fetch(idpUrl, { method: 'POST' })).rejects.toThrow();
  });

  it('regression: startTestApp on YAML without listen binds the default 9191 and collides with other runs', async () => {
    const t = await startTestApp('providers:\n  p: { source: { type: jwt, algorithm: HS256, key: k0123456789abcdef0123456789abcdef, claims: { aud: a }, ttl: 5m } }\n');
    try {
      expect(t.app.grpcAddress).toMatch(/^127\.0\.0\.1:\d+$/);
      expect(t.app.grpcAddress).not.toBe('127.0.0.1:9191');
      expect(t.app.adminAddress).not.toMatch(/:9192$/);
    } finally {
      await t.close();
    }
  });

  it('keeps the listen and providers the YAML gives', () => {
    const fake = { tokenUrl: 'http://127.0.0.1:9/token' } as Parameters<typeof worldYaml>[1];
    const own = worldYaml('listen: { grpc: 127.0.0.1:0, admin: 127.0.0.1:0 }\nproviders:\n  x: { source: { type: static, token: t } }\n', fake);
    expect(own).not.toMatch(/admin: "off"/);
    expect(own).not.toMatch(/^\s+p: /m);
    expect(worldYaml(({ cc }) => `providers:\n  y: { source: ${cc({ clientSecret: 'other' })} }`, fake)).toContain('clientSecret: "other"');
  });

  it('ccSource / rtSource write sources the config parser reads back as given (env references stay references)', () => {
    const idp = { tokenUrl: 'http://127.0.0.1:9/token' };
    const source = (flow: string, env: Record<string, string> = {}) => parseConfig(`providers:\n  p: { source: ${flow} }\n`, { env }).providers.get('p')!.source;
    expect(source(ccSource(idp))).toMatchObject({ type: 'client_credentials', tokenUrl: idp.tokenUrl, clientId: 'demo-client', clientSecret: 'demo-secret', authMethod: 'client_secret_basic' });
    expect(source(rtSource(idp, 'rt-1'))).toMatchObject({ type: 'refresh_token', tokenUrl: idp.tokenUrl, clientId: 'demo-client', clientSecret: 'demo-secret', refreshToken: 'rt-1', reuseInterval: 0 });
    expect(source(rtSource(idp, '${env:RT}', { clientId: 'c', clientSecret: 's: odd', extra: { authMethod: 'client_secret_post', scope: 'a b', reuseInterval: '2s' } }), { RT: 'from-env' }))
      .toMatchObject({ clientId: 'c', clientSecret: 's: odd', refreshToken: 'from-env', authMethod: 'client_secret_post', scope: 'a b', reuseInterval: 2_000 });
    expect(worldYaml(({ rt }) => `providers:\n  y: { source: ${rt('rt-2', { tokenUrl: 'http://127.0.0.1:8/t' })} }`, idp as Parameters<typeof worldYaml>[1]))
      .toContain('{ type: refresh_token, tokenUrl: "http://127.0.0.1:8/t", clientId: "demo-client", clientSecret: "demo-secret", refreshToken: "rt-2" }');
  });

  it('a failed start rejects with the config problem (and stops its IdP on the way)', async () => {
    await expect(startWorld({ yaml: 'providers:\n  bad: { source: { type: nope } }\n' })).rejects.toThrow(/providers\.bad\.source/);
  });

  it('until names the condition it waited for', async () => {
    await expect(until(() => false, 30)).rejects.toThrow(/^timed out after 30 ms waiting for false$/);
    await expect(until(() => false, 30, 'the moon')).rejects.toThrow('waiting for the moon');
    let n = 0;
    await until(async () => ++n >= 3, 1_000);
    expect(n).toBe(3);
  });
});
