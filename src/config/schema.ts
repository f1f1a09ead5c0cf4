// The one place that knows the config file's shape. Raw YAML in, frozen `Config` out.
import { isIP } from 'node:net';
import { DEFAULT_MAX_TOKEN_BYTES, formatProblem, MAX_MAX_TOKEN_BYTES, MIN_MAX_TOKEN_BYTES, tokenProblem } from './header-value.js';
import { MAX_LIFETIME_MS, MIN_LIFETIME_MS } from './lifetime-bounds.js';
import { parseHostPort } from './host-port.js';
import { readTokenEndpoints } from './token-endpoints.js';
import { join, Reader, type ReadContext } from './reader.js';
import { substitute } from './substitute.js';
import type {
  ClientAuthMethod, Config, InjectConfig, ListenLimits, JwtAlgorithm, JwtSigningConfig, PerCallerCacheConfig, ProviderConfig, RedisConfig,
  RefreshConfig, ResilienceConfig, RouteConfig, SourceConfig, StoreConfig, SubjectTokenConfig, TokenEndpointConfig,
} from './types.js';

const SOURCE_TYPES = ['client_credentials', 'refresh_token', 'jwt', 'jwt_bearer', 'static', 'token_exchange'] as const;
const AUTH_METHODS: readonly ClientAuthMethod[] = ['client_secret_basic', 'client_secret_post', 'private_key_jwt'];
const ALGORITHMS: readonly JwtAlgorithm[] = ['HS256', 'HS384', 'HS512', 'RS256', 'ES256', 'EdDSA'];
const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9a-z-]+$/;
const DAY_MS = 86_400_000;

/** Loopback hosts may use plain http; everything else needs https (or an explicit opt-in). */
export function isLoopbackHost(hostname: string): boolean {
  const h = hostname.replace(/^\[|\]$/g, '');
  if (h === 'localhost' || h.endsWith('.localhost')) return true;
  if (isIP(h) === 4) return h.startsWith('127.');
  return h === '::1';
}

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

