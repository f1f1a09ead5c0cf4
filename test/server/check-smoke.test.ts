import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DemoTokenServer } from '../../src/demo/token-server.js';
import { startTestApp, type TestApp } from '../support/app.js';
import { envoyRequest, injected, metadata } from '../support/envoy-request.js';

describe('Check smoke', () => {
  let idp: DemoTokenServer;
  let t: TestApp;
  beforeAll(async () => {
    idp = new DemoTokenServer();
    await idp.start();
    t = await startTestApp(`
listen: { grpc: 127.0.0.1:0, admin: "off" }
providers:
  cc:
    source: { type: client_credentials, tokenUrl: "${idp.tokenUrl}", clientId: demo-client, clientSecret: demo-secret }
routes:
  - match: { authority: api.example.com }
    provider: cc
`);
  });
  afterAll(async () => {
    await t?.close();
    await idp?.stop();
  });

  it('injects the token', async () => {
    const res = await t.client.check(envoyRequest({ authority: 'api.example.com' }));
    expect(res.status?.code ?? 0).toBe(0);
    const h = injected(res);
    expect(h?.header?.value).toBe(`Bearer ${idp.issuedAccessTokens[0]}`);
    expect(h?.append?.value).toBe(false);
    expect(h?.append_action).toBe('OVERWRITE_IF_EXISTS_OR_ADD');
    expect(metadata(res)).toMatchObject({ provider: 'cc', source: 'cache' });
    expect(idp.tokenRequestCount).toBe(1);
  });
});
