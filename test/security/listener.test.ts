// The gRPC listener: TLS, mTLS (refused at the handshake without a certificate our CA signed),
// owner-only Unix sockets, and a loopback default.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { isLoopbackHost } from '../../src/config/schema.js';
import { bind } from '../../src/server/listen.js';
import { startTestApp, type TestApp } from '../support/app.js';
import { CheckClient, envoyRequest, injected } from '../support/envoy-request.js';
import { TestPki, type Ca, type Issued } from './support/pki.js';

const TOKEN = 'static-upstream-token-for-listener-tests';
const env = { LISTENER_TEST_TOKEN: TOKEN };
const provider = `
providers:
  st:
    source: { type: static, token: "\${env:LISTENER_TEST_TOKEN}" }
`;
const request = () => envoyRequest({ contextExtensions: { provider: 'st' } });

function expectServed(res: Awaited<ReturnType<CheckClient['check']>>): void {
  expect(res.status?.code ?? 0).toBe(0);
  expect(injected(res)?.header?.value).toBe(`Bearer ${TOKEN}`);
}

async function expectRefused(client: CheckClient): Promise<void> {
  const err = await client.check(request(), 3_000).then(() => undefined, (e: grpc.ServiceError) => e);
  expect(err, 'the call must fail').toBeDefined();
  // The channel never got past the TLS handshake: no RPC status from the server, UNAVAILABLE.
  expect(err!.code).toBe(grpc.status.UNAVAILABLE);
}

interface RawOutcome {
  /** The error the client socket saw (a TLS alert code), if any. */
  readonly error: string | undefined;
  /** HTTP/2 bytes the server sent after the handshake (its SETTINGS frame, if it accepted us). */
  readonly bytes: number;
}

const H2_PREFACE = Buffer.concat([Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'), Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0])]);

/**
 * A raw TLS connection to the listener that speaks the HTTP/2 preface. A server that accepted
 * us answers with its SETTINGS; one that refused us closes the connection with no HTTP/2 byte.
 */
function rawConnect(port: number, opts: tls.ConnectionOptions): Promise<RawOutcome> {
  return new Promise((resolve) => {
    const socket = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ALPNProtocols: ['h2'], ...opts });
    let bytes = 0;
    let error: string | undefined;
    const timer = setTimeout(() => socket.destroy(), 1_000);
    socket.on('secureConnect', () => socket.write(H2_PREFACE));
    socket.on('data', (d: Buffer) => {
      bytes += d.length;
      socket.destroy();
    });
    socket.on('error', (e: NodeJS.ErrnoException) => (error = e.code ?? e.message));
    socket.on('close', () => {
      clearTimeout(timer);
      resolve({ error, bytes });
    });
  });
}

