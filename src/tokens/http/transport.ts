// The HTTP seam for token endpoints: node:http(s) rather than fetch, because pinning, a custom
// CA, a TLS floor and a response cap all need socket-level options. Tests can pass their own.
import http from 'node:http';
import https from 'node:https';
import { createHash, X509Certificate } from 'node:crypto';
import type { PeerCertificate } from 'node:tls';
import { checkServerIdentity } from 'node:tls';
import { TokenError } from '../errors.js';
import type { ClientCertificateSource } from './client-certificate.js';

export interface HttpRequest {
  /** POST unless said (discovery and metadata servers are read with GET). */
  readonly method?: 'GET' | 'POST';
  readonly url: URL;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: string;
  readonly signal: AbortSignal;
}

export interface HttpResponse {
  readonly status: number;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  readonly body: string;
}

export type HttpTransport = (req: HttpRequest) => Promise<HttpResponse>;

export interface TransportOptions {
  /** PEM CA bundle replacing the system roots for this endpoint. */
  readonly ca?: string | Buffer;
  /** base64 SHA-256 of the server's SubjectPublicKeyInfo. */
  readonly pinSha256?: string;
  /** Bodies larger than this are refused. */
  readonly maxResponseBytes?: number;
  /**
   * false: a new connection per request. For rotating refresh tokens: an idle keep-alive socket
   * the server closed as we wrote to it would make the request's fate unknowable (ambiguous).
   */
  readonly keepAlive?: boolean;
  /** mTLS client certificate (RFC 8705), checked before each request and re-read when it changed. */
  readonly clientCertificate?: ClientCertificateSource;
}

const TLS_ERROR = /^(CERT_|ERR_TLS_|DEPTH_ZERO|SELF_SIGNED|UNABLE_TO_|ERR_SSL_|HOSTNAME_MISMATCH)/;

function pinCheck(pin: string) {
  return (host: string, cert: PeerCertificate): Error | undefined => {
    const standard = checkServerIdentity(host, cert);
    if (standard) return standard;
    // `cert.pubkey` is the SPKI only for RSA (for EC it is the bare point, for Ed25519 absent):
    // hash the SubjectPublicKeyInfo taken from the DER certificate itself.
    let actual: string;
    try {
      const spki = new X509Certificate(cert.raw).publicKey.export({ type: 'spki', format: 'der' });
      actual = createHash('sha256').update(spki).digest('base64');
    } catch {
      actual = '';
    }
    if (actual !== pin) {
      return Object.assign(new Error(`certificate public key pin mismatch for ${host} (pinSha256 does not match)`), { code: 'ERR_TLS_PIN_MISMATCH' });
    }
    return undefined;
  };
}