function readListen(r: Reader): Config['listen'] {
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
  r.done();
  return { grpc, limits, ...(admin ? { admin } : {}), ...(tls ? { tls } : {}) };
}

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
function readLimits(r: Reader | undefined): ListenLimits {
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

/** `sentinels` / `cluster`: each entry an address the client can dial, checked here, not at connect. */
function nodeList(r: Reader, key: string): string[] {
  const out: string[] = [];
  for (const { value, path } of r.list(key)) {
    const text = typeof value === 'string' ? value : typeof value === 'number' ? String(value) : undefined;
    if (text === undefined || parseHostPort(text, 6379) === undefined) {
      const got = text === undefined ? `, got ${value === null ? 'null' : Array.isArray(value) ? 'a list' : `a ${typeof value === 'object' ? 'mapping' : typeof value}`}` : '';
      r.ctx.problems.push({ path, problem: `expected host:port${got}` });
    } else {
      out.push(text);
    }
  }
  return out;
}

function readRedis(r: Reader): RedisConfig {
  const url = r.str('url', { pattern: /^rediss?:\/\//, patternHint: 'expected redis://… or rediss://…' });
  const sentinels = nodeList(r, 'sentinels');
  const cluster = nodeList(r, 'cluster');
  const name = r.str('name');
  const password = r.str('password', { secret: true });
  const modes = [url, sentinels.length ? 1 : undefined, cluster.length ? 1 : undefined].filter((x) => x !== undefined).length;
  if (modes === 0) r.problem(undefined, 'needs one of url, sentinels (with name) or cluster');
  if (modes > 1) r.problem(undefined, 'url, sentinels and cluster are alternatives; set one');
  if (sentinels.length && !name) r.problem('name', 'is required with sentinels (the master group name)');
  const out: RedisConfig = {
    ...(url ? { url } : {}),
    ...(sentinels.length ? { sentinels } : {}),
    ...(cluster.length ? { cluster } : {}),
    ...(name ? { name } : {}),
    ...(password ? { password } : {}),
    keyPrefix: r.str('keyPrefix') ?? 'tokengate:',
    commandTimeout: r.duration('commandTimeout', 50, { min: 1 }),
    connectTimeout: r.duration('connectTimeout', 1000, { min: 1 }),
    replicaAcks: r.num('replicaAcks', 1, { min: 0, max: 16, integer: true }),
    replicaAckTimeout: r.duration('replicaAckTimeout', 1000, { min: 1, max: 60_000 }),
  };
  r.done();
  return out;
}

function readStore(r: Reader): StoreConfig {
  const type = r.oneOf('type', ['memory', 'redis'] as const, 'memory');
  const redisReader = r.has('redis') ? r.child('redis') : undefined;
  const redis = redisReader ? readRedis(redisReader) : undefined;
  const keyText = r.str('encryptionKey', { secret: true });
  let encryptionKey: Buffer | undefined;
  if (keyText !== undefined) {
    const buf = Buffer.from(keyText, 'base64');
    if (buf.length !== 32) r.problem('encryptionKey', 'must be 32 bytes, base64-encoded (e.g. `openssl rand -base64 32`)');
    else encryptionKey = buf;
  }
  // Keys records may still be sealed with (a key rotation): opened with, never sealed with.
  const previousEncryptionKeys: Buffer[] = [];
  for (const { value, path } of r.list('previousEncryptionKeys')) {
    const text = typeof value === 'string' ? substituteSecret(r, path, value) : undefined;
    if (text === undefined) {
      if (typeof value !== 'string') r.ctx.problems.push({ path, problem: 'expected a base64 string' });
      continue;
    }
    // `${env:PREVIOUS_KEY:-}` left empty: no previous key this time (one template for both phases).
    if (text === '' && (value as string).includes('${')) continue;
    const buf = Buffer.from(text, 'base64');
    if (buf.length !== 32) r.ctx.problems.push({ path, problem: 'must be 32 bytes, base64-encoded (e.g. `openssl rand -base64 32`)' });
    else previousEncryptionKeys.push(buf);
  }
  if (previousEncryptionKeys.length && keyText === undefined) r.problem('previousEncryptionKeys', 'needs store.encryptionKey (the key new records are sealed with)');
  if (type === 'redis') {
    if (!redis) r.problem('redis', 'is required with type: redis');
    if (!encryptionKey && keyText === undefined) r.problem('encryptionKey', 'is required with type: redis (tokens are encrypted at rest)');
  }
  r.done();
  return {
    type, ...(redis ? { redis } : {}), ...(encryptionKey ? { encryptionKey } : {}),
    ...(previousEncryptionKeys.length ? { previousEncryptionKeys } : {}),
  };
}

/** A list entry that holds a secret: substituted like `str(…, { secret: true })`, never quoted back. */
function substituteSecret(r: Reader, path: string, raw: string): string | undefined {
  const s = substitute(raw, r.ctx);
  if (s.kind === 'error') {
    r.ctx.problems.push({ path, problem: s.problem });
    return undefined;
  }
  if (s.kind === 'unset') {
    r.ctx.problems.push({ path, problem: `is required (${s.reason})` });
    return undefined;
  }
  if (!s.substituted && s.value !== '') r.ctx.warnings.push({ path, problem: 'holds a literal secret; use ${env:NAME} or ${file:PATH}' });
  return s.value;
}

function readSigning(r: Reader, defaults: { ttl: number }): JwtSigningConfig | undefined {
  const algorithm = r.oneOf('algorithm', ALGORITHMS, 'HS256');
  const key = r.str('key', { required: true, secret: true });
  const keyId = r.str('keyId');
  const claims = readClaims(r);
  const ttl = r.duration('ttl', defaults.ttl, { min: MIN_LIFETIME_MS, max: MAX_LIFETIME_MS });
  if (key === undefined) return undefined;
  if (algorithm.startsWith('HS') && key.length < 32) r.warn('key', 'an HMAC secret shorter than 32 bytes is weak');
  if (!algorithm.startsWith('HS') && !key.includes('-----BEGIN')) r.problem('key', `${algorithm} needs a PEM private key`);
  return { algorithm, key, claims, ttl, ...(keyId ? { keyId } : {}) };
}

function readClaims(r: Reader): Record<string, unknown> {
  const raw = r.value('claims');
  const path = join(r.path, 'claims');
  if (raw === undefined || raw === null) return {};
  if (typeof raw !== 'object' || Array.isArray(raw)) {
    r.problem('claims', 'expected a mapping');
    return {};
  }
  const walk = (v: unknown, p: string): unknown => {
    if (typeof v === 'string') {
      const s = substitute(v, r.ctx);
      if (s.kind === 'value') return s.value;
      r.ctx.problems.push({ path: p, problem: s.kind === 'unset' ? `is required (${s.reason})` : s.problem });
      return undefined;
    }
    if (Array.isArray(v)) return v.map((x, i) => walk(x, join(p, i)));
    if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, walk(x, join(p, k))]));
    return v;
  };
  return walk(raw, path) as Record<string, unknown>;
}

