// The CLI as an operator runs it: the built binary in a child process.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DemoTokenServer } from '../../demo/token-server.js';
import { ccSource } from '../support/world.js';

const CLI = path.resolve('dist/cli.js');
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tokengate-cli-'));

function run(args: string[], env: Record<string, string> = {}, timeoutMs = 15_000): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { env: { PATH: process.env.PATH, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const t = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`timed out: ${args.join(' ')}\n${stdout}\n${stderr}`));
    }, timeoutMs);
    child.on('exit', (code) => {
      clearTimeout(t);
      resolve({ code, stdout, stderr });
    });
  });
}

function write(name: string, text: string): string {
  const file = path.join(dir, name);
  fs.writeFileSync(file, text);
  return file;
}

const BAD = `
listen: { grpc: 127.0.0.1:0, admin: off, extra: 1 }
providers:
  p:
    source: { type: client_credentials, tokenUrl: "http://idp.example/t", clientId: c, clientSecret: "hunter2-not-shown" }
    refresh: { waitBudget: later }
`;
const BAD_LINES = [
  'listen.extra: unknown key',
  'providers.p.source.tokenUrl: must be https (plain http is allowed only to loopback addresses, or with allowPlainHttp: true)',
  'providers.p.refresh.waitBudget: expected a duration such as 250ms, 30s, 5m or 1h',
];

describe('tokengate CLI', () => {
  let idp: DemoTokenServer;
  beforeAll(async () => {
    idp = new DemoTokenServer({ tokenFormat: 'jwt' });
    await idp.start();
  });
  afterAll(async () => {
    await idp?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('check-config: exit 0 on a good file', async () => {
    const r = await run(['check-config', '--config', 'examples/tokengate.yaml']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('config ok: 1 provider(s), 1 route(s), store memory');
  });

  it('check-config: exit 1 with path: problem lines, and no secret in them', async () => {
    const r = await run(['check-config', '--config', write('bad.yaml', BAD)]);
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n')).toEqual(BAD_LINES);
    expect(r.stderr + r.stdout).not.toContain('hunter2');
  });

  it('check-config: a key that cannot be loaded is a problem too', async () => {
    const r = await run(['check-config', '--config', write('badkey.yaml', 'providers: { k: { source: { type: jwt, algorithm: RS256, key: "-----BEGIN PRIVATE KEY-----\\nnope\\n-----END PRIVATE KEY-----" } } }')]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^providers\.k\.source: cannot load the RS256 signing key/m);
    expect(r.stderr).not.toContain('nope');
  });

  it('serve: refuses a bad file with the same lines', async () => {
    const r = await run(['serve', '--config', write('bad2.yaml', BAD)]);
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n')).toEqual(BAD_LINES);
  });

  it('token: fetches once and prints a redacted summary with the JWT claims', async () => {
    const file = write('idp.yaml', `providers: { idp: { source: ${ccSource(idp, { clientSecret: '${env:SECRET}' })} } }`);
    const r = await run(['token', 'idp', '--config', file], { SECRET: 'demo-secret' });
    expect(r.code).toBe(0);
    const summary = JSON.parse(r.stdout) as Record<string, unknown>;
    expect(summary).toMatchObject({ provider: 'idp', type: 'client_credentials', token_type: 'Bearer', token_id: expect.any(String), expires_in: expect.stringMatching(/^\d+s$/) });
    expect((summary.jwt as { claims: Record<string, unknown> }).claims).toMatchObject({ sub: 'demo-client' });
    const issued = idp.issuedAccessTokens.at(-1)!;
    expect(r.stdout + r.stderr).not.toContain(issued);
    expect(r.stdout + r.stderr).not.toContain('demo-secret');
  });

  it("token: exits non-zero with the IdP's error text", async () => {
    const file = write('idp-bad.yaml', `providers: { idp: { source: ${ccSource(idp, { clientSecret: '${env:SECRET}' })} } }`);
    const r = await run(['token', 'idp', '--config', file], { SECRET: 'wrong-secret' });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('token fetch failed: ERR_IDP_REJECTED');
    expect(r.stderr).toContain('IdP error: invalid_client');
    expect(r.stderr).not.toContain('wrong-secret');
  });

  it('token: names the configured providers when asked for an unknown one', async () => {
    const r = await run(['token', 'nope', '--config', 'examples/tokengate.yaml']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('configured: example-jwt');
  });

  it('unknown commands exit 2 with usage', async () => {
    const r = await run(['frobnicate']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('usage:');
  });

  it('serve: starts on the embedded default, prints where it listens, stops on SIGTERM', async () => {
    const file = write('serve.yaml', fs.readFileSync('examples/tokengate.yaml', 'utf8').replace('127.0.0.1:9191', '127.0.0.1:0').replace('127.0.0.1:9192', '127.0.0.1:0'));
    const child = spawn(process.execPath, [CLI, 'serve', '--config', file], { env: { PATH: process.env.PATH }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no ready line: ${out}`)), 10_000);
      child.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        if (out.includes('"msg":"ready"')) {
          clearTimeout(t);
          resolve();
        }
      });
    });
    const listening = JSON.parse(out.split('\n').find((l) => l.includes('tokengate listening'))!) as { grpc: string; admin: string };
    expect(listening.grpc).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(listening.admin).toMatch(/^127\.0\.0\.1:\d+$/);
    const exit = new Promise<number | null>((resolve) => child.on('exit', resolve));
    child.kill('SIGTERM');
    expect(await exit).toBe(0);
  });
});
