// metadata sources against loopback fakes of the GCP metadata server and Azure IMDS: the
// headers each requires, scopes / resource / clientId, and the bad answers (a hang, HTML, 200
// without a token) as clear errors with stable codes while the last good token is served.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../../src/config/load.js';
import { TokenManager } from '../../../src/tokens/manager.js';
import { FakeEndpoint, type Answer, type Seen } from './fakes.js';

let answer: (req: Seen) => Answer;
let fake: FakeEndpoint;
beforeAll(async () => {
  fake = await FakeEndpoint.start((req) => answer(req));
});
afterAll(async () => fake?.close());

function manager(source: string, resilience = 'retries: 0'): TokenManager {
  return new TokenManager(parseConfig(`
providers:
  p:
    source: ${source}
    resilience: { ${resilience} }
    refresh: { waitBudget: 10s }
`, { env: {} }).providers.values());
}

const gcpServer = (req: Seen): Answer => {
  // The real server refuses requests without the flavor header, or forwarded ones.
  if (req.headers['metadata-flavor'] !== 'Google' || req.headers['x-forwarded-for']) return { status: 403, body: 'Missing Metadata-Flavor:Google header.' };
  return { body: { access_token: `ya29.gcp-${fake.requests.length}`, expires_in: 3599, token_type: 'Bearer' }, headers: { 'metadata-flavor': 'Google' } };
};

describe('metadata flavor gcp', () => {
  it('GETs the default service account token with Metadata-Flavor: Google and the scopes', async () => {
    answer = gcpServer;
    fake.requests.length = 0;
    const m = manager(`{ type: metadata, flavor: gcp, endpoint: "${fake.origin}", scopes: [https://www.googleapis.com/auth/cloud-platform, openid] }`);
    try {
      const t = await m.getToken('p');
      expect(t.value).toBe('ya29.gcp-1');
      const r = fake.requests[0]!;
      expect(r.method).toBe('GET');
      expect(r.url.pathname).toBe('/computeMetadata/v1/instance/service-accounts/default/token');
      expect(r.url.searchParams.get('scopes')).toBe('https://www.googleapis.com/auth/cloud-platform,openid');
      expect(r.headers['metadata-flavor']).toBe('Google');
    } finally {
      await m.close(0);
    }
  });

  it('asks for a named service account', async () => {
    answer = gcpServer;
    fake.requests.length = 0;
    const m = manager(`{ type: metadata, flavor: gcp, endpoint: "${fake.origin}", serviceAccount: "app@proj.iam.gserviceaccount.com" }`);
    try {
      await m.getToken('p');
      expect(fake.requests[0]!.url.pathname).toBe('/computeMetadata/v1/instance/service-accounts/app@proj.iam.gserviceaccount.com/token');
      expect(fake.requests[0]!.url.search).toBe('');
    } finally {
      await m.close(0);
    }
  });
});

describe('metadata flavor azure', () => {
  it('GETs the IMDS token with Metadata: true, resource and clientId; string expires_in is accepted', async () => {
    answer = (req) => req.headers.metadata === 'true'
      ? { body: { access_token: 'eyJ.azure', expires_in: '86399', expires_on: '1767229199', resource: 'https://vault.azure.net', token_type: 'Bearer' } }
      : { status: 400, body: { error: 'invalid_request', error_description: 'Required metadata header not specified' } };
    fake.requests.length = 0;
    const m = manager(`{ type: metadata, flavor: azure, endpoint: "${fake.origin}", resource: "https://vault.azure.net", clientId: 00000000-1111-2222-3333-444444444444 }`);
    try {
      const t = await m.getToken('p');
      expect(t.value).toBe('eyJ.azure');
      expect(t.expiresAt - Date.now()).toBeGreaterThan(23 * 3_600_000);
      const r = fake.requests[0]!;
      expect(r.url.pathname).toBe('/metadata/identity/oauth2/token');
      expect(Object.fromEntries(r.url.searchParams)).toEqual({ 'api-version': '2018-02-01', resource: 'https://vault.azure.net', client_id: '00000000-1111-2222-3333-444444444444' });
    } finally {
      await m.close(0);
    }
  });
});

describe('bad metadata answers', () => {
  const src = () => `{ type: metadata, flavor: gcp, endpoint: "${fake.origin}" }`;

  it.each([
    ['answers HTML', (): Answer => ({ body: '<html><body>Captive portal</body></html>' }), 'ERR_IDP_BAD_RESPONSE', /not JSON/],
    ['answers 200 without a token', (): Answer => ({ body: { expires_in: 3600 } }), 'ERR_IDP_BAD_RESPONSE', /without an access_token/],
    ['hangs', (): Answer => ({ hang: true }), 'ERR_IDP_TIMEOUT', /did not answer in time|timed out/],
  ])('a metadata server that %s: a clear error, the last good token still served', async (_what, bad, code, message) => {
    answer = gcpServer;
    const m = manager(src(), 'retries: 0, timeout: 200ms');
    try {
      const good = await m.getToken('p');
      answer = bad;
      const err = await m.refresh('p').then(() => undefined, (e: unknown) => e as Error & { code: string });
      expect(err?.code).toBe(code);
      expect(err?.message).toMatch(message);
      expect(err?.message).toContain('gcp metadata endpoint');
      const served = await m.getToken('p');
      expect(served.value).toBe(good.value);
    } finally {
      await m.close(0);
    }
  });
});