function readEndpoint(r: Reader, type: 'client_credentials' | 'refresh_token' | 'jwt_bearer' | 'token_exchange'): TokenEndpointConfig | undefined {
  const tokenUrl = r.str('tokenUrl', { required: true });
  const allowPlainHttp = r.bool('allowPlainHttp', false);
  if (tokenUrl !== undefined) {
    let url: URL | undefined;
    try {
      url = new URL(tokenUrl);
    } catch {
      r.problem('tokenUrl', 'is not a valid URL');
    }
    if (url && url.protocol !== 'https:' && url.protocol !== 'http:') r.problem('tokenUrl', 'must be an https URL');
    if (url && url.protocol === 'http:' && !isLoopbackHost(url.hostname)) {
      if (allowPlainHttp) r.warn('allowPlainHttp', 'plain http to a non-loopback host sends client secrets in clear text');
      else r.problem('tokenUrl', 'must be https (plain http is allowed only to loopback addresses, or with allowPlainHttp: true)');
    }
    if (url && (url.username || url.password)) r.problem('tokenUrl', 'must not carry credentials; use clientId/clientSecret');
  }
  const clientId = r.str('clientId', { required: type === 'client_credentials' });
  const authMethod = r.oneOf('authMethod', AUTH_METHODS, 'client_secret_basic');
  const clientSecret = r.str('clientSecret', { secret: true });
  const privateKey = r.str('privateKey', { secret: true });
  const keyId = r.str('keyId');
  const assertionAlgorithm = r.oneOf('assertionAlgorithm', ALGORITHMS, 'RS256');
  if (authMethod === 'private_key_jwt') {
    if (!privateKey && !r.has('privateKey')) r.problem('privateKey', 'is required with authMethod: private_key_jwt');
    if (privateKey && !assertionAlgorithm.startsWith('HS') && !privateKey.includes('-----BEGIN')) {
      r.problem('privateKey', 'expected a PEM private key');
    }
    if (!clientId) r.problem('clientId', 'is required with authMethod: private_key_jwt');
  } else if (clientId && clientSecret === undefined && type === 'client_credentials' && !r.has('clientSecret')) {
    r.problem('clientSecret', `is required with authMethod: ${authMethod}`);
  }
  const scope = r.str('scope');
  const audience = r.str('audience');
  const params = r.stringMap('params');
  const defaultTtl = r.duration('defaultTtl', 3_600_000, { min: MIN_LIFETIME_MS, max: MAX_LIFETIME_MS });
  let tls: TokenEndpointConfig['tls'];
  if (r.has('tls')) {
    const t = r.child('tls');
    if (t) {
      const caFile = t.str('caFile');
      const pinSha256 = t.str('pinSha256', { pattern: /^[A-Za-z0-9+/]{43}=$/, patternHint: 'expected base64 of a SHA-256 digest (44 characters)' });
      t.done();
      tls = { ...(caFile ? { caFile } : {}), ...(pinSha256 ? { pinSha256 } : {}) };
    }
  }
  if (tokenUrl === undefined) return undefined;
  return {
    tokenUrl, authMethod, assertionAlgorithm, params, defaultTtl, allowPlainHttp,
    ...(clientId ? { clientId } : {}),
    ...(clientSecret !== undefined ? { clientSecret } : {}),
    ...(privateKey ? { privateKey } : {}),
    ...(keyId ? { keyId } : {}),
    ...(scope ? { scope } : {}),
    ...(audience ? { audience } : {}),
    ...(tls ? { tls } : {}),
  };
}

