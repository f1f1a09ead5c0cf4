// The metric names of docs/operations.md (a contract with dashboards), in one place. Label
// values are bounded: provider names come from config, results/sources/outcomes/ops from
// closed sets in code, never from requests.
import { CollectedGauge, Counter, Histogram, Registry } from './prometheus.js';
import { RuntimeMetrics, type BuildInfo } from './runtime-metrics.js';

const LATENCY_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1];
const FETCH_BUCKETS = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
/** From one store round trip (an uncontended lock) to a lock TTL or more (a holder that died). */
const LOCK_WAIT_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

/**
 * What became of one attempt to take a provider's refresh lock on the shared store:
 * acquired (this replica refreshes), contended (another replica held it), lost (a renewal found
 * it gone while this replica was still refreshing), expired (it had lapsed by the time this
 * replica released it: the refresh outlived the lock's TTL).
 */
export type RefreshLockOutcome = 'acquired' | 'contended' | 'lost' | 'expired';

export interface GaugeSources {
  /** [provider, seconds until hard expiry] for each provider holding a token. */
  expiresIn(): Iterable<[string, number]>;
  /** [provider, 0 closed | 1 half-open | 2 open]. */
  breakerStates(): Iterable<[string, number]>;
  /** [provider, 1 when its refresh_token grant needs an operator (needs_attention), else 0]. */
  needsAttention?(): Iterable<[string, number]>;
  /** [provider, callers cached] for each per-caller (token_exchange) provider. */
  exchangeCacheEntries?(): Iterable<[string, number]>;
  /** [origin, requests queued for its token-endpoint budget, effective rate per second]. */
  tokenEndpoints?(): Iterable<[string, number, number]>;
}

export class Metrics {
  readonly registry = new Registry();
  readonly checks = this.registry.add(new Counter('tokengate_checks_total', 'Check calls answered, by provider, result and token source.', ['provider', 'result', 'source']));
  readonly checkDuration = this.registry.add(new Histogram('tokengate_check_duration_seconds', 'Time to answer a Check that had to wait for a token (cache hits are not timed).', LATENCY_BUCKETS));
  readonly fetches = this.registry.add(new Counter('tokengate_token_fetches_total', 'Token fetches by outcome (success, or the error code).', ['provider', 'outcome']));
  readonly fetchDuration = this.registry.add(new Histogram('tokengate_token_fetch_duration_seconds', 'Duration of token fetches, retries included.', FETCH_BUCKETS, ['provider']));
  readonly storeErrors = this.registry.add(new Counter('tokengate_store_errors_total', 'Shared store operations that failed (the replica fell back).', ['op']));
  readonly grantAmbiguous = this.registry.add(new Counter('tokengate_grant_ambiguous_total', 'refresh_token grants whose outcome was unknown (timeout, reset or garbled answer after sending): the refresh token is spent (needs an operator unless inside source.reuseInterval).', ['provider']));
  readonly storeRecordOpens = this.registry.add(new Counter('tokengate_store_record_opens_total', 'Stored records read, by the encryption key that opened them: current, previous (sealed again on the next write), none (no configured key opens it).', ['key']));
  readonly upstreamRejections = this.registry.add(new Counter('tokengate_upstream_rejections_total', 'Upstream responses that rejected an injected token.', ['provider', 'status']));
  readonly exchangeCacheHits = this.registry.add(new Counter('tokengate_exchange_cache_hits_total', 'Checks of a per-caller provider answered from its cache.', ['provider']));
  readonly exchangeCacheMisses = this.registry.add(new Counter('tokengate_exchange_cache_misses_total', 'Checks of a per-caller provider that found no cached token for their caller.', ['provider']));
  readonly exchangeCacheEvictions = this.registry.add(new Counter('tokengate_exchange_cache_evictions_total', 'Callers evicted from a per-caller cache (least recently used, entries or bytes bound).', ['provider']));
  readonly exchanges = this.registry.add(new Counter('tokengate_exchanges_total', 'Token exchanges by outcome: issued, shared (another replica\'s exchange, from the store), rejected (the IdP refused the subject), invalid_subject (refused locally, no IdP call), or the error code.', ['provider', 'outcome']));
  readonly exchangeHolds = this.registry.add(new Counter('tokengate_exchange_holds_total', 'Callers held after upstreams refused their exchanged tokens repeatedly: answered 401 from memory for cache.negativeTtl instead of exchanged.', ['provider']));
  // Replica coordination on the shared store (docs/operations.md, "Coordination metrics").
  readonly refreshLocks = this.registry.add(new Counter('tokengate_refresh_lock_total', 'Attempts to take a provider\'s refresh lock on the shared store, and locks lost or expired while held: acquired, contended (another replica held it), lost (a renewal found it gone), expired (lapsed before release).', ['provider', 'outcome']));
  readonly refreshLockWait = this.registry.add(new Histogram('tokengate_refresh_lock_wait_seconds', 'Time a refresh spent on the shared store before it held the lock or adopted the token another replica published.', LOCK_WAIT_BUCKETS, ['provider']));
  readonly fencedWrites = this.registry.add(new Counter('tokengate_store_fenced_writes_total', 'Writes the shared store refused because it already held a newer token (a stale writer, e.g. a paused former lock holder).', ['provider']));

