// Real tokengate processes (`node dist/cli.js serve`) for the replica tests: each one is what an
// operator runs, talking to a real Redis and a real IdP on loopback. Build first (`npm run build`).
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { CheckClient, envoyRequest, injected, type CheckResponse } from './envoy-request.js';
import { REPO_ROOT } from './demo-files.js';

export const CLI = path.join(REPO_ROOT, 'dist', 'cli.js');

export type LogLine = Record<string, unknown> & { msg?: string; level?: string };

const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const p of live) p.kill('SIGKILL');
});

export function newKeyPrefix(label: string): string {
  return `tgtest-${label}-${randomBytes(4).toString('hex')}:`;
}

export function newEncryptionKey(): string {
  return randomBytes(32).toString('base64');
}

export class Replica {
  readonly logs: LogLine[] = [];
  readonly stderr: string[] = [];
  grpcAddress = '';
  client!: CheckClient;
  /** Resolves on the `ready` log line (warm-up done, health SERVING). */
  readonly ready: Promise<void>;
  readonly exited: Promise<number | null>;
  private watchers = new Set<() => void>();

  private constructor(readonly name: string, private readonly proc: ChildProcess) {
    live.add(proc);
    this.exited = new Promise((resolve) => proc.once('exit', (code) => {
      live.delete(proc);
      resolve(code);
    }));
    let pending = '';
    proc.stdout!.on('data', (chunk: Buffer) => {
      pending += chunk.toString('utf8');
      let i: number;
      while ((i = pending.indexOf('\n')) >= 0) {
        const line = pending.slice(0, i);
        pending = pending.slice(i + 1);
        try {
          this.logs.push(JSON.parse(line) as LogLine);
        } catch {
          this.logs.push({ msg: '(unparsed)', text: line });
        }
        for (const w of [...this.watchers]) w();
      }
    });
    proc.stderr!.on('data', (chunk: Buffer) => this.stderr.push(chunk.toString('utf8')));
    this.ready = this.waitFor((l) => l.msg === 'ready', 20_000).then(() => undefined);
    this.ready.catch(() => undefined);
  }

  get pid(): number {
    return this.proc.pid!;
  }

  /**
   * Spawns `tokengate serve` with this YAML (listen.grpc should be 127.0.0.1:0) and resolves once
   * its gRPC listener is bound; `ready` follows when warm-up is done.
   */
  static async start(name: string, yaml: string, dir: string): Promise<Replica> {
    if (!fs.existsSync(CLI)) throw new Error(`${CLI} is missing: run \`npm run build\` first`);
    const file = path.join(dir, `${name}.yaml`);
    fs.writeFileSync(file, yaml);
    const proc = spawn(process.execPath, [CLI, 'serve', '--config', file], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NODE_ENV: 'test' } });
    const r = new Replica(name, proc);
    void r.exited.then(() => r.saveLogs(dir));
    const listening = await r.waitFor((l) => l.msg === 'tokengate listening', 20_000);
    r.grpcAddress = String(listening.grpc);
    r.client = new CheckClient(r.grpcAddress);
    return r;
  }

  /** The first log line (past or future) that matches, bounded. */
  waitFor(pred: (l: LogLine) => boolean, timeoutMs = 10_000): Promise<LogLine> {
    const found = this.logs.find(pred);
    if (found) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const check = () => {
        const hit = this.logs.find(pred);
        if (hit) finish(() => resolve(hit));
      };
      const finish = (fn: () => void) => {
        clearTimeout(timer);
        this.watchers.delete(check);
        fn();
      };
      const timer = setTimeout(() => finish(() => reject(new Error(`${this.name}: no matching log line within ${timeoutMs} ms; stderr: ${this.stderr.join('').slice(-2000)}`))), timeoutMs);
      this.watchers.add(check);
      void this.exited.then((code) => finish(() => reject(new Error(`${this.name} exited (${code}) before the log line; stderr: ${this.stderr.join('').slice(-2000)}`))));
    });
  }

  /** Keeps the replica's log next to its config (a failed run can be read afterwards). */
  saveLogs(dir: string): void {
    try {
      fs.writeFileSync(path.join(dir, `${this.name}.log`), `${this.logs.map((l) => JSON.stringify(l)).join('\n')}\n${this.stderr.join('')}`);
    } catch {
      // the directory is gone (cleaned up): nothing to keep
    }
  }

  kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<number | null> {
    this.client?.close();
    this.proc.kill(signal);
    return this.exited;
  }

  /** SIGTERM (graceful), SIGKILL if it is not gone within the deadline. */
  async stop(deadlineMs = 5_000): Promise<void> {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    this.client?.close();
    this.proc.kill('SIGTERM');
    const t = setTimeout(() => this.proc.kill('SIGKILL'), deadlineMs);
    await this.exited;
    clearTimeout(t);
  }
}

