import { afterEach, describe, expect, it } from 'vitest';
import { SignJWT, generateKeyPair, jwtVerify, decodeJwt } from 'jose';
import {
  CLIENT_ASSERTION_TYPE,
  DemoTokenServer,
  JWT_BEARER_GRANT,
  parseBehaviour,
  type Behaviour,
  type DemoTokenServerOptions,
} from '../../demo/token-server.js';
import { envInt, startTokenServer } from '../../demo/token-server-main.js';

const servers: DemoTokenServer[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.stop()));
});

async function serve(opts: DemoTokenServerOptions = {}): Promise<DemoTokenServer> {
  const s = new DemoTokenServer(opts);
  servers.push(s);
  await s.start();
  return s;
}

interface Answer {
  status: number;
  headers: Headers;
  body: any;
}
async function post(url: string, form: Record<string, string>, headers: Record<string, string> = {}): Promise<Answer> {
  const res = await fetch(url, { method: 'POST', body: new URLSearchParams(form), headers, redirect: 'manual' });
  const text = await res.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    /* not JSON: keep the text */
  }
  return { status: res.status, headers: res.headers, body };
}
const basic = (id: string, secret: string): Record<string, string> => ({
  authorization: 'Basic ' + Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64'),
});
const cc = { grant_type: 'client_credentials' };

