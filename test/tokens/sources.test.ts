// Every source type against a real token endpoint on loopback (or none, for local sources).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { decodeJwt, jwtVerify } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { DemoTokenServer } from '../../demo/token-server.js';
import { TokenManager } from '../../src/tokens/manager.js';
import { ecPair, edPair, pemBlock, rsaPair } from '../support/keys.js';
import { until } from '../support/until.js';
import { ccSource, rtSource } from '../support/world.js';

function manager(yaml: string, env: Record<string, string> = {}): TokenManager {
  return new TokenManager(parseConfig(yaml, { env }).providers.values());
}

async function oneToken(yaml: string, name: string, env: Record<string, string> = {}) {
  const m = manager(yaml, env);
  try {
    return await m.getToken(name);
  } finally {
    await m.close(0);
  }
}

describe('client_credentials', () => {
  let idp: DemoTokenServer;
  const rsa = rsaPair();
  beforeAll(async () => {
    idp = new DemoTokenServer({ clients: { 'demo-client': { secret: 's3cret:with&odd chars' }, 'jwt-client': { publicKey: rsa.publicKey } } });
    await idp.start();
  });
  afterAll(async () => idp?.stop());

  it.each(['client_secret_basic', 'client_secret_post'])('authenticates with %s and sends scope, audience and extra params', async (method) => {
    idp.reset();
    const tok = await oneToken(`
providers:
  p:
    source:
      type: client_credentials
      tokenUrl: ${idp.tokenUrl}
      clientId: demo-client
      clientSecret: \${env:SECRET}
      authMethod: ${method}
      scope: "models.read chat.write"
      audience: https://api.example
      params: { resource: https://res.example }
`, 'p', { SECRET: 's3cret:with&odd chars' });
    expect(idp.requests).toHaveLength(1);
    const r = idp.requests[0]!;
    expect(r.authMethod).toBe(method);
    expect(r.outcome).toBe('issued');
    expect(r.form).toMatchObject({ grant_type: 'client_credentials', scope: 'models.read chat.write', audience: 'https://api.example', resource: 'https://res.example' });
    expect(tok.value).toBe(idp.issuedAccessTokens.at(-1));
    expect(tok.headerValue).toBe(`Bearer ${tok.value}`);
    expect(tok.source).toBe('refreshed');
  });

  it('authenticates with private_key_jwt: a fresh signed assertion (iss, sub, aud, iat, exp, jti) per request', async () => {
    idp.reset();
    const yaml = `
providers:
  p:
    source:
      type: client_credentials
      tokenUrl: ${idp.tokenUrl}
      clientId: jwt-client
      authMethod: private_key_jwt
      assertionAlgorithm: RS256
      keyId: k1
      privateKey: ${pemBlock(rsa.privatePem, 8)}
`;
    const m = manager(yaml);
    try {
      await m.getToken('p');
      await m.refresh('p');
      expect(idp.requests.map((r) => [r.authMethod, r.outcome])).toEqual([['private_key_jwt', 'issued'], ['private_key_jwt', 'issued']]);
      // The server refuses a replayed jti, so two successes prove two distinct assertions.
    } finally {
      await m.close(0);
    }
  });

  it('keeps the IdP error and description on the error (invalid_client)', async () => {
    const m = manager(`
providers:
  p:
    source: ${ccSource(idp, { clientSecret: 'wrong' })}
    resilience: { retries: 3 }
`);
    try {
      await expect(m.refresh('p')).rejects.toMatchObject({ code: 'ERR_IDP_REJECTED', status: 401, oauthError: 'invalid_client' });
      expect(m.stats()[0]!.lastError).toMatchObject({ code: 'ERR_IDP_REJECTED', error: 'invalid_client' });
    } finally {
      await m.close(0);
    }
  });
});

describe('refresh_token with rotation', () => {
  it('presents each rotated refresh token exactly once and keeps the newest', async () => {
    const idp = new DemoTokenServer({ refreshTokens: ['rt-initial'] });
    await idp.start();
    const m = manager(`
providers:
  r:
    source: ${rtSource(idp, '${env:RT}')}
`, { RT: 'rt-initial' });
    try {
      await m.getToken('r');
      for (let i = 0; i < 5; i++) await m.refresh('r');
      expect(idp.tokenRequestCount).toBe(6);
      expect(idp.invalidGrantCount).toBe(0);
      expect(idp.refreshTokenState('rt-initial')).toBe('spent');
      expect(idp.refreshTokenState(idp.issuedRefreshTokens.at(-1)!)).toBe('valid');
      expect(m.provider('r')!.peek()!.record.refreshToken).toBe(idp.issuedRefreshTokens.at(-1));
    } finally {
      await m.close(0);
      await idp.stop();
    }
  });
});

