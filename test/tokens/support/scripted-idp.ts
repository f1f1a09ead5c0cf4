// A loopback token endpoint that answers from a script, one answer per request, and notes
// when (on the test's clock) and with what body each request arrived. The unit tests of the
// token layer use it to put exact answers (a 503 with Retry-After, a refusal, a hang) in front
// of the fetcher and the coordinator.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Clock } from '../../../src/clock.js';

export type Answer =
  | { readonly token: string; readonly expiresIn?: number; readonly refreshToken?: string }
  | { readonly status: number; readonly body?: Record<string, unknown>; readonly headers?: Record<string, string> }
  | { readonly hang: true };

export interface SeenRequest {
  /** The test clock's time when the request arrived. */
  readonly at: number;
  readonly body: URLSearchParams;
}

export class ScriptedIdp {
  readonly seen: SeenRequest[] = [];
  private readonly script: Answer[] = [];
  private readonly server: http.Server;
  /** Answer when the script is empty. */
  fallback: Answer = { status: 503, body: { error: 'temporarily_unavailable' } };

  constructor(private readonly clock: Clock) {
    this.server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        this.seen.push({ at: this.clock.now(), body: new URLSearchParams(Buffer.concat(chunks).toString('utf8')) });
        this.answer(this.script.shift() ?? this.fallback, res);
      });
    });
  }

  /** Queues answers for the next requests, in order. */
  answers(...answers: Answer[]): this {
    this.script.push(...answers);
    return this;
  }

  get requests(): number {
    return this.seen.length;
  }

  async start(): Promise<this> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', () => resolve()));
    return this;
  }

  get tokenUrl(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/oauth2/token`;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private answer(a: Answer, res: http.ServerResponse): void {
    if ('hang' in a) return; // never answered: the caller's timeout or abort ends it
    if ('token' in a) {
      res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' });
      res.end(JSON.stringify({ access_token: a.token, token_type: 'Bearer', expires_in: a.expiresIn ?? 300, ...(a.refreshToken ? { refresh_token: a.refreshToken } : {}) }));
      return;
    }
    res.writeHead(a.status, { 'content-type': 'application/json', ...a.headers });
    res.end(JSON.stringify(a.body ?? {}));
  }
}

/** Lets pending I/O and promise callbacks run (real time). */
export const settle = (ms = 50) => new Promise<void>((r) => setTimeout(r, ms));