describe('client_credentials', () => {
  it('client_secret_basic issues a no-store Bearer token and logs a redacted request', async () => {
    const s = await serve({ now: () => 1_700_000_000_000 });
    const r = await post(s.tokenUrl, { ...cc, scope: 'a b', audience: 'https://api', resource: 'x' }, basic('demo-client', 'demo-secret'));
    expect(r.status).toBe(200);
    expect(r.headers.get('cache-control')).toBe('no-store');
    expect(r.body).toEqual({ access_token: expect.any(String), token_type: 'Bearer', expires_in: 300, scope: 'a b' });
    expect(s.issuedAccessTokens).toEqual([r.body.access_token]);
    expect(s.requests).toEqual([
      {
        at: 1_700_000_000_000,
        grantType: 'client_credentials',
        clientId: 'demo-client',
        authMethod: 'client_secret_basic',
        form: { grant_type: 'client_credentials', scope: 'a b', audience: 'https://api', resource: 'x' },
        outcome: 'issued',
        status: 200,
      },
    ]);
    expect(s.tokenRequestCount).toBe(1);
  });

  it('decodes Basic credentials as RFC 6749 §2.3.1 form-urlencoded values', async () => {
    const s = await serve({ clients: { 'my client': { secret: 'p@ss:w+rd %' } } });
    expect((await post(s.tokenUrl, cc, basic('my client', 'p@ss:w+rd %'))).status).toBe(200);
    // Raw, un-encoded "+" means a space in form encoding, so it must not match.
    const raw = { authorization: 'Basic ' + Buffer.from('my client:p@ss:w+rd %').toString('base64') };
    expect((await post(s.tokenUrl, cc, raw)).status).toBe(401);
  });

  it('rejects bad Basic credentials with 401 invalid_client and WWW-Authenticate', async () => {
    const s = await serve();
    for (const h of [basic('demo-client', 'nope'), basic('who', 'demo-secret'), { authorization: 'Basic !!!' }]) {
      const r = await post(s.tokenUrl, cc, h);
      expect(r.status).toBe(401);
      expect(r.body.error).toBe('invalid_client');
      expect(r.headers.get('www-authenticate')).toMatch(/^Basic /);
    }
    expect(s.issuedAccessTokens).toEqual([]);
    expect(s.requests.map((x) => x.outcome)).toEqual(['error', 'error', 'error']);
  });

  it('client_secret_post works and the secret is redacted', async () => {
    const s = await serve();
    const ok = await post(s.tokenUrl, { ...cc, client_id: 'demo-client', client_secret: 'demo-secret' });
    expect(ok.status).toBe(200);
    expect(s.requests[0]).toMatchObject({ authMethod: 'client_secret_post', clientId: 'demo-client' });
    expect(s.requests[0]?.form.client_secret).toBe('[redacted]');
    const bad = await post(s.tokenUrl, { ...cc, client_id: 'demo-client', client_secret: 'x' });
    expect(bad).toMatchObject({ status: 401, body: { error: 'invalid_client' } });
  });

  it('requires client authentication, and only one method', async () => {
    const s = await serve();
    expect(await post(s.tokenUrl, { ...cc, client_id: 'demo-client' })).toMatchObject({ status: 401, body: { error: 'invalid_client' } });
    const both = await post(s.tokenUrl, { ...cc, client_secret: 'demo-secret' }, basic('demo-client', 'demo-secret'));
    expect(both).toMatchObject({ status: 400, body: { error: 'invalid_request' } });
  });

  it('rejects a non-form body, a missing or unknown grant, and repeated parameters', async () => {
    const s = await serve();
    const json = await fetch(s.tokenUrl, { method: 'POST', body: JSON.stringify(cc), headers: { 'content-type': 'application/json', ...basic('demo-client', 'demo-secret') } });
    expect(json.status).toBe(400);
    expect(await json.json()).toMatchObject({ error: 'invalid_request' });
    const auth = basic('demo-client', 'demo-secret');
    expect((await post(s.tokenUrl, {}, auth)).body.error).toBe('invalid_request');
    expect((await post(s.tokenUrl, { grant_type: 'password' }, auth)).body.error).toBe('unsupported_grant_type');
    const dup = await fetch(s.tokenUrl, { method: 'POST', body: 'grant_type=client_credentials&scope=a&scope=b', headers: { 'content-type': 'application/x-www-form-urlencoded', ...auth } });
    expect(await dup.json()).toMatchObject({ error: 'invalid_request', error_description: 'parameter "scope" repeated' });
    expect((await fetch(s.tokenUrl)).status).toBe(405);
  });

  describe('private_key_jwt', () => {
    async function setup(): Promise<{ s: DemoTokenServer; sign: (claims?: Record<string, unknown>, opts?: { noJti?: boolean; exp?: number; aud?: string }) => Promise<string> }> {
      const { publicKey, privateKey } = await generateKeyPair('ES256');
      const s = await serve({ clients: { svc: { publicKey } } });
      let n = 0;
      const sign = async (claims: Record<string, unknown> = {}, opts: { noJti?: boolean; exp?: number; aud?: string } = {}): Promise<string> => {
        const now = Math.floor(Date.now() / 1000);
        const jwt = new SignJWT(claims)
          .setProtectedHeader({ alg: 'ES256' })
          .setIssuer('svc')
          .setSubject('svc')
          .setAudience(opts.aud ?? s.tokenUrl)
          .setIssuedAt(now)
          .setExpirationTime(opts.exp ?? now + 60);
        if (!opts.noJti) jwt.setJti(`jti-${++n}`);
        return jwt.sign(privateKey);
      };
      return { s, sign };
    }
    const form = (assertion: string): Record<string, string> => ({ ...cc, client_assertion_type: CLIENT_ASSERTION_TYPE, client_assertion: assertion });

    it('accepts a valid assertion once and treats a replay as invalid_client', async () => {
      const { s, sign } = await setup();
      const a = await sign();
      expect((await post(s.tokenUrl, { ...form(a), client_id: 'svc' })).status).toBe(200);
      expect(s.requests[0]).toMatchObject({ clientId: 'svc', authMethod: 'private_key_jwt' });
      expect(s.requests[0]?.form.client_assertion).toBe('[redacted]');
      expect(await post(s.tokenUrl, form(a))).toMatchObject({ status: 401, body: { error: 'invalid_client' } });
    });

    it('rejects wrong audience, missing jti, expiry, a foreign key and a mismatched client_id', async () => {
      const { s, sign } = await setup();
      const other = await generateKeyPair('ES256');
      const foreign = await new SignJWT({}).setProtectedHeader({ alg: 'ES256' }).setIssuer('svc').setSubject('svc').setAudience(s.tokenUrl).setExpirationTime('1m').setJti('f').sign(other.privateKey);
      const bad = [
        await sign({}, { aud: 'https://elsewhere/token' }),
        await sign({}, { noJti: true }),
        await sign({}, { exp: Math.floor(Date.now() / 1000) - 10 }),
        foreign,
        'not-a-jwt',
      ];
      for (const a of bad) expect(await post(s.tokenUrl, form(a))).toMatchObject({ status: 401, body: { error: 'invalid_client' } });
      expect(await post(s.tokenUrl, { ...form(await sign()), client_id: 'someone-else' })).toMatchObject({ status: 401 });
      expect(await post(s.tokenUrl, { ...cc, client_assertion_type: 'urn:other', client_assertion: await sign() })).toMatchObject({ status: 400 });
      expect(s.issuedAccessTokens).toEqual([]);
    });

    it('accepts the issuer URL as audience and checks exp against now()', async () => {
      const { publicKey, privateKey } = await generateKeyPair('RS256');
      let now = Date.now();
      const s = await serve({ clients: { svc: { publicKey } }, now: () => now });
      const a = await new SignJWT({}).setProtectedHeader({ alg: 'RS256' }).setIssuer('svc').setSubject('svc').setAudience(s.url).setExpirationTime(Math.floor(now / 1000) + 30).setJti('x').sign(privateKey);
      now += 60_000;
      expect((await post(s.tokenUrl, form(a))).status).toBe(401);
      now -= 60_000;
      expect((await post(s.tokenUrl, form(a))).status).toBe(200);
    });
  });
});

