// The one place that knows the config file's shape. Raw YAML in, frozen `Config` out.
import { DAY_MS } from './duration.js';
import { DEFAULT_MAX_TOKEN_BYTES, formatProblem, HEADER_NAME, MAX_MAX_TOKEN_BYTES, MIN_MAX_TOKEN_BYTES, tokenProblem } from './header-value.js';
import { MAX_LIFETIME_MS, MIN_LIFETIME_MS } from './lifetime-bounds.js';
import { readTokenEndpoints } from './token-endpoints.js';
import { join, Reader, type ReadContext } from './reader.js';
import { readLimits, readListen } from './read/listen.js';
import { readStore } from './read/store.js';
import { checkActorTokens, checkChains } from './read/chains.js';
import { readRoutes } from './read/routes.js';
import { checkEndpointUrl } from './read/endpoint-url.js';
import { readEndpoint, readEndpointTls } from './read/endpoint.js';
import { readSigning } from './read/signing.js';
import { readPerCallerCache, readTokenExchange } from './read/token-exchange.js';
import type {
  Config, InjectConfig, PerCallerCacheConfig, ProviderConfig, RefreshConfig, ResilienceConfig, SourceConfig,
} from './types.js';

export { DEFAULT_LISTEN_LIMITS } from './read/listen.js';
export { sourceLinks } from './read/chains.js';
export { isLoopbackHost } from './read/endpoint-url.js';

const SOURCE_TYPES = ['client_credentials', 'refresh_token', 'jwt', 'jwt_bearer', 'static', 'metadata', 'gcp_impersonation', 'token_exchange'] as const;
const METADATA_DEFAULT_ENDPOINT = { gcp: 'http://metadata.google.internal', azure: 'http://169.254.169.254' } as const;
const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;

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
    case 'static': {
      const token = r.str('token', { secret: true });
      const file = r.str('file');
      const pollInterval = r.duration('pollInterval', 5_000, { min: 100 });
      if ((token === undefined) === (file === undefined) && !r.has('token')) r.problem(undefined, 'needs exactly one of token or file');
      if (token !== undefined && file !== undefined) r.problem(undefined, 'needs exactly one of token or file');
      out = { type, pollInterval, ...(token !== undefined ? { token } : {}), ...(file ? { file } : {}) };
      break;
    }
    case 'metadata': {
      const flavor = r.oneOf('flavor', ['gcp', 'azure'] as const, undefined, { required: true });
      const endpoint = r.str('endpoint') ?? (flavor ? METADATA_DEFAULT_ENDPOINT[flavor] : '');
      // Plain http to the link-local metadata address is the platform's design, so it is
      // allowed here (and only here) without allowPlainHttp.
      if (r.has('endpoint')) {
        try {
          const u = new URL(endpoint);
          if (u.protocol !== 'http:' && u.protocol !== 'https:') r.problem('endpoint', 'must be an http(s) URL');
          if (u.username || u.password || u.search) r.problem('endpoint', 'must be a base URL without credentials or query');
        } catch {
          r.problem('endpoint', 'is not a valid URL');
        }
      }
      const serviceAccount = r.str('serviceAccount') ?? 'default';
      const scopes = stringList(r, 'scopes');
      const resource = r.str('resource');
      const clientId = r.str('clientId');
      const defaultTtl = r.duration('defaultTtl', 3_600_000, { min: MIN_LIFETIME_MS, max: MAX_LIFETIME_MS });
      if (flavor === 'azure' && !resource) r.problem('resource', 'is required with flavor: azure (the resource the token is for)');
      if (flavor === 'gcp' && (resource || clientId)) r.problem(resource ? 'resource' : 'clientId', 'is for flavor: azure');
      if (flavor === 'azure' && (r.has('serviceAccount') || scopes.length)) r.problem(r.has('serviceAccount') ? 'serviceAccount' : 'scopes', 'is for flavor: gcp');
      if (flavor) out = { type, flavor, endpoint, serviceAccount, scopes, defaultTtl, ...(resource ? { resource } : {}), ...(clientId ? { clientId } : {}) };
      break;
    }
    case 'gcp_impersonation': {
      const serviceAccount = r.str('serviceAccount', { required: true, pattern: /^[^/\s]+@[^/\s]+$/, patternHint: 'expected a service account email' });
      const scopes = stringList(r, 'scopes');
      if (!scopes.length && !r.has('scopes')) scopes.push('https://www.googleapis.com/auth/cloud-platform');
      const lifetime = r.duration('lifetime', 3_600_000, { min: MIN_LIFETIME_MS, max: 12 * 3_600_000 });
      const delegates = stringList(r, 'delegates');
      const via = r.str('via', { required: true });
      const endpoint = r.str('endpoint') ?? 'https://iamcredentials.googleapis.com';
      if (r.has('endpoint')) checkEndpointUrl(r, 'endpoint', endpoint, false);
      const defaultTtl = r.duration('defaultTtl', 3_600_000, { min: MIN_LIFETIME_MS, max: MAX_LIFETIME_MS });
      const tls = readEndpointTls(r);
      if (serviceAccount && via) out = { type, serviceAccount, scopes, lifetime, delegates, via, endpoint, defaultTtl, ...(tls ? { tls } : {}) };
      break;
    }
    case 'token_exchange':
      out = readTokenExchange(r);
      break;
    case undefined:
      break;
  }
  if (type) r.done();
  return out;
}

function stringList(r: Reader, key: string): string[] {
  const out: string[] = [];
  for (const { value, path } of r.list(key)) {
    if (typeof value !== 'string' || value === '') r.ctx.problems.push({ path, problem: 'expected a non-empty string' });
    else out.push(value);
  }
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
  const routes = readRoutes(root, declared);
  if (pr) checkChains(providers, pr.path, ctx.problems);
  checkActorTokens(providers, ctx);
  for (const p of providers.values()) {
    if (p.cache?.shared && store.type !== 'redis') ctx.problems.push({ path: `providers.${p.name}.cache.shared`, problem: 'needs store.type: redis (the shared store); with the memory store each replica keeps its own callers' });
  }
  const tokenEndpoints = readTokenEndpoints(root);
  root.done();
  if (ctx.problems.length) return undefined;
  return deepFreeze({ listen, admin: adminToken ? { token: adminToken } : {}, store, tokenEndpoints, defaults, log, shutdown, providers, routes, warnings: [...ctx.warnings] });
}
