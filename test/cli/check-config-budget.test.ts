// check-config weighs each token-endpoint origin's steady-state demand against its budget.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const CLI = path.resolve('dist/cli.js');
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tokengate-budget-'));

function checkConfig(text: string): Promise<{ code: number; stdout: string; stderr: string }> {
  const file = path.join(dir, `c${Math.random().toString(36).slice(2)}.yaml`);
  fs.writeFileSync(file, text);
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, 'check-config', '--config', file], { env: { PATH: process.env.PATH } }, (err, stdout, stderr) => {
      resolve({ code: err ? (err as { code?: number }).code ?? 1 : 0, stdout, stderr });
    });
  });
}

function providers(n: number, origin: string, extra = ''): string {
  return Array.from({ length: n }, (_, i) => `  p${i}: { source: { type: client_credentials, tokenUrl: "${origin}/oauth/token", clientId: c${i}, clientSecret: "\${env:S:-x}", defaultTtl: 10m }${extra} }`).join('\n');
}

describe('check-config and token-endpoint budgets', () => {
  it('feasible: prints each origin\'s demand against its budget and exits 0', async () => {
    // 100 tokens of 10 min refreshed 5 min early: 100 / 300 s = 0.333/s against 5/s.
    const r = await checkConfig(`tokenEndpoints: { "https://idp.example.com": { maxRate: 5/s } }\nproviders:\n${providers(100, 'https://idp.example.com')}\n`);
    expect(r.stderr).toBe('');
    expect(r.stdout).toContain('token endpoint https://idp.example.com: 100 provider(s), steady-state demand 0.333/s (20/m), budget 5/s');
    expect(r.code).toBe(0);
  });

  it('infeasible: names the origin and the numbers and exits 1', async () => {
    // 600 tokens refreshed every 5 min need 2/s; the budget allows 1/s.
    const r = await checkConfig(`tokenEndpoints: { "https://idp.example.com": { maxRate: 60/m } }\nproviders:\n${providers(600, 'https://idp.example.com')}\n`);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('tokenEndpoints."https://idp.example.com".maxRate: steady-state demand 2/s from 600 provider(s) exceeds the budget of 1/s');
  });

  it('origins without an entry are held to the default budget', async () => {
    const r = await checkConfig(`providers:\n${providers(20, 'https://other.example', ', refresh: { before: 9m59s }')}\n`);
    // 20 tokens refreshed every second need 20/s; the default is 10/s.
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/tokenEndpoints\."https:\/\/other\.example"\.maxRate: steady-state demand 20\/s from 20 provider\(s\) exceeds the budget of 10\/s \(the default/);
  });

  it('a malformed budget is a path: problem', async () => {
    const r = await checkConfig('tokenEndpoints: { "https://idp.example.com/token": { maxRate: fast, fallbackShare: 2 } }\n');
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('tokenEndpoints."https://idp.example.com/token": expected an origin such as https://idp.example.com');
    const r2 = await checkConfig('tokenEndpoints: { "https://idp.example.com": { maxRate: fast, fallbackShare: 2 } }\n');
    expect(r2.stderr).toContain('tokenEndpoints."https://idp.example.com".maxRate: expected a rate such as 5/s or 300/m');
    expect(r2.stderr).toContain('tokenEndpoints."https://idp.example.com".fallbackShare: expected a share of maxRate in (0, 1]');
  });
});
