/**
 * DEMO OAuth2 token server — NOT FOR PRODUCTION.
 *
 * A programmable IdP for the test suite and the docker-compose demo. It keeps all state in
 * memory, its control plane is unauthenticated, and it misbehaves on request; that is its job.
 *
 * HTTP surface (one node:http server):
 *   POST /oauth2/token        application/x-www-form-urlencoded only. Grants:
 *                               client_credentials (client_secret_basic | client_secret_post |
 *                                 private_key_jwt),
 *                               refresh_token (rotation + reuse detection that revokes the family),
 *                               urn:ietf:params:oauth:grant-type:jwt-bearer (RFC 7523 §2.1).
 *   POST /control/behaviour   body: one Behaviour as JSON, or a JSON array = a sequence consumed
 *                             one per token request, then {"kind":"ok"}. Examples:
 *                               curl -XPOST localhost:8080/control/behaviour -d '{"kind":"status","status":500}'
 *                               curl -XPOST localhost:8080/control/behaviour -d '[{"kind":"hang"},{"kind":"ok"}]'
 *                               curl -XPOST localhost:8080/control/behaviour -d '{"kind":"ok"}'
 *   GET  /control/stats       counters only — never a token value.
 *   POST /control/reset       clears counters and the request log, restores {"kind":"ok"}.
 *   GET  /healthz             200 {"status":"ok"} (for compose health checks).
 * Bodies are capped at 64 KiB (413). Content-Type is not checked on /control (curl -d sends
 * a form content type).
 */
