// issuer: instead of tokenUrl — metadata fetched once per issuer and shared, assertions carry
// aud = issuer (RFC 7523bis) unless assertionAudience: tokenUrl, a document for another issuer
// or with a plain-http token endpoint is refused, a 404 from the token endpoint re-discovers.
import { decodeJwt } from 'jose';
import { afterEach, describe, expect, it } from 'vitest';
import { parseConfig } from '../../../src/config/load.js';
import { TokenManager } from '../../../src/tokens/manager.js';
import { pemBlock, rsaPair } from '../../support/keys.js';
import { FakeEndpoint, type Seen } from './fakes.js';

const rsa = rsaPair();
let idp: FakeEndpoint | undefined;
afterEach(async () => {
  await idp?.close();
  idp = undefined;
});

interface Doc { issuer?: string; token_endpoint?: string }

async function startIdp(doc: (origin: string) => Doc, tokenPaths: () => string[] = () => ['/token']): Promise<FakeEndpoint> {
  let n = 0;
  const ep = await FakeEndpoint.start((req: Seen) => {
    if (req.url.pathname === '/.well-known/openid-configuration') return { body: doc(ep.origin) };
    if (req.method === 'POST' && tokenPaths().includes(req.url.pathname)) return { body: { access_token: `at-${++n}`, expires_in: 3600 } };
    return { status: 404, body: { error: 'not_found' } };
  });
  return ep;
}

function providers(yaml: string): TokenManager {
  return new TokenManager(parseConfig(yaml, { env: {} }).providers.values());
}

const pkjwt = (issuer: string, extra = '') => `
    refresh: { waitBudget: 10s }
    source:
      type: client_credentials
      issuer: ${issuer}
      clientId: svc
      authMethod: private_key_jwt
      privateKey: ${pemBlock(rsa.privatePem, 8)}
${extra}`;

describe('discovery', () => {
  it('client assertions carry aud = issuer; assertionAudience: tokenUrl restores the endpoint URL', async () => {
    idp = await startIdp((o) => ({ issuer: o, token_endpoint: `${o}/token` }));
    const m = providers(`providers:\n  a:${pkjwt(idp.origin)}\n  b:${pkjwt(idp.origin, '      assertionAudience: tokenUrl')}`);
    try {
      await m.getToken('a');
      await m.getToken('b');
      const posts = idp.requests.filter((r) => r.method === 'POST');
      expect(decodeJwt(posts[0]!.form.client_assertion!).aud).toBe(idp.origin);
      expect(decodeJwt(posts[1]!.form.client_assertion!).aud).toBe(`${idp.origin}/token`);
    } finally {
      await m.close(0);
    }
  });

  it('fetches the metadata once per issuer, shared by every provider (single flight)', async () => {
    idp = await startIdp((o) => ({ issuer: o, token_endpoint: `${o}/token` }));
    const yaml = ['providers:', ...['p1', 'p2', 'p3'].map((n) => `  ${n}:${pkjwt(idp!.origin)}`)].join('\n');
    const m = providers(yaml);
    try {
      await m.warmUp();
      expect(idp.requests.filter((r) => r.method === 'GET')).toHaveLength(1);
      expect(idp.requests.filter((r) => r.method === 'POST')).toHaveLength(3);
    } finally {
      await m.close(0);
    }
  });

  it('refuses a document that names another issuer (ERR_SOURCE_CONFIG), and sends nothing', async () => {
    idp = await startIdp(() => ({ issuer: 'https://evil.example', token_endpoint: 'https://evil.example/token' }));
    const m = providers(`providers:\n  a:${pkjwt(idp.origin)}`);
    try {
      const err = await m.refresh('a').then(() => undefined, (e: unknown) => e as Error & { code: string });
      expect(err?.code).toBe('ERR_SOURCE_CONFIG');
      expect(err?.message).toContain('names issuer "https://evil.example", not the configured');
      expect(idp.requests.filter((r) => r.method === 'POST')).toHaveLength(0);
    } finally {
      await m.close(0);
    }
  });

  it('refuses a plain-http token endpoint from an issuer\'s document', async () => {
    idp = await startIdp((o) => ({ issuer: o, token_endpoint: 'http://idp.example/token' }));
    const m = providers(`providers:\n  a:${pkjwt(idp.origin)}`);
    try {
      const err = await m.refresh('a').then(() => undefined, (e: unknown) => e as Error & { code: string });
      expect(err?.code).toBe('ERR_SOURCE_CONFIG');
      expect(err?.message).toContain('token_endpoint that is not https');
    } finally {
      await m.close(0);
    }
  });

  it('a 404 from the token endpoint re-fetches the metadata and follows the moved endpoint', async () => {
    let path = '/old/token';
    idp = await startIdp((o) => ({ issuer: o, token_endpoint: `${o}${path}` }), () => [path]);
    const m = providers(`providers:\n  a:${pkjwt(idp.origin)}`);
    try {
      await m.getToken('a');
      path = '/new/token';
      await m.refresh('a');
      expect(idp.requests.map((r) => `${r.method} ${r.url.pathname}`)).toEqual([
        'GET /.well-known/openid-configuration', 'POST /old/token',
        'POST /old/token', 'GET /.well-known/openid-configuration', 'POST /new/token',
      ]);
    } finally {
      await m.close(0);
    }
  });
});
