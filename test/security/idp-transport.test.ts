// The token endpoint transport, over real connections through the real TokenManager: https
// (except loopback), a TLS 1.2 floor, a custom CA, SPKI pinning, no redirects, a size cap.
// Each refusal has its own error code and a message that says what to fix.
import tls from 'node:tls';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/config/errors.js';
import { parseConfig } from '../../src/config/load.js';
import type { ProviderConfig } from '../../src/config/types.js';
import { DemoTokenServer } from '../../demo/token-server.js';
import { TokenError } from '../../src/tokens/errors.js';
import { TokenManager } from '../../src/tokens/manager.js';
import { startTestApp } from '../support/app.js';
import { deniedBody, envoyRequest, injected } from '../support/envoy-request.js';
import { TestPki, spkiPin, spkiPinWithOpenssl, type Ca, type Issued } from './support/pki.js';
import { LoopbackServer, sendToken } from './support/servers.js';

const env = { IDP_SECRET: 'transport-test-client-secret' };

/** One client_credentials provider, no retries (each test sees exactly one attempt). */
function providerYaml(source: string, more = ''): string {
  return `
providers:
  p:
    source: { type: client_credentials, clientId: demo-client, clientSecret: "\${env:IDP_SECRET}", ${source} }
    resilience: { retries: 0, timeout: 3s }
${more}`;
}

function provider(source: string, more = ''): ProviderConfig {
  return parseConfig(providerYaml(source, more), { env }).providers.get('p')!;
}

const managers: TokenManager[] = [];
async function fetchOnce(source: string, more = ''): Promise<{ token?: string; error?: TokenError }> {
  const m = new TokenManager([provider(source, more)]);
  managers.push(m);
  try {
    await m.refresh('p');
    return { token: m.provider('p')!.peek()!.record.accessToken };
  } catch (err) {
    expect(err).toBeInstanceOf(TokenError);
    return { error: err as TokenError };
  }
}

afterEach(async () => {
  await Promise.all(managers.splice(0).map((m) => m.close(0)));
});

describe('token endpoint: redirects are never followed', () => {
  let idp: DemoTokenServer;
  let elsewhere: DemoTokenServer;
  beforeAll(async () => {
    idp = new DemoTokenServer({ clients: { 'demo-client': { secret: env.IDP_SECRET } } });
    elsewhere = new DemoTokenServer({ clients: { 'demo-client': { secret: env.IDP_SECRET } } });
    await idp.start();
    await elsewhere.start();
  });
  afterAll(async () => {
    await idp?.stop();
    await elsewhere?.stop();
  });

  for (const status of [301, 302, 303, 307, 308]) {
    it(`a ${status} from the token endpoint fails with ERR_IDP_REDIRECT and the target is never contacted`, async () => {
      idp.reset();
      idp.setBehaviour({ kind: 'redirect', status, location: elsewhere.tokenUrl });
      const { error } = await fetchOnce(`tokenUrl: "${idp.tokenUrl}"`);
      expect(error?.code).toBe('ERR_IDP_REDIRECT');
      expect(error?.message).toMatch(/redirect/);
      expect(error?.message).toMatch(/not followed/);
      expect(error?.transient).toBe(false);
      expect(idp.tokenRequestCount).toBe(1);
      expect(elsewhere.tokenRequestCount).toBe(0);
    });
  }
});