import type http from 'node:http';
import { createHash, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import { SignJWT, decodeJwt, jwtVerify, type KeyInput } from 'jose';
import { parseBehaviour, type Behaviour } from './behaviour.js';
import { DemoHttpServer, isTooLarge, readBody, sendJson } from './http-server.js';

export { parseBehaviour, type Behaviour } from './behaviour.js';
export { MAX_BODY_BYTES } from './http-server.js';

export const TOKEN_PATH = '/oauth2/token';
export const CLIENT_ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
export const JWT_BEARER_GRANT = 'urn:ietf:params:oauth:grant-type:jwt-bearer';


export interface DemoClient {
  /** For client_secret_basic / client_secret_post. */
  secret?: string;
  /** For private_key_jwt, and for jwt-bearer assertions whose `iss` is this client id. */
  publicKey?: KeyInput;
}

export interface DemoTokenServerOptions {
  host?: string;
  port?: number;
  /** Milliseconds since the epoch; drives `at`, JWT iat/exp and assertion exp checks. */
  now?: () => number;
  tokenTtlSeconds?: number;
  /** Leave `expires_in` out of responses (a JWT access token still carries `exp`). */
  omitExpiresIn?: boolean;
  tokenFormat?: 'opaque' | 'jwt';
  /** Default: `{ "demo-client": { secret: "demo-secret" } }`. */
  clients?: Record<string, DemoClient>;
  /** Initially valid refresh tokens, each the root of its own family. */
  refreshTokens?: string[];
  /**
   * Reuse grace (Auth0's reuse interval, Okta's grace period): a spent refresh token presented
   * again within this many ms of its first presentation gets the same successor, not a revoked
   * family. Default 0: any reuse revokes the family.
   */
  reuseIntervalMs?: number;
  /** jwt-bearer grant keys by assertion `iss` (public key, or a Uint8Array secret for HS256). */
  jwtBearerKeys?: Record<string, KeyInput>;
  /** HS256 key for `tokenFormat: 'jwt'`; random when absent. */
  jwtSigningKey?: Uint8Array;
  /** Called once per token request when it is settled (answered, hung or reset). */
  onRequest?: (record: TokenRequestRecord) => void;
}

export type AuthMethod = 'client_secret_basic' | 'client_secret_post' | 'private_key_jwt' | 'none';

export interface TokenRequestRecord {
  at: number;
  grantType: string | undefined;
  /** As claimed by the request, before verification. */
  clientId: string | undefined;
  authMethod: AuthMethod;
  /** Secrets, assertions and refresh tokens are replaced by "[redacted]". */
  form: Record<string, string>;
  /** Behaviour kind while pending or when a behaviour answered; else issued/error. */
  outcome: 'issued' | 'error' | Exclude<Behaviour['kind'], 'ok'>;
  /** null while pending, or when no HTTP answer was sent (hang, reset). */
  status: number | null;
}

export type RefreshTokenState = 'valid' | 'spent' | 'revoked' | 'unknown';

interface Reply {
  status: number;
  body: unknown;
  headers?: Record<string, string>;
}

const REDACTED_FIELDS = new Set(['client_secret', 'client_assertion', 'assertion', 'refresh_token', 'password', 'code', 'code_verifier']);

const oauthError = (status: number, error: string, description?: string, headers?: Record<string, string>): Reply => ({
  status,
  body: description === undefined ? { error } : { error, error_description: description },
  ...(headers ? { headers } : {}),
});

const digest = (s: string): Buffer => createHash('sha256').update(s).digest();
// Constant-time even in a demo, so nobody copies a timing leak out of it.
const secretsEqual = (a: string, b: string): boolean => timingSafeEqual(digest(a), digest(b));

/** RFC 6749 §2.3.1: id and secret are form-urlencoded before Basic encoding. */
function formDecode(s: string): string {
  return decodeURIComponent(s.replace(/\+/g, ' '));
}

type ClientAuth =
  | { kind: 'none'; clientId: string | undefined }
  | { kind: 'ok'; clientId: string; method: AuthMethod }
  | { kind: 'fail'; reply: Reply };

export class DemoTokenServer extends DemoHttpServer {
  readonly requests: TokenRequestRecord[] = [];
  readonly issuedAccessTokens: string[] = [];
  readonly issuedRefreshTokens: string[] = [];
  /** HS256 key that verifies `tokenFormat: 'jwt'` access tokens. */
  readonly verificationKey: Uint8Array;
  tokenFormat: 'opaque' | 'jwt';
  omitExpiresIn: boolean;

  private readonly now: () => number;
  private readonly onRequest: ((record: TokenRequestRecord) => void) | undefined;
  private readonly clients = new Map<string, DemoClient>();
  private readonly jwtBearerKeys: Map<string, KeyInput>;
  private ttlSeconds: number;
  private behaviour: Behaviour = { kind: 'ok' };
  private sequence: Behaviour[] = [];
  private afterSequence: Behaviour = { kind: 'ok' };
  private invalidGrants = 0;
  private reuses = 0;
  private readonly refresh = new Map<string, { family: number; state: 'valid' | 'spent' | 'revoked'; subject: string; firstAt?: number; successor?: string }>();
  /** How often each refresh token was presented (kept across reset(), like the token state). */
  private readonly presented = new Map<string, number>();
  reuseIntervalMs: number;
  private readonly families = new Map<number, string[]>();
  private nextFamily = 1;
  private readonly seenJti = new Set<string>();
  private waiters: Array<{ n: number; resolve: () => void }> = [];

  constructor(opts: DemoTokenServerOptions = {}) {
    super(opts);
    this.now = opts.now ?? Date.now;
    this.onRequest = opts.onRequest;
    this.reuseIntervalMs = opts.reuseIntervalMs ?? 0;
    this.ttlSeconds = opts.tokenTtlSeconds ?? 300;
    this.omitExpiresIn = opts.omitExpiresIn ?? false;
    this.tokenFormat = opts.tokenFormat ?? 'opaque';
    this.verificationKey = opts.jwtSigningKey ?? new Uint8Array(randomBytes(32));
    for (const [id, c] of Object.entries(opts.clients ?? { 'demo-client': { secret: 'demo-secret' } })) this.clients.set(id, c);
    this.jwtBearerKeys = new Map(Object.entries(opts.jwtBearerKeys ?? {}));
    for (const t of opts.refreshTokens ?? []) this.addRefreshToken(t);
  }

  get tokenUrl(): string {
    return this.url + TOKEN_PATH;
  }
  get tokenRequestCount(): number {
    return this.requests.length;
  }
  get invalidGrantCount(): number {
    return this.invalidGrants;
  }
  get reuseDetectedCount(): number {
    return this.reuses;
  }
  get tokenTtlSeconds(): number {
    return this.ttlSeconds;
  }

  setTokenTtl(seconds: number): void {
    if (!Number.isFinite(seconds) || seconds < 0) throw new Error('token TTL must be a finite number >= 0');
    this.ttlSeconds = seconds;
  }
  setClient(id: string, client: DemoClient): void {
    this.clients.set(id, client);
  }
  setJwtBearerKey(issuer: string, key: KeyInput): void {
    this.jwtBearerKeys.set(issuer, key);
  }
  /** Makes `token` a valid refresh token, the root of a new family. */
  addRefreshToken(token: string, subject = 'demo-user'): void {
    const family = this.nextFamily++;
    this.families.set(family, [token]);
    this.refresh.set(token, { family, state: 'valid', subject });
  }
  refreshTokenState(token: string): RefreshTokenState {
    return this.refresh.get(token)?.state ?? 'unknown';
  }
  /** How many times `token` was presented in a refresh_token grant. */
  presentations(token: string): number {
    return this.presented.get(token) ?? 0;
  }
  /** The highest number of presentations of any one refresh token (1 = never reused). */
  get maxPresentations(): number {
    return Math.max(0, ...this.presented.values());
  }
  /** True when reuse detection revoked any family. */
  get anyFamilyRevoked(): boolean {
    return [...this.refresh.values()].some((e) => e.state === 'revoked');
  }

  /** Applies to every following token request; cancels any pending sequence. */
  setBehaviour(b: Behaviour): void {
    this.behaviour = parseBehaviour(b);
    this.sequence = [];
  }
  /** One behaviour per token request, then `then` (default ok) for all later requests. */
  setBehaviourSequence(seq: Behaviour[], then: Behaviour = { kind: 'ok' }): void {
    const parsed = seq.map(parseBehaviour);
    this.afterSequence = parseBehaviour(then);
    this.sequence = parsed;
    if (this.sequence.length === 0) this.behaviour = this.afterSequence;
  }
  get currentBehaviour(): Behaviour {
    return this.sequence[0] ?? this.behaviour;
  }

  /** Clears the request log and counters. Refresh-token and jti state are kept on purpose. */
  reset(): void {
    this.requests.length = 0;
    this.issuedAccessTokens.length = 0;
    this.issuedRefreshTokens.length = 0;
    this.invalidGrants = 0;
    this.reuses = 0;
  }

  /** Resolves with the log once at least `n` token requests have arrived. */
  waitForRequests(n: number, timeoutMs = 5000): Promise<TokenRequestRecord[]> {
    if (this.requests.length >= n) return Promise.resolve(this.requests);
    return new Promise((resolve, reject) => {
      const waiter = {
        n,
        resolve: (): void => {
          clearTimeout(timer);
          resolve(this.requests);
        },
      };
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        reject(new Error(`waited ${timeoutMs} ms for ${n} token requests, saw ${this.requests.length}`));
      }, timeoutMs);
      this.waiters.push(waiter);
    });
  }

  stats(): Record<string, unknown> {
    const outcomes: Record<string, number> = {};
    for (const r of this.requests) outcomes[r.outcome] = (outcomes[r.outcome] ?? 0) + 1;
    return {
      demo: true,
      tokenRequests: this.requests.length,
      outcomes,
      issuedAccessTokens: this.issuedAccessTokens.length,
      issuedRefreshTokens: this.issuedRefreshTokens.length,
      invalidGrant: this.invalidGrants,
      reuseDetected: this.reuses,
      behaviour: this.currentBehaviour.kind,
      pendingSequence: this.sequence.length,
      tokenTtlSeconds: this.ttlSeconds,
    };
  }

  // --- HTTP -----------------------------------------------------------------------------------

  protected async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0];
    if (path === TOKEN_PATH) {
      if (req.method !== 'POST') return sendJson(res, 405, { error: 'invalid_request', error_description: 'use POST' }, { allow: 'POST' });
      return this.tokenEndpoint(req, res);
    }
    if (path === '/healthz') return sendJson(res, 200, { status: 'ok', demo: true });
    if (path?.startsWith('/control/')) return this.control(path, req, res);
    sendJson(res, 404, { error: 'not_found' });
  }

  private async control(path: string, req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const route = `${req.method} ${path}`;
    if (route === 'GET /control/stats') return sendJson(res, 200, this.stats());
    if (route === 'POST /control/reset') {
      this.reset();
      this.setBehaviour({ kind: 'ok' });
      return sendJson(res, 200, { ok: true });
    }
    if (route !== 'POST /control/behaviour') return sendJson(res, 404, { error: 'not_found' });
    const body = await readBody(req);
    if (isTooLarge(body)) return sendJson(res, 413, { error: 'invalid_request', error_description: 'body over 64 KiB' });
    try {
      const parsed: unknown = JSON.parse(body.toString('utf8'));
      if (Array.isArray(parsed)) this.setBehaviourSequence(parsed as Behaviour[]);
      else this.setBehaviour(parsed as Behaviour);
    } catch (err) {
      return sendJson(res, 400, { error: 'invalid_request', error_description: (err as Error).message });
    }
    sendJson(res, 200, { ok: true, behaviour: this.currentBehaviour, pendingSequence: this.sequence.length });
  }

  private nextBehaviour(): Behaviour {
    const b = this.sequence.shift();
    if (b === undefined) return this.behaviour;
    if (this.sequence.length === 0) this.behaviour = this.afterSequence;
    return b;
  }

  private record(r: TokenRequestRecord): void {
    this.requests.push(r);
    const ready = this.waiters.filter((w) => this.requests.length >= w.n);
    this.waiters = this.waiters.filter((w) => this.requests.length < w.n);
    for (const w of ready) w.resolve();
  }

  private async tokenEndpoint(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const body = await readBody(req);
    const isForm = (req.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase() === 'application/x-www-form-urlencoded';
    const params = isForm && !isTooLarge(body) ? new URLSearchParams(body.toString('utf8')) : null;
    const rec: TokenRequestRecord = {
      at: this.now(),
      grantType: params?.get('grant_type') ?? undefined,
      clientId: undefined,
      authMethod: 'none',
      form: {},
      outcome: 'error',
      status: null,
    };
    if (params) {
      for (const [k, v] of params) rec.form[k] = REDACTED_FIELDS.has(k) ? '[redacted]' : v;
      Object.assign(rec, this.claimedClient(req, params));
    }
    this.record(rec);
    const settle = (status: number | null, outcome: TokenRequestRecord['outcome']): void => {
      rec.status = status;
      rec.outcome = outcome;
      this.onRequest?.(rec);
    };
    const answer = (reply: Reply, outcome?: TokenRequestRecord['outcome']): void => {
      settle(reply.status, outcome ?? (reply.status === 200 ? 'issued' : 'error'));
      sendJson(res, reply.status, reply.body, reply.headers);
    };
    const raw = (status: number, headers: Record<string, string>, text: string, outcome: TokenRequestRecord['outcome']): void => {
      settle(status, outcome);
      res.writeHead(status, headers);
      res.end(text);
    };
    if (isTooLarge(body)) return answer(oauthError(413, 'invalid_request', 'body over 64 KiB'));

    const b = this.nextBehaviour();
    switch (b.kind) {
      case 'hang':
        return settle(null, b.kind); // never answered; stop() destroys the socket
      case 'reset':
        settle(null, b.kind);
        req.socket.destroy();
        return;
      case 'html':
        return raw(200, { 'content-type': 'text/html; charset=utf-8' }, '<!doctype html><html><body><h1>Sign in</h1><p>DEMO token server</p></body></html>', b.kind);
      case 'status': {
        const text = b.body === undefined ? '' : typeof b.body === 'string' ? b.body : JSON.stringify(b.body);
        const type = b.contentType ?? (typeof b.body === 'string' ? 'text/plain; charset=utf-8' : 'application/json');
        return raw(b.status, { 'content-type': type, 'cache-control': 'no-store', ...b.headers }, text, b.kind);
      }
      case 'rate_limited':
        return answer({ status: 429, body: { error: 'rate_limited' }, headers: { 'retry-after': b.retryAfter } }, b.kind);
      case 'oauth_error':
        return answer(oauthError(b.status ?? 400, b.error, b.description), b.kind);
      case 'redirect':
        return raw(b.status ?? 302, { location: b.location }, '', b.kind);
      case 'no_access_token':
        return answer({ status: 200, body: { token_type: 'Bearer', expires_in: this.ttlSeconds } }, b.kind);
      case 'delay':
        rec.outcome = b.kind; // until the delayed answer replaces it
        if (!(await this.sleep(b.ms))) return;
        break;
      case 'slow':
      case 'garbled':
      case 'reset_after':
      case 'unsafe_token':
      case 'ok':
        break;
    }
    const reply = params ? await this.grant(req, params) : oauthError(400, 'invalid_request', 'content-type must be application/x-www-form-urlencoded');
    // The grant has been carried out (a refresh token may have rotated); now the answer is lost.
    if (b.kind === 'slow') {
      rec.outcome = b.kind;
      if (!(await this.sleep(b.ms))) return;
    } else if (b.kind === 'garbled') {
      return raw(200, { 'content-type': 'application/json' }, '{"access_token": "trunc', b.kind);
    } else if (b.kind === 'unsafe_token' && reply.status === 200) {
      answer({ ...reply, body: { ...(reply.body as Record<string, unknown>), access_token: 'abc\r\nx-injected: evil' } });
      return;
    } else if (b.kind === 'reset_after') {
      settle(null, b.kind);
      req.socket.destroy();
      return;
    }
    answer(reply);
  }

  /** Who the request says it is, for the log; verified later. */
  private claimedClient(req: http.IncomingMessage, params: URLSearchParams): Pick<TokenRequestRecord, 'clientId' | 'authMethod'> {
    const basic = this.basicCredentials(req);
    if (basic) return { clientId: basic === 'malformed' ? undefined : basic.id, authMethod: 'client_secret_basic' };
    if (params.has('client_secret')) return { clientId: params.get('client_id') ?? undefined, authMethod: 'client_secret_post' };
    const assertion = params.get('client_assertion');
    if (assertion !== null) {
      let iss: string | undefined;
      try {
        iss = decodeJwt(assertion).iss;
      } catch {
        iss = undefined;
      }
      return { clientId: params.get('client_id') ?? iss, authMethod: 'private_key_jwt' };
    }
    return { clientId: params.get('client_id') ?? undefined, authMethod: 'none' };
  }

  private basicCredentials(req: http.IncomingMessage): { id: string; secret: string } | 'malformed' | undefined {
    const h = req.headers.authorization;
    if (!h || !/^basic /i.test(h)) return undefined;
    const decoded = Buffer.from(h.slice(6).trim(), 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon < 0) return 'malformed';
    try {
      return { id: formDecode(decoded.slice(0, colon)), secret: formDecode(decoded.slice(colon + 1)) };
    } catch {
      return 'malformed';
    }
  }

  // --- grants ---------------------------------------------------------------------------------

  private async grant(req: http.IncomingMessage, params: URLSearchParams): Promise<Reply> {
    for (const k of new Set(params.keys()))
      if (params.getAll(k).length > 1) return oauthError(400, 'invalid_request', `parameter "${k}" repeated`); // RFC 6749 §3.2
    const grantType = params.get('grant_type');
    if (!grantType) return oauthError(400, 'invalid_request', 'grant_type missing');
    if (!['client_credentials', 'refresh_token', JWT_BEARER_GRANT].includes(grantType))
      return oauthError(400, 'unsupported_grant_type');

    const auth = await this.authenticateClient(req, params);
    if (auth.kind === 'fail') return auth.reply;
    switch (grantType) {
      case 'client_credentials':
        if (auth.kind !== 'ok') return this.invalidClient('client authentication required');
        return this.issue(auth.clientId, auth.clientId, params);
      case 'refresh_token':
        return this.refreshGrant(auth.clientId, params);
      default:
        return this.jwtBearerGrant(req, auth.clientId, params);
    }
  }

  private invalidClient(description: string, basicUsed = false): Reply {
    // RFC 6749 §5.2: 401 with WWW-Authenticate when the client used the Authorization header.
    return oauthError(401, 'invalid_client', description, basicUsed ? { 'www-authenticate': 'Basic realm="demo-token-server"' } : undefined);
  }

  private invalidGrant(description: string): Reply {
    this.invalidGrants++;
    return oauthError(400, 'invalid_grant', description);
  }

  private async authenticateClient(req: http.IncomingMessage, params: URLSearchParams): Promise<ClientAuth> {
    const basic = this.basicCredentials(req);
    const hasAssertion = params.has('client_assertion') || params.has('client_assertion_type');
    if ([basic !== undefined, params.has('client_secret'), hasAssertion].filter(Boolean).length > 1)
      return { kind: 'fail', reply: oauthError(400, 'invalid_request', 'more than one client authentication method') };

    if (basic !== undefined) {
      if (basic === 'malformed') return { kind: 'fail', reply: this.invalidClient('malformed Basic credentials', true) };
      const secret = this.clients.get(basic.id)?.secret;
      if (secret === undefined || !secretsEqual(secret, basic.secret)) return { kind: 'fail', reply: this.invalidClient('bad client credentials', true) };
      return { kind: 'ok', clientId: basic.id, method: 'client_secret_basic' };
    }
    const postedSecret = params.get('client_secret');
    if (postedSecret !== null) {
      const id = params.get('client_id') ?? '';
      const secret = this.clients.get(id)?.secret;
      if (secret === undefined || !secretsEqual(secret, postedSecret)) return { kind: 'fail', reply: this.invalidClient('bad client credentials') };
      return { kind: 'ok', clientId: id, method: 'client_secret_post' };
    }
    if (hasAssertion) return this.verifyClientAssertion(req, params);
    return { kind: 'none', clientId: params.get('client_id') ?? undefined };
  }

  /** private_key_jwt (RFC 7523 §2.2 / §3). */
  private async verifyClientAssertion(req: http.IncomingMessage, params: URLSearchParams): Promise<ClientAuth> {
    if (params.get('client_assertion_type') !== CLIENT_ASSERTION_TYPE)
      return { kind: 'fail', reply: oauthError(400, 'invalid_request', 'unsupported client_assertion_type') };
    const assertion = params.get('client_assertion') ?? '';
    let iss: string | undefined;
    try {
      iss = decodeJwt(assertion).iss;
    } catch {
      return { kind: 'fail', reply: this.invalidClient('client_assertion is not a JWT') };
    }
    const claimedId = params.get('client_id');
    if (!iss || (claimedId !== null && claimedId !== iss)) return { kind: 'fail', reply: this.invalidClient('client_assertion iss does not match client_id') };
    const key = this.clients.get(iss)?.publicKey;
    if (!key) return { kind: 'fail', reply: this.invalidClient('unknown client or no key registered') };
    try {
      const { payload } = await jwtVerify(assertion, key, {
        issuer: iss,
        subject: iss,
        audience: this.acceptedAudiences(req),
        requiredClaims: ['exp', 'jti'],
        currentDate: new Date(this.now()),
      });
      if (!this.firstUse(iss, payload.jti)) return { kind: 'fail', reply: this.invalidClient('client_assertion jti replayed') };
    } catch (err) {
      return { kind: 'fail', reply: this.invalidClient(`client_assertion rejected: ${(err as Error).message}`) };
    }
    return { kind: 'ok', clientId: iss, method: 'private_key_jwt' };
  }

  /** The token URL as we know it, as the client reached it (compose hostnames), and the issuer. */
  private acceptedAudiences(req: http.IncomingMessage): string[] {
    const viaHost = req.headers.host ? `http://${req.headers.host}` : this.url;
    return [this.tokenUrl, this.url, viaHost + TOKEN_PATH, viaHost];
  }

  private firstUse(issuer: string, jti: string | undefined): boolean {
    if (jti === undefined) return true;
    const key = `${issuer}\u0000${jti}`;
    if (this.seenJti.has(key)) return false;
    this.seenJti.add(key);
    return true;
  }

  private refreshGrant(clientId: string | undefined, params: URLSearchParams): Promise<Reply> | Reply {
    const token = params.get('refresh_token');
    if (!token) return oauthError(400, 'invalid_request', 'refresh_token missing');
    this.presented.set(token, (this.presented.get(token) ?? 0) + 1);
    const entry = this.refresh.get(token);
    if (!entry) return this.invalidGrant('unknown refresh token');
    if (entry.state === 'spent' && entry.successor !== undefined && entry.firstAt !== undefined && this.now() - entry.firstAt < this.reuseIntervalMs) {
      // Inside the declared reuse interval a retry is answered, with the same successor.
      return this.issue(entry.subject, clientId, params, entry.successor);
    }
    if (entry.state === 'spent') {
      // Reuse means a copy leaked or two holders race: revoke the whole family, as Okta/Auth0 do.
      for (const t of this.families.get(entry.family) ?? []) {
        const e = this.refresh.get(t);
        if (e?.state === 'valid') e.state = 'revoked';
      }
      this.reuses++;
      return this.invalidGrant('refresh token reuse detected');
    }
    if (entry.state === 'revoked') return this.invalidGrant('refresh token revoked');
    entry.state = 'spent';
    entry.firstAt = this.now();
    const next = `rt_${randomBytes(24).toString('base64url')}`;
    entry.successor = next;
    this.refresh.set(next, { family: entry.family, state: 'valid', subject: entry.subject });
    this.families.get(entry.family)?.push(next);
    return this.issue(entry.subject, clientId, params, next);
  }

  /** RFC 7523 §2.1 / §3. */
  private async jwtBearerGrant(req: http.IncomingMessage, clientId: string | undefined, params: URLSearchParams): Promise<Reply> {
    const assertion = params.get('assertion');
    if (!assertion) return oauthError(400, 'invalid_request', 'assertion missing');
    let iss: string | undefined;
    try {
      iss = decodeJwt(assertion).iss;
    } catch {
      return this.invalidGrant('assertion is not a JWT');
    }
    const key = iss === undefined ? undefined : this.jwtBearerKeys.get(iss) ?? this.clients.get(iss)?.publicKey;
    if (!iss || !key) return this.invalidGrant('no key for assertion issuer');
    let subject: string;
    try {
      const { payload } = await jwtVerify(assertion, key, {
        issuer: iss,
        audience: this.acceptedAudiences(req),
        requiredClaims: ['exp', 'sub'],
        currentDate: new Date(this.now()),
      });
      if (!this.firstUse(`bearer:${iss}`, payload.jti)) return this.invalidGrant('assertion jti replayed');
      subject = payload.sub ?? iss;
    } catch (err) {
      return this.invalidGrant(`assertion rejected: ${(err as Error).message}`);
    }
    return this.issue(subject, clientId ?? iss, params);
  }

  private async issue(subject: string, clientId: string | undefined, params: URLSearchParams, refreshToken?: string): Promise<Reply> {
    const scope = params.get('scope') ?? undefined;
    const audience = params.get('audience') ?? undefined;
    const accessToken = this.tokenFormat === 'jwt' ? await this.signAccessToken(subject, clientId, scope, audience) : randomBytes(32).toString('base64url');
    this.issuedAccessTokens.push(accessToken);
    const body: Record<string, unknown> = { access_token: accessToken, token_type: 'Bearer' };
    if (!this.omitExpiresIn) body.expires_in = this.ttlSeconds;
    if (scope !== undefined) body.scope = scope;
    if (refreshToken !== undefined) {
      body.refresh_token = refreshToken;
      this.issuedRefreshTokens.push(refreshToken);
    }
    return { status: 200, body };
  }

  private signAccessToken(subject: string, clientId: string | undefined, scope: string | undefined, audience: string | undefined): Promise<string> {
    const iat = Math.floor(this.now() / 1000);
    const claims: Record<string, unknown> = {};
    if (clientId !== undefined) claims.client_id = clientId;
    if (scope !== undefined) claims.scope = scope;
    const jwt = new SignJWT(claims)
      .setProtectedHeader({ alg: 'HS256', typ: 'at+jwt' })
      .setIssuer(this.url)
      .setSubject(subject)
      .setIssuedAt(iat)
      .setExpirationTime(iat + Math.floor(this.ttlSeconds))
      .setJti(randomUUID());
    if (audience !== undefined) jwt.setAudience(audience);
    return jwt.sign(this.verificationKey);
  }
}