describe('gRPC listener with TLS and mTLS', () => {
  let pki: TestPki;
  let ca: Ca;
  let otherCa: Ca;
  let server: Issued;
  let goodClient: Issued;
  let strangerClient: Issued;
  let mtls: TestApp;
  let tlsOnly: TestApp;
  const clients: CheckClient[] = [];
  const client = (address: string, creds: grpc.ChannelCredentials) => {
    // The server certificate names localhost (and 127.0.0.1); SNI must be a name, not an IP.
    const c = new CheckClient(address, creds, { 'grpc.ssl_target_name_override': 'localhost' });
    clients.push(c);
    return c;
  };

  beforeAll(async () => {
    pki = new TestPki();
    ca = pki.ca('tokengate-test-ca');
    otherCa = pki.ca('some-other-ca');
    server = pki.issue(ca, 'tokengate-server', 'server');
    goodClient = pki.issue(ca, 'envoy-client', 'client');
    strangerClient = pki.issue(otherCa, 'stranger-client', 'client');
    mtls = await startTestApp(`
listen:
  grpc: 127.0.0.1:0
  admin: "off"
  tls: { certFile: "${server.certFile}", keyFile: "${server.keyFile}", clientCaFile: "${ca.certFile}" }
${provider}`, { env });
    tlsOnly = await startTestApp(`
listen:
  grpc: 127.0.0.1:0
  admin: "off"
  tls: { certFile: "${server.certFile}", keyFile: "${server.keyFile}" }
${provider}`, { env });
  });

  afterAll(async () => {
    for (const c of clients) c.close();
    await mtls?.close();
    await tlsOnly?.close();
    pki?.cleanup();
  });

  const port = (t: TestApp) => Number(t.app.grpcAddress.slice(t.app.grpcAddress.lastIndexOf(':') + 1));

  it('mTLS: a client with a certificate signed by clientCaFile is served', async () => {
    const c = client(mtls.app.grpcAddress, grpc.credentials.createSsl(ca.cert, goodClient.key, goodClient.cert));
    expectServed(await c.check(request()));
    // The raw probe's baseline: with a good certificate the server speaks HTTP/2 to us.
    const raw = await rawConnect(port(mtls), { ca: ca.cert, key: goodClient.key, cert: goodClient.cert });
    expect(raw.error).toBeUndefined();
    expect(raw.bytes).toBeGreaterThan(0);
  });

  it('mTLS: a client without a certificate is refused at the handshake', async () => {
    await expectRefused(client(mtls.app.grpcAddress, grpc.credentials.createSsl(ca.cert)));
    // OpenSSL itself refuses: TLS alert 116 (certificate required), no HTTP/2 byte.
    const raw = await rawConnect(port(mtls), { ca: ca.cert });
    expect(raw.error).toMatch(/CERTIFICATE_REQUIRED/);
    expect(raw.bytes).toBe(0);
  });

  it('mTLS: a client whose certificate another CA signed is refused at the handshake', async () => {
    await expectRefused(client(mtls.app.grpcAddress, grpc.credentials.createSsl(ca.cert, strangerClient.key, strangerClient.cert)));
    // Node verifies the chain when the handshake completes and drops the socket before the
    // HTTP/2 server ever sees it: no SETTINGS frame comes back.
    const raw = await rawConnect(port(mtls), { ca: ca.cert, key: strangerClient.key, cert: strangerClient.cert });
    expect(raw.bytes).toBe(0);
  });

  it('mTLS: a plaintext client is refused', async () => {
    await expectRefused(client(mtls.app.grpcAddress, grpc.credentials.createInsecure()));
  });

  it('mTLS: the server still serves good clients after the refusals', async () => {
    const c = client(mtls.app.grpcAddress, grpc.credentials.createSsl(ca.cert, goodClient.key, goodClient.cert));
    expectServed(await c.check(request()));
  });

  it('TLS without clientCaFile: any TLS client that trusts the server cert is served; plaintext is refused', async () => {
    expectServed(await client(tlsOnly.app.grpcAddress, grpc.credentials.createSsl(ca.cert)).check(request()));
    await expectRefused(client(tlsOnly.app.grpcAddress, grpc.credentials.createInsecure()));
  });

  it('a client that does not trust the server certificate refuses it (server cert verified by the client)', async () => {
    await expectRefused(client(tlsOnly.app.grpcAddress, grpc.credentials.createSsl(otherCa.cert)));
  });
});

describe('gRPC listener on a Unix domain socket', () => {
  let dir: string;
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tokengate-uds-'));
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('is created owner-only (0600), serves Checks, and leaves the process umask as it was', async () => {
    const sock = path.join(dir, 'tokengate.sock');
    const umaskBefore = process.umask();
    const t = await startTestApp(`
listen: { grpc: "unix:${sock}", admin: "off" }
${provider}`, { env });
    try {
      expect(process.umask()).toBe(umaskBefore);
      const st = fs.statSync(sock);
      expect(st.isSocket()).toBe(true);
      expect((st.mode & 0o777).toString(8)).toBe('600');
      expect(st.uid).toBe(process.getuid!());
      expect(t.app.grpcAddress).toBe(`unix:${sock}`);
      expectServed(await t.client.check(request()));
    } finally {
      await t.close();
    }
  });

  it('never deletes a regular file that sits at the socket path (bind fails instead)', async () => {
    const file = path.join(dir, 'not-a-socket');
    fs.writeFileSync(file, 'precious');
    const server = new grpc.Server();
    try {
      await expect(bind(server, `unix:${file}`, grpc.ServerCredentials.createInsecure(), 16)).rejects.toThrow();
      expect(fs.readFileSync(file, 'utf8')).toBe('precious');
    } finally {
      server.forceShutdown();
    }
  });

  it('refuses TLS settings on a unix: listener (the socket file permissions protect it)', () => {
    expect(() => parseConfig(`
listen: { grpc: "unix:${dir}/x.sock", tls: { certFile: /a, keyFile: /b } }
`, { env: {} })).toThrow(/listen\.tls/);
  });
});

describe('listener defaults', () => {
  it('binds gRPC and admin to loopback when the config says nothing', () => {
    const config = parseConfig('{}\n', { env: {} });
    expect(config.listen.grpc).toBe('127.0.0.1:9191');
    expect(config.listen.admin).toBe('127.0.0.1:9192');
    expect(config.listen.tls).toBeUndefined();
    for (const address of [config.listen.grpc, config.listen.admin!]) {
      expect(isLoopbackHost(address.slice(0, address.lastIndexOf(':')))).toBe(true);
    }
  });

  it('isLoopbackHost accepts only loopback names and addresses', () => {
    for (const h of ['127.0.0.1', '127.8.9.10', 'localhost', '[::1]', '::1']) expect(isLoopbackHost(h), h).toBe(true);
    for (const h of ['0.0.0.0', '10.0.0.1', 'localhost.evil.example', '127.0.0.1.nip.io', '[::]', '[::ffff:7f00:1]', 'example.com']) {
      expect(isLoopbackHost(h), h).toBe(false);
    }
  });
});