describe('token shape', () => {
  it('issues HS256 JWTs verifiable with verificationKey', async () => {
    const s = await serve({ tokenFormat: 'jwt', tokenTtlSeconds: 120 });
    const r = await post(s.tokenUrl, { ...cc, scope: 's1', audience: 'https://api' }, basic('demo-client', 'demo-secret'));
    const { payload, protectedHeader } = await jwtVerify(r.body.access_token, s.verificationKey, { audience: 'https://api', issuer: s.url });
    expect(protectedHeader.alg).toBe('HS256');
    expect(payload).toMatchObject({ sub: 'demo-client', client_id: 'demo-client', scope: 's1', jti: expect.any(String) });
    expect(payload.exp! - payload.iat!).toBe(120);
  });

  it('opaque tokens are distinct base64url strings', async () => {
    const s = await serve();
    const a = await post(s.tokenUrl, cc, basic('demo-client', 'demo-secret'));
    const b = await post(s.tokenUrl, cc, basic('demo-client', 'demo-secret'));
    expect(a.body.access_token).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(a.body.access_token).not.toBe(b.body.access_token);
  });

  it('setTokenTtl changes expires_in; omitExpiresIn drops it (a JWT keeps exp)', async () => {
    const s = await serve({ tokenFormat: 'jwt' });
    s.setTokenTtl(7);
    expect((await post(s.tokenUrl, cc, basic('demo-client', 'demo-secret'))).body.expires_in).toBe(7);
    s.omitExpiresIn = true;
    const r = await post(s.tokenUrl, cc, basic('demo-client', 'demo-secret'));
    expect(r.body).not.toHaveProperty('expires_in');
    const p = decodeJwt(r.body.access_token);
    expect(p.exp! - p.iat!).toBe(7);
    expect(() => s.setTokenTtl(-1)).toThrow();
  });
});

