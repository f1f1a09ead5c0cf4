// `tokengate token PROVIDER` on a chain: the built CLI builds the providers the chain needs and,
// when a link fails, says which one.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FakeEndpoint, fakeJwt } from './fakes.js';

const CLI = path.resolve('dist/cli.js');

describe('tokengate token on a chain', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tokengate-cli-chain-'));
  let sts: FakeEndpoint;
  let iam: FakeEndpoint;
  let stsFails = false;
  beforeAll(async () => {
    sts = await FakeEndpoint.start(() => stsFails
      ? { status: 400, body: { error: 'invalid_grant', error_description: 'audience mismatch' } }
      : { body: { access_token: 'sts-token', issued_token_type: 'urn:ietf:params:oauth:token-type:access_token', token_type: 'Bearer', expires_in: 3600 } });
    iam = await FakeEndpoint.start(() => ({ body: { accessToken: 'ya29.impersonated', expireTime: new Date(Date.now() + 3_600_000).toISOString() } }));
  });
  afterAll(async () => {
    await sts?.close();
    await iam?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  /** Async: the fakes live in this process and must keep answering while the CLI runs. */
  async function run(): Promise<{ status: number | null; stdout: string; stderr: string }> {
    const projected = path.join(dir, 'token');
    fs.writeFileSync(projected, fakeJwt({ sub: 'system:serviceaccount:ns:app', exp: Math.floor(Date.now() / 1000) + 3600 }));
    const config = path.join(dir, 'tokengate.yaml');
    fs.writeFileSync(config, `
providers:
  k8s-sa:
    source: { type: static, file: ${projected} }
  sts:
    source: { type: token_exchange, tokenUrl: "${sts.origin}/v1/token", subjectToken: { provider: k8s-sa, type: "urn:ietf:params:oauth:token-type:jwt" } }
    resilience: { retries: 0 }
  gcp:
    source: { type: gcp_impersonation, endpoint: "${iam.origin}", serviceAccount: app@proj.iam.gserviceaccount.com, via: sts }
    resilience: { retries: 0 }
`);
    const child = spawn(process.execPath, [CLI, 'token', 'gcp', '--config', config], { env: { PATH: process.env.PATH }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const status = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    return { status, stdout, stderr };
  }

  it('fetches through the chain', async () => {
    stsFails = false;
    const r = await run();
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ provider: 'gcp', type: 'gcp_impersonation', token_type: 'Bearer' });
  });

  it('names the link that failed', async () => {
    stsFails = true;
    const r = await run();
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('token fetch failed: ERR_IDP_REJECTED: link sts failed: token endpoint rejected the request (400): invalid_grant');
    expect(r.stderr).not.toContain('eyJ'); // the projected token is never printed
  });
});
