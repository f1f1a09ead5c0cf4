// Issue #12, finding 2: a reload must never cut a rotation in half. The retired provider's
// in-flight refresh_token grant is handed to the new provider (unchanged source) or allowed to
// finish and be persisted (changed source); an unchanged source is not fetched again.
// Real loopback IdP that rotates, detects reuse and revokes the family; memory and Redis stores.
import { randomBytes } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { DemoTokenServer } from '../../demo/token-server.js';
import { MemoryStore } from '../../src/store/memory-store.js';
import type { TokenStore } from '../../src/store/store.js';
import { TokenManager } from '../../src/tokens/manager.js';
import { REDIS_URL, redisAvailable } from '../support/redis.js';
import { deleteKeys } from '../support/replicas.js';
import { connect, storeConfig } from '../store/helpers.js';
import { until } from '../support/until.js';
import { rtSource } from '../support/world.js';

const INITIAL = 'rt-configured-initial';
const withRedis = await redisAvailable();
const kinds = withRedis ? (['memory', 'redis'] as const) : (['memory'] as const);

describe.each(kinds)('reloads while a rotation is in flight (%s store)', (kind) => {
  let idp: DemoTokenServer;
  let prefix: string;
  const key = randomBytes(32);
  const managers: TokenManager[] = [];

  beforeEach(async () => {
    idp = new DemoTokenServer({ refreshTokens: [INITIAL], tokenTtlSeconds: 300 });
    await idp.start();
    prefix = `tgtest-reloadrt-${randomBytes(4).toString('hex')}:`;
  });

  afterEach(async () => {
    await Promise.all(managers.splice(0).map((m) => m.close(3_000)));
    await idp.stop();
    if (kind === 'redis') await deleteKeys(REDIS_URL, prefix);
  });

  function yaml(opts: { header?: string; scope?: string } = {}): string {
    return `
providers:
  p:
    source: ${rtSource(idp, INITIAL, { extra: opts.scope ? { scope: opts.scope } : {} })}
    inject: { header: ${opts.header ?? 'authorization'} }
    resilience: { timeout: 5s, retries: 0 }
`;
  }

  async function manager(): Promise<TokenManager> {
    const store: TokenStore = kind === 'memory' ? new MemoryStore() : await connect(storeConfig(REDIS_URL, prefix, key));
    const m = new TokenManager(parseConfig(yaml()).providers.values(), { store, keyPrefix: prefix });
    managers.push(m);
    await m.warmUp();
    return m;
  }

  function expectGrantIntact(): void {
    expect(idp.reuseDetectedCount).toBe(0);
    expect(idp.anyFamilyRevoked).toBe(false);
    expect(idp.maxPresentations).toBe(1);
  }

  it('a reload during an in-flight refresh revokes the grant', async () => {
    const m = await manager();
    const old = m.provider('p')!;
    // The IdP takes 1.5 s: longer than the 1 s a retired provider used to be given.
    idp.setBehaviourSequence([{ kind: 'delay', ms: 1_500 }]);
    const inFlight = m.refresh('p').catch((e: unknown) => e);
    await idp.waitForRequests(2);
    const changed = await m.reload(parseConfig(yaml({ header: 'x-api-token' })).providers.values());
    expect(changed.changed).toEqual(['p']);
    const now = m.provider('p')!;
    expect(now).not.toBe(old);
    await inFlight;
    // The rotation finished and its result (access token and rotated refresh token) is the new provider's.
    await until(() => now.peek()?.record.accessToken === idp.issuedAccessTokens[1], 3_000);
    expect(now.peek()!.headerValue).toBe(`Bearer ${idp.issuedAccessTokens[1]}`);
    expect(idp.tokenRequestCount).toBe(2);
    // The next refresh presents the rotated refresh token.
    await m.refresh('p');
    expect(idp.tokenRequestCount).toBe(3);
    expect((await m.getToken('p')).value).toBe(idp.issuedAccessTokens[2]);
    expectGrantIntact();
  });

  it('a reload that changes only inject does not fetch again', async () => {
    const m = await manager();
    await m.reload(parseConfig(yaml({ header: 'x-api-token' })).providers.values());
    expect(idp.tokenRequestCount).toBe(1);
    expect((await m.getToken('p')).value).toBe(idp.issuedAccessTokens[0]);
  });

  it('a reload that changes the source lets the in-flight rotation finish and be stored first', async () => {
    const m = await manager();
    const oldKey = m.provider('p')!.storeKey;
    idp.setBehaviourSequence([{ kind: 'delay', ms: 1_500 }]);
    const inFlight = m.refresh('p').catch((e: unknown) => e);
    await idp.waitForRequests(2);
    await m.reload(parseConfig(yaml({ scope: 'read' })).providers.values());
    expect(await inFlight).not.toBeInstanceOf(Error);
    // The old grant's rotated refresh token is in the store under its key, not lost in an abort.
    await until(() => idp.requests[1]?.status === 200, 3_000);
    const rec = await m.store.read(oldKey);
    expect(rec?.refreshToken).toBe(idp.issuedRefreshTokens[1]);
    // Same configured refresh token (only scope changed): the new provider went on from the
    // rotated one, not from the configured one the old provider spent at warm-up.
    expect(idp.requests[2]?.form.scope).toBe('read');
    expect((await m.getToken('p')).value).toBe(idp.issuedAccessTokens[2]);
    expect(idp.tokenRequestCount).toBe(3);
    expectGrantIntact();
  });
});