describe('refresh_token rotation and reuse detection', () => {
  const refresh = (rt: string): Record<string, string> => ({ grant_type: 'refresh_token', refresh_token: rt });

  it('rotates on every use, and a reused token revokes the whole family', async () => {
    const s = await serve({ refreshTokens: ['rt-0', 'other-family'] });
    const r1 = await post(s.tokenUrl, { ...refresh('rt-0'), scope: 'offline' });
    expect(r1.body).toMatchObject({ access_token: expect.any(String), refresh_token: expect.any(String), scope: 'offline', token_type: 'Bearer' });
    expect(s.refreshTokenState('rt-0')).toBe('spent');
    expect(s.requests[0]?.form.refresh_token).toBe('[redacted]');
    const r2 = await post(s.tokenUrl, refresh(r1.body.refresh_token));
    expect(r2.status).toBe(200);
    const current: string = r2.body.refresh_token;
    expect(s.issuedRefreshTokens).toEqual([r1.body.refresh_token, current]);

    const reuse = await post(s.tokenUrl, refresh('rt-0'));
    expect(reuse).toMatchObject({ status: 400, body: { error: 'invalid_grant', error_description: 'refresh token reuse detected' } });
    expect(s.refreshTokenState(current)).toBe('revoked');
    expect(await post(s.tokenUrl, refresh(current))).toMatchObject({ status: 400, body: { error: 'invalid_grant' } });
    expect(s.invalidGrantCount).toBe(2);
    expect(s.reuseDetectedCount).toBe(1);
    // Another family is untouched.
    expect((await post(s.tokenUrl, refresh('other-family'))).status).toBe(200);
  });

  it('counts presentations per refresh token; inside reuseIntervalMs a spent token gets the same successor', async () => {
    let now = 1_000_000;
    const s = await serve({ refreshTokens: ['rt-0'], reuseIntervalMs: 5_000, now: () => now });
    const first = await post(s.tokenUrl, refresh('rt-0'));
    now += 4_000;
    const again = await post(s.tokenUrl, refresh('rt-0'));
    expect(again.status).toBe(200);
    expect(again.body.refresh_token).toBe(first.body.refresh_token);
    expect(s.presentations('rt-0')).toBe(2);
    expect(s.anyFamilyRevoked).toBe(false);
    now += 2_000; // past the interval: a reuse
    expect(await post(s.tokenUrl, refresh('rt-0'))).toMatchObject({ status: 400, body: { error_description: 'refresh token reuse detected' } });
    expect(s.anyFamilyRevoked).toBe(true);
    expect(s.maxPresentations).toBe(3);
  });

  it('slow, garbled and reset_after carry the grant out (the token rotates) and lose the answer', async () => {
    const s = await serve({ refreshTokens: ['rt-a', 'rt-b', 'rt-c'] });
    s.setBehaviourSequence([{ kind: 'garbled' }, { kind: 'reset_after' }, { kind: 'slow', ms: 100 }]);
    const garbled = await post(s.tokenUrl, refresh('rt-a'));
    expect(garbled.status).toBe(200);
    expect(typeof garbled.body).toBe('string'); // not JSON
    await expect(post(s.tokenUrl, refresh('rt-b'))).rejects.toThrow();
    const started = Date.now();
    expect((await post(s.tokenUrl, refresh('rt-c'))).status).toBe(200);
    expect(Date.now() - started).toBeGreaterThanOrEqual(90);
    for (const t of ['rt-a', 'rt-b', 'rt-c']) expect(s.refreshTokenState(t)).toBe('spent');
  });

  it('rejects unknown and missing refresh tokens, and checks client auth when given', async () => {
    const s = await serve({ refreshTokens: ['rt'] });
    expect(await post(s.tokenUrl, refresh('nope'))).toMatchObject({ status: 400, body: { error: 'invalid_grant' } });
    expect(await post(s.tokenUrl, { grant_type: 'refresh_token' })).toMatchObject({ status: 400, body: { error: 'invalid_request' } });
    expect((await post(s.tokenUrl, refresh('rt'), basic('demo-client', 'wrong'))).status).toBe(401);
    expect(s.refreshTokenState('rt')).toBe('valid');
    expect((await post(s.tokenUrl, refresh('rt'), basic('demo-client', 'demo-secret'))).status).toBe(200);
    s.addRefreshToken('late');
    expect((await post(s.tokenUrl, refresh('late'))).status).toBe(200);
  });
});

