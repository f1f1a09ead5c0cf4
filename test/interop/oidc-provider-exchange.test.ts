// A second opinion beside our own fake IdPs: per-caller token exchange against oidc-provider 8
// (OpenID-certified, from npm) on loopback, driven through real tokengate over gRPC Check. The
// token-exchange grant is the example's own (examples/oidc-provider/token-exchange-grant.mjs);
// what is oidc-provider's is client authentication, discovery, JWKS, JWT access tokens and its
// error answers. The README's worked example (examples/oidc-provider/) runs here too.
import { spawn } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { SignJWT, createRemoteJWKSet, decodeJwt, decodeProtectedHeader, jwtVerify, type JWTPayload } from 'jose';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { ConfigError } from '../../src/config/errors.js';
import { ManualClock } from '../../src/clock.js';
import { parseConfig } from '../../src/config/load.js';
import { judge } from '../support/config-schema.js';
import { repoPath } from '../support/demo-files.js';
import { deniedBody, deniedHeader, envoyRequest, injected, metadata, type CheckResponse } from '../support/envoy-request.js';
import { startTestApp, type TestApp } from '../support/app.js';
import { clientAuthYaml, clientIdOf, startOidcProviderIdp, TOKEN_EXCHANGE_GRANT, type ClientAuth, type OidcProviderIdp } from '../support/oidc-provider-idp.js';

const ORDERS = 'https://orders.example';

interface YamlOpts {
  readonly auth?: ClientAuth;
  /** Where the token endpoint comes from: the URL itself, or the issuer's discovery document. */
  readonly endpoint?: 'tokenUrl' | 'issuer';
  /** subjectToken.verify: against the issuer's discovery document and JWKS. */
  readonly verify?: boolean;
  readonly audience?: string;
}

function yaml(idp: OidcProviderIdp, o: YamlOpts = {}): string {
  const auth = o.auth ?? 'client_secret_basic';
  const endpoint = o.endpoint === 'issuer' ? `issuer: "${idp.issuer}"` : `tokenUrl: "${idp.tokenEndpoint}"`;
  const verify = o.verify ? `\n        verify: { issuer: "${idp.issuer}", audience: ${clientIdOf(auth)}, algorithms: [RS256] }` : '';
  return `
listen: { grpc: 127.0.0.1:0, admin: "off" }
providers:
  orders:
    source:
      type: token_exchange
      ${endpoint}
      ${clientAuthYaml(idp, auth)}
      subjectToken:
        request: { header: authorization, scheme: Bearer }${verify}
      audience: ${o.audience ?? ORDERS}
      scope: orders.read
    cache: { maxEntries: 100, negativeTtl: 30s }
    refresh: { waitBudget: 5s }
    resilience: { retries: 0, timeout: 3s }
`;
}

function check(t: TestApp, token: string): Promise<CheckResponse> {
  return t.client.check(envoyRequest({ contextExtensions: { provider: 'orders' }, headers: { authorization: `Bearer ${token}` } }));
}

const STATUS: Record<string, number> = { Unauthorized: 401, Forbidden: 403, ServiceUnavailable: 503 };
function httpStatus(res: CheckResponse): number | undefined {
  const c = res.denied_response?.status?.code;
  return typeof c === 'string' ? STATUS[c] : c;
}

function bearer(res: CheckResponse): string {
  const v = injected(res)?.header?.value;
  if (!v?.startsWith('Bearer ')) throw new Error(`no Bearer token injected: ${JSON.stringify(res)}`);
  return v.slice('Bearer '.length);
}

