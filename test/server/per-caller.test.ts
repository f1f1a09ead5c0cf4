// Per-caller credentials (RFC 8693 on behalf of the caller), end to end: a real tokengate on
// port 0, Envoy-shaped Checks over gRPC, and a loopback OAuth server that implements token
// exchange and refuses some subjects.
import { SignJWT, UnsecuredJWT, decodeJwt } from 'jose';
import { generateKeyPairSync } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import { deniedBody, deniedHeader, envoyRequest, injected, metadata, type CheckResponse } from '../support/envoy-request.js';
import { startTestApp, type TestApp } from '../support/app.js';
import { ExchangeIdp } from '../support/exchange-idp.js';

const AUD = 'https://orders.example';

function yaml(idp: ExchangeIdp, opts: { verify?: boolean; cache?: string; refresh?: string; resilience?: string; extra?: string; style?: string; actor?: boolean } = {}): string {
  return `
providers:
  orders:
    source:
      type: token_exchange
      tokenUrl: ${idp.tokenUrl}
      clientId: gateway
      clientSecret: gateway-secret
      ${opts.style === 'entra_obo' ? 'style: entra_obo\n      scope: api://orders/.default' : `audience: ${AUD}\n      scope: orders.read`}
      subjectToken:
        request: { header: authorization, scheme: Bearer }
${opts.verify ? `        verify: { issuer: ${idp.issuer}, audience: gateway, jwksUri: ${idp.jwksUri}, algorithms: [ES256] }\n` : ''}${opts.actor ? '      actorToken: { provider: gateway-identity }\n' : ''}    cache: { ${opts.cache ?? 'maxEntries: 100, negativeTtl: 30s'} }
    refresh: { ${opts.refresh ?? 'waitBudget: 3s'} }
    resilience: { ${opts.resilience ?? 'retries: 0, timeout: 2s'} }
${opts.extra ?? ''}`;
}

function check(t: TestApp, token: string | undefined, headers: Record<string, string> = {}): Promise<CheckResponse> {
  return t.client.check(envoyRequest({ contextExtensions: { provider: 'orders' }, headers: { ...(token !== undefined ? { authorization: `Bearer ${token}` } : {}), ...headers } }));
}

const STATUS: Record<string, number> = { Unauthorized: 401, Forbidden: 403, ServiceUnavailable: 503, InternalServerError: 500 };
function httpStatus(res: CheckResponse): number | undefined {
  const c = res.denied_response?.status?.code;
  return typeof c === 'string' ? STATUS[c] : c;
}

function issuedTo(idp: ExchangeIdp, res: CheckResponse): string | undefined {
  const v = injected(res)?.header?.value;
  if (!v?.startsWith('Bearer ')) return undefined;
  return idp.issued.get(v.slice(7))?.sub;
}

