// Operating a per-caller provider: /v1/tokens' per-caller section, the exchange metrics, and
// `tokengate token PROVIDER --subject-token-file F` (the built CLI in a child process).
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { envoyRequest } from '../support/envoy-request.js';
import { startTestApp, type TestApp } from '../support/app.js';
import { ExchangeIdp, perCallerSource } from '../support/exchange-idp.js';

const CLI = path.resolve('dist/cli.js');
const ADMIN_TOKEN = 'per-caller-admin-token-0123456789abcdef';

function config(idp: ExchangeIdp, admin = '127.0.0.1:0'): string {
  return `
listen: { grpc: 127.0.0.1:0, admin: ${admin} }
admin: { token: "${ADMIN_TOKEN}" }
providers:
  orders:
    source: ${perCallerSource(idp, { verify: true })}
    cache: { maxEntries: 10 }
    refresh: { waitBudget: 10s }
`;
}

describe('per-caller operations', () => {
  let idp: ExchangeIdp;
  let t: TestApp;
  beforeAll(async () => {
    idp = await new ExchangeIdp().start();
    t = await startTestApp(config(idp));
  });
  afterAll(async () => {
    await t?.close();
    await idp?.stop();
  });

  it('/v1/tokens lists the per-caller provider with cache size, hit ratio and last error, never a token; metrics count', async () => {
    const alice = await idp.subjectToken({ sub: 'alice' });
    const req = envoyRequest({ contextExtensions: { provider: 'orders' }, headers: { authorization: `Bearer ${alice}` } });
    await t.client.check(req);
    await t.client.check(req);
    await t.client.check(req);
    idp.refuse.add('mallory');
    await t.client.check(envoyRequest({ contextExtensions: { provider: 'orders' }, headers: { authorization: `Bearer ${await idp.subjectToken({ sub: 'mallory' })}` } }));
    const base = `http://${t.app.adminAddress!}`;
    const auth = { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } };
    const body = await (await fetch(`${base}/v1/tokens`, auth)).text();
    const json = JSON.parse(body) as { perCaller: Record<string, unknown>[] };
    expect(json.perCaller).toHaveLength(1);
    expect(json.perCaller[0]).toMatchObject({ name: 'orders', perCaller: true, entries: 1, refused: 1, hits: 2, misses: 2, hitRatio: 0.5, breaker: 'closed' });
    expect(body).not.toContain(alice);
    for (const token of idp.issued.keys()) expect(body).not.toContain(token);
    // gRPC TokenAdmin/ListTokens: the same per-caller figures (one implementation, two edges).
    const viaGrpc = await t.admin.call<{ per_caller: Record<string, unknown>[] }>('ListTokens', {}, ADMIN_TOKEN);
    const h = json.perCaller[0]!;
    expect(viaGrpc.per_caller).toHaveLength(1);
    // (proto-loader adds `_hit_ratio`, proto3 optional's synthetic oneof.)
    expect(viaGrpc.per_caller[0]).toMatchObject({
      name: 'orders', entries: h.entries, refused: h.refused, approximate_bytes: h.approximateBytes, hits: h.hits, misses: h.misses,
      hit_ratio: h.hitRatio, evictions: h.evictions, exchanges_in_flight: h.exchangesInFlight, breaker: h.breaker, last_error: '',
    });
    expect(JSON.stringify(viaGrpc)).not.toContain(alice);
    const metrics = await (await fetch(`${base}/metrics`, auth)).text();
    expect(metrics).toMatch(/tokengate_exchange_cache_entries\{provider="orders"\} 1/);
    expect(metrics).toMatch(/tokengate_exchange_cache_hits_total\{provider="orders"\} 2/);
    expect(metrics).toMatch(/tokengate_exchange_cache_misses_total\{provider="orders"\} 2/);
    expect(metrics).toMatch(/tokengate_exchanges_total\{provider="orders",outcome="issued"\} 1/);
    expect(metrics).toMatch(/tokengate_exchanges_total\{provider="orders",outcome="rejected"\} 1/);
    expect(metrics).toMatch(/tokengate_exchange_cache_evictions_total|# TYPE tokengate_exchange_cache_evictions_total/);
    expect(metrics).not.toContain(alice);
  });

  it('tokengate token PROVIDER --subject-token-file F performs one exchange and prints a redacted summary', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tokengate-exchange-'));
    const cfg = path.join(dir, 'tokengate.yaml');
    fs.writeFileSync(cfg, config(idp, 'off'));
    const subjectFile = path.join(dir, 'subject');
    const bob = await idp.subjectToken({ sub: 'bob' });
    fs.writeFileSync(subjectFile, `${bob}\n`);
    const before = idp.exchangeCount;
    const out = await run(['token', 'orders', '--config', cfg, '--subject-token-file', subjectFile]);
    expect(out.code, out.stderr).toBe(0);
    expect(idp.exchangeCount).toBe(before + 1);
    const summary = JSON.parse(out.stdout) as Record<string, unknown>;
    expect(summary).toMatchObject({ provider: 'orders', type: 'token_exchange', subject: 'bob', token_type: 'Bearer' });
    for (const token of idp.issued.keys()) expect(out.stdout).not.toContain(token);
    expect(out.stdout).not.toContain(bob);
    const missing = await run(['token', 'orders', '--config', cfg]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('--subject-token-file');
    idp.refuse.add('eve');
    fs.writeFileSync(subjectFile, await idp.subjectToken({ sub: 'eve' }));
    const refused = await run(['token', 'orders', '--config', cfg, '--subject-token-file', subjectFile]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('exchange_rejected');
  });
});

function run(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { env: { PATH: process.env.PATH }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`timed out: ${args.join(' ')}`));
    }, 20_000);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}
