// The token layer used as a library, without the gRPC server.
import { describe, expect, it } from 'vitest';
import { parseConfig, TokenError, TokenManager } from '../../src/index.js';
import { DemoTokenServer } from '../../demo/token-server.js';
import { ccSource } from '../support/world.js';

describe('TokenManager as a library', () => {
  it('getToken, invalidate, stats', async () => {
    const idp = new DemoTokenServer();
    await idp.start();
    const config = parseConfig(`providers: { api: { source: ${ccSource(idp)} } }`);
    const tokens = new TokenManager(config.providers.values());
    try {
      const a = await tokens.getToken('api');
      expect(a).toMatchObject({ value: idp.issuedAccessTokens[0], tokenType: 'Bearer', source: 'refreshed' });
      expect((await tokens.getToken('api')).source).toBe('cache');
      expect(tokens.stats()).toEqual([expect.objectContaining({ name: 'api', state: 'valid', tokenId: a.tokenId, breaker: 'closed', lastError: null })]);
      // Invalidation is per token: a stale id is ignored, the current one is dropped and refreshed.
      expect(tokens.invalidate('api', 'not-the-current-id')).toBe(false);
      expect(tokens.invalidate('api', a.tokenId)).toBe(true);
      expect(tokens.invalidate('api', a.tokenId)).toBe(false);
      const b = await tokens.getToken('api');
      expect(b.value).toBe(idp.issuedAccessTokens[1]);
      expect(idp.tokenRequestCount).toBe(2);
      await expect(tokens.getToken('nope')).rejects.toBeInstanceOf(TokenError);
      await expect(tokens.getToken('nope')).rejects.toMatchObject({ code: 'ERR_UNKNOWN_PROVIDER' });
    } finally {
      await tokens.close();
      await idp.stop();
    }
  });
});
