// Shared by the RedisStore suites.
import { randomBytes } from 'node:crypto';
import { systemClock } from '../../src/clock.js';
import type { StoreConfig } from '../../src/config/types.js';
import { createLogger } from '../../src/observability/logger.js';
import { Metrics } from '../../src/observability/metrics.js';
import { RedisStore } from '../../src/store/redis-store.js';
import type { TokenRecord, TokenStore } from '../../src/store/store.js';

export function storeConfig(url: string, keyPrefix: string, key: Buffer, extra: { commandTimeout?: number; connectTimeout?: number } = {}): StoreConfig {
  return { type: 'redis', encryptionKey: key, redis: { url, keyPrefix, commandTimeout: extra.commandTimeout ?? 50, connectTimeout: extra.connectTimeout ?? 1_000 } };
}

export function connect(config: StoreConfig, logs: string[] = [], metrics = new Metrics()): Promise<TokenStore> {
  return RedisStore.connect(config, { clock: systemClock, logger: createLogger({ level: 'debug', sink: (l) => logs.push(l) }), metrics });
}

let n = 0;
export function record(over: Partial<TokenRecord> = {}): TokenRecord {
  const now = Date.now();
  const accessToken = over.accessToken ?? `at-${randomBytes(12).toString('hex')}`;
  return { accessToken, tokenType: 'Bearer', tokenId: `tid-${++n}`, obtainedAt: now, expiresAt: now + 60_000, lifetimeMs: 60_000, ...over };
}
