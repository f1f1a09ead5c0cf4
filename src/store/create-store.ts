// Which shared store a config asks for.
import type { StoreConfig } from '../config/types.js';
import { MemoryStore } from './memory-store.js';
import type { StoreDeps } from './store-deps.js';
import type { TokenStore } from './store.js';

export type { StoreDeps } from './store-deps.js';

export async function createStore(config: StoreConfig, deps: StoreDeps): Promise<TokenStore> {
  if (config.type === 'memory') return new MemoryStore(() => deps.clock.now());
  // Loaded only when asked for, so the memory default never touches ioredis.
  const { RedisStore } = await import('./redis-store.js');
  return RedisStore.connect(config, deps);
}