function readSource(r: Reader): SourceConfig | undefined {
  const type = r.oneOf('type', SOURCE_TYPES, undefined, { required: true });
  let out: SourceConfig | undefined;
  switch (type) {
    case 'client_credentials': {
      const e = readEndpoint(r, type);
      if (e) out = { type, ...e };
      break;
    }
    case 'refresh_token': {
      const refreshToken = r.str('refreshToken', { required: true, secret: true });
      const reuseInterval = r.duration('reuseInterval', 0, { min: 0, max: 86_400_000 });
      const e = readEndpoint(r, type);
      if (e && refreshToken) out = { type, refreshToken, reuseInterval, ...e };
      break;
    }
    case 'jwt': {
      const s = readSigning(r, { ttl: 30 * 60_000 });
      if (s) out = { type, ...s };
      break;
    }
    case 'jwt_bearer': {
      const a = r.child('assertion');
      const assertion = a ? readSigning(a, { ttl: 5 * 60_000 }) : undefined;
      a?.done();
      const e = readEndpoint(r, type);
      if (e && assertion) out = { type, assertion, ...e };
      break;
    }
    case 'token_exchange':
      out = readTokenExchange(r);
      break;
    case 'static': {
      const token = r.str('token', { secret: true });
      const file = r.str('file');
      const pollInterval = r.duration('pollInterval', 5_000, { min: 100 });
      if ((token === undefined) === (file === undefined) && !r.has('token')) r.problem(undefined, 'needs exactly one of token or file');
      if (token !== undefined && file !== undefined) r.problem(undefined, 'needs exactly one of token or file');
      out = { type, pollInterval, ...(token !== undefined ? { token } : {}), ...(file ? { file } : {}) };
      break;
    }
    case undefined:
      break;
  }
  if (type) r.done();
  return out;
}

const ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token';
const TOKEN_TYPE_URI = /^(urn:[A-Za-z0-9][A-Za-z0-9-]{0,31}:\S+|https?:\/\/\S+)$/;
/** Asymmetric JWS algorithms a subject token may be signed with (HS* would need a shared secret; `none` never). */
const VERIFY_ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'];

/** A string or a list of strings (RFC 8693 audience and resource may repeat). */
function strList(r: Reader, key: string): string[] {
  if (!r.has(key)) return [];
  const v = r.value(key);
  if (!Array.isArray(v)) {
    const one = r.str(key);
    return one ? [one] : [];
  }
  const out: string[] = [];
  for (const { value, path } of r.list(key)) {
    if (typeof value === 'string' && value) out.push(value);
    else r.ctx.problems.push({ path, problem: 'expected a non-empty string' });
  }
  return out;
}

function httpsUrl(r: Reader, key: string, value: string | undefined): void {
  if (value === undefined) return;
  let url: URL | undefined;
  try {
    url = new URL(value);
  } catch {
    r.problem(key, 'is not a valid URL');
    return;
  }
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && isLoopbackHost(url.hostname))) r.problem(key, 'must be https (plain http only to loopback addresses)');
}