describe('jwt (self-signed)', () => {
  const secret = 'a-very-long-hmac-secret-for-tests-0123456789';
  const rsa = rsaPair();
  const ec = ecPair();
  const ed = edPair();
  const cases: [string, string, Parameters<typeof jwtVerify>[1]][] = [
    ['HS256', secret, new TextEncoder().encode(secret)],
    ['HS384', secret, new TextEncoder().encode(secret)],
    ['HS512', secret, new TextEncoder().encode(secret)],
    ['RS256', rsa.privatePem, rsa.publicKey],
    ['ES256', ec.privatePem, ec.publicKey],
    ['EdDSA', ed.privatePem, ed.publicKey],
  ];

  it.each(cases)('%s tokens verify with jose and carry iss, custom claims, iat, nbf = now-5s, exp = now+ttl, unique jti', async (alg, key, verifyKey) => {
    const yaml = `
providers:
  k:
    source:
      type: jwt
      algorithm: ${alg}
      key: ${key.includes('BEGIN') ? pemBlock(key, 8) : `"${key}"`}
      keyId: kid-1
      claims: { iss: access-key-1, aud: https://api.example, scope: [a, b] }
      ttl: 30m
`;
    const m = manager(yaml);
    try {
      const before = Math.floor(Date.now() / 1000);
      const t1 = await m.getToken('k');
      await m.refresh('k');
      const t2 = m.provider('k')!.peek()!.record.accessToken;
      const { payload, protectedHeader } = await jwtVerify(t1.value, verifyKey, { issuer: 'access-key-1', audience: 'https://api.example' });
      expect(protectedHeader).toMatchObject({ alg, kid: 'kid-1', typ: 'JWT' });
      expect(payload.scope).toEqual(['a', 'b']);
      expect(payload.iat).toBeGreaterThanOrEqual(before);
      expect(payload.nbf).toBe(payload.iat! - 5);
      expect(payload.exp).toBe(payload.iat! + 1800);
      expect(payload.jti).toMatch(/^[0-9a-f-]{36}$/);
      expect(decodeJwt(t2).jti).not.toBe(payload.jti);
      // Hard expiry: exp minus a skew of min(30s, 5% of 30 min).
      expect(t1.expiresAt).toBe(payload.exp! * 1000 - 30_000);
    } finally {
      await m.close(0);
    }
  });

  it('refuses a key that cannot sign the algorithm, as a config problem naming the source', () => {
    expect(() => manager(`
providers:
  k:
    source:
      type: jwt
      algorithm: ES256
      key: ${pemBlock(rsa.privatePem, 8)}
`)).toThrow(/providers\.k\.source: a rsa key cannot sign ES256/);
  });
});

describe('jwt_bearer (RFC 7523)', () => {
  it('exchanges a signed assertion for an access token', async () => {
    const rsa = rsaPair();
    const idp = new DemoTokenServer({ jwtBearerKeys: { 'svc@example': rsa.publicKey } });
    await idp.start();
    try {
      const tok = await oneToken(`
providers:
  sa:
    source:
      type: jwt_bearer
      tokenUrl: ${idp.tokenUrl}
      scope: read
      assertion:
        algorithm: RS256
        key: ${pemBlock(rsa.privatePem, 10)}
        claims: { iss: svc@example, sub: svc@example }
        ttl: 5m
`, 'sa');
      expect(idp.requests[0]).toMatchObject({ grantType: 'urn:ietf:params:oauth:grant-type:jwt-bearer', outcome: 'issued' });
      expect(tok.value).toBe(idp.issuedAccessTokens[0]);
    } finally {
      await idp.stop();
    }
  });
});

describe('static', () => {
  it('serves a token from the environment that never expires', async () => {
    const tok = await oneToken('providers: { s: { source: { type: static, token: "${env:TOK}" } } }', 's', { TOK: 'from-env' });
    expect(tok.value).toBe('from-env');
    expect(tok.expiresAt).toBeGreaterThan(Date.now() + 10 * 365 * 86_400_000);
  });

  it('re-reads a file when it changes (mounted secrets rotate)', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tokengate-static-'));
    const file = path.join(dir, 'key');
    fs.writeFileSync(file, 'first-key\n');
    const m = manager(`providers: { f: { source: { type: static, file: "${file}", pollInterval: 100ms } } }`);
    try {
      expect((await m.getToken('f')).value).toBe('first-key');
      // Kubernetes swaps the file underneath; a rename is what it looks like.
      fs.writeFileSync(`${file}.new`, 'second-key\n');
      fs.renameSync(`${file}.new`, file);
      await until(async () => (await m.getToken('f')).value === 'second-key', 3_000, 'the swapped file to be served');
      expect((await m.getToken('f')).value).toBe('second-key');
    } finally {
      await m.close(0);
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
