// The admin HTTP surface: health, readiness, metrics, token status, and the mutating
// endpoints behind admin.token. Loopback by default. No response ever holds a token.
import http from 'node:http';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import { AdminApi, AdminError, type AdminErrorCode } from './admin-api.js';

/** The translation table from admin errors to HTTP. */
const HTTP_STATUS: Readonly<Record<AdminErrorCode, number>> = {
  unauthenticated: 401,
  disabled: 403,
  not_found: 404,
  invalid: 400,
  failed: 502,
};

export interface AdminHttpDeps {
  readonly api: AdminApi;
  readonly metrics: Metrics;
  readonly logger: Logger;
  readonly live: () => boolean;
  readonly ready: () => boolean;
  /** How long a request's body may take to arrive (default 10 s); then 408 and the connection closes. */
  readonly bodyTimeoutMs?: number;
}

/** No endpoint reads a body: a small one (curl -d '{}') is drained, a larger one refused. */
const MAX_BODY_BYTES = 4_096;
const DEFAULT_BODY_TIMEOUT_MS = 10_000;

type BodyOutcome = 'ok' | 'too_large' | 'timeout';

/**
 * Drains the request body within a deadline. Node's requestTimeout stops guarding a request once
 * its response has started, so a body that never ends would otherwise hold the connection.
 */
function drainBody(req: http.IncomingMessage, timeoutMs: number): Promise<BodyOutcome> {
  if (req.complete) return Promise.resolve('ok');
  return new Promise((resolve) => {
    let bytes = 0;
    const done = (outcome: BodyOutcome) => {
      clearTimeout(timer);
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onEnd);
      if (outcome !== 'ok') req.pause();
      resolve(outcome);
    };
    const onData = (chunk: Buffer) => {
      bytes += chunk.length;
      if (bytes > MAX_BODY_BYTES) done('too_large');
    };
    const onEnd = () => done('ok');
    const timer = setTimeout(() => done('timeout'), timeoutMs);
    req.on('data', onData);
    req.once('end', onEnd);
    req.once('error', onEnd);
  });
}

/** A path segment, or undefined when its percent-escapes are malformed (the client's fault: 400). */
function decodeSegment(segment: string): string | undefined {
  try {
    return decodeURIComponent(segment);
  } catch {
    return undefined;
  }
}

function send(res: http.ServerResponse, status: number, body: unknown, contentType = 'application/json'): void {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  res.writeHead(status, { 'content-type': contentType, 'cache-control': 'no-store', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

export class AdminHttpServer {
  private readonly server: http.Server;

  constructor(private readonly deps: AdminHttpDeps) {
    this.server = http.createServer((req, res) => {
      this.handle(req, res).catch((err: unknown) => {
        deps.logger.error('admin request failed', { path: req.url?.slice(0, 200), error: err });
        if (!res.headersSent) send(res, 500, { error: 'internal_error' });
        else res.destroy();
      });
    });
    this.server.headersTimeout = 10_000;
    this.server.requestTimeout = 30_000;
  }

  async listen(address: string): Promise<string> {
    const i = address.lastIndexOf(':');
    const host = address.slice(0, i).replace(/^\[|\]$/g, '');
    const port = Number(address.slice(i + 1));
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    const a = this.server.address();
    return typeof a === 'object' && a ? `${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}` : address;
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://admin');
    const path = url.pathname;
    const method = req.method ?? 'GET';
    const { api } = this.deps;
    const body = await drainBody(req, this.deps.bodyTimeoutMs ?? DEFAULT_BODY_TIMEOUT_MS);
    if (body !== 'ok') {
      // The rest of the body will not be read: the connection cannot be reused.
      res.setHeader('connection', 'close');
      res.once('finish', () => req.socket.destroy());
      return body === 'timeout'
        ? send(res, 408, { error: 'request_timeout', message: 'the request body did not arrive in time' })
        : send(res, 413, { error: 'invalid', message: `admin endpoints take no request body over ${MAX_BODY_BYTES} bytes` });
    }
    if (method === 'GET' || method === 'HEAD') {
      switch (path) {
        case '/healthz':
          return send(res, this.deps.live() ? 200 : 503, { status: this.deps.live() ? 'ok' : 'stopping' });
        case '/readyz':
          return send(res, this.deps.ready() ? 200 : 503, { status: this.deps.ready() ? 'ready' : 'not_ready' });
        case '/metrics':
          return send(res, 200, this.deps.metrics.render(), 'text/plain; version=0.0.4; charset=utf-8');
        case '/v1/tokens':
          return send(res, 200, api.listTokens());
      }
      return send(res, 404, { error: 'not_found' });
    }
    if (method !== 'POST') return send(res, 405, { error: 'method_not_allowed' });
    const m = /^\/v1\/tokens\/([^/]+)\/(invalidate|refresh)$/.exec(path);
    if (!m && path !== '/v1/reload') return send(res, 404, { error: 'not_found' });
    try {
      api.authorize(req.headers.authorization);
      if (path === '/v1/reload') {
        const outcome = await api.reload();
        return send(res, outcome.ok ? 200 : 400, outcome);
      }
      const provider = decodeSegment(m![1]!);
      if (provider === undefined) return send(res, 400, { error: 'invalid', message: 'malformed percent-escape in the path' });
      if (m![2] === 'invalidate') return send(res, 200, api.invalidate(provider));
      return send(res, 200, await api.refresh(provider));
    } catch (err) {
      if (err instanceof AdminError) {
        const headers = err.code === 'unauthenticated' ? { 'www-authenticate': 'Bearer' } : {};
        res.setHeader('content-type', 'application/json');
        for (const [k, v] of Object.entries(headers)) res.setHeader(k, v);
        return send(res, HTTP_STATUS[err.code], { ...err.details, error: err.code, message: err.message });
      }
      throw err;
    }
  }

  /**
   * Stops listening, lets requests in progress answer (an admin refresh that shutdown waited
   * for still gets its response), then cuts whatever is left after `graceMs`.
   */
  async close(graceMs = 1_000): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeIdleConnections();
    let t: NodeJS.Timeout | undefined;
    await Promise.race([closed, new Promise<void>((resolve) => { t = setTimeout(resolve, graceMs); })]);
    clearTimeout(t);
    this.server.closeAllConnections();
    await closed;
  }
}
