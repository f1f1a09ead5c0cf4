// Issue #12 finding 3: rotating store.encryptionKey must neither take rotating providers down nor
// present a spent refresh token. Replicas are TokenManagers in this process, each on its own Redis
// connections and with its own store keys; the IdP rotates refresh tokens and revokes on reuse.
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import type { StoreConfig } from '../../src/config/types.js';
import { DemoTokenServer } from '../../demo/token-server.js';
import { createLogger } from '../../src/observability/logger.js';
import { Metrics } from '../../src/observability/metrics.js';
import { encryptionKeyId, RECORD_FORMAT_VERSION } from '../../src/store/crypto.js';
import { TokenManager } from '../../src/tokens/manager.js';
import { REDIS_URL, redisAvailable } from '../support/redis.js';
import { deleteKeys } from '../support/replicas.js';
import { connect } from '../store/helpers.js';
import { rtSource } from '../support/world.js';

const INITIAL = 'rt-configured-initial';

describe.skipIf(!(await redisAvailable()))('finding 3: store encryption key rotation', () => {
  let idp: DemoTokenServer;
  let prefix: string;
  const managers: TokenManager[] = [];
  const [oldKey, newKey] = [randomBytes(32), randomBytes(32)];

  beforeEach(async () => {
    idp = new DemoTokenServer({ refreshTokens: [INITIAL], tokenTtlSeconds: 300 });
    await idp.start();
    prefix = `tgtest-keyrot-${randomBytes(4).toString('hex')}:`;
  });

  afterEach(async () => {
    await Promise.all(managers.splice(0).map((m) => m.close(1_000)));
    await idp.stop();
    await deleteKeys(REDIS_URL, prefix);
  });

  async function replica(encryptionKey: Buffer, previousEncryptionKeys: Buffer[] = [], logs: string[] = [], metrics = new Metrics()): Promise<TokenManager> {
    const config = parseConfig(`
providers:
  p:
    source: ${rtSource(idp, INITIAL)}
    resilience: { timeout: 2s, retries: 0 }
`);
    const storeConfig: StoreConfig = {
      type: 'redis', encryptionKey, ...(previousEncryptionKeys.length ? { previousEncryptionKeys } : {}),
      redis: { url: REDIS_URL, keyPrefix: prefix, commandTimeout: 200, connectTimeout: 1_000 },
    };
    const store = await connect(storeConfig, logs, metrics);
    const logger = createLogger({ level: 'debug', sink: (l) => logs.push(l) });
    const m = new TokenManager(config.providers.values(), { store, keyPrefix: prefix, logger, metrics });
    managers.push(m);
    await m.warmUp();
    return m;
  }

  async function storedKeyId(): Promise<string> {
    const r = new Redis(REDIS_URL);
    try {
      const keys = await r.keys(`${prefix}*:token`);
      expect(keys).toHaveLength(1);
      const sealed = await r.hgetBuffer(keys[0]!, 'v');
      expect(sealed![0]).toBe(RECORD_FORMAT_VERSION);
      return sealed!.subarray(1, 5).toString('hex');
    } finally {
      r.disconnect();
    }
  }

  it('a new key with the old one as previous opens the old record, presents its refresh token and re-seals it', async () => {
    const a = await replica(oldKey);
    expect(idp.tokenRequestCount).toBe(1);
    expect(await storedKeyId()).toBe(encryptionKeyId(oldKey));
    const first = await a.getToken('p');

    // The roll: a replica with the new key (the old one listed as previous) joins, adopts the
    // stored token without fetching, then refreshes with the stored (rotated) refresh token.
    const metrics = new Metrics();
    const b = await replica(newKey, [oldKey], [], metrics);
    expect((await b.getToken('p')).tokenId).toBe(first.tokenId);
    expect(idp.tokenRequestCount).toBe(1);
    await b.refresh('p');
    expect(idp.tokenRequestCount).toBe(2);
    expect(idp.invalidGrantCount).toBe(0);
    expect(idp.reuseDetectedCount).toBe(0);
    // Written again with the current key; the metrics say a previous key was still needed.
    expect(await storedKeyId()).toBe(encryptionKeyId(newKey));
    expect(metrics.render()).toMatch(/tokengate_store_record_opens_total\{key="previous"\} [1-9]/);

    // The old key dropped: the new record opens and the next rotation is clean too.
    await Promise.all(managers.splice(0).map((m) => m.close(1_000)));
    const c = await replica(newKey);
    await c.refresh('p');
    expect(idp.tokenRequestCount).toBe(3);
    expect(idp.invalidGrantCount).toBe(0);
  });

  it('a record no configured key opens is never treated as absent: no configured refresh token presented, and the message says why', async () => {
    const a = await replica(oldKey);
    const first = await a.getToken('p');
    expect(idp.tokenRequestCount).toBe(1);

    // A replica given only the new key (the old one forgotten) cannot open the record.
    const logs: string[] = [];
    const metrics = new Metrics();
    const b = await replica(newKey, [], logs, metrics);
    const err = await b.getToken('p').then(() => undefined, (e: unknown) => e as { code: string; message: string });
    expect(err?.code).toBe('ERR_REFRESH_UNSAFE');
    expect(err?.message).toContain(`encryption key id ${encryptionKeyId(oldKey)}`);
    expect(err?.message).toContain('not configured');
    expect(err?.message).not.toMatch(/unreachable|did not answer/);
    // The spent configured refresh token was not presented again.
    expect(idp.tokenRequestCount).toBe(1);
    expect(idp.invalidGrantCount).toBe(0);
    expect(b.stats()[0]!.lastError).toMatchObject({ code: 'ERR_REFRESH_UNSAFE' });
    expect(logs.some((l) => l.includes('does not open with any configured encryption key') && l.includes(encryptionKeyId(oldKey)))).toBe(true);
    expect(metrics.render()).toMatch(/tokengate_store_errors_total\{op="unseal"\} [1-9]/);
    expect(metrics.render()).toMatch(/tokengate_store_record_opens_total\{key="none"\} [1-9]/);

    // A replica that holds a cached token keeps serving it when a record it cannot open appears
    // (another replica already on a key it does not know): it neither adopts nor refreshes blindly.
    const c = await replica(newKey, [oldKey]);
    await c.refresh('p');
    expect(idp.tokenRequestCount).toBe(2);
    await new Promise((r) => setTimeout(r, 200)); // a handles c's event (and cannot open the record)
    expect((await a.getToken('p')).tokenId).toBe(first.tokenId);
    await expect(a.refresh('p')).rejects.toMatchObject({ code: 'ERR_REFRESH_UNSAFE' });
    expect((await a.getToken('p')).tokenId).toBe(first.tokenId);
    expect(idp.tokenRequestCount).toBe(2);
    expect(idp.invalidGrantCount).toBe(0);
    expect(idp.reuseDetectedCount).toBe(0);
  });
});
