// The config file's root: raw YAML in, frozen `Config` out. Each section has a reader of its own
// in read/ (listen, store, providers and their sources, routes, chains); this file reads the
// small top-level sections (admin, defaults, log, shutdown) and checks across providers.
// Importers take readConfig, DEFAULT_LISTEN_LIMITS, isLoopbackHost and sourceLinks from here.
import { readTokenEndpoints } from './token-endpoints.js';
import { join, Reader, type ReadContext } from './reader.js';
import { DEFAULT_CHECK_SERVER, readLimits, readListen } from './read/listen.js';
import { readStore } from './read/store.js';
import { checkActorTokens, checkChains } from './read/chains.js';
import { readRoutes } from './read/routes.js';
import { interner, readProvider } from './read/provider.js';
import type { Config, ProviderConfig } from './types.js';

export { DEFAULT_CHECK_SERVER, DEFAULT_LISTEN_LIMITS } from './read/listen.js';
export { sourceLinks } from './read/chains.js';
export { isLoopbackHost } from './read/endpoint-url.js';

const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;

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
  const listen = listenR ? readListen(listenR) : { grpc: '127.0.0.1:9191', checkServer: DEFAULT_CHECK_SERVER, limits: readLimits(undefined) };
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
