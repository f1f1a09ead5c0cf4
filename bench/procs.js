// Child processes for the bench: every server under test and the load generator runs in its own
// process, driven over the IPC channel with small request/response messages. Every child started
// here is tracked and killed when the harness exits, however it exits.
import { fork } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

const live = new Set();

function killAll() {
  for (const c of live) {
    try {
      c.proc.kill('SIGKILL');
    } catch {
      /* already gone */
    }
  }
  live.clear();
}
process.once('exit', killAll);
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.once(sig, () => {
    killAll();
    process.exit(130);
  });
}

export class Child {
  /**
   * @param {string} name shown in errors
   * @param {string} script absolute path
   * @param {{args?: string[], execArgv?: string[], env?: Record<string,string>, readyTimeoutMs?: number}} opts
   */
  constructor(name, script, opts = {}) {
    this.name = name;
    this.seq = 0;
    this.pending = new Map();
    this.tail = [];
    this.proc = fork(script, opts.args ?? [], {
      execArgv: opts.execArgv ?? [],
      env: { ...process.env, ...(opts.env ?? {}) },
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    });
    live.add(this);
    const keep = (chunk) => {
      for (const line of String(chunk).split('\n')) if (line.trim()) this.tail.push(line.slice(0, 400));
      if (this.tail.length > 30) this.tail.splice(0, this.tail.length - 30);
    };
    this.proc.stdout.on('data', keep);
    this.proc.stderr.on('data', keep);
    // BENCH_CHILD_LOG_DIR=dir: every line a child prints, prefixed with the epoch ms it was read
    // at, to dir/<name>.log (with --trace-gc-nvp in BENCH_SERVER_FLAGS: each collection's pause
    // and phases, to lay against the slices; FINDINGS, "The stalls in the p99 slices").
    if (process.env.BENCH_CHILD_LOG_DIR) {
      const fd = fs.openSync(path.join(process.env.BENCH_CHILD_LOG_DIR, `${name}.log`), 'a');
      let partial = '';
      const tee = (chunk) => {
        const lines = (partial + chunk).split('\n');
        partial = lines.pop();
        const now = Date.now();
        for (const line of lines) fs.writeSync(fd, `${now} ${line}\n`);
      };
      this.proc.stdout.on('data', tee);
      this.proc.stderr.on('data', tee);
      this.proc.once('exit', () => fs.closeSync(fd));
    }
    this.exited = new Promise((resolve) => {
      this.proc.once('exit', (code, signal) => {
        live.delete(this);
        const err = new Error(`${this.name} exited (code ${code}, signal ${signal}): ${this.tail.slice(-8).join(' | ')}`);
        for (const p of this.pending.values()) p.reject(err);
        this.pending.clear();
        this.readyReject?.(err);
        resolve({ code, signal });
      });
    });
    this.ready = new Promise((resolve, reject) => {
      this.readyReject = reject;
      const t = setTimeout(() => reject(new Error(`${this.name} not ready within ${opts.readyTimeoutMs ?? 60_000} ms: ${this.tail.slice(-8).join(' | ')}`)), opts.readyTimeoutMs ?? 60_000);
      this.proc.on('message', (m) => {
        if (m && m.event === 'ready') {
          clearTimeout(t);
          this.readyReject = undefined;
          resolve(m.info);
        } else if (m && m.event === 'failed') {
          clearTimeout(t);
          this.readyReject = undefined;
          reject(new Error(`${this.name}: ${m.error}`));
        } else if (m && m.id !== undefined) {
          const p = this.pending.get(m.id);
          if (!p) return;
          this.pending.delete(m.id);
          if (m.ok) p.resolve(m.result);
          else p.reject(new Error(`${this.name} ${p.cmd}: ${m.error}`));
        }
      });
    });
    this.ready.catch(() => undefined);
  }

  get pid() {
    return this.proc.pid;
  }

  /** Sends a command; resolves with the child's result. */
  call(cmd, args = {}, timeoutMs = 120_000) {
    const id = ++this.seq;
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`${this.name} ${cmd}: no answer within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, {
        cmd,
        resolve: (v) => { clearTimeout(t); resolve(v); },
        reject: (e) => { clearTimeout(t); reject(e); },
      });
      this.proc.send({ id, cmd, ...args });
    });
  }

  /** Asks the child to stop, then makes sure it has. */
  async stop(graceMs = 5_000) {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    try {
      this.proc.send({ id: 0, cmd: 'stop' });
    } catch {
      /* channel closed */
    }
    const t = setTimeout(() => this.proc.kill('SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(t);
  }
}

/** Child side: answers commands with the handlers given; exits when the parent goes away. */
export function serveParent(handlers) {
  process.on('disconnect', () => process.exit(0));
  process.on('message', async (m) => {
    if (!m || typeof m.cmd !== 'string') return;
    if (m.cmd === 'stop') {
      try {
        await handlers.stop?.();
      } finally {
        process.exit(0);
      }
    }
    const h = handlers[m.cmd];
    try {
      if (!h) throw new Error(`unknown command ${m.cmd}`);
      const result = await h(m);
      process.send({ id: m.id, ok: true, result });
    } catch (err) {
      process.send({ id: m.id, ok: false, error: String(err?.stack ?? err) });
    }
  });
}

export function announceReady(info) {
  process.send({ event: 'ready', info });
}

export function announceFailure(err) {
  process.send({ event: 'failed', error: String(err?.stack ?? err) }, () => process.exit(1));
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * The load generator's own V8 flags (BENCH_LOADGEN_FLAGS overrides; "" = Node's defaults). A
 * young generation larger than what one open-loop slice allocates, emptied by a forced GC before
 * every slice, means the generator does not scavenge inside a measured window: its pauses would
 * land in whichever target's window they fall in (FINDINGS, "A p99 that can judge the target").
 */
export const LOADGEN_EXEC_ARGV = ['--expose-gc', ...(process.env.BENCH_LOADGEN_FLAGS ?? '--min-semi-space-size=64 --max-semi-space-size=64').split(/\s+/).filter(Boolean)];
