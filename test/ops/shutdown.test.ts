// The real binary (`node dist/cli.js serve`, built by the test command) under signals: SIGHUP
// reloads, SIGTERM under a steady stream of Checks drains and exits 0 within the deadline,
// with a refresh-token rotation in flight that must complete, not be cut in half.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DemoTokenServer } from '../../demo/token-server.js';
import { ccSource, rtSource } from '../support/world.js';
import { repoPath } from '../support/demo-files.js';
import { CheckClient, envoyRequest, injected } from '../support/envoy-request.js';
import { AdminClient } from '../support/admin-client.js';
import { until } from '../support/until.js';

const ADMIN_TOKEN = 'shutdown-admin-token-0123456789';
const RT_INITIAL = 'rt_shutdown_initial_0123456789abcdef';
const DEADLINE_MS = 5_000;

interface LogLine {
  msg: string;
  [k: string]: unknown;
}

describe('tokengate serve: SIGHUP and SIGTERM', () => {
  let idp: DemoTokenServer;
  let dir: string;
  let file: string;
  let child: ChildProcess;
  const lines: LogLine[] = [];
  const stderr: string[] = [];
  let exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>;

  const config = (extra = '') => `
listen: { grpc: 127.0.0.1:0, admin: 127.0.0.1:0 }
admin: { token: "${ADMIN_TOKEN}" }
shutdown: { deadline: ${DEADLINE_MS / 1000}s }
providers:
  cc:
    source: ${ccSource(idp)}
  rt:
    source: ${rtSource(idp, RT_INITIAL)}
${extra}`;

  const logged = (msg: string) => lines.find((l) => l.msg === msg);

  beforeAll(async () => {
    idp = new DemoTokenServer({ refreshTokens: [RT_INITIAL] });
    await idp.start();
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tokengate-shutdown-'));
    file = path.join(dir, 'tokengate.yaml');
    fs.writeFileSync(file, config());
    child = spawn(process.execPath, [repoPath('dist/cli.js'), 'serve', '--config', file], { stdio: ['ignore', 'pipe', 'pipe'] });
    exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal, at: Date.now() })));
    let buf = '';
    child.stdout!.on('data', (chunk: Buffer) => {
      buf += chunk.toString('utf8');
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        try {
          lines.push(JSON.parse(line) as LogLine);
        } catch {
          stderr.push(line);
        }
      }
    });
    child.stderr!.on('data', (chunk: Buffer) => stderr.push(chunk.toString('utf8')));
    await until(() => logged('ready') !== undefined || child.exitCode !== null, 10_000, 'tokengate to become ready');
    expect(logged('ready'), stderr.join('')).toBeDefined();
  });
  afterAll(async () => {
    if (child && child.exitCode === null) child.kill('SIGKILL');
    await idp?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const addresses = () => logged('tokengate listening') as unknown as { grpc: string; admin: string };

  it('SIGHUP re-reads the config file', async () => {
    fs.writeFileSync(file, config(`  extra:
    source: { type: jwt, key: "an-hs256-secret-that-is-long-enough-0123", claims: { iss: x }, ttl: 30m }
`));
    child.kill('SIGHUP');
    await until(() => logged('config reloaded') !== undefined, 5_000, 'the reload');
    expect(logged('config reloaded')).toMatchObject({ added: ['extra'], changed: [], removed: [] });
    const client = new CheckClient(addresses().grpc);
    try {
      const res = await client.check(envoyRequest({ contextExtensions: { provider: 'extra' } }));
      expect(res.status?.code ?? 0).toBe(0);
      expect(injected(res)?.header?.value).toMatch(/^Bearer eyJ/);
    } finally {
      client.close();
    }
  });

  it('SIGTERM under a steady stream of Checks: every answer is right, the rotation in flight completes, exit 0 within the deadline', async () => {
    const { grpc: grpcAddress, admin: adminAddress } = addresses();
    const admin = new AdminClient({ http: adminAddress });
    const client = new CheckClient(grpcAddress);
    const expected = injected(await client.check(envoyRequest({ contextExtensions: { provider: 'cc' } })))?.header?.value;
    expect(expected).toMatch(/^Bearer /);

    // The steady stream: four callers, each sending its next Check as soon as one is answered.
    const answers: { at: number; code: number; header: string | undefined }[] = [];
    const failures: { at: number; code: grpc.status }[] = [];
    let running = true;
    const worker = async () => {
      while (running) {
        try {
          const res = await client.check(envoyRequest({ contextExtensions: { provider: 'cc' } }), 2_000);
          answers.push({ at: Date.now(), code: res.status?.code ?? 0, header: injected(res)?.header?.value });
        } catch (err) {
          failures.push({ at: Date.now(), code: (err as grpc.ServiceError).code });
          await new Promise((r) => setTimeout(r, 5));
        }
      }
    };
    const workers = Array.from({ length: 4 }, worker);
    await until(() => answers.length >= 50, 5_000, 'traffic');

    // A refresh-token rotation that is still at the IdP when SIGTERM arrives.
    const rtBefore = idp.issuedRefreshTokens.at(-1)!;
    const requests = idp.tokenRequestCount;
    idp.setBehaviourSequence([{ kind: 'delay', ms: 1_500 }]);
    const refresh = admin.http('POST', '/v1/tokens/rt/refresh', ADMIN_TOKEN);
    await idp.waitForRequests(requests + 1);

    const termAt = Date.now();
    child.kill('SIGTERM');
    // Readiness drops first (the admin listener stays up until the drain is over).
    await new Promise((r) => setTimeout(r, 100));
    const ready = await admin.http('GET', '/readyz');
    expect(ready.status).toBe(503);

    const exit = await exited;
    running = false;
    await Promise.all(workers);
    client.close();

    // Exit: clean, within the deadline, and nothing kept the process alive afterwards.
    expect(exit).toMatchObject({ code: 0, signal: null });
    expect(exit.at - termAt).toBeLessThan(DEADLINE_MS);
    expect(lines.find((l) => l.msg.includes('keeps the process alive'))).toBeUndefined();

    // As Envoy sees it: every Check that got an answer got the right one; none was denied.
    expect(answers.length).toBeGreaterThan(50);
    for (const a of answers) expect(a).toMatchObject({ code: 0, header: expected });
    // A Check after the listener closed fails at the transport (UNAVAILABLE), never with a wrong answer.
    for (const f of failures) {
      expect(f.code).toBe(grpc.status.UNAVAILABLE);
      expect(f.at).toBeGreaterThanOrEqual(termAt);
    }

    // The rotation finished: the admin call got its answer, the new refresh token is the live one.
    const refreshed = await refresh;
    expect(refreshed.status).toBe(200);
    expect(refreshed.json()).toMatchObject({ name: 'rt', state: 'valid' });
    expect(idp.refreshTokenState(rtBefore)).toBe('spent');
    expect(idp.refreshTokenState(idp.issuedRefreshTokens.at(-1)!)).toBe('valid');
    expect(idp.reuseDetectedCount).toBe(0);

    // The order of events in the log.
    const order = (msg: string, pred: (l: LogLine) => boolean = () => true) => lines.findIndex((l) => l.msg === msg && pred(l));
    const steps = [
      order('signal received', (l) => l.signal === 'SIGTERM'),
      order('shutting down'),
      order('token fetched', (l) => l.provider === 'rt' && lines.indexOf(l) > order('shutting down')),
      order('stopped'),
    ];
    expect(steps.every((i) => i >= 0), JSON.stringify(lines.slice(-10))).toBe(true);
    expect([...steps].sort((a, b) => a - b)).toEqual(steps);
  });
});
