// `listen`: where the gRPC and admin servers listen, their TLS, and the limits that bound what
// connections may cost the process.
import { Reader } from '../reader.js';
import type { CheckServer, Config, ListenLimits } from '../types.js';

function address(r: Reader, key: string, fallback: string, allowOff: boolean): string | undefined {
  const s = r.str(key) ?? fallback;
  if (allowOff && s === 'off') return undefined;
  if (s.startsWith('unix:')) {
    if (s.length <= 'unix:'.length) r.problem(key, 'unix: needs a socket path');
    return s;
  }
  const m = /^(\[[^\]]+\]|[^:]+):(\d{1,5})$/.exec(s);
  if (!m || Number(m[2]) > 65535) r.problem(key, `expected host:port${allowOff ? ', unix:/path or off' : ' or unix:/path'}`);
  return s;
}

export function readListen(r: Reader): Config['listen'] {
  const grpc = address(r, 'grpc', '127.0.0.1:9191', false)!;
  const admin = address(r, 'admin', '127.0.0.1:9192', true);
  const t = r.has('tls') ? r.child('tls') : undefined;
  let tls: Config['listen']['tls'];
  if (t) {
    const certFile = t.str('certFile', { required: true });
    const keyFile = t.str('keyFile', { required: true });
    const clientCaFile = t.str('clientCaFile');
    t.done();
    if (certFile && keyFile) tls = { certFile, keyFile, ...(clientCaFile ? { clientCaFile } : {}) };
    if (grpc.startsWith('unix:')) r.problem('tls', 'TLS is for TCP listeners; a unix socket is protected by its file permissions');
  }
  const limits = readLimits(r.has('limits') ? r.child('limits') : undefined);
  const checkServer = r.oneOf('checkServer', CHECK_SERVERS, DEFAULT_CHECK_SERVER);
  r.done();
  return { grpc, checkServer, limits, ...(admin ? { admin } : {}), ...(tls ? { tls } : {}) };
}

const CHECK_SERVERS = ['grpc-js', 'http2'] as const;
/** Chosen on the measurements in bench/FINDINGS.md ("The node:http2 Check path, shipped"). */
export const DEFAULT_CHECK_SERVER: CheckServer = 'http2';

export const DEFAULT_LISTEN_LIMITS: ListenLimits = Object.freeze({
  maxConnections: 100,
  maxConcurrentStreams: 100,
  maxSessionMemoryMb: 2,
  keepaliveTimeMs: 60_000,
  keepaliveTimeoutMs: 20_000,
  maxConnectionIdleMs: 300_000,
  maxConnectionAgeMs: 300_000,
  maxMessageBytes: 4 * 1024 * 1024,
});

/**
 * Defaults sized for Envoy, which multiplexes many Checks over a few long-lived connections:
 * Check calls are short, so Envoy needs few streams per connection (it opens another connection
 * when a connection is full) and few connections; every stream in flight costs memory (its
 * request, the call object, its answer), so connections × streams is what bounds the process.
 */
export function readLimits(r: Reader | undefined): ListenLimits {
  if (!r) return DEFAULT_LISTEN_LIMITS;
  const d = DEFAULT_LISTEN_LIMITS;
  const limits: ListenLimits = {
    maxConnections: r.num('maxConnections', d.maxConnections, { min: 1, max: 100_000, integer: true }),
    maxConcurrentStreams: r.num('maxConcurrentStreams', d.maxConcurrentStreams, { min: 1, max: 100_000, integer: true }),
    maxSessionMemoryMb: r.num('maxSessionMemoryMb', d.maxSessionMemoryMb, { min: 1, max: 1024, integer: true }),
    keepaliveTimeMs: r.duration('keepaliveTime', d.keepaliveTimeMs, { min: 1_000 }),
    keepaliveTimeoutMs: r.duration('keepaliveTimeout', d.keepaliveTimeoutMs, { min: 100 }),
    maxConnectionIdleMs: r.duration('maxConnectionIdle', d.maxConnectionIdleMs, { min: 1_000 }),
    maxConnectionAgeMs: r.duration('maxConnectionAge', d.maxConnectionAgeMs, { min: 1_000 }),
    maxMessageBytes: r.num('maxMessageBytes', d.maxMessageBytes, { min: 1_024, max: 64 * 1024 * 1024, integer: true }),
  };
  r.done();
  return limits;
}
