// Reload (POST /v1/reload; SIGHUP calls the same Tokengate.reload, see shutdown.test.ts): a
// broken file changes nothing, a valid one swaps changed providers and keeps the others' tokens.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DemoTokenServer } from '../../demo/token-server.js';
import { ccSource, startWorld, type World } from '../support/world.js';
import { envoyRequest, injected, metadata } from '../support/envoy-request.js';

const ADMIN_TOKEN = 'reload-admin-token-0123456789';

function configYaml(opts: { bUrl: string; aUrl: string; extra?: string }): string {
  return `
listen: { grpc: 127.0.0.1:0, admin: 127.0.0.1:0 }
admin: { token: "${ADMIN_TOKEN}" }
providers:
  a:
    source: ${ccSource({ tokenUrl: opts.aUrl })}
  b:
    source: ${ccSource({ tokenUrl: opts.bUrl })}
${opts.extra ?? ''}`;
}

describe('reload', () => {
  let w: World;
  /** A second IdP, for a reload that moves provider b to another token endpoint. */
  let idp2: DemoTokenServer;
  let dir: string;
  let file: string;

  const checkProvider = async (provider: string) => {
    const res = await w.client.check(envoyRequest({ contextExtensions: { provider } }));
    return { code: res.status?.code ?? 0, tokenId: metadata(res).token_id, header: injected(res)?.header?.value };
  };

  beforeAll(async () => {
    idp2 = new DemoTokenServer();
    await idp2.start();
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tokengate-reload-'));
    file = path.join(dir, 'tokengate.yaml');
    w = await startWorld({
      configPath: file,
      // The app starts from the file it will re-read.
      yaml: ({ idp }) => {
        const yaml = configYaml({ aUrl: idp.tokenUrl, bUrl: idp.tokenUrl });
        fs.writeFileSync(file, yaml);
        return yaml;
      },
    });
  });
  afterAll(async () => {
    await w?.close();
    await idp2?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('a broken file is refused with path: problem lines and the running config keeps serving', async () => {
    const a = await checkProvider('a');
    const b = await checkProvider('b');
    const requests = w.idp.tokenRequestCount;
    fs.writeFileSync(file, configYaml({ aUrl: w.idp.tokenUrl, bUrl: 'ftp://nowhere', extra: '  c:\n    source: { type: jwt, key: short, ttl: soon }\n' }));

    const res = await w.admin.http('POST', '/v1/reload', ADMIN_TOKEN);
    expect(res.status).toBe(400);
    const body = res.json<{ ok: boolean; problems: string[] }>();
    expect(body.ok).toBe(false);
    expect(body.problems.length).toBeGreaterThanOrEqual(2);
    for (const line of body.problems) expect(line).toMatch(/^providers\.[a-z]\.[A-Za-z.]+: \S/);
    expect(body.problems.some((l) => l.startsWith('providers.b.source.tokenUrl: '))).toBe(true);
    expect(body.problems.some((l) => l.startsWith('providers.c.source.ttl: '))).toBe(true);
    expect(w.logs.some((l) => l.includes('config reload refused'))).toBe(true);

    expect(await checkProvider('a')).toEqual(a);
    expect(await checkProvider('b')).toEqual(b);
    expect((await checkProvider('c')).code).not.toBe(0); // still unknown
    expect(w.app.currentConfig.providers.get('b')?.source).toMatchObject({ tokenUrl: w.idp.tokenUrl });
    expect(w.idp.tokenRequestCount).toBe(requests);
  });

  it('a valid file swaps the changed provider (new token from the new source) and keeps the unchanged one', async () => {
    const a = await checkProvider('a');
    const b = await checkProvider('b');
    const requests1 = w.idp.tokenRequestCount;
    fs.writeFileSync(file, configYaml({
      aUrl: w.idp.tokenUrl,
      bUrl: idp2.tokenUrl,
      extra: '  c:\n    source: { type: jwt, key: "an-hs256-secret-that-is-long-enough-0123", claims: { iss: x }, ttl: 30m }\n',
    }));

    const res = await w.admin.http('POST', '/v1/reload', ADMIN_TOKEN);
    expect(res.status).toBe(200);
    expect(res.json()).toEqual({ ok: true, added: ['c'], changed: ['b'], removed: [] });

    // Unchanged: same token, and not one more request to its IdP.
    expect(await checkProvider('a')).toEqual(a);
    expect(w.idp.tokenRequestCount).toBe(requests1);
    // Changed: its new source's token, ready before the swap (the reload waited for it).
    const b2 = await checkProvider('b');
    expect(b2.code).toBe(0);
    expect(b2.tokenId).not.toBe(b.tokenId);
    expect(idp2.tokenRequestCount).toBe(1);
    expect(b2.header).toBe(`Bearer ${idp2.issuedAccessTokens[0]}`);
    // Added.
    expect((await checkProvider('c')).code).toBe(0);
    expect(w.logs.some((l) => l.includes('"msg":"config reloaded"'))).toBe(true);
  });
});
