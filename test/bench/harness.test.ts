// The benchmark harness keeps working: its smallest scenario (the floor and tokengate, about a
// second each, through the real load generator) runs and writes a report of the right shape.
// Speeds are never asserted here; bench/REPORT.md is where they are read.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const root = path.resolve(import.meta.dirname, '../..');

interface Closed { rate: number; cpuPerCheckUs: number; clientErrors: number; rounds: { clientOk: number }[] }
interface Open { achievedRate: number; errors: number; latency: { count: number; p50: number; p99: number }; cpuPerCheckUs: number }
interface Results {
  meta: { cores: number; node: string; date: string; command: string; scenario: string };
  hotPath: {
    answersIdentical: boolean;
    answer: { status?: { code?: number }; header: { key: string; append?: { value?: boolean }; append_action?: string }; metadataKeys: string[] };
    throughput: Record<string, Record<string, Closed>>;
    latency: Record<string, Record<string, Open>>;
  };
}

describe('bench harness (smoke scenario)', () => {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'tokengate-bench-test-'));
  afterAll(() => fs.rmSync(out, { recursive: true, force: true }));

  it('runs the floor and tokengate through the load generator and writes results.json and REPORT.md', async () => {
    const { code, stderr } = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
      const child = execFile(process.execPath, [path.join(root, 'bench/run.js')], {
        cwd: root,
        env: { ...process.env, BENCH_SCENARIO: 'smoke', BENCH_OUT: out },
        timeout: 90_000,
      }, (_err, _stdout, stderr) => resolve({ code: child.exitCode, stderr }));
    });
    expect(code, stderr).toBe(0);

    const r = JSON.parse(fs.readFileSync(path.join(out, 'results.json'), 'utf8')) as Results;
    expect(r.meta.cores).toBeGreaterThan(0);
    expect(r.meta.node).toBe(process.version);
    expect(r.meta.scenario).toBe('smoke');
    expect(Number.isNaN(Date.parse(r.meta.date))).toBe(false);

    // Both targets gave the same answer, and it has the contract's shape.
    expect(r.hotPath.answersIdentical).toBe(true);
    expect(r.hotPath.answer.status?.code ?? 0).toBe(0);
    expect(r.hotPath.answer.header).toMatchObject({ key: 'authorization', append: { value: false }, append_action: 'OVERWRITE_IF_EXISTS_OR_ADD' });
    expect(r.hotPath.answer.metadataKeys.sort()).toEqual(['provider', 'source', 'token_id']);

    const closed = r.hotPath.throughput['grpc-js']!;
    for (const target of ['floor-object', 'tokengate']) {
      const t = closed[target]!;
      expect(t.rate, target).toBeGreaterThan(0);
      expect(t.cpuPerCheckUs, target).toBeGreaterThan(0);
      expect(t.clientErrors, target).toBe(0);
      expect(t.rounds[0]!.clientOk, target).toBeGreaterThan(0);
      const o = r.hotPath.latency['grpc-js']![target]!;
      expect(o.latency.count, target).toBeGreaterThan(0);
      expect(o.errors, target).toBe(0);
      expect(o.latency.p99, target).toBeGreaterThanOrEqual(o.latency.p50);
    }

    const report = fs.readFileSync(path.join(out, 'REPORT.md'), 'utf8');
    expect(report).toMatch(/^# tokengate benchmark report/);
    expect(report).toContain(`Node ${process.version}`);
    expect(report).toMatch(/\*\*\d+ cores\*\*/);
    expect(report).toContain('BENCH_SCENARIO=smoke');
    expect(report).toContain('## Targets (measured, not asserted)');
    expect(report).toContain('### Saturating throughput');
    expect(report).toContain('### Latency at a fixed offered rate');
    expect(report).toMatch(/\| floor \(constant object\) \| \*\*[\d,]+\*\* \|/);
    expect(report).toMatch(/\| tokengate, cached token \(memory store\) \| \*\*[\d,]+\*\* \|/);
  }, 120_000);
});