describe('jwt-bearer grant (RFC 7523 §2.1)', () => {
  const grant = (assertion: string): Record<string, string> => ({ grant_type: JWT_BEARER_GRANT, assertion });

  it('accepts an HS256 assertion from jwtBearerKeys, once per jti', async () => {
    const secret = new TextEncoder().encode('0123456789abcdef0123456789abcdef');
    const s = await serve({ jwtBearerKeys: { 'sa@example': secret }, tokenFormat: 'jwt' });
    const a = await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setIssuer('sa@example').setSubject('user-7').setAudience(s.tokenUrl).setExpirationTime('5m').setJti('j1').sign(secret);
    const r = await post(s.tokenUrl, { ...grant(a), scope: 'read' });
    expect(r.body).toMatchObject({ token_type: 'Bearer', scope: 'read', expires_in: 300 });
    expect(r.body).not.toHaveProperty('refresh_token');
    expect(decodeJwt(r.body.access_token).sub).toBe('user-7');
    expect(s.requests[0]?.form.assertion).toBe('[redacted]');
    expect(await post(s.tokenUrl, grant(a))).toMatchObject({ status: 400, body: { error: 'invalid_grant' } });
  });

  it("verifies against clients[iss].publicKey and rejects bad assertions as invalid_grant", async () => {
    const { publicKey, privateKey } = await generateKeyPair('RS256');
    const s = await serve({ clients: { sa: { publicKey } } });
    const build = (): SignJWT => new SignJWT({}).setProtectedHeader({ alg: 'RS256' }).setIssuer('sa').setAudience(s.tokenUrl).setExpirationTime('1m');
    expect((await post(s.tokenUrl, grant(await build().setSubject('me').sign(privateKey)))).status).toBe(200);
    const other = await generateKeyPair('RS256');
    const bad = [
      await build().sign(privateKey), // no sub
      await build().setSubject('me').sign(other.privateKey),
      await new SignJWT({}).setProtectedHeader({ alg: 'RS256' }).setIssuer('stranger').setSubject('me').setAudience(s.tokenUrl).setExpirationTime('1m').sign(privateKey),
      'garbage',
    ];
    for (const a of bad) expect(await post(s.tokenUrl, grant(a))).toMatchObject({ status: 400, body: { error: 'invalid_grant' } });
    expect(await post(s.tokenUrl, { grant_type: JWT_BEARER_GRANT })).toMatchObject({ status: 400, body: { error: 'invalid_request' } });
    expect(s.invalidGrantCount).toBe(4);
  });
});

