// Token records at rest: AES-256-GCM under store.encryptionKey, so nothing readable sits in the
// shared store. The key name is authenticated with each record: a record copied to another key
// (another provider, another config hash) fails to open instead of being served there.
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';

/** Layout: version (1 byte) | IV (12) | GCM tag (16) | ciphertext. */
export const RECORD_FORMAT_VERSION = 1;
const IV_BYTES = 12;
const TAG_BYTES = 16;
const HEADER_BYTES = 1 + IV_BYTES + TAG_BYTES;
export const ENCRYPTION_KEY_BYTES = 32;

export type RecordCryptoErrorCode = 'ERR_RECORD_KEY' | 'ERR_RECORD_FORMAT' | 'ERR_RECORD_AUTH';

export class RecordCryptoError extends Error {
  readonly code: RecordCryptoErrorCode;
  constructor(code: RecordCryptoErrorCode, message: string, options?: { cause: unknown }) {
    super(message, options);
    this.name = 'RecordCryptoError';
    this.code = code;
  }
}

export class RecordCipher {
  readonly #key: Buffer;

  constructor(key: Buffer) {
    if (!Buffer.isBuffer(key) || key.length !== ENCRYPTION_KEY_BYTES) {
      throw new RecordCryptoError('ERR_RECORD_KEY', `store.encryptionKey must be ${ENCRYPTION_KEY_BYTES} bytes`);
    }
    this.#key = Buffer.from(key);
  }

  /** Encrypts `plaintext` for the store key `keyName` (random IV per record). */
  seal(plaintext: Buffer | string, keyName: string): Buffer {
    const header = Buffer.alloc(1 + IV_BYTES);
    header[0] = RECORD_FORMAT_VERSION;
    randomBytes(IV_BYTES).copy(header, 1);
    const cipher = createCipheriv('aes-256-gcm', this.#key, header.subarray(1), { authTagLength: TAG_BYTES });
    cipher.setAAD(associatedData(header[0]!, keyName));
    const body = Buffer.concat([cipher.update(typeof plaintext === 'string' ? Buffer.from(plaintext, 'utf8') : plaintext), cipher.final()]);
    return Buffer.concat([header, cipher.getAuthTag(), body]);
  }

  /** Decrypts a sealed record; throws RecordCryptoError on a wrong key, a moved record or tampering. */
  open(sealed: Buffer, keyName: string): Buffer {
    if (sealed.length < HEADER_BYTES) throw new RecordCryptoError('ERR_RECORD_FORMAT', 'stored record is truncated');
    const version = sealed[0]!;
    if (version !== RECORD_FORMAT_VERSION) throw new RecordCryptoError('ERR_RECORD_FORMAT', `stored record has unknown format version ${version}`);
    const iv = sealed.subarray(1, 1 + IV_BYTES);
    const tag = sealed.subarray(1 + IV_BYTES, HEADER_BYTES);
    try {
      const decipher = createDecipheriv('aes-256-gcm', this.#key, iv, { authTagLength: TAG_BYTES });
      decipher.setAAD(associatedData(version, keyName));
      decipher.setAuthTag(tag);
      return Buffer.concat([decipher.update(sealed.subarray(HEADER_BYTES)), decipher.final()]);
    } catch (err) {
      throw new RecordCryptoError('ERR_RECORD_AUTH', 'stored record failed authentication (other encryption key, moved between keys, or tampered with)', { cause: err });
    }
  }
}

function associatedData(version: number, keyName: string): Buffer {
  return Buffer.concat([Buffer.from([version]), Buffer.from(keyName, 'utf8')]);
}