function readSubjectToken(r: Reader, style: 'rfc8693' | 'entra_obo'): SubjectTokenConfig | undefined {
  const rq = r.has('request') ? r.child('request') : undefined;
  let request: SubjectTokenConfig['request'];
  if (rq) {
    const header = (rq.str('header') ?? 'authorization').toLowerCase();
    if (!HEADER_NAME.test(header) || header.startsWith(':')) rq.problem('header', 'expected an HTTP header name');
    const scheme = rq.str('scheme') ?? (header === 'authorization' ? 'Bearer' : '');
    if (scheme !== '' && !/^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,32}$/.test(scheme)) rq.problem('scheme', 'expected an auth scheme such as Bearer, or "" for a bare token');
    const maxBytes = rq.num('maxBytes', 16_384, { min: 64, max: 65_536, integer: true });
    rq.done();
    request = { header, scheme, maxBytes };
  } else {
    r.problem('request', 'is required: the subject token comes from the caller\'s request (file, env and provider subjects are another source form)');
  }
  const type = r.str('type') ?? ACCESS_TOKEN_TYPE;
  if (!TOKEN_TYPE_URI.test(type)) r.problem('type', 'expected a token type URI such as urn:ietf:params:oauth:token-type:access_token');
  if (style === 'entra_obo' && r.has('type')) r.problem('type', 'is an RFC 8693 parameter; style entra_obo sends the caller\'s token as an assertion');
  let verify: SubjectTokenConfig['verify'];
  const v = r.has('verify') ? r.child('verify') : undefined;
  if (v) {
    const issuer = v.str('issuer', { required: true });
    const audience = strList(v, 'audience');
    const jwksUri = v.str('jwksUri');
    httpsUrl(v, 'jwksUri', jwksUri);
    if (!jwksUri) httpsUrl(v, 'issuer', issuer);
    const algorithms = strList(v, 'algorithms');
    for (const a of algorithms) if (!VERIFY_ALGORITHMS.includes(a)) v.problem('algorithms', `${a} is not allowed (one of ${VERIFY_ALGORITHMS.join(', ')})`);
    const leeway = v.duration('leeway', 0, { min: 0, max: 300_000 });
    v.done();
    if (issuer) {
      verify = {
        issuer, leeway, algorithms: algorithms.length ? algorithms : ['RS256', 'PS256', 'ES256', 'EdDSA'],
        ...(audience.length ? { audience } : {}), ...(jwksUri ? { jwksUri } : {}),
      };
    }
  }
  r.done();
  if (!request) return undefined;
  return { request, type, ...(verify ? { verify } : {}) };
}

function readTokenExchange(r: Reader): SourceConfig | undefined {
  const style = r.oneOf('style', ['rfc8693', 'entra_obo'] as const, 'rfc8693');
  const sr = r.child('subjectToken');
  if (!r.has('subjectToken')) r.problem('subjectToken', 'is required');
  const subjectToken = sr ? readSubjectToken(sr, style) : undefined;
  let actorToken: { provider: string; type: string } | undefined;
  const ar = r.has('actorToken') ? r.child('actorToken') : undefined;
  if (ar) {
    const provider = ar.str('provider', { required: true });
    const type = ar.str('type') ?? ACCESS_TOKEN_TYPE;
    if (!TOKEN_TYPE_URI.test(type)) ar.problem('type', 'expected a token type URI');
    ar.done();
    if (style === 'entra_obo') r.problem('actorToken', 'is an RFC 8693 parameter; style entra_obo has no actor token');
    if (provider) actorToken = { provider, type };
  }
  const resource = strList(r, 'resource');
  for (const res of resource) if (!/^[a-z][a-z0-9+.-]*:/i.test(res) || res.includes('#')) r.problem('resource', 'expected absolute URIs without a fragment (RFC 8707)');
  const requestedTokenType = r.str('requestedTokenType');
  if (requestedTokenType !== undefined && !TOKEN_TYPE_URI.test(requestedTokenType)) r.problem('requestedTokenType', 'expected a token type URI');
  if (style === 'entra_obo') {
    if (resource.length) r.problem('resource', 'is an RFC 8693 parameter; style entra_obo takes scope only');
    if (requestedTokenType !== undefined) r.problem('requestedTokenType', 'is an RFC 8693 parameter; style entra_obo takes scope only');
    if (r.has('audience')) r.problem('audience', 'is an RFC 8693 parameter; style entra_obo takes scope only');
    if (!r.has('scope')) r.problem('scope', 'is required with style entra_obo (e.g. api://<app-id>/.default)');
  }
  const e = readEndpoint(r, 'token_exchange');
  if (!e || !subjectToken) return undefined;
  return {
    type: 'token_exchange', style, subjectToken, ...e,
    ...(actorToken ? { actorToken } : {}),
    ...(resource.length ? { resource } : {}),
    ...(requestedTokenType ? { requestedTokenType } : {}),
  };
}

/** `cache:` of a per-caller token_exchange provider. */
function readPerCallerCache(r: Reader | undefined): PerCallerCacheConfig {
  const out: PerCallerCacheConfig = {
    maxEntries: r?.num('maxEntries', 10_000, { min: 1, max: 10_000_000, integer: true }) ?? 10_000,
    maxBytes: r?.num('maxBytes', 64 * 1024 * 1024, { min: 64 * 1024, max: 16 * 1024 * 1024 * 1024, integer: true }) ?? 64 * 1024 * 1024,
    negativeTtl: r?.duration('negativeTtl', 30_000, { min: 0, max: DAY_MS }) ?? 30_000,
    shared: r?.bool('shared', false) ?? false,
  };
  r?.done();
  return out;
}

