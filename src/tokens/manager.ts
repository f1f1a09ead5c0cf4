// The token layer as a library: providers by name, warm-up, get/invalidate/refresh, status,
// reload. The gRPC service is a thin adapter over this.
import { createHash } from 'node:crypto';
import { systemClock, type Clock } from '../clock.js';
import type { ProviderConfig, SourceConfig } from '../config/types.js';
import { flatString } from '../config/string-pool.js';
import { auditInvalidated, type InvalidatedBy } from '../observability/audit.js';
import { silentLogger, type Logger } from '../observability/logger.js';
import { Metrics } from '../observability/metrics.js';
import { RetryAfterGate } from '../resilience/retry-after-gate.js';
import { TokenEndpointBudgets, type BudgetStatus } from '../resilience/token-endpoint-budget.js';
import type { TokenEndpointBudgetConfig } from '../config/types.js';
import { MemoryStore } from '../store/memory-store.js';
import { storeKey, type TokenStore } from '../store/store.js';
import type { TokenServeSource } from './cached-token.js';
import { SourceConfigError, TokenError, isTokenError } from './errors.js';
import type { TokenHandle } from './token-handle.js';
import type { HttpTransport } from './http/transport.js';
import { newReplicaId, Provider, type ProviderDeps, type ProviderStatus } from './provider.js';
import { ProviderLinks } from './linked-tokens.js';
import { createSource } from './sources/index.js';
import { PerCallerProvider, type PerCallerStatus } from './per-caller/per-caller-provider.js';
import { SharedCallers } from './per-caller/shared-callers.js';

export type { BudgetStatus } from '../resilience/token-endpoint-budget.js';

export interface TokenManagerOptions {
  readonly clock?: Clock;
  readonly store?: TokenStore;
  readonly logger?: Logger;
  readonly metrics?: Metrics;
  /** Replaces node:http(s) for token endpoints (tests). */
  readonly transport?: HttpTransport;
  readonly random?: () => number;
  readonly keyPrefix?: string;
  /**
   * The store's encryption key: per-caller providers with `cache.shared` key their records by an
   * HMAC of the subject token under a key derived from it.
   */
  readonly subjectKeySecret?: Buffer;
  /** Per-origin token-endpoint budgets (`tokenEndpoints`); origins not listed get the default. */
  readonly tokenEndpoints?: ReadonlyMap<string, TokenEndpointBudgetConfig>;
}

export interface IssuedToken {
  readonly value: string;
  readonly tokenType: string;
  readonly tokenId: string;
  /** Epoch ms of hard expiry (8.64e15 for tokens that never expire). */
  readonly expiresAt: number;
  /** The injected header's value, e.g. "Bearer …". */
  readonly headerValue: string;
  readonly source: TokenServeSource;
}

const WARM_UP_CONCURRENCY = 32;

/** Identifies a source's configuration: a changed credential never reuses an old token. */
export function sourceHash(source: SourceConfig): string {
  // reuseInterval describes the IdP, not the grant: declaring it keeps the store key (and with
  // it the rotated refresh token) that the grant already has.
  const identity = source.type === 'refresh_token' ? { ...source, reuseInterval: undefined } : source;
  // The first 8 bytes as hex, made as such: a slice of the whole digest's hex would keep it alive.
  return createHash('sha256').update(JSON.stringify(identity)).digest().toString('hex', 0, 8);
}

export class TokenManager {
  private providers = new Map<string, Provider>();
  /** token_exchange providers whose subject is the caller's: one token per caller, no warm-up. */
  private perCallers = new Map<string, PerCallerProvider>();
  readonly clock: Clock;
  readonly store: TokenStore;
  readonly logger: Logger;
  readonly metrics: Metrics;
  readonly replicaId = newReplicaId();
  private readonly gate = new RetryAfterGate();
  /** Every request to a token endpoint waits for its origin's budget, shared through the store. */
  readonly budgets: TokenEndpointBudgets;
  private readonly unsubscribe: () => void;
  private closed = false;
  /** Providers a reload replaced whose refresh in flight has not ended yet. */
  private readonly retiring = new Map<Provider, Promise<void>>();
  /** Chains (`via`, `subjectToken.provider`) reach the current provider of a name through this. */
  private readonly links: ProviderLinks;
  /** What every provider works with: one object for all of them, not one each. */
  private readonly providerDeps: ProviderDeps;