export function tmpDir(label: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `tokengate-${label}-`));
}

/** Removes a test's configs and replica logs, unless TOKENGATE_KEEP_TEST_LOGS=1 (to read them). */
export function removeTmpDir(dir: string): void {
  if (process.env.TOKENGATE_KEEP_TEST_LOGS === '1') {
    process.stderr.write(`replica logs kept in ${dir}\n`);
    return;
  }
  fs.rmSync(dir, { recursive: true, force: true });
}

/** Deletes a test's keys from a shared Redis (records with refresh tokens live for 30 days). */
export async function deleteKeys(url: string, keyPrefix: string): Promise<void> {
  const client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await client.connect();
    const keys = await client.keys(`${keyPrefix}*`);
    if (keys.length) await client.del(...keys);
  } catch {
    // best effort: a stopped Redis has nothing to clean
  } finally {
    client.disconnect();
  }
}

export interface BurstResult {
  ok: number;
  failed: number;
  /** Injected header values seen (e.g. "Bearer …"). */
  tokens: Set<string>;
  failures: string[];
}

/** `n` concurrent Checks on one replica. */
export async function burst(client: CheckClient, n: number, authority = 'api.example.com'): Promise<BurstResult> {
  const req = envoyRequest({ authority });
  const settled = await Promise.allSettled(Array.from({ length: n }, () => client.check(req, 10_000)));
  const out: BurstResult = { ok: 0, failed: 0, tokens: new Set(), failures: [] };
  for (const s of settled) {
    if (s.status === 'rejected') {
      out.failed++;
      out.failures.push(`grpc: ${(s.reason as Error).message}`);
      continue;
    }
    const res: CheckResponse = s.value;
    const value = injected(res)?.header?.value;
    if ((res.status?.code ?? 0) === 0 && value) {
      out.ok++;
      out.tokens.add(value);
    } else {
      out.failed++;
      out.failures.push(`status ${res.status?.code}: ${res.denied_response?.body ?? ''}`);
    }
  }
  return out;
}

export function merge(results: BurstResult[]): BurstResult {
  const out: BurstResult = { ok: 0, failed: 0, tokens: new Set(), failures: [] };
  for (const r of results) {
    out.ok += r.ok;
    out.failed += r.failed;
    for (const t of r.tokens) out.tokens.add(t);
    out.failures.push(...r.failures);
  }
  return out;
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** YAML for one replica: one client_credentials (or given) provider on the Redis store. */
export function replicaYaml(opts: {
  redisUrl: string;
  keyPrefix: string;
  encryptionKey: string;
  source: string;
  refresh?: string;
  resilience?: string;
  logLevel?: string;
  redisExtra?: string;
}): string {
  return `
listen: { grpc: "127.0.0.1:0", admin: "off" }
store:
  type: redis
  redis: { url: "${opts.redisUrl}", keyPrefix: "${opts.keyPrefix}"${opts.redisExtra ? `, ${opts.redisExtra}` : ''} }
  encryptionKey: "${opts.encryptionKey}"
log: { level: ${opts.logLevel ?? process.env.TOKENGATE_TEST_LOG_LEVEL ?? 'info'} }
shutdown: { deadline: 3s }
providers:
  p:
    source: ${opts.source}
    refresh: ${opts.refresh ?? '{ waitBudget: 3s }'}
    resilience: ${opts.resilience ?? '{ timeout: 2s, retries: 1, backoff: { base: 100ms, max: 500ms } }'}
routes:
  - match: { authority: api.example.com }
    provider: p
`;
}