  readonly endpointThrottled = this.registry.add(new Counter('tokengate_token_endpoint_throttled_total', 'Answers from a token endpoint origin that asked us to slow down (429 or Retry-After).', ['origin']));

  private gauges: GaugeSources = { expiresIn: () => [], breakerStates: () => [] };

  constructor() {
    this.registry.add(new CollectedGauge('tokengate_token_expires_in_seconds', 'Seconds until the cached token reaches hard expiry.', ['provider'], () => mapValues(this.gauges.expiresIn())));
    this.registry.add(new CollectedGauge('tokengate_breaker_state', 'Circuit breaker state: 0 closed, 1 half-open, 2 open.', ['provider'], () => mapValues(this.gauges.breakerStates())));
    this.registry.add(new CollectedGauge('tokengate_exchange_cache_entries', 'Callers held in a per-caller provider\'s cache.', ['provider'], () => mapValues(this.gauges.exchangeCacheEntries?.() ?? [])));
    this.registry.add(new CollectedGauge('tokengate_token_endpoint_queue', 'Token requests waiting for their origin\'s budget.', ['origin'], () => pick(this.gauges.tokenEndpoints?.() ?? [], 1)));
    this.registry.add(new CollectedGauge('tokengate_token_endpoint_rate', 'Token requests a second the origin\'s budget allows now (maxRate, less after a 429).', ['origin'], () => pick(this.gauges.tokenEndpoints?.() ?? [], 2)));
    this.registry.add(new CollectedGauge('tokengate_grant_needs_attention', '1 while a refresh_token grant waits for an operator: its refresh token is spent (an ambiguous grant), the cached token is served.', ['provider'], () => mapValues(this.gauges.needsAttention?.() ?? [])));
  }

  private runtime: RuntimeMetrics | undefined;

  /**
   * Adds the process and Node.js runtime series and tokengate_build_info, after tokengate's
   * own. Only the server does this: tools and tests that build a Metrics need no monitors.
   */
  startRuntime(build: BuildInfo): void {
    this.runtime ??= new RuntimeMetrics(this.registry, build);
  }

  /** Stops the runtime monitors; the series stay, frozen at their last values. */
  close(): void {
    this.runtime?.stop();
  }

  setGaugeSources(sources: GaugeSources): void {
    this.gauges = sources;
  }

  /** Drops series of providers that no longer exist (after a reload). */
  forgetProvider(name: string): void {
    const match = (values: readonly string[]) => values[0] === name;
    this.checks.drop(match);
    this.fetches.drop(match);
    this.fetchDuration.drop(match);
    this.upstreamRejections.drop(match);
    this.grantAmbiguous.drop(match);
    this.exchangeCacheHits.drop(match);
    this.exchangeCacheMisses.drop(match);
    this.exchangeCacheEvictions.drop(match);
    this.exchanges.drop(match);
    this.exchangeHolds.drop(match);
    this.refreshLocks.drop(match);
    this.refreshLockWait.drop(match);
    this.fencedWrites.drop(match);
  }

  render(): string {
    return this.registry.render();
  }
}

function* pick(it: Iterable<[string, number, number]>, i: 1 | 2): Iterable<[string[], number]> {
  for (const row of it) yield [[row[0]], row[i]];
}

function* mapValues(it: Iterable<[string, number]>): Iterable<[string[], number]> {
  for (const [k, v] of it) yield [[k], v];
}