function readInject(r: Reader | undefined): InjectConfig {
  const header = (r?.str('header') ?? 'authorization').toLowerCase();
  if (!HEADER_NAME.test(header)) r?.problem('header', 'expected an HTTP header name');
  if (header.startsWith(':') || header === 'host') r?.problem('header', 'pseudo-headers and host cannot be injected');
  const format = r?.str('format') ?? 'Bearer {token}';
  if (!format.includes('{token}')) r?.problem('format', 'must contain {token}');
  const badFormat = formatProblem(format);
  if (badFormat) r?.problem('format', badFormat);
  const removeHeaders = (r?.list('removeHeaders') ?? []).map((e) => String(e.value).toLowerCase());
  const maxTokenBytes = r?.num('maxTokenBytes', DEFAULT_MAX_TOKEN_BYTES, { min: MIN_MAX_TOKEN_BYTES, max: MAX_MAX_TOKEN_BYTES, integer: true }) ?? DEFAULT_MAX_TOKEN_BYTES;
  r?.done();
  return { header, format, removeHeaders, maxTokenBytes };
}

function readRefresh(r: Reader | undefined): RefreshConfig {
  const before = r?.duration('before', undefined, { min: 0 });
  const skew = r?.duration('skew', undefined, { min: 0 });
  const out: RefreshConfig = {
    jitter: r?.fraction('jitter', 0.1) ?? 0.1,
    waitBudget: r?.duration('waitBudget', 150, { min: 0, max: 60_000 }) ?? 150,
    ...(before !== undefined ? { before } : {}),
    ...(skew !== undefined ? { skew } : {}),
  };
  r?.done();
  return out;
}

function readResilience(r: Reader | undefined): ResilienceConfig {
  const backoffR = r?.has('backoff') ? r.child('backoff') : undefined;
  const backoff = { base: backoffR?.duration('base', 200, { min: 1 }) ?? 200, max: backoffR?.duration('max', 5_000, { min: 1 }) ?? 5_000 };
  backoffR?.done();
  if (backoff.max < backoff.base) backoffR?.problem('max', 'must be at least base');
  const b = r?.has('breaker') ? r.child('breaker') : undefined;
  const breaker = {
    window: b?.duration('window', 60_000, { min: 100 }) ?? 60_000,
    volumeThreshold: b?.num('volumeThreshold', 5, { min: 1, integer: true }) ?? 5,
    errorThresholdPercentage: b?.num('errorThresholdPercentage', 50, { min: 1, max: 100 }) ?? 50,
    resetTimeout: b?.duration('resetTimeout', 30_000, { min: 10 }) ?? 30_000,
  };
  b?.done();
  const emergencyToken = r?.str('emergencyToken', { secret: true });
  const out: ResilienceConfig = {
    timeout: r?.duration('timeout', 5_000, { min: 1 }) ?? 5_000,
    retries: r?.num('retries', 3, { min: 0, max: 20, integer: true }) ?? 3,
    backoff,
    breaker,
    serveExpiredFor: r?.duration('serveExpiredFor', 0, { min: 0, max: DAY_MS }) ?? 0,
    ...(emergencyToken ? { emergencyToken } : {}),
  };
  r?.done();
  return out;
}

/**
 * Tokens written into the config reach the header as they are: one that is not a valid header
 * value (or is too long) is a config error here rather than a forwarded CRLF. Never quoted.
 */
function checkConfiguredTokens(r: Reader, source: SourceConfig, inject: InjectConfig, resilience: ResilienceConfig): void {
  const check = (token: string, tokenType: string) =>
    tokenProblem(token, { tokenType, format: inject.format, maxBytes: inject.maxTokenBytes, fromTokenEndpoint: false });
  if (source.type === 'static' && source.token !== undefined) {
    const problem = check(source.token, 'Bearer');
    if (problem) r.ctx.problems.push({ path: join(join(r.path, 'source'), 'token'), problem });
  }
  if (resilience.emergencyToken !== undefined) {
    const problem = check(resilience.emergencyToken, 'Bearer');
    if (problem) r.ctx.problems.push({ path: join(join(r.path, 'resilience'), 'emergencyToken'), problem });
  }
}