/** A transport with keep-alive connections, for one endpoint's TLS settings. */
export function createNodeTransport(opts: TransportOptions = {}): HttpTransport & { close(): void } {
  const maxBytes = opts.maxResponseBytes ?? 64 * 1024;
  const keepAlive = opts.keepAlive ?? true;
  const newHttpsAgent = (client?: { cert: Buffer; key: Buffer }) => new https.Agent({
    keepAlive,
    maxSockets: 4,
    minVersion: 'TLSv1.2',
    ...(opts.ca ? { ca: opts.ca } : {}),
    ...(opts.pinSha256 ? { checkServerIdentity: pinCheck(opts.pinSha256) } : {}),
    ...(client ? { cert: client.cert, key: client.key } : {}),
  });
  // Agents are made on first use: an endpoint speaks one of the two, and ten thousand providers
  // with a token endpoint each would otherwise keep an agent (~1 KB) they never use.
  let httpsAgent: https.Agent | undefined;
  let agentVersion: string | undefined;
  let httpAgent: http.Agent | undefined;

  /** A rotated client certificate gets a new agent: kept-alive connections carry the old one. */
  const agentFor = async (): Promise<https.Agent> => {
    if (!opts.clientCertificate) return (httpsAgent ??= newHttpsAgent());
    const pair = await opts.clientCertificate.current();
    if (!httpsAgent || agentVersion !== pair.version) {
      httpsAgent?.destroy();
      httpsAgent = newHttpsAgent(pair);
      agentVersion = pair.version;
    }
    return httpsAgent;
  };

  const transport = async (req: HttpRequest): Promise<HttpResponse> => {
    const isHttps = req.url.protocol === 'https:';
    const agent = isHttps ? await agentFor() : (httpAgent ??= new http.Agent({ keepAlive, maxSockets: 4 }));
    return new Promise<HttpResponse>((resolve, reject) => {
      const mod = isHttps ? https : http;
      const method = req.method ?? 'POST';
      const body = Buffer.from(method === 'GET' ? '' : req.body);
      const outgoing = mod.request(req.url, {
        method,
        agent,
        headers: method === 'GET' ? { ...req.headers } : { ...req.headers, 'content-length': String(body.length) },
        signal: req.signal,
      });
      // Whether the request may have reached the server: from the moment the connection (and TLS
      // handshake) is up. A reused keep-alive socket counts as sent at once. Before that a
      // failure (refused, DNS, TLS, a connect timeout) leaves the IdP untouched.
      let sent = false;
      outgoing.on('socket', (socket) => {
        const connecting = (socket as { connecting?: boolean }).connecting === true;
        if (!connecting) sent = true;
        else socket.once(isHttps ? 'secureConnect' : 'connect', () => (sent = true));
      });
      const fail = (err: unknown) => reject(classifyNetworkError(err, req.signal, sent));
      outgoing.on('response', (res) => {
        // A declared oversized body is refused before a byte of it is read.
        if (Number(res.headers['content-length']) > maxBytes) {
          res.destroy();
          reject(new TokenError('ERR_IDP_BAD_RESPONSE', `token endpoint response exceeds ${maxBytes} bytes (content-length ${Number(res.headers['content-length'])})`, { status: res.statusCode ?? 0 }));
          return;
        }
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > maxBytes) {
            res.destroy();
            reject(new TokenError('ERR_IDP_BAD_RESPONSE', `token endpoint response exceeds ${maxBytes} bytes`, { status: res.statusCode ?? 0 }));
            return;
          }
          chunks.push(chunk);
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', fail);
      });
      outgoing.on('error', fail);
      outgoing.end(body);
    });
  };
  return Object.assign(transport, {
    close() {
      httpsAgent?.destroy();
      httpAgent?.destroy();
    },
  });
}

/** Failures that happen before a request can have left this process. */
const NOT_SENT = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EAI_FAIL', 'EHOSTUNREACH', 'ENETUNREACH', 'EADDRNOTAVAIL']);

/**
 * `sent`: whether the request may have reached the server (see the node transport). Unknown
 * (another transport) counts as sent unless the error code says otherwise: ambiguity is the safe
 * assumption for a rotating refresh token.
 */
export function classifyNetworkError(err: unknown, signal: AbortSignal, sent?: boolean): TokenError {
  if (err instanceof TokenError) return err;
  const code = (err as NodeJS.ErrnoException).code ?? '';
  const ambiguous = sent ?? !(NOT_SENT.has(code) || TLS_ERROR.test(code) || code === 'EPROTO');
  const classified = classifyUnsent(err, signal, code);
  return ambiguous && !classified.ambiguous ? classified.asAmbiguous() : classified;
}

function classifyUnsent(err: unknown, signal: AbortSignal, code: string): TokenError {
  if (signal.aborted) {
    const reason = signal.reason as unknown;
    if (reason instanceof TokenError) return reason;
    return new TokenError('ERR_IDP_TIMEOUT', 'token endpoint did not answer in time', { cause: err });
  }
  if (code === 'ERR_TLS_PIN_MISMATCH') {
    return new TokenError('ERR_IDP_TLS', (err as Error).message, { cause: err });
  }
  if (TLS_ERROR.test(code)) {
    return new TokenError('ERR_IDP_TLS', `TLS handshake with token endpoint failed (${code})`, { cause: err });
  }
  // OpenSSL failures (protocol version below the TLS 1.2 floor, plain http behind an https URL)
  // surface as EPROTO: a TLS problem to fix in the config, not an outage to retry.
  const ssl = /SSL routines:[^:]*:([^:]+):/.exec((err as Error).message ?? '');
  if (code === 'EPROTO' && ssl) {
    return new TokenError('ERR_IDP_TLS', `TLS handshake with token endpoint failed (${ssl[1]})`, { cause: err });
  }
  return new TokenError('ERR_IDP_UNAVAILABLE', `token endpoint unreachable (${code || (err as Error).message})`, { cause: err });
}
