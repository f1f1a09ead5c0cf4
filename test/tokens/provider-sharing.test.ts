// What ten thousand providers share instead of holding each (bench/FINDINGS.md, "A provider's
// heap, again"): one KeyObject per distinct signing key, one deps object; and what must not
// change while doing so: the store key a jwt provider's config hashes to.
import { createHash, type KeyObject } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { sourceHash, TokenManager } from '../../src/tokens/manager.js';
import type { Provider } from '../../src/tokens/provider.js';
import { signingKey } from '../../src/tokens/signing-keys.js';
import { JwtSigner } from '../../src/tokens/signer.js';
import { ecPair } from '../support/keys.js';

const SECRET = 's'.repeat(40);

function yaml(n: number, key = '${env:K}'): string {
  const lines = ['providers:'];
  for (let i = 0; i < n; i++) lines.push(`  p${i}: { source: { type: jwt, algorithm: HS256, key: "${key}", claims: { iss: i${i}, aud: a${i} }, ttl: 30m } }`);
  return lines.join('\n');
}

const signerKey = (p: Provider): KeyObject => (p.source as unknown as { signer: { key: KeyObject } }).signer.key;

describe('shared per-provider state', () => {
  let manager: TokenManager | undefined;
  afterEach(async () => {
    await manager?.close();
    manager = undefined;
  });

  it('providers signing with the same key share one KeyObject; another key gets its own', () => {
    const c = parseConfig(yaml(3), { env: { K: SECRET } });
    manager = new TokenManager(c.providers.values());
    const [a, b] = [signerKey(manager.provider('p0')!), signerKey(manager.provider('p2')!)];
    expect(a).toBe(b);
    expect(a.export().toString()).toBe(SECRET);
    expect(signingKey('secret', 't'.repeat(40))).not.toBe(a);
  });

  it('a key text is loaded per kind: the same PEM as an HMAC secret is another key', () => {
    const pem = ecPair().privatePem;
    const asPrivate = new JwtSigner({ algorithm: 'ES256', key: pem });
    const again = new JwtSigner({ algorithm: 'ES256', key: pem });
    const asSecret = new JwtSigner({ algorithm: 'HS256', key: pem });
    const keyOf = (s: JwtSigner) => (s as unknown as { key: KeyObject }).key;
    expect(keyOf(again)).toBe(keyOf(asPrivate));
    expect(keyOf(asPrivate).type).toBe('private');
    expect(keyOf(asSecret).type).toBe('secret');
  });

  it('providers share one deps object (their store keys differ)', () => {
    const c = parseConfig(yaml(2), { env: { K: SECRET } });
    manager = new TokenManager(c.providers.values());
    const [a, b] = [manager.provider('p0')!, manager.provider('p1')!];
    const deps = (p: Provider) => (p as unknown as { deps: object }).deps;
    expect(deps(a)).toBe(deps(b));
    expect(a.storeKey).not.toBe(b.storeKey);
    expect(a.storeKey).toBe(`tokengate:{p0:${sourceHash(a.config.source)}}:token`);
  });

  it('once warm, providers keep no warm-up promise of their own (they hand out one shared resolved promise)', async () => {
    const c = parseConfig(yaml(2), { env: { K: SECRET } });
    manager = new TokenManager(c.providers.values());
    const [a, b] = [manager.provider('p0')!, manager.provider('p1')!];
    expect(a.warmedUp).not.toBe(b.warmedUp);
    await manager.warmUp();
    expect(a.peek()).toBeDefined();
    expect(a.warmedUp).toBe(b.warmedUp);
  });

  it('a jwt source hashes as before (the store keys tokens by it): the first 8 bytes of the sha256 of its JSON, keys in the order type, algorithm, key, claims, ttl', () => {
    const c = parseConfig(yaml(1), { env: { K: SECRET } });
    const source = c.providers.get('p0')!.source;
    const before = { type: 'jwt', algorithm: 'HS256', key: SECRET, claims: { iss: 'i0', aud: 'a0' }, ttl: 1_800_000 };
    expect(sourceHash(source)).toBe(createHash('sha256').update(JSON.stringify(before)).digest('hex').slice(0, 16));
  });
});
