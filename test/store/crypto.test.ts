import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { RECORD_FORMAT_VERSION, RecordCipher, RecordCryptoError } from '../../src/store/crypto.js';

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

  it('round-trips, with a version byte and a fresh IV per record', () => {
    const a = cipher.seal(plaintext, KEY_NAME);
    const b = cipher.seal(plaintext, KEY_NAME);
    expect(a[0]).toBe(RECORD_FORMAT_VERSION);
    expect(a.length).toBe(1 + 12 + 16 + Buffer.byteLength(plaintext));
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
      expect(codeOf(() => cipher.open(tampered, KEY_NAME))).toBe('ERR_RECORD_AUTH');
    }
  });

  it('another encryption key cannot open it', () => {
    const sealed = cipher.seal(plaintext, KEY_NAME);
    expect(codeOf(() => new RecordCipher(randomBytes(32)).open(sealed, KEY_NAME))).toBe('ERR_RECORD_AUTH');
  });

  it('a record moved to another key does not open there (key name is associated data)', () => {
    const sealed = cipher.seal(plaintext, KEY_NAME);
    expect(codeOf(() => cipher.open(sealed, 'tokengate:{other:0123456789abcdef}:token'))).toBe('ERR_RECORD_AUTH');
  });

  it('unknown versions and truncated records are format errors', () => {
    const sealed = cipher.seal(plaintext, KEY_NAME);
    const v2 = Buffer.from(sealed);
    v2[0] = 2;
    expect(codeOf(() => cipher.open(v2, KEY_NAME))).toBe('ERR_RECORD_FORMAT');
    expect(codeOf(() => cipher.open(sealed.subarray(0, 20), KEY_NAME))).toBe('ERR_RECORD_FORMAT');
    expect(codeOf(() => cipher.open(Buffer.from('{"accessToken":"plain"}'), KEY_NAME))).toBe('ERR_RECORD_FORMAT');
  });

  it('refuses a key that is not 32 bytes', () => {
    expect(codeOf(() => new RecordCipher(randomBytes(16)))).toBe('ERR_RECORD_KEY');
  });
});