describe('token endpoint over https with a custom CA and an SPKI pin', () => {
  let pki: TestPki;
  let ca: Ca;
  let unknownCa: Ca;
  let ecCert: Issued;
  let rsaCert: Issued;
  let ecIdp: LoopbackServer;
  let rsaIdp: LoopbackServer;
  let strangerIdp: LoopbackServer;
  let oldTlsIdp: LoopbackServer;
  let plainIdp: LoopbackServer;

  beforeAll(async () => {
    pki = new TestPki();
    ca = pki.ca('idp-test-ca');
    unknownCa = pki.ca('unknown-ca');
    ecCert = pki.issue(ca, 'idp-ec', 'server', 'ec');
    rsaCert = pki.issue(ca, 'idp-rsa', 'server', 'rsa');
    const strangerCert = pki.issue(unknownCa, 'idp-stranger', 'server');
    const answer = (name: string) => (_req: unknown, _body: string, res: Parameters<typeof sendToken>[0]) => sendToken(res, `${name}-access-token`);
    ecIdp = await LoopbackServer.https({ key: ecCert.key, cert: ecCert.cert }, answer('ec')).start();
    rsaIdp = await LoopbackServer.https({ key: rsaCert.key, cert: rsaCert.cert }, answer('rsa')).start();
    strangerIdp = await LoopbackServer.https({ key: strangerCert.key, cert: strangerCert.cert }, answer('stranger')).start();
    // Speaks at most TLS 1.1 (OpenSSL 3 needs security level 0 for that at all).
    oldTlsIdp = await LoopbackServer.https(
      { key: rsaCert.key, cert: rsaCert.cert, minVersion: 'TLSv1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT@SECLEVEL=0' },
      answer('old'),
    ).start();
    plainIdp = await LoopbackServer.http(answer('plain')).start();
  });
  afterAll(async () => {
    for (const s of [ecIdp, rsaIdp, strangerIdp, oldTlsIdp, plainIdp]) await s?.stop();
    pki?.cleanup();
  });

  it('the right pin (as `openssl … | openssl dgst -sha256` computes it) gets a token: EC certificate', async () => {
    const pin = spkiPinWithOpenssl(ecCert.certFile);
    expect(pin).toBe(spkiPin(ecCert.cert));
    const { token, error } = await fetchOnce(`tokenUrl: "${ecIdp.tokenUrl()}", tls: { caFile: "${ca.certFile}", pinSha256: "${pin}" }`);
    expect(error).toBeUndefined();
    expect(token).toBe('ec-access-token');
  });

  it('the right pin gets a token: RSA certificate', async () => {
    const pin = spkiPinWithOpenssl(rsaCert.certFile);
    const { token, error } = await fetchOnce(`tokenUrl: "${rsaIdp.tokenUrl()}", tls: { caFile: "${ca.certFile}", pinSha256: "${pin}" }`);
    expect(error).toBeUndefined();
    expect(token).toBe('rsa-access-token');
  });

  it('caFile alone (no pin) trusts the custom CA', async () => {
    const { token } = await fetchOnce(`tokenUrl: "${ecIdp.tokenUrl()}", tls: { caFile: "${ca.certFile}" }`);
    expect(token).toBe('ec-access-token');
  });

  it('a wrong pin fails with ERR_IDP_TLS saying "pin", before any HTTP request is sent', async () => {
    const before = ecIdp.requests;
    const wrongPin = spkiPin(rsaCert.cert); // a real key, just not this server's
    const { error } = await fetchOnce(`tokenUrl: "${ecIdp.tokenUrl()}", tls: { caFile: "${ca.certFile}", pinSha256: "${wrongPin}" }`);
    expect(error?.code).toBe('ERR_IDP_TLS');
    expect(error?.message).toMatch(/pin/);
    expect(error?.transient).toBe(false);
    expect(ecIdp.requests).toBe(before);
  });

  it('a certificate from an unknown CA, without caFile, fails with ERR_IDP_TLS', async () => {
    const { error } = await fetchOnce(`tokenUrl: "${strangerIdp.tokenUrl()}"`);
    expect(error?.code).toBe('ERR_IDP_TLS');
    expect(error?.message).toMatch(/TLS handshake with token endpoint failed \((UNABLE_TO_VERIFY_LEAF_SIGNATURE|SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_GET_ISSUER_CERT_LOCALLY)\)/);
    expect(strangerIdp.requests).toBe(0);
  });

  it('caFile replaces the system roots: a server the given CA did not sign is refused', async () => {
    const { error } = await fetchOnce(`tokenUrl: "${strangerIdp.tokenUrl()}", tls: { caFile: "${ca.certFile}" }`);
    expect(error?.code).toBe('ERR_IDP_TLS');
  });

  it('a server that speaks only TLS 1.1 is refused (TLS 1.2 floor) with ERR_IDP_TLS', async () => {
    // Control: the server really completes a TLS 1.1 handshake with a client that allows it.
    const protocol = await new Promise<string | null>((resolve, reject) => {
      const s = tls.connect({ host: '127.0.0.1', port: oldTlsIdp.port, ca: ca.cert, servername: 'localhost', minVersion: 'TLSv1', ciphers: 'DEFAULT@SECLEVEL=0' }, () => {
        resolve(s.getProtocol());
        s.destroy();
      });
      s.on('error', reject);
    });
    expect(protocol).toBe('TLSv1.1');
    const { error } = await fetchOnce(`tokenUrl: "${oldTlsIdp.tokenUrl()}", tls: { caFile: "${ca.certFile}" }`);
    expect(error?.code).toBe('ERR_IDP_TLS');
    expect(error?.message).toMatch(/protocol version/);
    expect(oldTlsIdp.requests).toBe(0);
  });

  it('an https URL answered by a plain-http server fails with ERR_IDP_TLS, not as an outage to retry', async () => {
    const { error } = await fetchOnce(`tokenUrl: "${plainIdp.tokenUrl('https')}"`);
    expect(error?.code).toBe('ERR_IDP_TLS');
    expect(error?.transient).toBe(false);
  });

  it('a served Check on a provider with a wrong pin is denied 503 with code ERR_IDP_TLS', async () => {
    const t = await startTestApp(`
listen: { grpc: 127.0.0.1:0, admin: "off" }
${providerYaml(`tokenUrl: "${ecIdp.tokenUrl()}", tls: { caFile: "${ca.certFile}", pinSha256: "${spkiPin(rsaCert.cert)}" }`)}
`, { env });
    try {
      const res = await t.client.check(envoyRequest({ contextExtensions: { provider: 'p' } }));
      expect(res.status?.code).toBe(14);
      expect(injected(res)).toBeUndefined();
      expect(deniedBody(res)).toMatchObject({ error: 'token_unavailable', provider: 'p', code: 'ERR_IDP_TLS' });
    } finally {
      await t.close();
    }
  });
});

