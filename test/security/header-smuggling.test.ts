// Headers tokengate injects cannot be smuggled by the client: whatever the client sent as
// `authorization` (or the provider's own header), the answer is OVERWRITE with tokengate's value
// only — and with no credential to give, the client's value is removed, not passed on.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../support/app.js';
import { startWorld, type World } from '../support/world.js';
import { envoyRequest, type CheckResponse } from '../support/envoy-request.js';

const API_KEY = 'static-api-key-for-smuggling-tests';
const ATTACKER = 'attacker-chosen-credential';

/** An Envoy-shaped request whose `headers` map is replaced by exactly `extra` on top of the pseudo-headers. */
function withHeaders(authority: string, extra: Record<string, string>, contextExtensions?: Record<string, string>): Record<string, unknown> {
  const req = envoyRequest({ authority, ...(contextExtensions ? { contextExtensions } : {}) }) as { attributes: { request: { http: { headers: Record<string, string> } } } };
  Object.assign(req.attributes.request.http.headers, extra);
  return req;
}

/** The client-side forms an injected header can arrive in (Envoy lower-cases and comma-joins; other callers may not). */
function smugglingVariants(header: string): Record<string, string>[] {
  const mixed = header.replace(/(^|-)([a-z])/g, (_m, d: string, c: string) => d + c.toUpperCase());
  return [
    { [header]: ATTACKER },
    { [header]: `Bearer ${ATTACKER}` },
    { [mixed]: `Bearer ${ATTACKER}` },
    { [header.toUpperCase()]: `Bearer ${ATTACKER}` },
    { [header]: `Bearer ${ATTACKER}, Bearer ${ATTACKER}-2` }, // duplicates as Envoy joins them
    { [header]: `Bearer ${ATTACKER}`, [mixed]: `Basic ${ATTACKER}`, [header.toUpperCase()]: ATTACKER },
    { [header]: `${ATTACKER}\r\n${header}: ${ATTACKER}-crlf` },
    { [header]: '' },
    { [` ${header}`]: ATTACKER, [`${header} `]: ATTACKER, [`${header}:`]: ATTACKER },
  ];
}

function expectOnlyOurs(res: CheckResponse, header: string, value: string): void {
  expect(res.status?.code ?? 0).toBe(0);
  const headers = res.ok_response?.headers ?? [];
  expect(headers).toHaveLength(1);
  expect(headers[0]).toEqual({ header: { key: header, value }, append: { value: false }, append_action: 'OVERWRITE_IF_EXISTS_OR_ADD' });
  expect(JSON.stringify(res)).not.toContain(ATTACKER);
}

describe('injected headers cannot be smuggled', () => {
  let w: World;
  let bearer: string;

  beforeAll(async () => {
    w = await startWorld({ env: { CS: 'demo-secret', API_KEY }, yaml: ({ cc }) => `
providers:
  oauth:
    source: ${cc({ clientSecret: '${env:CS}' })}
  keyed:
    source: { type: static, token: "\${env:API_KEY}" }
    inject: { header: x-api-key, format: "{token}" }
routes:
  - match: { authority: api.example.com }
    provider: oauth
  - match: { authority: keys.example.com }
    provider: keyed
` });
    bearer = `Bearer ${w.idp.issuedAccessTokens[0]}`;
  });
  afterAll(async () => {
    await w?.close();
  });

  it('a client-sent authorization, in every form, yields OVERWRITE with tokengate\'s value only (route table)', async () => {
    const answers = new Set<string>();
    for (const extra of smugglingVariants('authorization')) {
      const res = await w.client.check(withHeaders('api.example.com', extra));
      expectOnlyOurs(res, 'authorization', bearer);
      answers.add(JSON.stringify(res));
    }
    // The answer does not depend on what the client sent at all.
    expect(answers.size).toBe(1);
  });

  it('the same on a route that names the provider in context_extensions', async () => {
    for (const extra of smugglingVariants('authorization')) {
      expectOnlyOurs(await w.client.check(withHeaders('anything.example.net', extra, { provider: 'oauth' })), 'authorization', bearer);
    }
  });

  it('a provider that injects x-api-key handles a client-sent x-api-key the same way', async () => {
    const answers = new Set<string>();
    for (const extra of smugglingVariants('x-api-key')) {
      const res = await w.client.check(withHeaders('keys.example.com', extra));
      expectOnlyOurs(res, 'x-api-key', API_KEY);
      answers.add(JSON.stringify(res));
    }
    expect(answers.size).toBe(1);
  });

  it('a client cannot choose the provider or the header through its own headers', async () => {
    // A header named like the providerKey or a pseudo-header smuggled as a regular header.
    const res = await w.client.check(withHeaders('keys.example.com', { provider: 'oauth', ':authority': 'api.example.com', 'x-provider': 'oauth' }));
    expectOnlyOurs(res, 'x-api-key', API_KEY);
  });
});

describe('no credential to inject: the client\'s value is removed, not passed on', () => {
  let t: TestApp;
  beforeAll(async () => {
    // Nothing listens on port 1: the token is never available.
    t = await startTestApp(`
listen: { grpc: 127.0.0.1:0, admin: "off" }
defaults: { onTokenUnavailable: allow }
providers:
  oauth:
    source: { type: client_credentials, tokenUrl: "http://127.0.0.1:1/token", clientId: c, clientSecret: "\${env:CS}" }
    resilience: { retries: 0, timeout: 200ms }
    refresh: { waitBudget: 50ms }
  keyed:
    source: { type: client_credentials, tokenUrl: "http://127.0.0.1:1/token", clientId: c, clientSecret: "\${env:CS}" }
    inject: { header: x-api-key, format: "{token}", removeHeaders: [cookie] }
    resilience: { retries: 0, timeout: 200ms }
    refresh: { waitBudget: 50ms }
`, { env: { CS: 'demo-secret' } });
  });
  afterAll(async () => {
    await t?.close();
  });

  it('onTokenUnavailable: allow answers OK without a credential and removes the injected header', async () => {
    for (const extra of smugglingVariants('authorization')) {
      const res = await t.client.check(withHeaders('api.example.com', extra, { provider: 'oauth' }));
      expect(res.status?.code ?? 0).toBe(0);
      expect(res.ok_response?.headers ?? []).toEqual([]);
      expect(res.ok_response?.headers_to_remove).toEqual(['authorization']);
    }
    const res = await t.client.check(withHeaders('api.example.com', { 'x-api-key': ATTACKER }, { provider: 'keyed' }));
    expect(res.ok_response?.headers_to_remove).toEqual(['x-api-key', 'cookie']);
  });
});
