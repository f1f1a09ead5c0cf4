// One entry of `providers:`: its source, how its token is injected (`inject`), when it is
// refreshed (`refresh`), how failures are ridden out (`resilience`), its per-caller `cache`
// and the upstream statuses that purge it.
import { DAY_MS } from '../duration.js';
import { DEFAULT_MAX_TOKEN_BYTES, formatProblem, HEADER_NAME, MAX_MAX_TOKEN_BYTES, MIN_MAX_TOKEN_BYTES, tokenProblem } from '../header-value.js';
import { join, type Reader } from '../reader.js';
import type { InjectConfig, PerCallerCacheConfig, ProviderConfig, RefreshConfig, ResilienceConfig, SourceConfig } from '../types.js';
import { readSource } from './sources.js';
import { readPerCallerCache } from './token-exchange.js';

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
export type Interner = <T>(value: T) => T;

export function interner(): Interner {
  const seen = new Map<string, unknown>();
  return <T>(value: T): T => {
    const key = JSON.stringify(value);
    const hit = seen.get(key);
    if (hit !== undefined) return hit as T;
    seen.set(key, value);
    return value;
  };
}

export function readProvider(name: string, r: Reader, intern: Interner): ProviderConfig | undefined {
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
