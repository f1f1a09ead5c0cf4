// Placeholder until the Redis store lands: keeps `store.type: redis` a clear error.
import type { StoreConfig } from '../config/types.js';
import type { StoreDeps } from './create-store.js';
import type { TokenStore } from './store.js';

export class RedisStore {
  static async connect(_config: StoreConfig, _deps: StoreDeps): Promise<TokenStore> {
    throw new Error('store.type redis is not available in this build');
  }
}