describe('behaviours', () => {
  const auth = basic('demo-client', 'demo-secret');

  it('status: arbitrary status, body, headers and content type', async () => {
    const s = await serve();
    s.setBehaviour({ kind: 'status', status: 503, body: { error: 'temporarily_unavailable' }, headers: { 'retry-after': '2' } });
    const r = await post(s.tokenUrl, cc, auth);
    expect(r).toMatchObject({ status: 503, body: { error: 'temporarily_unavailable' } });
    expect(r.headers.get('retry-after')).toBe('2');
    s.setBehaviour({ kind: 'status', status: 502, body: 'bad gateway', contentType: 'text/plain' });
    const t = await post(s.tokenUrl, cc, auth);
    expect(t).toMatchObject({ status: 502, body: 'bad gateway' });
    expect(t.headers.get('content-type')).toBe('text/plain');
    s.setBehaviour({ kind: 'status', status: 500 });
    expect(await post(s.tokenUrl, cc, auth)).toMatchObject({ status: 500, body: '' });
    expect(s.requests.map((r) => [r.outcome, r.status])).toEqual([['status', 503], ['status', 502], ['status', 500]]);
    expect(s.issuedAccessTokens).toEqual([]);
  });

  it('hang never answers; reset destroys the socket', async () => {
    const s = await serve();
    s.setBehaviour({ kind: 'hang' });
    await expect(fetch(s.tokenUrl, { method: 'POST', body: new URLSearchParams(cc), headers: auth, signal: AbortSignal.timeout(300) })).rejects.toThrow();
    expect(s.requests[0]).toMatchObject({ outcome: 'hang', status: null });
    s.setBehaviour({ kind: 'reset' });
    await expect(post(s.tokenUrl, cc, auth)).rejects.toThrow(/fetch failed/);
    expect(s.requests[1]).toMatchObject({ outcome: 'reset', status: null });
  });

  it('html, rate_limited, oauth_error, no_access_token and redirect', async () => {
    const s = await serve();
    s.setBehaviour({ kind: 'html' });
    const html = await post(s.tokenUrl, cc, auth);
    expect(html.status).toBe(200);
    expect(html.headers.get('content-type')).toMatch(/^text\/html/);
    expect(html.body).toMatch(/<html>/);

    s.setBehaviour({ kind: 'rate_limited', retryAfter: '7' });
    const rl = await post(s.tokenUrl, cc, auth);
    expect(rl.status).toBe(429);
    expect(rl.headers.get('retry-after')).toBe('7');

    s.setBehaviour({ kind: 'oauth_error', error: 'invalid_scope', description: 'nope' });
    expect(await post(s.tokenUrl, cc, auth)).toMatchObject({ status: 400, body: { error: 'invalid_scope', error_description: 'nope' } });
    s.setBehaviour({ kind: 'oauth_error', error: 'invalid_client', status: 401 });
    expect(await post(s.tokenUrl, cc, auth)).toMatchObject({ status: 401, body: { error: 'invalid_client' } });

    s.setBehaviour({ kind: 'no_access_token' });
    const na = await post(s.tokenUrl, cc, auth);
    expect(na.status).toBe(200);
    expect(na.body).toEqual({ token_type: 'Bearer', expires_in: 300 });

    s.setBehaviour({ kind: 'redirect', location: 'https://login.example/' });
    const rd = await post(s.tokenUrl, cc, auth);
    expect(rd.status).toBe(302);
    expect(rd.headers.get('location')).toBe('https://login.example/');
    s.setBehaviour({ kind: 'redirect', location: '/x', status: 307 });
    expect((await post(s.tokenUrl, cc, auth)).status).toBe(307);

    expect(s.requests.map((r) => r.outcome)).toEqual(['html', 'rate_limited', 'oauth_error', 'oauth_error', 'no_access_token', 'redirect', 'redirect']);
  });

  it('delay answers normally after the delay', async () => {
    const s = await serve();
    s.setBehaviour({ kind: 'delay', ms: 150 });
    const t0 = performance.now();
    const pending = post(s.tokenUrl, cc, auth);
    await s.waitForRequests(1);
    expect(s.requests[0]?.outcome).toBe('delay');
    const r = await pending;
    expect(performance.now() - t0).toBeGreaterThanOrEqual(140);
    expect(r.status).toBe(200);
    expect(s.requests[0]).toMatchObject({ outcome: 'issued', status: 200 });
  });

  it('a sequence is consumed one per request, then falls back (default ok)', async () => {
    const s = await serve();
    s.setBehaviourSequence([{ kind: 'status', status: 500 }, { kind: 'rate_limited', retryAfter: '1' }]);
    const statuses = [];
    for (let i = 0; i < 4; i++) statuses.push((await post(s.tokenUrl, cc, auth)).status);
    expect(statuses).toEqual([500, 429, 200, 200]);
    s.setBehaviourSequence([{ kind: 'ok' }], { kind: 'status', status: 503 });
    expect((await post(s.tokenUrl, cc, auth)).status).toBe(200);
    expect((await post(s.tokenUrl, cc, auth)).status).toBe(503);
    s.setBehaviour({ kind: 'ok' });
    expect((await post(s.tokenUrl, cc, auth)).status).toBe(200);
  });

  it('applies to the token endpoint only', async () => {
    const s = await serve();
    s.setBehaviour({ kind: 'status', status: 500 });
    expect((await fetch(`${s.url}/control/stats`)).status).toBe(200);
    expect((await fetch(`${s.url}/healthz`)).status).toBe(200);
  });

  it('parseBehaviour rejects malformed behaviours', () => {
    const bad: unknown[] = [null, [], {}, { kind: 'nope' }, { kind: 'status' }, { kind: 'status', status: 99 }, { kind: 'delay', ms: -1 },
      { kind: 'rate_limited' }, { kind: 'oauth_error' }, { kind: 'redirect' }, { kind: 'redirect', location: '/', status: 200 },
      { kind: 'status', status: 500, headers: { a: 1 } }];
    for (const b of bad) expect(() => parseBehaviour(b), JSON.stringify(b)).toThrow();
    expect(parseBehaviour({ kind: 'status', status: 500, extra: 1 })).toEqual({ kind: 'status', status: 500 });
    expect(() => new DemoTokenServer().setBehaviour({ kind: 'delay' } as unknown as Behaviour)).toThrow();
  });
});

