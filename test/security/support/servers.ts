// Small loopback servers for the security tests: an https token endpoint with a chosen
// certificate, and hostile plain-http endpoints (oversized bodies, echoing IdPs).
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';

export type Handler = (req: http.IncomingMessage, body: string, res: http.ServerResponse) => void;

export class LoopbackServer {
  requests = 0;
  private constructor(private readonly server: http.Server | https.Server, readonly scheme: 'http' | 'https') {}

  static http(handler: Handler): LoopbackServer {
    let self: LoopbackServer | undefined;
    const server = http.createServer((req, res) => collect(req, (body) => { self!.requests++; handler(req, body, res); }));
    self = new LoopbackServer(server, 'http');
    return self;
  }

  static https(options: https.ServerOptions, handler: Handler): LoopbackServer {
    let self: LoopbackServer | undefined;
    const server = https.createServer(options, (req, res) => collect(req, (body) => { self!.requests++; handler(req, body, res); }));
    self = new LoopbackServer(server, 'https');
    return self;
  }

  async start(): Promise<this> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', () => resolve()));
    return this;
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  /** The token URL on 127.0.0.1 with this server's scheme (or the one given). */
  tokenUrl(scheme: 'http' | 'https' = this.scheme): string {
    return `${scheme}://127.0.0.1:${this.port}/oauth2/token`;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

function collect(req: http.IncomingMessage, done: (body: string) => void): void {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => done(Buffer.concat(chunks).toString('utf8')));
}

export function sendToken(res: http.ServerResponse, accessToken: string): void {
  res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' });
  res.end(JSON.stringify({ access_token: accessToken, token_type: 'Bearer', expires_in: 300 }));
}
