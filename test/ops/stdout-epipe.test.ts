// Regression: 'tokengate serve dies when its stdout reader goes away' (EPIPE on a log line was
// an unhandled 'error' event). The real binary, its stdout a pipe whose reader closes.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { repoPath } from '../support/demo-files.js';
import { CheckClient, envoyRequest, injected } from '../support/envoy-request.js';
import { until } from '../support/until.js';

describe('tokengate serve keeps serving when stdout goes away', () => {
  let child: ChildProcess | undefined;
  let dir: string | undefined;
  afterAll(() => {
    if (child && child.exitCode === null) child.kill('SIGKILL');
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('tokengate serve dies when its stdout reader goes away', async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tokengate-epipe-'));
    const file = path.join(dir, 'tokengate.yaml');
    const config = (ttl: string) => `
listen: { grpc: 127.0.0.1:0, admin: 127.0.0.1:0 }
providers:
  local:
    source: { type: jwt, key: "an-hs256-secret-that-is-long-enough-0123", claims: { iss: x }, ttl: ${ttl} }
`;
    fs.writeFileSync(file, config('30m'));
    const proc = spawn(process.execPath, [repoPath('dist/cli.js'), 'serve', '--config', file], { stdio: ['ignore', 'pipe', 'pipe'] });
    child = proc;
    let out = '';
    let stderr = '';
    proc.stderr!.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
    proc.stdout!.on('data', (c: Buffer) => (out += c.toString('utf8')));
    await until(() => out.includes('"ready"') || proc.exitCode !== null, 10_000, 'tokengate to become ready');
    const listening = out.split('\n').filter(Boolean).map((l) => JSON.parse(l) as { msg: string; grpc?: string }).find((l) => l.msg === 'tokengate listening');
    expect(listening?.grpc, stderr).toBeDefined();

    // The reader goes away; the next log lines hit a broken pipe.
    proc.stdout!.destroy();
    for (let i = 0; i < 3; i++) {
      fs.writeFileSync(file, config(`${30 + i}m`));
      proc.kill('SIGHUP'); // a reload logs 'config reloaded'
      await new Promise((r) => setTimeout(r, 150));
    }

    expect(proc.exitCode, stderr).toBeNull();
    const client = new CheckClient(listening!.grpc!);
    try {
      const res = await client.check(envoyRequest({ contextExtensions: { provider: 'local' } }));
      expect(res.status?.code ?? 0).toBe(0);
      expect(injected(res)?.header?.value).toMatch(/^Bearer eyJ/);
    } finally {
      client.close();
    }
    expect(proc.exitCode, stderr).toBeNull();
  });
});
