// Three replicas sharing one token-endpoint budget through real Redis: the IdP sees at most
// `burst + maxRate × W` requests in any window W, all replicas together.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { systemClock } from '../../src/clock.js';
import { parseConfig } from '../../src/config/load.js';
import { silentLogger } from '../../src/observability/logger.js';
import { Metrics } from '../../src/observability/metrics.js';
import { createStore } from '../../src/store/create-store.js';
import { TokenManager } from '../../src/tokens/manager.js';
import { REDIS_URL, redisAvailable } from '../support/redis.js';
import { deleteKeys, newEncryptionKey, newKeyPrefix } from '../support/replicas.js';

const haveRedis = await redisAvailable();

describe.skipIf(!haveRedis)('token-endpoint budget shared by replicas (Redis)', () => {
  const seen: number[] = [];
  let server: http.Server;
  let url = '';
  const keyPrefix = newKeyPrefix('budget');

  beforeAll(async () => {
    server = http.createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        seen.push(Date.now());
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ access_token: randomBytes(12).toString('hex'), token_type: 'Bearer', expires_in: 3600 }));
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
    await deleteKeys(REDIS_URL, keyPrefix);
  });

  it('three replicas with maxRate 5/s: at most 5/s in total (plus the burst)', async () => {
    const key = newEncryptionKey();
    const replicas: TokenManager[] = [];
    for (let r = 0; r < 3; r++) {
      const providers = Array.from({ length: 8 }, (_, i) =>
        `  r${r}p${i}: { source: { type: client_credentials, tokenUrl: "${url}/token", clientId: r${r}p${i}, clientSecret: s } }`);
      const config = parseConfig([
        `store: { type: redis, redis: { url: "${REDIS_URL}", keyPrefix: "${keyPrefix}" }, encryptionKey: "${key}" }`,
        `tokenEndpoints: { "${url}": { maxRate: 5/s, burst: 5, maxConcurrent: 4 } }`,
        'providers:', ...providers,
      ].join('\n'), { env: {} });
      const metrics = new Metrics();
      const store = await createStore(config.store, { clock: systemClock, logger: silentLogger, metrics });
      replicas.push(new TokenManager(config.providers.values(), {
        store, metrics, keyPrefix, ...(config.tokenEndpoints ? { tokenEndpoints: config.tokenEndpoints } : {}),
      }));
    }
    try {
      expect(replicas[0]!.budgetStatus().find((b) => b.origin === url)!.shared).toBe(true);
      const started = Date.now();
      await Promise.all(replicas.map((m) => Promise.all(m.names().map((n) => m.provider(n)!.refresh('warm_up')))));
      const took = Date.now() - started;
      expect(seen.length).toBe(24);
      // 24 requests, 5 at once, then 5 a second: at least ~3.8 s, whichever replica sends them.
      expect(took).toBeGreaterThanOrEqual(3_400);
      const maxIn = (ms: number) => {
        let best = 0;
        for (let i = 0, j = 0; j < seen.length; j++) {
          while (seen[j]! - seen[i]! >= ms) i++;
          best = Math.max(best, j - i + 1);
        }
        return best;
      };
      expect(maxIn(1_000)).toBeLessThanOrEqual(5 + 5);
      expect(maxIn(2_000)).toBeLessThanOrEqual(5 + 10);
    } finally {
      await Promise.all(replicas.map((m) => m.close(0)));
    }
  }, 30_000);
});
