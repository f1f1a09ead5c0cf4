// Which shared store a config asks for.
import type { Clock } from '../clock.js';
import type { StoreConfig } from '../config/types.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import { MemoryStore } from './memory-store.js';
import type { TokenStore } from './store.js';

export interface StoreDeps {
  readonly clock: Clock;
  readonly logger: Logger;
  readonly metrics: Metrics;
}

export async function createStore(config: StoreConfig, deps: StoreDeps): Promise<TokenStore> {
  if (config.type === 'memory') return new MemoryStore(() => deps.clock.now());
  // Loaded only when asked for, so the memory default never touches ioredis.
  const { RedisStore } = await import('./redis-store.js');
  return RedisStore.connect(config, deps);
}