describe('per-caller exchange against oidc-provider', () => {
  let idp: OidcProviderIdp;
  let t: TestApp | undefined;
  let upstreamKeys: ReturnType<typeof createRemoteJWKSet>;
  /** What the upstream would do: verify the injected token with oidc-provider's published JWKS. */
  const upstreamVerify = async (token: string): Promise<JWTPayload> =>
    (await jwtVerify(token, upstreamKeys, { issuer: idp.issuer, audience: ORDERS, typ: 'at+jwt', algorithms: ['RS256'] })).payload;

  beforeAll(async () => {
    idp = await startOidcProviderIdp();
    upstreamKeys = createRemoteJWKSet(new URL(idp.jwksUri));
  });
  afterAll(async () => idp?.close());
  afterEach(async () => {
    await t?.close();
    t = undefined;
    expect(idp.serverErrors).toEqual([]);
    idp.reset();
  });

  it("exchanges a caller's oidc-provider token; the upstream gets one oidc-provider signed for its audience, sub = the caller", async () => {
    t = await startTestApp(yaml(idp, { verify: true }));
    const alice = await idp.callerToken('alice');
    const res = await check(t, alice);
    expect(res.status?.code).toBe(0);
    const exchanged = bearer(res);
    expect(exchanged).not.toBe(alice);
    expect(await upstreamVerify(exchanged)).toMatchObject({ sub: 'alice', aud: ORDERS, client_id: 'gateway', scope: 'orders.read' });
    expect(metadata(res)).toMatchObject({ provider: 'orders', subject: 'alice', source: 'refreshed' });
    // The exchanged token never outlives what oidc-provider said (600 s for the orders resource).
    expect(decodeJwt(exchanged).exp! - decodeJwt(exchanged).iat!).toBe(600);
    const again = await check(t, alice);
    expect(bearer(again)).toBe(exchanged);
    expect(metadata(again)).toMatchObject({ source: 'cache', subject: 'alice' });
    expect(idp.exchanges()).toEqual([{ grantType: TOKEN_EXCHANGE_GRANT, clientId: 'gateway', status: 200 }]);
  });

  it('two callers get distinct tokens, each carrying their own sub', async () => {
    t = await startTestApp(yaml(idp));
    const [a, b] = await Promise.all([check(t, await idp.callerToken('alice')), check(t, await idp.callerToken('bob'))]);
    expect(bearer(a)).not.toBe(bearer(b));
    expect((await upstreamVerify(bearer(a))).sub).toBe('alice');
    expect((await upstreamVerify(bearer(b))).sub).toBe('bob');
    expect(idp.exchanges().map((r) => r.status)).toEqual([200, 200]);
  });

  it('200 concurrent Checks of one caller cost oidc-provider one exchange', async () => {
    t = await startTestApp(yaml(idp, { verify: true }).replace('waitBudget: 5s', 'waitBudget: 20s'));
    const alice = await idp.callerToken('alice');
    const all = await Promise.all(Array.from({ length: 200 }, () => check(t!, alice)));
    expect(new Set(all.map(bearer)).size).toBe(1);
    expect(idp.exchanges()).toHaveLength(1);
  });

  it("verify against the issuer's discovery document and JWKS refuses forged, expired and foreign subjects locally: 0 exchange requests", async () => {
    t = await startTestApp(yaml(idp, { verify: true }));
    const alice = await idp.callerToken('alice');
    // Alice's claims under another key that claims oidc-provider's kid.
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const forged = await new SignJWT({ ...decodeJwt(alice) }).setProtectedHeader({ ...decodeProtectedHeader(alice), alg: 'RS256' }).sign(privateKey);
    const cases: [string, string][] = [
      ['forged', forged],
      ['expired (oidc-provider issued it, its exp has passed)', await idp.callerToken('alice', { expiresIn: -60 })],
      ['another audience (issued to some other client)', await idp.callerToken('alice', { audience: 'someone-else' })],
      ['HS256 under the public key', await new SignJWT({ ...decodeJwt(alice) }).setProtectedHeader({ alg: 'HS256', kid: decodeProtectedHeader(alice).kid! }).sign(new TextEncoder().encode('x'.repeat(32)))],
    ];
    for (const [name, token] of cases) {
      const res = await check(t, token);
      expect(httpStatus(res), name).toBe(401);
      expect(deniedBody(res), name).toEqual({ error: 'invalid_subject_token', provider: 'orders' });
      expect(deniedHeader(res, 'www-authenticate'), name).toBe('Bearer error="invalid_token"');
    }
    expect(idp.requests).toEqual([]);
    // The genuine token still goes through: verify found oidc-provider's keys on its own.
    expect((await upstreamVerify(bearer(await check(t, alice)))).sub).toBe('alice');
    expect(idp.exchanges()).toHaveLength(1);
  });

  it('oidc-provider refusing a subject (invalid_grant): 403 exchange_rejected, remembered for negativeTtl', async () => {
    t = await startTestApp(yaml(idp, { verify: true }));
    // Bob's token is genuine and passes verify, but his account was disabled after he signed in.
    const bob = await idp.callerToken('bob');
    idp.accounts.delete('bob');
    for (let i = 0; i < 3; i++) {
      const res = await check(t, bob);
      expect(httpStatus(res)).toBe(403);
      expect(deniedBody(res)).toEqual({ error: 'exchange_rejected', provider: 'orders', idp_error: 'invalid_grant' });
      expect(injected(res)).toBeUndefined();
    }
    expect(idp.exchanges()).toEqual([{ grantType: TOKEN_EXCHANGE_GRANT, clientId: 'gateway', status: 400, error: 'invalid_grant' }]);
    // A refusal is the subject's, not the gateway's: other callers are served.
    expect((await upstreamVerify(bearer(await check(t, await idp.callerToken('alice'))))).sub).toBe('alice');
  });

  it('a refusal is remembered for negativeTtl only: after it, oidc-provider is asked again (and may now accept)', async () => {
    const clock = new ManualClock(Date.now());
    t = await startTestApp(yaml(idp), { clock });
    const bob = await idp.callerToken('bob');
    idp.accounts.delete('bob');
    expect(httpStatus(await check(t, bob))).toBe(403);
    clock.advance(29_000);
    expect(httpStatus(await check(t, bob))).toBe(403);
    expect(idp.exchanges()).toHaveLength(1);
    idp.accounts.add('bob');
    clock.advance(2_000);
    expect((await upstreamVerify(bearer(await check(t, bob)))).sub).toBe('bob');
    expect(idp.exchanges().map((r) => r.status)).toEqual([400, 200]);
  });

  it("a cached exchange never outlives the caller's own token (oidc-provider's answer lives 600 s, alice's token 120 s)", async () => {
    const clock = new ManualClock(Date.now());
    t = await startTestApp(yaml(idp, { verify: true }), { clock });
    const alice = await idp.callerToken('alice', { expiresIn: 120 });
    const first = bearer(await check(t, alice));
    clock.advance(110_000);
    expect(bearer(await check(t, alice))).toBe(first);
    clock.advance(11_000);
    const late = await check(t, alice);
    expect(httpStatus(late)).toBe(401);
    expect(deniedBody(late)).toEqual({ error: 'invalid_subject_token', provider: 'orders' });
    expect(idp.exchanges()).toHaveLength(1);
  });

  it('without verify, oidc-provider is the judge: a token issued to another client is invalid_grant (403)', async () => {
    t = await startTestApp(yaml(idp));
    const res = await check(t, await idp.callerToken('alice', { audience: 'someone-else' }));
    expect(deniedBody(res)).toEqual({ error: 'exchange_rejected', provider: 'orders', idp_error: 'invalid_grant' });
    expect(idp.exchanges()).toHaveLength(1);
  });

  it('an audience oidc-provider does not know: 403 with its invalid_target', async () => {
    t = await startTestApp(yaml(idp, { audience: 'https://unknown.example' }));
    const res = await check(t, await idp.callerToken('alice'));
    expect(httpStatus(res)).toBe(403);
    expect(deniedBody(res)).toEqual({ error: 'exchange_rejected', provider: 'orders', idp_error: 'invalid_target' });
  });

  it('the target as an RFC 8707 resource instead of an audience: the same token for the orders resource', async () => {
    t = await startTestApp(yaml(idp).replace(`audience: ${ORDERS}`, `resource: [${ORDERS}]`));
    const res = await check(t, await idp.callerToken('alice'));
    expect(await upstreamVerify(bearer(res))).toMatchObject({ sub: 'alice', aud: ORDERS });
  });

  describe('client authentication, as oidc-provider checks it', () => {
    const methods: [ClientAuth, YamlOpts['endpoint']][] = [
      ['client_secret_basic', 'tokenUrl'],
      ['client_secret_post', 'tokenUrl'],
      // RFC 6749 §2.3.1: id and secret are form-encoded inside Basic; oidc-provider decodes them.
      ['awkward_secret_basic', 'tokenUrl'],
      // The assertion's aud is the token endpoint URL here, the issuer (RFC 7523bis) with issuer:.
      ['private_key_jwt', 'tokenUrl'],
      ['private_key_jwt', 'issuer'],
      ['client_secret_basic', 'issuer'],
    ];
    for (const [auth, endpoint] of methods) {
      it(`${auth} with ${endpoint}`, async () => {
        t = await startTestApp(yaml(idp, { auth, endpoint, verify: true }));
        // Two callers: two token requests (for private_key_jwt, two assertions oidc-provider's replay check must accept).
        for (const who of ['alice', 'bob']) {
          const res = await check(t, await idp.callerToken(who, { audience: clientIdOf(auth) }));
          expect(await upstreamVerify(bearer(res)), who).toMatchObject({ sub: who, client_id: clientIdOf(auth) });
        }
        expect(idp.exchanges()).toEqual([
          { grantType: TOKEN_EXCHANGE_GRANT, clientId: clientIdOf(auth), status: 200 },
          { grantType: TOKEN_EXCHANGE_GRANT, clientId: clientIdOf(auth), status: 200 },
        ]);
      });
    }

    it("a wrong client secret is oidc-provider's invalid_client: the gateway's fault (503 token_unavailable), not the caller's (no 403)", async () => {
      t = await startTestApp(yaml(idp).replace('clientSecret: gateway-secret', 'clientSecret: not-the-secret'));
      const res = await check(t, await idp.callerToken('alice'));
      expect(httpStatus(res)).toBe(503);
      expect(deniedBody(res)).toMatchObject({ error: 'token_unavailable', provider: 'orders' });
      expect(idp.exchanges()).toEqual([{ grantType: TOKEN_EXCHANGE_GRANT, clientId: 'gateway', status: 401, error: 'invalid_client' }]);
    });

    it('a private_key_jwt assertion signed with a key oidc-provider does not know is invalid_client (503)', async () => {
      const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
      const stranger = privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
      t = await startTestApp(yaml(idp, { auth: 'private_key_jwt' }).replace(clientAuthYaml(idp, 'private_key_jwt'), clientAuthYaml(idp, 'private_key_jwt', stranger)));
      const res = await check(t, await idp.callerToken('alice', { audience: 'gateway-pkjwt' }));
      expect(httpStatus(res)).toBe(503);
      expect(idp.exchanges()).toEqual([{ grantType: TOKEN_EXCHANGE_GRANT, clientId: 'gateway-pkjwt', status: 401, error: 'invalid_client' }]);
    });
  });

  it('regression: a client secret with a byte-order mark from its file is a config problem, not a 403 exchange_rejected for every caller', async () => {
    // A secret file saved by an editor that writes a UTF-8 BOM. RFC 6749 Appendix A allows only
    // printable ASCII (VSCHAR) in a client secret; oidc-provider refuses anything else in Basic
    // with invalid_request, which tokengate would answer as the *caller's* refusal (403, cached
    // per caller) for every caller in turn. The config must refuse it instead, without quoting it.
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tokengate-bom-secret-'));
    try {
      const secretFile = path.join(dir, 'gateway_secret');
      fs.writeFileSync(secretFile, '\uFEFFgateway-secret\n');
      const basic = `Basic ${Buffer.from(`gateway:${encodeURIComponent(fs.readFileSync(secretFile, 'utf8').replace(/\n$/, ''))}`).toString('base64')}`;
      const direct = await fetch(idp.tokenEndpoint, { method: 'POST', headers: { authorization: basic, 'content-type': 'application/x-www-form-urlencoded' }, body: 'grant_type=client_credentials' });
      expect([direct.status, ((await direct.json()) as { error: string }).error]).toEqual([400, 'invalid_request']);
      const err = (() => {
        try {
          parseConfig(yaml(idp).replace('clientSecret: gateway-secret', `clientSecret: \${file:${secretFile}}`), { env: {} });
          return undefined;
        } catch (e) {
          return e as ConfigError;
        }
      })();
      expect(err?.problems.map((p) => p.path)).toEqual(['providers.orders.source.clientSecret']);
      expect(err?.message).toContain('printable ASCII');
      expect(err?.message).not.toContain('gateway-secret');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a shared-token provider (client_credentials for a resource) gets a JWT oidc-provider signed for it', async () => {
    t = await startTestApp(`
listen: { grpc: 127.0.0.1:0, admin: "off" }
providers:
  reports:
    source:
      type: client_credentials
      issuer: "${idp.issuer}"
      ${clientAuthYaml(idp, 'private_key_jwt')}
      scope: orders.read
      params: { resource: "${ORDERS}" }
    resilience: { retries: 0, timeout: 3s }
`);
    const res = await t.client.check(envoyRequest({ contextExtensions: { provider: 'reports' } }));
    expect(await upstreamVerify(bearer(res))).toMatchObject({ sub: 'gateway-pkjwt', client_id: 'gateway-pkjwt', scope: 'orders.read' });
    expect(idp.requests).toEqual([{ grantType: 'client_credentials', clientId: 'gateway-pkjwt', status: 200 }]);
  });

  describe("the README's worked example (examples/oidc-provider)", () => {
    const file = repoPath('examples/oidc-provider/tokengate.yaml');
    const env = () => ({ OIDC_ISSUER: idp.issuer, TOKENGATE_GRPC_LISTEN: '127.0.0.1:0', TOKENGATE_ADMIN_LISTEN: '127.0.0.1:0' });

    it('is a valid config for the validator and the JSON Schema', () => {
      const v = judge(fs.readFileSync(file, 'utf8'), env());
      expect(v.validator.map((p) => `${p.path}: ${p.problem}`)).toEqual([]);
      expect(v.schema).toEqual([]);
    });

    it('serves a Check routed by authority: alice in, a token for alice at orders.example out', async () => {
      t = await startTestApp(fs.readFileSync(file, 'utf8'), { env: env() });
      const alice = await idp.callerToken('alice');
      const res = await t.client.check(envoyRequest({ authority: 'orders.example', path: '/orders', headers: { authorization: `Bearer ${alice}` } }));
      expect(await upstreamVerify(bearer(res))).toMatchObject({ sub: 'alice', aud: ORDERS });
      expect(metadata(res)).toMatchObject({ provider: 'orders', subject: 'alice' });
    });

    it('`tokengate token orders --subject-token-file` (the command idp.mjs prints) exchanges the file\'s token', async () => {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tokengate-oidc-example-test-'));
      try {
        const tokenFile = path.join(dir, 'alice.jwt');
        fs.writeFileSync(tokenFile, `${await idp.callerToken('alice')}\n`);
        const child = spawn(process.execPath, [path.resolve('dist/cli.js'), 'token', 'orders', '--config', file, '--subject-token-file', tokenFile], {
          env: { PATH: process.env.PATH, ...env() }, stdio: ['ignore', 'pipe', 'pipe'],
        });
        let stdout = '';
        let stderr = '';
        child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
        child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
        const status = await new Promise<number | null>((resolve) => child.on('exit', resolve));
        expect(status, stderr).toBe(0);
        expect(JSON.parse(stdout)).toMatchObject({ provider: 'orders', type: 'token_exchange', subject: 'alice', jwt: { claims: { sub: 'alice', aud: ORDERS } } });
        expect(idp.exchanges()).toHaveLength(1);
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    });
  });
});