describe('per-caller token exchange', () => {
  let idp: ExchangeIdp;
  let t: TestApp | undefined;
  beforeAll(async () => { idp = await new ExchangeIdp().start(); });
  afterAll(async () => idp?.stop());
  afterEach(async () => {
    await t?.close();
    t = undefined;
    idp.reset();
  });

  it('exchanges the caller token, overwrites the caller header, adds subject only when verified', async () => {
    t = await startTestApp(yaml(idp, { verify: true }));
    const alice = await idp.subjectToken({ sub: 'alice' });
    const res = await check(t, alice);
    expect(res.status?.code).toBe(0);
    const h = injected(res)!;
    expect(h.append?.value).toBe(false);
    expect(h.append_action).toBe('OVERWRITE_IF_EXISTS_OR_ADD');
    expect(h.header?.value).not.toContain(alice);
    expect(issuedTo(idp, res)).toBe('alice');
    expect(metadata(res)).toMatchObject({ provider: 'orders', subject: 'alice', source: 'refreshed' });
    expect(idp.exchanges[0]!.form).toMatchObject({ grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange', subject_token: alice, audience: AUD, scope: 'orders.read' });
    const again = await check(t, alice);
    expect(metadata(again)).toMatchObject({ source: 'cache', subject: 'alice' });
    expect(idp.exchangeCount).toBe(1);
    const lines = t.logs.filter((l) => l.includes('"token.exchanged"'));
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0]!)).toMatchObject({ audit: 1, event: 'token.exchanged', provider: 'orders', subject: 'alice', audience: AUD, actor: null, token_id: metadata(res).token_id });
    expect(t.logs.some((l) => l.includes('"token exchanged"'))).toBe(false);
    for (const l of t.logs) expect(l).not.toContain(alice);
  });

  it('without verify, unverified claims are never presented as the subject', async () => {
    t = await startTestApp(yaml(idp));
    const res = await check(t, await idp.subjectToken({ sub: 'alice' }));
    expect(issuedTo(idp, res)).toBe('alice');
    expect(metadata(res).subject).toBeUndefined();
  });

  it('500 concurrent Checks of one caller cost exactly one exchange', async () => {
    // A generous wait budget: on a loaded machine 500 Checks take a while to arrive; every one must wait, none time out.
    t = await startTestApp(yaml(idp, { refresh: 'waitBudget: 20s' }));
    idp.delayMs = 100;
    const alice = await idp.subjectToken({ sub: 'alice' });
    const all = await Promise.all(Array.from({ length: 500 }, () => check(t!, alice)));
    expect(idp.received).toHaveLength(1);
    expect(idp.exchangeCount).toBe(1);
    const values = new Set(all.map((r) => injected(r)?.header?.value));
    expect([...values].map((v) => v?.slice(0, 12)), JSON.stringify(all.find((r) => !injected(r)))).toHaveLength(1);
    expect(issuedTo(idp, all[0]!)).toBe('alice');
  });

  it('two callers never receive each other\'s token, including a prefix or a forgery of the other\'s claims', async () => {
    t = await startTestApp(yaml(idp));
    const alice = await idp.subjectToken({ sub: 'alice' });
    const bob = await idp.subjectToken({ sub: 'bob' });
    const [a, b] = await Promise.all([check(t, alice), check(t, bob)]);
    expect(issuedTo(idp, a)).toBe('alice');
    expect(issuedTo(idp, b)).toBe('bob');
    // A prefix of alice's token, and a token carrying alice's claims under another key.
    const prefix = alice.slice(0, -4);
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const forged = await new SignJWT({ ...decodeJwt(alice) }).setProtectedHeader({ alg: 'ES256', kid: 'k1' }).sign(privateKey);
    for (const fake of [prefix, forged]) {
      const res = await check(t, fake);
      expect(res.status?.code).not.toBe(0);
      expect(injected(res)).toBeUndefined();
      expect(deniedBody(res)).toMatchObject({ error: 'exchange_rejected', provider: 'orders', idp_error: 'invalid_grant' });
      expect(httpStatus(res)).toBe(403);
    }
    // And the real ones are still served their own, from cache.
    expect(issuedTo(idp, await check(t, alice))).toBe('alice');
    expect(issuedTo(idp, await check(t, bob))).toBe('bob');
  });

  it('a forgery of another caller\'s claims with verify: 401 and no IdP call', async () => {
    t = await startTestApp(yaml(idp, { verify: true }));
    const alice = await idp.subjectToken({ sub: 'alice' });
    await check(t, alice);
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const forged = await new SignJWT({ ...decodeJwt(alice) }).setProtectedHeader({ alg: 'ES256', kid: 'k1' }).sign(privateKey);
    const res = await check(t, forged);
    expect(httpStatus(res)).toBe(401);
    expect(idp.exchangeCount).toBe(1);
  });

  it('verify failures answer 401 with www-authenticate and never reach the IdP', async () => {
    t = await startTestApp(yaml(idp, { verify: true }));
    const now = Math.floor(Date.now() / 1000);
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const cases: [string, string | undefined][] = [
      ['missing', undefined],
      ['not bearer', 'x'],
      ['wrong audience', await idp.subjectToken({ sub: 'a', aud: 'someone-else' })],
      ['expired', await idp.subjectToken({ sub: 'a', expSeconds: now - 60 })],
      ['not yet valid', await idp.subjectToken({ sub: 'a', nbfSeconds: now + 600 })],
      ['alg none', new UnsecuredJWT({ sub: 'a', aud: 'gateway', iss: idp.issuer }).setExpirationTime(now + 600).encode()],
      ['bad signature', await idp.subjectToken({ sub: 'a' }, privateKey)],
      ['garbage', 'eyJhbGciOiJFUzI1NiJ9.garbage.garbage'],
      ['opaque', 'opaque-token-123'],
    ];
    for (const [name, token] of cases) {
      const res = await check(t, name === 'not bearer' ? undefined : token, name === 'not bearer' ? { authorization: 'Basic dXNlcjpwYXNz' } : {});
      expect(httpStatus(res), name).toBe(401);
      expect(deniedBody(res), name).toEqual({ error: 'invalid_subject_token', provider: 'orders' });
      expect(deniedHeader(res, 'www-authenticate'), name).toBe('Bearer error="invalid_token"');
    }
    expect(idp.exchangeCount).toBe(0);
  });

  it('verify finds the JWKS through the issuer\'s discovery document when no jwksUri is given', async () => {
    t = await startTestApp(yaml(idp).replace('subjectToken:\n', `subjectToken:\n        verify: { issuer: ${idp.issuer}, audience: gateway }\n`));
    const good = await check(t, await idp.subjectToken({ sub: 'dora' }));
    expect(metadata(good).subject).toBe('dora');
    const wrongAud = await check(t, await idp.subjectToken({ sub: 'dora2', aud: 'elsewhere' }));
    expect(httpStatus(wrongAud)).toBe(401);
    expect(idp.exchangeCount).toBe(1);
  });

  it('JWKS unreachable: 503 (not the caller\'s fault), and still no IdP exchange', async () => {
    t = await startTestApp(yaml(idp).replace('subjectToken:\n', `subjectToken:\n        verify: { issuer: ${idp.issuer}, jwksUri: "http://127.0.0.1:9/jwks" }\n`));
    const res = await check(t, await idp.subjectToken({ sub: 'erin' }));
    expect(httpStatus(res)).toBe(503);
    expect(idp.exchangeCount).toBe(0);
  });

  it('a garbage flood with verify on: every subject a deliberate 401 even when verdicts take longer than the wait budget; 0 IdP requests', async () => {
    // The key fetch outlasts the wait budget: a Check waits for its subject's verdict, not the budget.
    t = await startTestApp(yaml(idp, { verify: true, refresh: 'waitBudget: 100ms' }));
    idp.jwksDelayMs = 700;
    const now = Math.floor(Date.now() / 1000);
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const kinds: ((i: number) => Promise<string> | string)[] = [
      (i) => `opaque-garbage-${i}-${'x'.repeat(30)}`,
      (i) => idp.subjectToken({ sub: `forged-${i}` }, privateKey),
      (i) => new UnsecuredJWT({ sub: `n${i}`, aud: 'gateway', iss: idp.issuer }).setExpirationTime(now + 600).encode(),
      (i) => `eyJhbGciOiJFUzI1NiIsImtpZCI6ImsxIn0.${Buffer.from(`junk-${i}`).toString('base64url')}.c2ln`,
    ];
    const garbage = await Promise.all(Array.from({ length: 200 }, (_, i) => kinds[i % kinds.length]!(i)));
    const answers = await Promise.all(garbage.map((g) => check(t!, g)));
    const byStatus: Record<string, number> = {};
    for (const a of answers) byStatus[String(httpStatus(a) ?? 'ok')] = (byStatus[String(httpStatus(a) ?? 'ok')] ?? 0) + 1;
    expect(byStatus).toEqual({ 401: 200 });
    expect(idp.received).toHaveLength(0);
    expect(idp.jwksRequests).toBe(1);
    // Real callers are still served.
    expect(issuedTo(idp, await check(t, await idp.subjectToken({ sub: 'alice' })))).toBe('alice');
  });

  it('with the JWKS unreachable, what no key could fix is still 401 (alg none, another issuer or audience, not a JWT, no exp)', async () => {
    t = await startTestApp(yaml(idp).replace('subjectToken:\n', `subjectToken:\n        verify: { issuer: ${idp.issuer}, audience: [gateway], jwksUri: "http://127.0.0.1:9/jwks", algorithms: [ES256] }\n`));
    const now = Math.floor(Date.now() / 1000);
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const cases: [string, string][] = [
      ['alg none', new UnsecuredJWT({ sub: 'a', aud: 'gateway', iss: idp.issuer }).setExpirationTime(now + 600).encode()],
      ['alg not allowed', await new SignJWT({ sub: 'a', aud: 'gateway', iss: idp.issuer, exp: now + 600 }).setProtectedHeader({ alg: 'HS256' }).sign(new TextEncoder().encode('k'.repeat(32)))],
      ['another issuer', await new SignJWT({ sub: 'a', aud: 'gateway', iss: 'https://evil.example', exp: now + 600 }).setProtectedHeader({ alg: 'ES256', kid: 'k1' }).sign(privateKey)],
      ['another audience', await idp.subjectToken({ sub: 'a', aud: 'someone-else' })],
      ['no exp', await new SignJWT({ sub: 'a', aud: 'gateway', iss: idp.issuer }).setProtectedHeader({ alg: 'ES256', kid: 'k1' }).sign(privateKey)],
      ['not a JWT', 'opaque-token-123'],
    ];
    for (const [name, token] of cases) expect(httpStatus(await check(t, token)), name).toBe(401);
    // A candidate only a key can judge: 503, the keys are not the caller's fault.
    expect(httpStatus(await check(t, await idp.subjectToken({ sub: 'b' })))).toBe(503);
    expect(idp.received).toHaveLength(0);
  });

  it('an expired JWT is refused locally even without verify', async () => {
    t = await startTestApp(yaml(idp));
    const res = await check(t, await idp.subjectToken({ sub: 'a', expSeconds: Math.floor(Date.now() / 1000) - 5 }));
    expect(httpStatus(res)).toBe(401);
    expect(idp.exchangeCount).toBe(0);
  });

  it('the entry never outlives the subject\'s exp; afterwards the caller is refused locally', async () => {
    const clock = new ManualClock(Date.now());
    t = await startTestApp(yaml(idp), { clock });
    const exp = Math.floor(clock.now() / 1000) + 120;
    const alice = await idp.subjectToken({ sub: 'alice', expSeconds: exp });
    const res = await check(t, alice);
    expect(issuedTo(idp, res)).toBe('alice');
    const entry = t.app.manager.perCaller('orders')!;
    expect(entry.status().entries).toBe(1);
    clock.advance(119_000);
    expect(metadata(await check(t, alice)).source).toBe('cache');
    clock.advance(2_000);
    const late = await check(t, alice);
    expect(httpStatus(late)).toBe(401);
    expect(idp.exchangeCount).toBe(1);
  });

  it('negative cache: a refused subject is answered 403 from memory until negativeTtl passes', async () => {
    const clock = new ManualClock(Date.now());
    t = await startTestApp(yaml(idp, { cache: 'maxEntries: 100, negativeTtl: 30s' }), { clock });
    idp.refuse.add('mallory');
    const mallory = await idp.subjectToken({ sub: 'mallory' });
    for (let i = 0; i < 5; i++) {
      const res = await check(t, mallory);
      expect(httpStatus(res)).toBe(403);
      expect(deniedBody(res)).toEqual({ error: 'exchange_rejected', provider: 'orders', idp_error: 'invalid_grant' });
    }
    expect(idp.exchangeCount).toBe(1);
    expect(t.app.manager.perCaller('orders')!.breakerState).toBe('closed');
    clock.advance(31_000);
    await check(t, mallory);
    expect(idp.exchangeCount).toBe(2);
    expect(t.logs.some((l) => l.includes('"token exchange refused"') && l.includes('invalid_grant'))).toBe(true);
  });

  it('IdP down: 503 token_unavailable for a new caller; a cached caller is served until hard expiry, then 503', async () => {
    const clock = new ManualClock(Date.now());
    t = await startTestApp(yaml(idp, { refresh: 'waitBudget: 3s, before: 10m' }), { clock });
    idp.expiresIn = 1200;
    const alice = await idp.subjectToken({ sub: 'alice', expSeconds: Math.floor(clock.now() / 1000) + 7200 });
    const first = await check(t, alice);
    expect(issuedTo(idp, first)).toBe('alice');
    idp.failWith = 503;
    const bob = await check(t, await idp.subjectToken({ sub: 'bob' }));
    expect(httpStatus(bob)).toBe(503);
    expect(deniedBody(bob)).toMatchObject({ error: 'token_unavailable', provider: 'orders' });
    expect(deniedHeader(bob, 'retry-after')).toBeDefined();
    // Inside the refresh window: a refresh ahead fails, the current token still serves.
    clock.advance(11 * 60_000);
    const during = await check(t, alice);
    expect(injected(during)?.header?.value).toBe(injected(first)?.header?.value);
    await new Promise((r) => setTimeout(r, 100));
    const stale = await check(t, alice);
    expect(injected(stale)?.header?.value).toBe(injected(first)?.header?.value);
    expect(metadata(stale).source).toBe('stale');
    clock.advance(20 * 60_000);
    const gone = await check(t, alice);
    expect(httpStatus(gone)).toBe(503);
  });

  it('entra_obo: the jwt-bearer on-behalf-of grant through the same cache and answers', async () => {
    t = await startTestApp(yaml(idp, { style: 'entra_obo' }));
    const alice = await idp.subjectToken({ sub: 'alice' });
    const res = await check(t, alice);
    expect(issuedTo(idp, res)).toBe('alice');
    expect(idp.exchanges[0]!.form).toMatchObject({ grant_type: 'urn:ietf:params:oauth:grant-type:jwt-bearer', assertion: alice, requested_token_use: 'on_behalf_of', scope: 'api://orders/.default' });
    await check(t, alice);
    expect(idp.exchangeCount).toBe(1);
  });

  it('delegation: the actor token comes from another provider', async () => {
    const actor = await idp.subjectToken({ sub: 'gateway-svc' });
    t = await startTestApp(yaml(idp, { actor: true, extra: `  gateway-identity:\n    source: { type: static, token: "${actor}" }\n` }));
    const res = await check(t, await idp.subjectToken({ sub: 'alice' }));
    expect(res.status?.code).toBe(0);
    const info = idp.issued.get(injected(res)!.header!.value!.slice(7))!;
    expect(info).toMatchObject({ sub: 'alice', act: 'gateway-svc' });
    expect(idp.exchanges[0]!.form).toMatchObject({ actor_token: actor, actor_token_type: 'urn:ietf:params:oauth:token-type:access_token' });
  });

  describe('abuse', () => {
    it('a 1 MB authorization header, a token with CR/LF, and duplicate headers are 401 without an IdP call', async () => {
      t = await startTestApp(yaml(idp));
      const big = await check(t, 'A'.repeat(1024 * 1024));
      expect(httpStatus(big)).toBe(401);
      const crlf = await check(t, 'abc\r\nx-injected: 1');
      expect(httpStatus(crlf)).toBe(401);
      const joined = await check(t, undefined, { authorization: 'Bearer abc,Bearer def' });
      expect(httpStatus(joined)).toBe(401);
      expect(idp.exchangeCount).toBe(0);
      // Other callers keep being served.
      expect(issuedTo(idp, await check(t, await idp.subjectToken({ sub: 'alice' })))).toBe('alice');
    });

    it('an exchange that times out while 500 Checks of that caller wait: one exchange, every Check answered 503', async () => {
      t = await startTestApp(yaml(idp, { refresh: 'waitBudget: 200ms', resilience: 'retries: 0, timeout: 20s' }));
      idp.delayMs = 60_000;
      const slow = await idp.subjectToken({ sub: 'slowpoke' });
      const all = await Promise.all(Array.from({ length: 500 }, () => check(t!, slow)));
      for (const r of all) expect(httpStatus(r)).toBe(503);
      expect(idp.received.filter((s) => s === slow)).toHaveLength(1);
      // Another caller is not held up by it.
      idp.delayMs = 0;
      expect(issuedTo(idp, await check(t, await idp.subjectToken({ sub: 'alice' })))).toBe('alice');
    });
  });
});
