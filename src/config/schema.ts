// The one place that knows the config file's shape. Raw YAML in, frozen `Config` out.
import { DAY_MS } from './duration.js';
import { DEFAULT_MAX_TOKEN_BYTES, formatProblem, HEADER_NAME, MAX_MAX_TOKEN_BYTES, MIN_MAX_TOKEN_BYTES, tokenProblem } from './header-value.js';
import { readTokenEndpoints } from './token-endpoints.js';
import { join, Reader, type ReadContext } from './reader.js';
import { readLimits, readListen } from './read/listen.js';
import { readStore } from './read/store.js';
import { checkActorTokens, checkChains } from './read/chains.js';
import { readRoutes } from './read/routes.js';
import { readSource } from './read/sources.js';
import { readPerCallerCache } from './read/token-exchange.js';
import type {
  Config, InjectConfig, PerCallerCacheConfig, ProviderConfig, RefreshConfig, ResilienceConfig, SourceConfig,
} from './types.js';

export { DEFAULT_LISTEN_LIMITS } from './read/listen.js';
export { sourceLinks } from './read/chains.js';
export { isLoopbackHost } from './read/endpoint-url.js';

const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;

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