  constructor(providers: Iterable<ProviderConfig>, private readonly opts: TokenManagerOptions = {}) {
    this.clock = opts.clock ?? systemClock;
    this.store = opts.store ?? new MemoryStore(() => this.clock.now());
    this.logger = opts.logger ?? silentLogger;
    this.metrics = opts.metrics ?? new Metrics();
    this.links = new ProviderLinks((name) => this.providers.get(name), this.clock);
    this.budgets = new TokenEndpointBudgets(opts.tokenEndpoints, {
      clock: this.clock,
      shared: this.store.takeRate && this.store.throttleRate && this.store.endRateEpisode
        ? (this.store as Required<Pick<TokenStore, 'takeRate' | 'throttleRate' | 'endRateEpisode' | 'healthy'>>)
        : undefined,
      onThrottled: (origin) => this.metrics.endpointThrottled.inc({ origin }),
    });
    this.providerDeps = {
      clock: this.clock, store: this.store, gate: this.gate, logger: this.logger, metrics: this.metrics,
      replicaId: this.replicaId, budgets: this.budgets, ...(opts.random ? { random: opts.random } : {}),
    };
    const list = [...providers];
    this.providers = this.build(list.filter((c) => !c.cache));
    this.perCallers = this.buildPerCaller(list.filter((c) => c.cache));
    this.unsubscribe = this.store.subscribe((event) => {
      void this.providers.get(event.provider)?.onStoreEvent(event).catch(() => undefined);
      this.perCallers.get(event.provider)?.onStoreEvent(event);
    });
    this.metrics.setGaugeSources({
      expiresIn: () => this.gaugeExpiresIn(),
      breakerStates: () => [...this.providers.values()].map((p) => [p.name, p.breakerValue()] as [string, number]),
      tokenEndpoints: () => this.budgets.gauges(),
      needsAttention: () => [...this.providers.values()].filter((p) => p.source.rotates).map((p) => [p.name, p.needsAttention ? 1 : 0] as [string, number]),
      exchangeCacheEntries: () => [...this.perCallers.values()].map((p) => [p.name, p.size] as [string, number]),
    });
  }

  private *gaugeExpiresIn(): Iterable<[string, number]> {
    for (const p of this.providers.values()) {
      const s = p.status();
      if (s.expiresIn !== null) yield [p.name, s.expiresIn];
    }
  }

  /** Builds providers; a source that cannot work as configured is a config error. */
  private build(configs: Iterable<ProviderConfig>, reuse?: Map<string, Provider>): Map<string, Provider> {
    const out = new Map<string, Provider>();
    const problems: { path: string; problem: string }[] = [];
    for (const config of configs) {
      const hash = sourceHash(config.source);
      const old = reuse?.get(config.name);
      if (old && old.storeKey === this.keyFor(config.name, hash) && JSON.stringify(old.config) === JSON.stringify(config)) {
        out.set(config.name, old);
        continue;
      }
      try {
        const source = createSource(config.source, this.opts.transport, this.links);
        out.set(config.name, new Provider(config, source, this.providerDeps, this.keyFor(config.name, hash)));
      } catch (err) {
        if (!isTokenError(err)) throw err;
        problems.push({ path: `providers.${config.name}.source`, problem: err.message });
      }
    }
    if (problems.length) throw new SourceConfigError(problems);
    return out;
  }

  /** Per-caller providers; unchanged ones (same config) are kept with their callers' tokens. */
  private buildPerCaller(configs: Iterable<ProviderConfig>, reuse?: Map<string, PerCallerProvider>): Map<string, PerCallerProvider> {
    const out = new Map<string, PerCallerProvider>();
    const problems: { path: string; problem: string }[] = [];
    for (const config of configs) {
      const old = reuse?.get(config.name);
      if (old && JSON.stringify(old.config) === JSON.stringify(config)) {
        out.set(config.name, old);
        continue;
      }
      const actor = config.source.type === 'token_exchange' ? config.source.actorToken?.provider : undefined;
      try {
        out.set(config.name, new PerCallerProvider(config, {
          clock: this.clock, gate: this.gate, logger: this.logger, metrics: this.metrics, budgets: this.budgets,
          ...(config.cache?.shared && this.store.shared && this.opts.subjectKeySecret
            ? { shared: new SharedCallers(this.store, this.clock, this.opts.keyPrefix ?? 'tokengate:', config.name, sourceHash(config.source), this.opts.subjectKeySecret, this.replicaId) }
            : {}),
          ...(this.opts.transport ? { transport: this.opts.transport } : {}),
          ...(this.opts.random ? { random: this.opts.random } : {}),
          // The gateway's own token for delegation, from its (shared-token) provider.
          ...(actor ? { actorToken: () => this.getToken(actor).then((t) => t.value) } : {}),
        }));
      } catch (err) {
        if (!isTokenError(err)) throw err;
        problems.push({ path: `providers.${config.name}.source`, problem: err.message });
      }
    }
    if (problems.length) throw new SourceConfigError(problems);
    return out;
  }

