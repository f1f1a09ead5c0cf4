// One KeyObject per distinct signing key, shared by every signer that loads the same key text.
//
// Why (issue #18, bench/FINDINGS.md "A provider's heap, again"): a KeyObject is four objects,
// ~190 B of heap plus native memory, and ten thousand jwt providers often sign with one secret.
// A KeyObject is immutable, so sharing it changes nothing a signer does; jose's own per-key
// cache (the CryptoKey it derives from a private key) is then shared too. Entries are weak: a
// key no signer holds any more (its providers were reloaded away) is collected, and its entry,
// which names the key text, goes with it.
import { createPrivateKey, createSecretKey, type KeyObject } from 'node:crypto';

export type SigningKeyKind = 'secret' | 'private';

const loaded: Record<SigningKeyKind, Map<string, WeakRef<KeyObject>>> = { secret: new Map(), private: new Map() };
const collected = new FinalizationRegistry<{ kind: SigningKeyKind; text: string }>(({ kind, text }) => {
  if (loaded[kind].get(text)?.deref() === undefined) loaded[kind].delete(text);
});

/**
 * The KeyObject for `text`: an HMAC secret (its UTF-8 bytes) or a PEM private key. Throws what
 * node:crypto throws for a key it cannot load (nothing is remembered then).
 */
export function signingKey(kind: SigningKeyKind, text: string): KeyObject {
  const known = loaded[kind].get(text)?.deref();
  if (known !== undefined) return known;
  const key = kind === 'secret' ? createSecretKey(Buffer.from(text, 'utf8')) : createPrivateKey(text);
  loaded[kind].set(text, new WeakRef(key));
  collected.register(key, { kind, text });
  return key;
}