/** Returns one shared instance per distinct value: most providers use the same settings. */
type Interner = <T>(value: T) => T;

function interner(): Interner {
  const seen = new Map<string, unknown>();
  return <T>(value: T): T => {
    const key = JSON.stringify(value);
    const hit = seen.get(key);
    if (hit !== undefined) return hit as T;
    seen.set(key, value);
    return value;
  };
}

function readProvider(name: string, r: Reader, intern: Interner): ProviderConfig | undefined {
  const sr = r.child('source');
  const source = sr ? readSource(sr) : undefined;
  if (!r.has('source')) r.problem('source', 'is required');
  const inject = readInject(r.has('inject') ? r.child('inject') : undefined);
  const refresh = readRefresh(r.has('refresh') ? r.child('refresh') : undefined);
  const resilience = readResilience(r.has('resilience') ? r.child('resilience') : undefined);
  const perCaller = source?.type === 'token_exchange' && source.subjectToken.request !== undefined;
  let cache: PerCallerCacheConfig | undefined;
  if (perCaller) cache = readPerCallerCache(r.has('cache') ? r.child('cache') : undefined);
  else if (r.has('cache')) r.problem('cache', 'is for token_exchange providers whose subjectToken comes from the request (per-caller tokens)');
  if (perCaller && r.has('resilience')) {
    // A per-caller token is served stale only before its hard expiry: no grace, no emergency token.
    const rr = r.child('resilience');
    if (rr?.has('serveExpiredFor')) rr.problem('serveExpiredFor', 'does not apply to per-caller tokens (a caller\'s token is never served past its expiry)');
    if (rr?.has('emergencyToken')) rr.problem('emergencyToken', 'does not apply to per-caller tokens (one shared token would erase the caller\'s identity)');
  }
  const purge = r.list('purgeOnUpstreamStatus');
  const purgeOnUpstreamStatus = purge.length || r.has('purgeOnUpstreamStatus') ? [] as number[] : [401];
  for (const e of purge) {
    const n = Number(e.value);
    if (!Number.isInteger(n) || n < 100 || n > 599) r.ctx.problems.push({ path: e.path, problem: 'expected an HTTP status code' });
    else purgeOnUpstreamStatus.push(n);
  }
  r.done();
  if (!source) return undefined;
  checkConfiguredTokens(r, source, inject, resilience);
  // Ten thousand providers with default settings share one copy of each (config is frozen).
  return {
    name, source, inject: intern(inject), refresh: intern(refresh), resilience: intern(resilience), purgeOnUpstreamStatus: intern(purgeOnUpstreamStatus),
    ...(cache ? { cache } : {}),
  };
}