describe('token endpoint: https required except to loopback', () => {
  const problems = (source: string) => {
    try {
      parseConfig(providerYaml(source), { env });
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      return (err as ConfigError).problems;
    }
    return [];
  };

  it('plain http to a non-loopback address is a config error naming tokenUrl', () => {
    for (const url of ['http://idp.example.com/oauth2/token', 'http://10.1.2.3/token', 'http://0.0.0.0:8080/token', 'http://localhost.evil.example/token', 'http://[::ffff:127.0.0.1]/token']) {
      const p = problems(`tokenUrl: "${url}"`);
      expect(p, url).toEqual([{ path: 'providers.p.source.tokenUrl', problem: expect.stringMatching(/must be https/) }]);
    }
  });

  it('plain http to loopback is accepted without a warning', () => {
    for (const url of ['http://127.0.0.1:8080/token', 'http://localhost:8080/token', 'http://[::1]:8080/token']) {
      const config = parseConfig(providerYaml(`tokenUrl: "${url}"`), { env });
      expect(config.warnings.filter((w) => w.path.includes('tokenUrl') || w.path.includes('allowPlainHttp')), url).toEqual([]);
    }
  });

  it('allowPlainHttp: true lets a non-loopback http URL through, with a warning', () => {
    const config = parseConfig(providerYaml('tokenUrl: "http://idp.example.com/token", allowPlainHttp: true'), { env });
    expect(config.warnings).toContainEqual({ path: 'providers.p.source.allowPlainHttp', problem: expect.stringMatching(/clear text/) });
  });

  it('other schemes and URLs with credentials are refused', () => {
    expect(problems('tokenUrl: "ftp://idp.example.com/token"')[0]).toMatchObject({ path: 'providers.p.source.tokenUrl' });
    const p = problems('tokenUrl: "https://user:pass@idp.example.com/token"');
    expect(p[0]).toMatchObject({ path: 'providers.p.source.tokenUrl', problem: expect.stringMatching(/credentials/) });
    expect(JSON.stringify(p)).not.toContain('pass@');
  });
});

describe('token endpoint: response size is capped', () => {
  let idp: DemoTokenServer;
  let chunked: LoopbackServer;
  beforeAll(async () => {
    idp = new DemoTokenServer({ clients: { 'demo-client': { secret: env.IDP_SECRET } } });
    await idp.start();
    // No content-length: the body streams until the cap stops it.
    chunked = await LoopbackServer.http((_req, _body, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      const piece = `{"pad":"${'x'.repeat(16 * 1024)}",`;
      let sent = 0;
      const pump = () => {
        while (sent < 64 && !res.destroyed) {
          sent++;
          if (!res.write(piece)) return void res.once('drain', pump);
        }
        if (!res.destroyed) res.end('"access_token":"never"}');
      };
      pump();
    }).start();
  });
  afterAll(async () => {
    await idp?.stop();
    await chunked?.stop();
  });

  it('an oversized token response (content-length declared) fails with ERR_IDP_BAD_RESPONSE', async () => {
    idp.setBehaviour({ kind: 'status', status: 200, body: { access_token: 'a'.repeat(200 * 1024), token_type: 'Bearer' } });
    const { error } = await fetchOnce(`tokenUrl: "${idp.tokenUrl}"`);
    expect(error?.code).toBe('ERR_IDP_BAD_RESPONSE');
    expect(error?.message).toMatch(/exceeds 65536 bytes/);
  });

  it('an oversized streamed response (no content-length) is cut off at the cap with ERR_IDP_BAD_RESPONSE', async () => {
    const { error } = await fetchOnce(`tokenUrl: "${chunked.tokenUrl()}"`);
    expect(error?.code).toBe('ERR_IDP_BAD_RESPONSE');
    expect(error?.message).toMatch(/exceeds 65536 bytes/);
  });

  it('a response just under the cap is still read', async () => {
    const big = 'b'.repeat(60 * 1024);
    idp.setBehaviour({ kind: 'status', status: 200, body: { access_token: big, token_type: 'Bearer', expires_in: 300 } });
    // A 60 KB token is over the default inject.maxTokenBytes (16 KiB): raised to its maximum here.
    const { token, error } = await fetchOnce(`tokenUrl: "${idp.tokenUrl}"`, '    inject: { maxTokenBytes: 65536 }\n');
    expect(error).toBeUndefined();
    expect(token).toBe(big);
  });
});
