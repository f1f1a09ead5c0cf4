// A loopback OAuth server that speaks RFC 8693 token exchange and Entra's on-behalf-of grant,
// for tests. It issues the callers' (subject) tokens itself, ES256-signed, publishes its JWKS and
// discovery document, verifies every subject it is sent, and refuses the subjects a test names.
// Every exchange is recorded (form, authenticated client, outcome) so tests count IdP calls.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { generateKeyPairSync, randomBytes, type KeyObject } from 'node:crypto';
import { exportJWK, jwtVerify, SignJWT, createLocalJWKSet, type JWK } from 'jose';

export interface ExchangeRecord {
  readonly form: Record<string, string | string[]>;
  readonly client: string | undefined;
  readonly outcome: 'issued' | 'refused' | 'failed';
  readonly error?: string;
  readonly sub?: string;
}

export interface IssuedInfo {
  readonly sub: string;
  readonly audience: string[];
  readonly act?: string;
  readonly subjectToken: string;
}

export interface ExchangeIdpOptions {
  readonly clients?: Record<string, string>;
  /** Lifetime of exchanged tokens (seconds). */
  readonly expiresIn?: number;
  /** Issuer name in subject tokens; default the server's own URL. */
  readonly issuer?: string;
}

const TE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const JB = 'urn:ietf:params:oauth:grant-type:jwt-bearer';

export class ExchangeIdp {
  readonly exchanges: ExchangeRecord[] = [];
  /** Exchanged token → who it was issued for. */
  readonly issued = new Map<string, IssuedInfo>();
  /** Subjects (sub) the IdP refuses with invalid_grant. */
  readonly refuse = new Set<string>();
  /** Opaque (non-JWT) subject tokens the IdP accepts, token → sub. */
  readonly opaque = new Map<string, string>();
  /** Set: every exchange answers this status with no token (an outage). */
  failWith: number | undefined;
  /** Milliseconds each exchange waits before answering. */
  delayMs = 0;
  /** Overrides the success body (tests of odd answers). */
  respond: ((info: IssuedInfo, token: string) => Record<string, unknown>) | undefined;
  expiresIn: number;
  jwksRequests = 0;
  /** Milliseconds the JWKS endpoint waits before answering (a slow key fetch). */
  jwksDelayMs = 0;
  /** Token requests that arrived, counted before any delay or answer (by subject/assertion). */
  readonly received: string[] = [];
  private readonly server = http.createServer((req, res) => void this.handle(req, res));
  private readonly privateKey: KeyObject;
  private readonly publicJwk: Promise<JWK>;
  private readonly clients: Record<string, string>;
  private port = 0;
  private issuerName: string | undefined;
  private readonly pending = new Set<() => void>();

  constructor(opts: ExchangeIdpOptions = {}) {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    this.privateKey = privateKey;
    this.publicJwk = exportJWK(publicKey).then((j) => ({ ...j, kid: 'k1', alg: 'ES256', use: 'sig' }));
    this.clients = opts.clients ?? { gateway: 'gateway-secret' };
    this.expiresIn = opts.expiresIn ?? 3600;
    this.issuerName = opts.issuer;
  }