function readRoutes(r: Reader, declared: ReadonlySet<string>): RouteConfig[] {
  const routes: RouteConfig[] = [];
  for (const { value, path } of r.list('routes')) {
    const rr = Reader.of(value, path, r.ctx);
    if (!rr) continue;
    const provider = rr.str('provider', { required: true });
    if (provider && !declared.has(provider)) rr.problem('provider', `names no configured provider`);
    const m = rr.child('match');
    const authority = m?.str('authority', { pattern: /^(\*\.)?[A-Za-z0-9.-]+(:\d+)?$|^\*$/, patternHint: 'expected a host name or *.suffix' });
    const pathPrefix = m?.str('pathPrefix', { pattern: /^\//, patternHint: 'must start with /' });
    const method = m?.str('method')?.toUpperCase();
    const headers = m?.has('headers') ? m.stringMap('headers') : undefined;
    m?.done();
    rr.done();
    if (!provider) continue;
    routes.push({
      provider,
      // A plain literal (absent = undefined): with ten thousand routes, objects built from
      // several spreads each get hidden classes of their own on Node 20.
      match: {
        authority: authority ? authority.toLowerCase() : undefined,
        pathPrefix: pathPrefix || undefined,
        method: method || undefined,
        headers: headers ? Object.fromEntries(Object.entries(headers).map(([k, v]) => [k.toLowerCase(), v])) : undefined,
      },
    });
  }
  return routes;
}

/** `actorToken.provider` names a provider with one shared token (not itself, not a per-caller one). */
function checkActorTokens(providers: ReadonlyMap<string, ProviderConfig>, ctx: ReadContext): void {
  for (const p of providers.values()) {
    if (p.source.type !== 'token_exchange' || !p.source.actorToken) continue;
    const path = `providers.${p.name}.source.actorToken.provider`;
    const actor = providers.get(p.source.actorToken.provider);
    if (!actor) ctx.problems.push({ path, problem: 'names no configured provider' });
    else if (actor === p) ctx.problems.push({ path, problem: 'cannot name its own provider' });
    else if (actor.cache) ctx.problems.push({ path, problem: `${actor.name} issues per-caller tokens; an actor token is the gateway's own` });
  }
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object' && !Buffer.isBuffer(value) && !Object.isFrozen(value)) {
    if (value instanceof Map) for (const v of value.values()) deepFreeze(v);
    else for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}

/** Validates a parsed YAML document. Problems and warnings go to ctx; returns undefined if any problem. */
export function readConfig(raw: unknown, ctx: ReadContext): Config | undefined {
  const root = Reader.of(raw, '', ctx);
  if (!root) return undefined;
  const listenR = root.child('listen');
  const listen = listenR ? readListen(listenR) : { grpc: '127.0.0.1:9191', limits: readLimits(undefined) };
  const adminR = root.child('admin');
  const adminToken = adminR?.str('token', { secret: true });
  if (adminToken !== undefined && adminToken.length < 16) adminR?.problem('token', 'must be at least 16 characters');
  // It is presented as `Bearer <token>` and compared exactly: whitespace could never match.
  else if (adminToken !== undefined && !/^[\x21-\x7e]+$/.test(adminToken)) adminR?.problem('token', 'must be visible ASCII characters only (no spaces or control characters)');
  adminR?.done();
  const storeR = root.child('store');
  const store = storeR ? readStore(storeR) : { type: 'memory' as const };
  const d = root.child('defaults');
  const defaults = {
    unmatched: d?.oneOf('unmatched', ['allow', 'deny'] as const, 'allow') ?? 'allow',
    onTokenUnavailable: d?.oneOf('onTokenUnavailable', ['deny', 'allow'] as const, 'deny') ?? 'deny',
    providerKey: d?.str('providerKey') ?? 'provider',
  };
  d?.done();
  const l = root.child('log');
  const log = {
    level: l?.oneOf('level', ['debug', 'info', 'warn', 'error'] as const, 'info') ?? 'info',
    requests: l?.bool('requests', false) ?? false,
  };
  l?.done();
  const s = root.child('shutdown');
  const shutdown = {
    deadline: s?.duration('deadline', 10_000, { min: 100, max: 300_000 }) ?? 10_000,
    drainDelay: s?.duration('drainDelay', 0, { min: 0, max: 300_000 }) ?? 0,
  };
  if (shutdown.drainDelay >= shutdown.deadline) s?.problem('drainDelay', 'must be shorter than deadline');
  s?.done();

  const providers = new Map<string, ProviderConfig>();
  const pr = root.child('providers');
  const intern = interner();
  const declared = new Set<string>(pr ? Object.keys(pr.raw) : []);
  if (pr) {
    for (const name of Object.keys(pr.raw)) {
      const r = Reader.of(pr.value(name), join(pr.path, name), ctx);
      if (!NAME.test(name)) pr.problem(name, 'provider names use letters, digits, _, . and - (at most 128)');
      if (!r) continue;
      const p = readProvider(name, r, intern);
      if (p) providers.set(name, p);
    }
  }
  checkActorTokens(providers, ctx);
  for (const p of providers.values()) {
    if (p.cache?.shared && store.type !== 'redis') ctx.problems.push({ path: `providers.${p.name}.cache.shared`, problem: 'needs store.type: redis (the shared store); with the memory store each replica keeps its own callers' });
  }
  const routes = readRoutes(root, declared);
  const tokenEndpoints = readTokenEndpoints(root);
  root.done();
  if (ctx.problems.length) return undefined;
  return deepFreeze({ listen, admin: adminToken ? { token: adminToken } : {}, store, tokenEndpoints, defaults, log, shutdown, providers, routes, warnings: [...ctx.warnings] });
}
