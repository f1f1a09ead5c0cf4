// RFC 8705 client authentication: the token endpoint (https on loopback) checks the client
// certificate; a certificate rotated on disk is presented on the next fetch without a restart;
// a key that does not match is a clear error; discovery's mtls alias is used.
import { X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../../src/config/load.js';
import { TokenManager } from '../../../src/tokens/manager.js';
import { TestPki, type Ca, type Issued } from '../../security/support/pki.js';
import { FakeEndpoint } from './fakes.js';

const fingerprint = (cert: Buffer) => new X509Certificate(cert).fingerprint256;

describe('tls_client_auth', () => {
  const pki = new TestPki();
  let ca: Ca;
  let server: Issued;
  let clientA: Issued;
  let clientB: Issued;
  let idp: FakeEndpoint;
  let n = 0;
  const live = path.join(pki.dir, 'live');

  beforeAll(async () => {
    ca = pki.ca('ca');
    server = pki.issue(ca, 'server', 'server');
    clientA = pki.issue(ca, 'client-a', 'client');
    clientB = pki.issue(ca, 'client-b', 'client');
    fs.mkdirSync(live);
    idp = await FakeEndpoint.start((req) => {
      if (req.url.pathname === '/.well-known/openid-configuration') {
        return { body: { issuer: idp.origin, token_endpoint: `${idp.origin}/token`, mtls_endpoint_aliases: { token_endpoint: `${idp.origin}/mtls/token` } } };
      }
      if (!req.clientCert) return { status: 401, body: { error: 'invalid_client', error_description: 'no client certificate' } };
      return { body: { access_token: `at-${++n}`, token_type: 'Bearer', expires_in: 3600 } };
    }, { cert: server.cert, key: server.key, requestCert: true, rejectUnauthorized: false });
  });
  afterAll(async () => {
    await idp?.close();
    pki.cleanup();
  });

  /** Replaces the files the way cert-manager's secret volume does: new files renamed into place. */
  function install(cert: Buffer, key: Buffer): void {
    fs.writeFileSync(path.join(live, 'tls.crt.new'), cert);
    fs.writeFileSync(path.join(live, 'tls.key.new'), key);
    fs.renameSync(path.join(live, 'tls.crt.new'), path.join(live, 'tls.crt'));
    fs.renameSync(path.join(live, 'tls.key.new'), path.join(live, 'tls.key'));
  }

  function manager(endpoint: string, method = 'tls_client_auth'): TokenManager {
    return new TokenManager(parseConfig(`
providers:
  bank:
    refresh: { waitBudget: 10s }   # real clock, TLS handshakes on a busy machine
    source:
      type: client_credentials
      ${endpoint}
      clientId: fapi-client
      authMethod: ${method}
      tls:
        caFile: ${ca.certFile}
        certFile: ${path.join(live, 'tls.crt')}
        keyFile: ${path.join(live, 'tls.key')}
`, { env: {} }).providers.values());
  }

  it('presents the certificate, and the rotated one on the next fetch (no restart)', async () => {
    install(clientA.cert, clientA.key);
    const m = manager(`tokenUrl: ${idp.origin}/token`);
    try {
      idp.requests.length = 0;
      await m.getToken('bank');
      expect(idp.requests[0]!.clientCert).toBe(fingerprint(clientA.cert));
      expect(idp.requests[0]!.form).toMatchObject({ grant_type: 'client_credentials', client_id: 'fapi-client' });
      expect(idp.requests[0]!.form.client_secret).toBeUndefined();
      install(clientB.cert, clientB.key);
      await m.refresh('bank');
      expect(idp.requests[1]!.clientCert).toBe(fingerprint(clientB.cert));
    } finally {
      await m.close(0);
    }
  });

  it('a certificate whose key does not match is ERR_SOURCE_CONFIG; the last good token is still served', async () => {
    install(clientA.cert, clientA.key);
    const m = manager(`tokenUrl: ${idp.origin}/token`, 'self_signed_tls_client_auth');
    try {
      const good = await m.getToken('bank');
      const sent = idp.requests.length;
      install(clientA.cert, clientB.key);
      const err = await m.refresh('bank').then(() => undefined, (e: unknown) => e as Error & { code: string });
      expect(err?.code).toBe('ERR_SOURCE_CONFIG');
      expect(err?.message).toContain('is not the key of tls.certFile');
      expect(err?.message).not.toContain('BEGIN');
      expect(idp.requests.length).toBe(sent);
      expect((await m.getToken('bank')).value).toBe(good.value);
    } finally {
      await m.close(0);
    }
  });

  it('with issuer: sends the token request to mtls_endpoint_aliases.token_endpoint', async () => {
    install(clientA.cert, clientA.key);
    const m = manager(`issuer: ${idp.origin}`);
    try {
      idp.requests.length = 0;
      await m.getToken('bank');
      expect(idp.requests.map((r) => `${r.method} ${r.url.pathname}`)).toEqual(['GET /.well-known/openid-configuration', 'POST /mtls/token']);
      expect(idp.requests[1]!.clientCert).toBe(fingerprint(clientA.cert));
    } finally {
      await m.close(0);
    }
  });
});