  async start(): Promise<this> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.port = (this.server.address() as AddressInfo).port;
    return this;
  }

  async stop(): Promise<void> {
    for (const release of this.pending) release();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }
  get issuer(): string {
    return this.issuerName ?? this.url;
  }
  get tokenUrl(): string {
    return `${this.url}/token`;
  }
  get jwksUri(): string {
    return `${this.url}/jwks`;
  }

  reset(): void {
    this.exchanges.length = 0;
    this.received.length = 0;
    this.issued.clear();
    this.refuse.clear();
    this.failWith = undefined;
    this.delayMs = 0;
    this.respond = undefined;
    this.jwksRequests = 0;
    this.jwksDelayMs = 0;
  }

  /** A caller's token as this IdP would have issued it at login. */
  async subjectToken(claims: { sub: string; aud?: string; expSeconds?: number; nbfSeconds?: number; extra?: Record<string, unknown> }, key: KeyObject = this.privateKey, alg = 'ES256'): Promise<string> {
    const now = Math.floor(Date.now() / 1000);
    const jwt = new SignJWT({ ...claims.extra })
      .setProtectedHeader({ alg, kid: 'k1', typ: 'JWT' })
      .setIssuer(this.issuer)
      .setSubject(claims.sub)
      .setAudience(claims.aud ?? 'gateway')
      .setIssuedAt(now)
      .setExpirationTime(claims.expSeconds ?? now + 3600)
      .setJti(randomBytes(8).toString('hex'));
    if (claims.nbfSeconds !== undefined) jwt.setNotBefore(claims.nbfSeconds);
    return jwt.sign(key);
  }

  get exchangeCount(): number {
    return this.exchanges.length;
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method === 'GET' && path === '/jwks') {
      this.jwksRequests++;
      if (this.jwksDelayMs > 0) await new Promise((r) => setTimeout(r, this.jwksDelayMs));
      return json(res, 200, { keys: [await this.publicJwk] });
    }
    if (req.method === 'GET' && (path === '/.well-known/openid-configuration' || path === '/.well-known/oauth-authorization-server')) {
      return json(res, 200, { issuer: this.issuer, token_endpoint: this.tokenUrl, jwks_uri: this.jwksUri });
    }
    if (req.method !== 'POST' || path !== '/token') return json(res, 404, { error: 'not_found' });
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const params = new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
    const form: Record<string, string | string[]> = {};
    for (const k of new Set(params.keys())) {
      const all = params.getAll(k);
      form[k] = all.length === 1 ? all[0]! : all;
    }
    this.received.push(params.get('subject_token') ?? params.get('assertion') ?? '');
    const client = this.authenticate(req, params);
    const record = (outcome: ExchangeRecord['outcome'], extra: { error?: string; sub?: string } = {}) => this.exchanges.push({ form, client, outcome, ...extra });
    if (this.delayMs) {
      await new Promise<void>((resolve) => {
        const release = () => { this.pending.delete(release); clearTimeout(t); resolve(); };
        const t = setTimeout(release, this.delayMs);
        this.pending.add(release);
      });
      if (res.destroyed) return void record('failed');
    }
    if (this.failWith !== undefined) {
      record('failed');
      return json(res, this.failWith, { error: 'temporarily_unavailable' });
    }
    if (!client) {
      record('refused', { error: 'invalid_client' });
      return json(res, 401, { error: 'invalid_client' });
    }
    const grant = params.get('grant_type');
    let subject: string | null;
    let audience: string[] = [];
    if (grant === TE) {
      subject = params.get('subject_token');
      audience = params.getAll('audience');
      if (!subject || !params.get('subject_token_type')) {
        record('refused', { error: 'invalid_request' });
        return json(res, 400, { error: 'invalid_request', error_description: 'subject_token and subject_token_type are required' });
      }
    } else if (grant === JB && params.get('requested_token_use') === 'on_behalf_of') {
      subject = params.get('assertion');
      if (!subject || !params.get('scope')) {
        record('refused', { error: 'invalid_request' });
        return json(res, 400, { error: 'invalid_request' });
      }
    } else {
      record('refused', { error: 'unsupported_grant_type' });
      return json(res, 400, { error: 'unsupported_grant_type' });
    }
    const sub = await this.subjectOf(subject);
    if (!sub || this.refuse.has(sub)) {
      record('refused', { error: 'invalid_grant', ...(sub ? { sub } : {}) });
      return json(res, 400, { error: 'invalid_grant', error_description: 'subject token is not acceptable' });
    }
    let act: string | undefined;
    const actor = params.get('actor_token');
    if (actor) {
      act = (await this.subjectOf(actor)) ?? undefined;
      if (!act) {
        record('refused', { error: 'invalid_grant', sub });
        return json(res, 400, { error: 'invalid_grant', error_description: 'actor token is not acceptable' });
      }
    }
    const token = `ex_${sub.replace(/[^A-Za-z0-9]/g, '')}_${randomBytes(12).toString('base64url')}`;
    const info: IssuedInfo = { sub, audience, subjectToken: subject, ...(act ? { act } : {}) };
    this.issued.set(token, info);
    record('issued', { sub });
    const body = this.respond?.(info, token) ?? {
      access_token: token,
      token_type: 'Bearer',
      expires_in: this.expiresIn,
      ...(grant === TE ? { issued_token_type: params.get('requested_token_type') ?? 'urn:ietf:params:oauth:token-type:access_token' } : {}),
      ...(params.get('scope') ? { scope: params.get('scope') } : {}),
    };
    json(res, 200, body);
  }

  private authenticate(req: http.IncomingMessage, params: URLSearchParams): string | undefined {
    const auth = req.headers.authorization;
    if (auth?.startsWith('Basic ')) {
      const [id, secret] = Buffer.from(auth.slice(6), 'base64').toString().split(':').map((s) => decodeURIComponent(s.replace(/\+/g, ' ')));
      return id && this.clients[id] === secret ? id : undefined;
    }
    const id = params.get('client_id');
    if (id && this.clients[id] === params.get('client_secret')) return id;
    return undefined;
  }

  /** The subject a token names, when this IdP accepts it (valid signature, iss, not expired). */
  private async subjectOf(token: string): Promise<string | undefined> {
    const opaque = this.opaque.get(token);
    if (opaque) return opaque;
    try {
      const { payload } = await jwtVerify(token, createLocalJWKSet({ keys: [await this.publicJwk] }), { issuer: this.issuer, algorithms: ['ES256'] });
      return typeof payload.sub === 'string' ? payload.sub : undefined;
    } catch {
      return undefined;
    }
  }
}

function json(res: http.ServerResponse, status: number, body: unknown): void {
  if (res.destroyed) return;
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
  res.end(JSON.stringify(body));
}

/**
 * The per-caller `token_exchange` source most tests use, as a YAML flow map for `source:`: the
 * caller's `authorization` exchanged at this IdP for an `https://orders.example` token, with
 * the IdP's own keys for `verify` when asked.
 */
export function perCallerSource(idp: ExchangeIdp, opts: { scheme?: 'Bearer'; verify?: boolean } = {}): string {
  const request = `{ header: authorization${opts.scheme ? `, scheme: ${opts.scheme}` : ''} }`;
  const verify = opts.verify ? `, verify: { issuer: "${idp.issuer}", audience: gateway, jwksUri: "${idp.jwksUri}", algorithms: [ES256] }` : '';
  return `{ type: token_exchange, tokenUrl: "${idp.tokenUrl}", clientId: gateway, clientSecret: gateway-secret, audience: https://orders.example, subjectToken: { request: ${request}${verify} } }`;
}
