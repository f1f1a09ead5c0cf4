/**
 * DEMO echo upstream — NOT FOR PRODUCTION.
 *
 * Stands behind Envoy in the demo and in integration tests so one can see exactly which
 * headers tokengate injected. Every request is answered 200 with
 *   {"method", "path", "headers", "rawHeaders"}
 * `headers` is Node's merged view; `rawHeaders` ([name, value] pairs, as received) shows
 * duplicates, which matters when asserting that a credential was replaced, not appended.
 *
 * To demo tokengate's upstream-401 feedback it can reject requests:
 *   POST /control/reject  {"count": N}   the next N non-control requests get
 *                                         401 {"error":"invalid_token"}
 *   POST /control/reset                   clears the log and all rejections
 *   curl -XPOST localhost:8081/control/reject -d '{"count":1}'
 * or programmatically: rejectNext(n), rejectTokens(tokens) (bearer tokens always rejected).
 */
import type http from 'node:http';
import { DemoHttpServer, isTooLarge, readBody, sendJson } from './http-server.js';

export interface EchoRequestRecord {
  method: string;
  path: string;
  headers: http.IncomingHttpHeaders;
  status: number;
}

export class EchoUpstream extends DemoHttpServer {
  /** Non-control requests, in arrival order. */
  readonly requests: EchoRequestRecord[] = [];
  private rejectCount = 0;
  private rejected = new Set<string>();

  constructor(opts: { host?: string; port?: number } = {}) {
    super(opts);
  }

  /** The next `n` non-control requests are answered 401 (replaces any pending count). */
  rejectNext(n: number): void {
    if (!Number.isInteger(n) || n < 0) throw new Error('reject count must be an integer >= 0');
    this.rejectCount = n;
  }
  get pendingRejects(): number {
    return this.rejectCount;
  }
  /** Requests bearing any of these bearer tokens are answered 401 until reset(). */
  rejectTokens(tokens: Iterable<string>): void {
    this.rejected = new Set(tokens);
  }
  reset(): void {
    this.requests.length = 0;
    this.rejectCount = 0;
    this.rejected.clear();
  }

  protected async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const path = req.url ?? '/';
    if (path.startsWith('/control/')) return this.control(path.split('?')[0] ?? '', req, res);

    const method = req.method ?? 'GET';
    const rec: EchoRequestRecord = { method, path, headers: req.headers, status: 200 };
    this.requests.push(rec);
    if (this.shouldReject(req.headers.authorization)) {
      rec.status = 401;
      return sendJson(res, 401, { error: 'invalid_token' }, { 'www-authenticate': 'Bearer error="invalid_token"' });
    }
    const rawHeaders: Array<[string, string]> = [];
    for (let i = 0; i + 1 < req.rawHeaders.length; i += 2) rawHeaders.push([req.rawHeaders[i] ?? '', req.rawHeaders[i + 1] ?? '']);
    sendJson(res, 200, { method, path, headers: req.headers, rawHeaders });
  }

  private shouldReject(authorization: string | undefined): boolean {
    if (this.rejectCount > 0) {
      this.rejectCount--;
      return true;
    }
    const m = authorization ? /^bearer\s+(.+)$/i.exec(authorization) : null;
    return m?.[1] !== undefined && this.rejected.has(m[1].trim());
  }

  private async control(path: string, req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const route = `${req.method} ${path}`;
    if (route === 'POST /control/reset') {
      this.reset();
      return sendJson(res, 200, { ok: true });
    }
    if (route !== 'POST /control/reject') return sendJson(res, 404, { error: 'not_found' });
    const body = await readBody(req);
    if (isTooLarge(body)) return sendJson(res, 413, { error: 'body over 64 KiB' });
    try {
      const parsed: unknown = JSON.parse(body.toString('utf8'));
      const count = (parsed as { count?: unknown } | null)?.count;
      this.rejectNext(count as number);
    } catch (err) {
      const msg = err instanceof SyntaxError ? 'body must be JSON' : (err as Error).message;
      return sendJson(res, 400, { error: 'invalid_request', error_description: msg });
    }
    sendJson(res, 200, { ok: true, pendingRejects: this.rejectCount });
  }
}
