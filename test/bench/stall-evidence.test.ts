// What bench/stalls.js lays a stall against must be right: the load generator's `times` output
// (each recorded call's send time, call index and the schedule's origin) and the children's
// output teed with epoch stamps (BENCH_CHILD_LOG_DIR). No speed is asserted.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const root = path.resolve(import.meta.dirname, '../..');
const logDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tokengate-stall-evidence-'));
process.env.BENCH_CHILD_LOG_DIR = logDir;
// procs.js reads BENCH_CHILD_LOG_DIR per child; imported after it is set.
const { Child } = (await import(path.join(root, 'bench/procs.js'))) as {
  Child: new (name: string, script: string, opts?: { args?: string[]; execArgv?: string[] }) => {
    ready: Promise<{ address: string; pid: number }>;
    call: (cmd: string, args?: Record<string, unknown>) => Promise<unknown>;
    stop: () => Promise<void>;
  };
};

interface Timed {
  samples: number[];
  lagSamples: number[];
  sentAt: number[];
  sentIndex: number[];
  startedAt: number;
  errors: number;
}

describe('stall evidence', () => {
  const limit = new Child('limit', path.join(root, 'bench/target.js'), { args: ['floor-h2'], execArgv: ['--trace-gc'] });
  const lg = new Child('loadgen', path.join(root, 'bench/loadgen.js'));
  afterAll(async () => {
    await Promise.all([limit.stop(), lg.stop()]);
    fs.rmSync(logDir, { recursive: true, force: true });
  });

  it('times: every recorded call has its send time, its own call index, and sits on the schedule from startedAt', async () => {
    const { address } = await limit.ready;
    await lg.ready;
    await lg.call('connect', { key: 'l', address, channels: 3, client: 'raw' });
    const rate = 1000;
    const warmupMs = 50;
    const r = (await lg.call('open', { key: 'l', init: { size: '0.4k' }, rate, durationMs: 200, warmupMs, times: true })) as Timed;
    expect(r.errors).toBe(0);
    const n = r.samples.length;
    expect(n).toBe(200);
    expect(r.sentAt).toHaveLength(n);
    expect(r.sentIndex).toHaveLength(n);
    // Each call once, none of the warm-up's.
    const skip = (rate * warmupMs) / 1000;
    expect(new Set(r.sentIndex).size).toBe(n);
    expect(Math.min(...r.sentIndex)).toBe(skip);
    expect(Math.max(...r.sentIndex)).toBe(skip + n - 1);
    // sentAt = the schedule's origin + the call's slot + its lag (epoch ms, rounded to µs).
    const interval = 1000 / rate;
    r.sentAt.forEach((at, k) => expect(Math.abs(at - (r.startedAt + (r.sentIndex[k] ?? NaN) * interval + (r.lagSamples[k] ?? NaN)))).toBeLessThan(0.01));
    expect(Math.abs(r.startedAt - Date.now())).toBeLessThan(60_000);
  });

  it('BENCH_CHILD_LOG_DIR: a child\'s output lines land in <dir>/<name>.log, each with the epoch ms it was read at', async () => {
    await limit.call('memory'); // a forced full GC: --trace-gc prints a Mark-Compact line
    const deadline = Date.now() + 5_000;
    let lines: string[] = [];
    while (Date.now() < deadline) {
      lines = fs.readFileSync(path.join(logDir, 'limit.log'), 'utf8').split('\n').filter((l) => l.includes('Mark-Compact'));
      if (lines.length) break;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    expect(lines.length).toBeGreaterThan(0);
    const stamp = Number(lines[0]?.split(' ')[0]);
    expect(Math.abs(stamp - Date.now())).toBeLessThan(60_000);
  });
});
