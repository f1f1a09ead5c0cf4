import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { createCipheriv } from 'node:crypto';
import { encryptionKeyId, LEGACY_RECORD_FORMAT_VERSION, RECORD_FORMAT_VERSION, RecordCipher, RecordCryptoError } from '../../src/store/crypto.js';

const KEY_NAME = 'tokengate:{openai:0123456789abcdef}:token';

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(RecordCryptoError);
    return (err as RecordCryptoError).code;
  }
  return undefined;
}

describe('record encryption (AES-256-GCM)', () => {
  const cipher = new RecordCipher(randomBytes(32));
  const plaintext = JSON.stringify({ accessToken: 'at-very-secret', refreshToken: 'rt-very-secret' });

  it('round-trips, with a version byte, the key id and a fresh IV per record', () => {
    const a = cipher.seal(plaintext, KEY_NAME);
    const b = cipher.seal(plaintext, KEY_NAME);
    expect(a[0]).toBe(RECORD_FORMAT_VERSION);
    expect(a.subarray(1, 5).toString('hex')).toBe(cipher.keyId);
    expect(a.length).toBe(1 + 4 + 12 + 16 + Buffer.byteLength(plaintext));
    expect(a.equals(b)).toBe(false);
    expect(a.includes(Buffer.from('very-secret'))).toBe(false);
    expect(cipher.open(a, KEY_NAME).toString()).toBe(plaintext);
    expect(cipher.open(b, KEY_NAME).toString()).toBe(plaintext);
  });

  it('any flipped byte (IV, tag or ciphertext) fails authentication', () => {
    const sealed = cipher.seal(plaintext, KEY_NAME);
    for (let i = 1; i < sealed.length; i++) {
      const tampered = Buffer.from(sealed);
      tampered[i]! ^= 0x01;
      // A flipped key id names a key that is not configured; anything else fails the tag.
      expect(codeOf(() => cipher.open(tampered, KEY_NAME))).toBe(i < 5 ? 'ERR_RECORD_KEY_UNKNOWN' : 'ERR_RECORD_AUTH');
    }
  });

  it('another encryption key cannot open it', () => {
    const sealed = cipher.seal(plaintext, KEY_NAME);
    const other = new RecordCipher(randomBytes(32));
    expect(codeOf(() => other.open(sealed, KEY_NAME))).toBe('ERR_RECORD_KEY_UNKNOWN');
    try {
      other.open(sealed, KEY_NAME);
    } catch (err) {
      expect((err as RecordCryptoError).keyId).toBe(cipher.keyId);
      expect((err as Error).message).toBe(`stored record is sealed with encryption key id ${cipher.keyId}, which is not configured here (store.encryptionKey has key id ${other.keyId}, no store.previousEncryptionKeys)`);
    }
  });

  it('a record moved to another key does not open there (key name is associated data)', () => {
    const sealed = cipher.seal(plaintext, KEY_NAME);
    expect(codeOf(() => cipher.open(sealed, 'tokengate:{other:0123456789abcdef}:token'))).toBe('ERR_RECORD_AUTH');
  });

  it('unknown versions and truncated records are format errors', () => {
    const sealed = cipher.seal(plaintext, KEY_NAME);
    const v3 = Buffer.from(sealed);
    v3[0] = 3;
    expect(codeOf(() => cipher.open(v3, KEY_NAME))).toBe('ERR_RECORD_FORMAT');
    expect(codeOf(() => cipher.open(Buffer.alloc(0), KEY_NAME))).toBe('ERR_RECORD_FORMAT');
    expect(codeOf(() => cipher.open(sealed.subarray(0, 20), KEY_NAME))).toBe('ERR_RECORD_FORMAT');
    expect(codeOf(() => cipher.open(Buffer.from('{"accessToken":"plain"}'), KEY_NAME))).toBe('ERR_RECORD_FORMAT');
  });

  it('refuses a key that is not 32 bytes', () => {
    expect(codeOf(() => new RecordCipher(randomBytes(16)))).toBe('ERR_RECORD_KEY');
  });
});

/** A record as tokengate sealed it before key ids (format v1). */
function sealV1(key: Buffer, plaintext: string, keyName: string): Buffer {
  const header = Buffer.concat([Buffer.from([LEGACY_RECORD_FORMAT_VERSION]), randomBytes(12)]);
  const c = createCipheriv('aes-256-gcm', key, header.subarray(1), { authTagLength: 16 });
  c.setAAD(Buffer.concat([header.subarray(0, 1), Buffer.from(keyName)]));
  const body = Buffer.concat([c.update(plaintext), c.final()]);
  return Buffer.concat([header, c.getAuthTag(), body]);
}

describe('finding 3: encryption key rotation (current key, previous keys, key ids)', () => {
  const [oldKey, newKey, otherKey] = [randomBytes(32), randomBytes(32), randomBytes(32)];
  const plaintext = '{"refreshToken":"rt-secret"}';

  it('key ids are short, stable, distinct and not the key', () => {
    expect(encryptionKeyId(oldKey)).toMatch(/^[0-9a-f]{8}$/);
    expect(encryptionKeyId(oldKey)).toBe(encryptionKeyId(Buffer.from(oldKey)));
    expect(encryptionKeyId(oldKey)).not.toBe(encryptionKeyId(newKey));
    expect(oldKey.toString('hex')).not.toContain(encryptionKeyId(oldKey));
  });

  it('seals with the current key and opens records of the previous ones by the key they name', () => {
    const before = new RecordCipher(oldKey);
    const during = new RecordCipher(newKey, [oldKey]);
    const old = before.seal(plaintext, KEY_NAME);
    expect(during.unseal(old, KEY_NAME)).toEqual({ plaintext: Buffer.from(plaintext), keyId: encryptionKeyId(oldKey), previousKey: true });
    const resealed = during.seal(plaintext, KEY_NAME);
    expect(resealed.subarray(1, 5).toString('hex')).toBe(encryptionKeyId(newKey));
    expect(during.unseal(resealed, KEY_NAME).previousKey).toBe(false);
    // After the previous key is dropped, the re-sealed record still opens; the old one does not.
    const after = new RecordCipher(newKey);
    expect(after.open(resealed, KEY_NAME).toString()).toBe(plaintext);
    expect(codeOf(() => after.open(old, KEY_NAME))).toBe('ERR_RECORD_KEY_UNKNOWN');
    expect(during.previousKeyIds).toEqual([encryptionKeyId(oldKey)]);
  });

  it('records sealed before key ids (v1) still open, with the current or a previous key', () => {
    expect(new RecordCipher(oldKey).unseal(sealV1(oldKey, plaintext, KEY_NAME), KEY_NAME).previousKey).toBe(false);
    expect(new RecordCipher(newKey, [oldKey]).unseal(sealV1(oldKey, plaintext, KEY_NAME), KEY_NAME)).toMatchObject({ previousKey: true, keyId: encryptionKeyId(oldKey) });
    expect(codeOf(() => new RecordCipher(newKey, [otherKey]).open(sealV1(oldKey, plaintext, KEY_NAME), KEY_NAME))).toBe('ERR_RECORD_AUTH');
  });

  it('refuses a previous key that is not 32 bytes', () => {
    expect(codeOf(() => new RecordCipher(newKey, [randomBytes(31)]))).toBe('ERR_RECORD_KEY');
  });
});
