// Plumbing shared by the demo servers (token server, echo upstream): port 0 by default, bodies
// capped, and a stop() that never hangs on open or hung sockets.
import http from 'node:http';
import type { Socket } from 'node:net';

export const MAX_BODY_BYTES = 64 * 1024;


export const TOO_LARGE: unique symbol = Symbol('too large');

/** Reads the body up to `limit` bytes; past that it stops buffering and lets the rest drain. */
export function readBody(req: http.IncomingMessage, limit = MAX_BODY_BYTES): Promise<Buffer | typeof TOO_LARGE> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) return Promise.resolve(TOO_LARGE);
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        // Keep reading (and discarding) so the client sees our 413 rather than a reset.
        req.removeAllListeners('data');
        req.resume();
        resolve(TOO_LARGE);
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    // An aborted upload is answered with whatever arrived; the socket is gone anyway.
    req.on('error', () => resolve(Buffer.concat(chunks)));
  });
}
export function isTooLarge(b: Buffer | typeof TOO_LARGE): b is typeof TOO_LARGE {
  return b === TOO_LARGE;
}

export function sendJson(res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  if (res.headersSent || res.destroyed) return;
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'cache-control': 'no-store',
    pragma: 'no-cache',
    'content-length': Buffer.byteLength(text),
    ...headers,
  });
  res.end(text);
}

/** Lifecycle shared by the demo servers: port 0 by default, and a stop() that never hangs. */
export abstract class DemoHttpServer {
  private readonly server: http.Server;
  private readonly sockets = new Set<Socket>();
  private readonly sleepers = new Set<() => void>();
  private baseUrl: string | undefined;
  private boundPort: number | undefined;
  private readonly host: string;
  private readonly port: number;

  protected constructor(opts: { host?: string | undefined; port?: number | undefined }) {
    this.host = opts.host ?? '127.0.0.1';
    this.port = opts.port ?? 0;
    this.server = http.createServer((req, res) => {
      this.handle(req, res).catch(() => {
        // A bug here must not take the test run down; answer 500 if we still can.
        if (!res.headersSent) sendJson(res, 500, { error: 'server_error' });
        else res.destroy();
      });
    });
    this.server.on('connection', (socket) => {
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
    });
  }

  protected abstract handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void>;

  /**
   * Listens and resolves the base URL, e.g. `http://127.0.0.1:41234`. After stop(), start()
   * binds the same port again, so a test can take the IdP down and bring it back at one URL.
   */
  async start(): Promise<string> {
    if (this.server.listening && this.baseUrl) return this.baseUrl;
    const port = this.boundPort ?? this.port;
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, this.host, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    const addr = this.server.address();
    if (addr === null || typeof addr === 'string') throw new Error('demo server: unexpected listen address');
    this.boundPort = addr.port;
    // A wildcard bind is reachable on loopback; an explicit host is used as given.
    const wildcard = this.host === '0.0.0.0' || this.host === '::';
    const host = wildcard ? '127.0.0.1' : this.host.includes(':') ? `[${this.host}]` : this.host;
    this.baseUrl = `http://${host}:${addr.port}`;
    return this.baseUrl;
  }

  /** Closes the listener and destroys every socket, hung requests included. */
  async stop(): Promise<void> {
    if (!this.server.listening) return;
    for (const wake of this.sleepers) wake();
    this.sleepers.clear();
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const socket of this.sockets) socket.destroy();
    await closed;
  }

  get url(): string {
    if (!this.baseUrl) throw new Error('demo server not started');
    return this.baseUrl;
  }

  /** Resolves true after `ms`, or false at once when stop() runs, so delays never outlive it. */
  protected sleep(ms: number): Promise<boolean> {
    return new Promise((resolve) => {
      const wake = (): void => {
        clearTimeout(timer);
        resolve(false);
      };
      const timer = setTimeout(() => {
        this.sleepers.delete(wake);
        resolve(true);
      }, ms);
      this.sleepers.add(wake);
    });
  }
}