describe('control plane', () => {
  it('sets behaviour from curl-style bodies (form content type), a sequence from an array', async () => {
    const s = await serve();
    const ctl = (body: string): Promise<Response> =>
      fetch(`${s.url}/control/behaviour`, { method: 'POST', body, headers: { 'content-type': 'application/x-www-form-urlencoded' } });
    const r = await ctl('{"kind":"status","status":500}');
    expect(r.status).toBe(200);
    expect(s.currentBehaviour).toEqual({ kind: 'status', status: 500 });
    expect((await ctl('[{"kind":"hang"},{"kind":"reset"}]')).status).toBe(200);
    expect(s.currentBehaviour.kind).toBe('hang');
    expect(s.stats()).toMatchObject({ pendingSequence: 2 });
    expect(await (await ctl('{not json')).json()).toMatchObject({ error: 'invalid_request' });
    expect((await ctl('{"kind":"teapot"}')).status).toBe(400);
    expect((await ctl('[{"kind":"teapot"}]')).status).toBe(400);
    expect(s.currentBehaviour.kind).toBe('hang'); // a refused body changes nothing
  });

  it('stats counts without token values; reset clears counters and restores ok', async () => {
    const s = await serve({ refreshTokens: ['rt'] });
    const r = await post(s.tokenUrl, { grant_type: 'refresh_token', refresh_token: 'rt' });
    await post(s.tokenUrl, { grant_type: 'refresh_token', refresh_token: 'rt' });
    s.setBehaviour({ kind: 'status', status: 500 });
    const text = await (await fetch(`${s.url}/control/stats`)).text();
    expect(text).not.toContain(r.body.access_token);
    expect(text).not.toContain(r.body.refresh_token);
    expect(JSON.parse(text)).toMatchObject({
      tokenRequests: 2,
      outcomes: { issued: 1, error: 1 },
      issuedAccessTokens: 1,
      issuedRefreshTokens: 1,
      invalidGrant: 1,
      reuseDetected: 1,
      behaviour: 'status',
    });
    expect((await fetch(`${s.url}/control/reset`, { method: 'POST' })).status).toBe(200);
    expect(s.stats()).toMatchObject({ tokenRequests: 0, invalidGrant: 0, behaviour: 'ok' });
    expect(s.issuedAccessTokens).toEqual([]);
    // Security state survives reset: the revoked family stays revoked.
    expect(s.refreshTokenState(r.body.refresh_token)).toBe('revoked');
  });

  it('answers 404 for unknown paths and 413 for bodies over 64 KiB', async () => {
    const s = await serve();
    expect((await fetch(`${s.url}/nope`)).status).toBe(404);
    expect((await fetch(`${s.url}/control/nope`, { method: 'POST' })).status).toBe(404);
    const big = 'x'.repeat(65 * 1024);
    expect((await fetch(`${s.url}/control/behaviour`, { method: 'POST', body: big })).status).toBe(413);
    const t = await fetch(s.tokenUrl, { method: 'POST', body: `grant_type=client_credentials&pad=${big}`, headers: { 'content-type': 'application/x-www-form-urlencoded' } });
    expect(t.status).toBe(413);
    // Chunked (no content-length) is capped too.
    const stream = new ReadableStream<Uint8Array>({
      start(c) {
        for (let i = 0; i < 20; i++) c.enqueue(new Uint8Array(8 * 1024).fill(120));
        c.close();
      },
    });
    const chunked = await fetch(s.tokenUrl, { method: 'POST', body: stream, duplex: 'half', headers: { 'content-type': 'application/x-www-form-urlencoded' } } as RequestInit);
    expect(chunked.status).toBe(413);
    expect(s.requests.map((r) => r.status)).toEqual([413, 413]);
    // Still serving.
    expect((await post(s.tokenUrl, cc, basic('demo-client', 'demo-secret'))).status).toBe(200);
  });
});

