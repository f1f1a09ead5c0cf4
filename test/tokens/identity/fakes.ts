// Loopback fakes for the workload-identity endpoints: each records what it was sent (method,
// path, headers, form or JSON body, the client certificate) and answers what the test says.
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';

export interface Seen {
  readonly method: string;
  readonly url: URL;
  readonly headers: http.IncomingHttpHeaders;
  readonly body: string;
  readonly form: Record<string, string>;
  /** sha256 fingerprint of the client certificate, when one was presented. */
  readonly clientCert?: string;
}

export interface Answer {
  readonly status?: number;
  readonly body?: unknown;
  readonly headers?: Record<string, string>;
  /** Never answer (a hanging endpoint). */
  readonly hang?: boolean;
}

export type Handler = (req: Seen) => Answer | Promise<Answer>;

export class FakeEndpoint {
  readonly requests: Seen[] = [];
  private readonly sockets = new Set<import('node:net').Socket>();

  private constructor(private readonly server: http.Server | https.Server, readonly origin: string) {
    server.on('connection', (s) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
  }

  static async start(handler: Handler, tls?: https.ServerOptions): Promise<FakeEndpoint> {
    let self: FakeEndpoint | undefined;
    const listener = (req: http.IncomingMessage, res: http.ServerResponse) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        const peer = tls ? (req.socket as TLSSocket).getPeerCertificate() : undefined;
        const seen: Seen = {
          method: req.method ?? '',
          url: new URL(req.url ?? '/', self!.origin),
          headers: req.headers,
          body,
          form: String(req.headers['content-type'] ?? '').includes('form') ? Object.fromEntries(new URLSearchParams(body)) : {},
          ...(peer && peer.fingerprint256 ? { clientCert: peer.fingerprint256 } : {}),
        };
        self!.requests.push(seen);
        void Promise.resolve(handler(seen)).then((a) => {
          if (a.hang) return;
          const text = typeof a.body === 'string' ? a.body : JSON.stringify(a.body ?? {});
          res.writeHead(a.status ?? 200, { 'content-type': typeof a.body === 'string' ? 'text/html' : 'application/json', ...a.headers });
          res.end(text);
        });
      });
    };
    const server = tls ? https.createServer(tls, listener) : http.createServer(listener);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as AddressInfo).port;
    self = new FakeEndpoint(server, `${tls ? 'https' : 'http'}://127.0.0.1:${port}`);
    return self;
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/** An unsigned-looking but well-formed JWT with the given claims (the fakes do not verify). */
export function fakeJwt(claims: Record<string, unknown>): string {
  const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
  return `${b64({ alg: 'RS256', typ: 'JWT' })}.${b64(claims)}.${Buffer.from('signature').toString('base64url')}`;
}
