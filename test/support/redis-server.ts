// A private redis-server for tests that stop, hang or restart Redis: never the shared one.
// No persistence (a restart comes back empty, like a Redis that lost its data).
import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

function ping(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    let buf = '';
    const done = (ok: boolean) => {
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(300, () => done(false));
    s.once('connect', () => s.write('PING\r\n'));
    s.on('data', (d) => {
      buf += d.toString();
      if (buf.includes('\r\n')) done(buf.startsWith('+PONG'));
    });
    s.once('error', () => done(false));
  });
}

const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const p of live) p.kill('SIGKILL');
});

export interface RedisServerOptions {
  /** A config file, passed first (Sentinel needs one it can rewrite). */
  readonly configFile?: string;
  /** More arguments, e.g. ['--sentinel'] or ['--cluster-enabled', 'yes']. */
  readonly args?: readonly string[];
  readonly cwd?: string;
}

export class RedisServer {
  private proc: ChildProcess | undefined;

  private constructor(readonly port: number, private readonly opts: RedisServerOptions) {}

  static async start(port?: number, opts: RedisServerOptions = {}): Promise<RedisServer> {
    const s = new RedisServer(port ?? (await freePort()), opts);
    await s.start();
    return s;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}/0`;
  }

  get running(): boolean {
    return this.proc !== undefined;
  }

  /** Starts (again) on the same port and waits until it answers PING. */
  async start(): Promise<void> {
    if (this.proc) return;
    const args = [
      ...(this.opts.configFile ? [this.opts.configFile] : []),
      '--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--loglevel', 'warning',
      ...(this.opts.args ?? []),
    ];
    const proc = spawn('redis-server', args, { stdio: 'ignore', ...(this.opts.cwd ? { cwd: this.opts.cwd } : {}) });
    this.proc = proc;
    live.add(proc);
    proc.once('exit', () => {
      live.delete(proc);
      if (this.proc === proc) this.proc = undefined;
    });
    const until = Date.now() + 5_000;
    while (Date.now() < until) {
      if (await ping(this.port)) return;
      await new Promise((r) => setTimeout(r, 25));
    }
    throw new Error(`redis-server on port ${this.port} did not come up`);
  }

  /** Kills the server (SIGKILL by default: a crash, not a goodbye) and waits for it to exit. */
  async stop(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const proc = this.proc;
    if (!proc) return;
    const exited = new Promise<void>((r) => proc.once('exit', () => r()));
    proc.kill(signal);
    await exited;
  }

  /** SIGSTOP: the socket stays open, nothing answers (a hung server). */
  pause(): void {
    this.proc?.kill('SIGSTOP');
  }

  resume(): void {
    this.proc?.kill('SIGCONT');
  }
}