  /** The per-caller provider of this name (token_exchange with the caller's subject), if any. */
  perCaller(name: string): PerCallerProvider | undefined {
    return this.perCallers.get(name);
  }

  /** /v1/tokens' per-caller section: cache sizes, hit ratios, last errors; never a token. */
  perCallerStats(): PerCallerStatus[] {
    return [...this.perCallers.values()].map((p) => p.status());
  }

  /**
   * One flat string: the template would be a tree of concatenated strings, four objects more
   * that each provider keeps for as long as it lives.
   */
  private keyFor(name: string, hash: string): string {
    return flatString(storeKey(this.opts.keyPrefix ?? 'tokengate:', name, hash));
  }

  /** Starts the first fetch of every provider; resolves when each has settled (ok or not). */
  async warmUp(): Promise<void> {
    const all = [...this.providers.values()];
    // A bounded number at a time: ten thousand providers must not open ten thousand requests
    // (or allocate ten thousand fetches) at once, and providers sharing an IdP stay polite.
    let next = 0;
    const worker = async () => {
      while (next < all.length) {
        const p = all[next++]!;
        p.refreshInBackground('warm_up');
        await this.warmedOrQueued(p);
      }
    };
    await Promise.all(Array.from({ length: Math.min(WARM_UP_CONCURRENCY, all.length) }, worker));
  }

  /**
   * Readiness does not wait on a budget that cannot serve every provider at once: a provider
   * counts as warmed up when its first fetch has settled, or when that fetch is still queued
   * for its origin's budget after the provider's waitBudget (a Check for it then moves it to the
   * front of the queue).
   */
  private async warmedOrQueued(p: Provider): Promise<void> {
    // A source without a token endpoint (jwt, static) is never queued for a budget: no timer.
    // Ten thousand cancelled ones would still fall due in the clock's queue over the next
    // waitBudget, some 500 timer callbacks a second right after readiness.
    if (p.source.endpoint === undefined) return p.warmedUp;
    const wait = Math.max(1, p.config.refresh.waitBudget);
    for (;;) {
      let timer: { cancel(): void } | undefined;
      const settled = await Promise.race([
        p.warmedUp.then(() => true),
        new Promise<false>((resolve) => (timer = this.clock.setTimer(() => resolve(false), wait))),
      ]);
      timer?.cancel();
      if (settled || p.budgetHint?.queued) return;
    }
  }

  /** Each token-endpoint origin's budget, and the default for origins without an entry (`*`). */
  budgetStatus(): BudgetStatus[] {
    return this.budgets.status();
  }

  /** A reload's new `tokenEndpoints`: limits change at once, queues and 429 state stay. */
  configureBudgets(configs: ReadonlyMap<string, TokenEndpointBudgetConfig> | undefined): void {
    this.budgets.configure(configs);
  }

  /** @internal The provider itself, for tests of the token layer; callers use handle(). */
  provider(name: string): Provider | undefined {
    return this.providers.get(name);
  }

  /**
   * The server's view of one provider's token slot (see TokenHandle), or undefined when no
   * provider has that name. A reload that changes the provider hands out a new handle.
   */
  handle(name: string): TokenHandle | undefined {
    return this.providers.get(name);
  }

  names(): string[] {
    return [...this.providers.keys(), ...this.perCallers.keys()];
  }

  private require(name: string): Provider {
    const p = this.providers.get(name);
    if (!p) throw new TokenError('ERR_UNKNOWN_PROVIDER', `no provider named ${JSON.stringify(name.slice(0, 128))}`, { provider: name });
    return p;
  }

  /** The library's `acquire`: a usable token (waiting at most the provider's waitBudget, then the fallback ladder), or a TokenError. */
  async getToken(name: string): Promise<IssuedToken> {
    const got = await this.require(name).acquire();
    if (got.error) throw got.error;
    const r = got.entry.record;
    return { value: r.accessToken, tokenType: r.tokenType, tokenId: got.entry.tokenId, expiresAt: got.entry.expiresAt, headerValue: got.entry.headerValue, source: got.source };
  }