describe('lifecycle and helpers', () => {
  it('waitForRequests resolves on arrival and rejects on timeout', async () => {
    const s = await serve();
    s.setBehaviour({ kind: 'hang' });
    void fetch(s.tokenUrl, { method: 'POST', body: new URLSearchParams(cc) }).catch(() => undefined);
    const reqs = await s.waitForRequests(1, 2000);
    expect(reqs[0]?.outcome).toBe('hang');
    await expect(s.waitForRequests(2, 50)).rejects.toThrow(/waited 50 ms for 2 token requests, saw 1/);
  });

  it('stop() returns promptly with hung and delayed requests pending', async () => {
    const s = await serve();
    s.setBehaviourSequence([{ kind: 'hang' }, { kind: 'delay', ms: 60_000 }]);
    // Settle into values at once, so no rejection is ever unhandled.
    const outcome = (p: Promise<Response>): Promise<string> => p.then((r) => `answered ${r.status}`, () => 'failed');
    const hung = outcome(fetch(s.tokenUrl, { method: 'POST', body: new URLSearchParams(cc) }));
    const delayed = outcome(fetch(s.tokenUrl, { method: 'POST', body: new URLSearchParams(cc) }));
    await s.waitForRequests(2);
    const t0 = performance.now();
    await s.stop();
    expect(performance.now() - t0).toBeLessThan(1000);
    expect(await hung).toBe('failed');
    expect(await delayed).toBe('failed');
    await s.stop(); // idempotent
  });

  it('start() after stop() comes back on the same URL (IdP outage tests)', async () => {
    const s = await serve();
    const url = s.url;
    await s.stop();
    await expect(fetch(s.tokenUrl, { method: 'POST' })).rejects.toThrow();
    expect(await s.start()).toBe(url);
    expect((await post(s.tokenUrl, cc, basic('demo-client', 'demo-secret'))).status).toBe(200);
  });

  it('reports the URL only once started', async () => {
    const s = new DemoTokenServer();
    expect(() => s.url).toThrow(/not started/);
    servers.push(s);
    const url = await s.start();
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(s.tokenUrl).toBe(`${url}/oauth2/token`);
  });
});

describe('token-server-main', () => {
  it('configures from env and prints one JSON line where it listens', async () => {
    const lines: string[] = [];
    const s = await startTokenServer({ PORT: '0', HOST: '127.0.0.1', CLIENT_ID: 'cid', CLIENT_SECRET: 'S3cr3t-value', TOKEN_TTL: '42' }, (l) => lines.push(l));
    servers.push(s);
    expect(lines).toHaveLength(1);
    const first = JSON.parse(lines[0]!);
    expect(first).toMatchObject({ msg: expect.stringMatching(/DEMO.*not for production/), url: s.url, tokenUrl: s.tokenUrl });
    const r = await post(s.tokenUrl, cc, basic('cid', 'S3cr3t-value'));
    expect(r.body.expires_in).toBe(42);
    expect(lines).toHaveLength(2);
    expect(lines[1]).not.toContain('S3cr3t-value');
    expect(lines[1]).not.toContain(r.body.access_token);
  });

  it('refuses bad env values', async () => {
    expect(envInt({}, 'PORT', 8080, 0, 65535)).toBe(8080);
    expect(() => envInt({ PORT: 'eighty' }, 'PORT', 8080, 0, 65535)).toThrow(/PORT must be an integer/);
    expect(() => envInt({ PORT: '70000' }, 'PORT', 8080, 0, 65535)).toThrow();
    await expect(startTokenServer({ PORT: '0', TOKEN_FORMAT: 'xml' }, () => undefined)).rejects.toThrow(/TOKEN_FORMAT/);
  });
});