  /**
   * Invalidates the provider's token (only if it is still `tokenId`, when given): dropped here
   * and in every replica, removed from the store, and a refresh starts. False when the slot did
   * not hold it. `by` names who asked, for the audit line (`upstreamStatus`: the status that
   * proved it dead).
   */
  invalidate(name: string, tokenId?: string, by: InvalidatedBy = 'admin', upstreamStatus?: number): boolean {
    const p = this.require(name);
    const target = tokenId ?? p.peek()?.tokenId;
    const dropped = p.invalidate(tokenId);
    if (dropped && target !== undefined) auditInvalidated(this.logger, { provider: name, tokenId: target, by, ...(upstreamStatus !== undefined ? { status: upstreamStatus } : {}) });
    return dropped;
  }

  /** Forces a refresh now and waits for it. */
  async refresh(name: string): Promise<ProviderStatus> {
    const p = this.require(name);
    await p.refresh('admin');
    return p.status();
  }

  stats(): ProviderStatus[] {
    return [...this.providers.values()].map((p) => p.status());
  }

  /**
   * Swaps in a new provider set. Providers whose config is unchanged are kept as they are (with
   * their tokens); changed ones start fresh and are warmed up before the swap completes.
   */
  async reload(configs: Iterable<ProviderConfig>): Promise<{ added: string[]; changed: string[]; removed: string[] }> {
    const all = [...configs];
    const list = all.filter((c) => !c.cache);
    const next = this.build(list, this.providers);
    const nextPerCaller = this.buildPerCaller(all.filter((c) => c.cache), this.perCallers);
    const added: string[] = [];
    const changed: string[] = [];
    const fresh: Provider[] = [];
    for (const [name, p] of next) {
      const old = this.providers.get(name);
      if (old === p) continue;
      (old ? changed : added).push(name);
      // Same source (only inject/refresh/resilience settings changed): keep the token, and the
      // refresh in flight (handed over, never aborted).
      if (old && old.storeKey === p.storeKey) p.takeOver(old);
      else {
        fresh.push(p);
        // The same grant under a new key (scope, params… changed): go on from its newest refresh
        // token once the old provider's refresh has ended, never from the configured one.
        if (old && p.sameGrantAs(old)) p.continueGrant(old);
        else p.refreshInBackground('warm_up');
      }
    }
    await Promise.all(fresh.map((p) => p.warmedUp));
    const removed = [...this.providers.keys()].filter((n) => !next.has(n));
    const retired = [...this.providers.entries()].filter(([n, p]) => next.get(n) !== p).map(([, p]) => p);
    // A token whose provider went away or changed its source is dropped with it (an inheriting
    // successor on the same store key keeps it).
    for (const p of retired) {
      const id = p.peek()?.tokenId;
      if (id !== undefined && next.get(p.name)?.peek()?.tokenId !== id) auditInvalidated(this.logger, { provider: p.name, tokenId: id, by: 'reload' });
    }
    this.providers = next;
    for (const [name, p] of nextPerCaller) {
      const old = this.perCallers.get(name);
      if (old !== p) (old ? changed : added).push(name);
    }
    for (const [name, p] of this.perCallers) {
      if (nextPerCaller.get(name) === p) continue;
      if (!nextPerCaller.has(name)) removed.push(name);
      void p.close();
    }
    this.perCallers = nextPerCaller;
    for (const n of removed) this.metrics.forgetProvider(n);
    // A retired provider's refresh in flight runs to its end (its result is stored, and handed
    // to its successor) before it closes: a rotation is never cut in half. Shutdown waits too.
    for (const p of retired) this.retiring.set(p, p.retire().finally(() => this.retiring.delete(p)));
    return { added, changed, removed };
  }

  /** Waits (bounded; real time, like close) for retired providers to finish their refresh. */
  private async settleRetiring(deadlineMs: number): Promise<void> {
    if (this.retiring.size === 0) return;
    let t: NodeJS.Timeout | undefined;
    await Promise.race([Promise.all(this.retiring.values()), new Promise<void>((resolve) => (t = setTimeout(resolve, deadlineMs)))]);
    clearTimeout(t);
    // Past the deadline: cut what is left, as shutdown does for current providers.
    await Promise.all([...this.retiring.keys()].map((p) => p.close(0)));
  }

  /** No new refresh starts anywhere (shutdown's first step); cached tokens are still served. */
  quiesce(): void {
    for (const p of this.providers.values()) p.quiesce();
  }

  /** Stops new refreshes, lets in-flight ones finish (bounded), closes breakers and the store. */
  async close(deadlineMs = 5_000): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all([...[...this.providers.values()].map((p) => p.close(deadlineMs)), ...[...this.perCallers.values()].map((p) => p.close()), this.settleRetiring(deadlineMs)]);
    this.unsubscribe();
    this.budgets.close(new TokenError('ERR_SHUTTING_DOWN', 'tokengate is shutting down'));
    await this.store.close().catch(() => undefined);
  }
}
