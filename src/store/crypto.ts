// Token records at rest: AES-256-GCM under store.encryptionKey, so nothing readable sits in the
// shared store. The key name is authenticated with each record: a record copied to another key
// (another provider, another config hash) fails to open instead of being served there.
//
// Keys rotate: records are sealed with the current key and name it by a short key id, so a
// replica that also holds previous keys (store.previousEncryptionKeys) opens an older record
// with the key it names instead of guessing, and one that holds no such key can say which key
// the record needs. The id is a truncated, domain-separated SHA-256 of the key: it identifies a
// key among a handful, and reveals nothing that helps recover it.
import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';

/** Layout v2: version (1 byte) | key id (4) | IV (12) | GCM tag (16) | ciphertext. */
export const RECORD_FORMAT_VERSION = 2;
/** Layout v1 (before key ids): version (1 byte) | IV (12) | GCM tag (16) | ciphertext. Still opened. */
export const LEGACY_RECORD_FORMAT_VERSION = 1;
const KEY_ID_BYTES = 4;
const IV_BYTES = 12;
const TAG_BYTES = 16;
export const ENCRYPTION_KEY_BYTES = 32;

export type RecordCryptoErrorCode = 'ERR_RECORD_KEY' | 'ERR_RECORD_FORMAT' | 'ERR_RECORD_AUTH' | 'ERR_RECORD_KEY_UNKNOWN';

export class RecordCryptoError extends Error {
  readonly code: RecordCryptoErrorCode;
  /** The key id the record names (v2 records), so an operator can tell which key it needs. */
  readonly keyId: string | undefined;
  constructor(code: RecordCryptoErrorCode, message: string, options?: { cause?: unknown; keyId?: string }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'RecordCryptoError';
    this.code = code;
    this.keyId = options?.keyId;
  }
}

/** The short, public name of an encryption key (8 hex digits): safe in logs and messages. */
export function encryptionKeyId(key: Buffer): string {
  return createHash('sha256').update('tokengate record key id\0').update(key).digest().subarray(0, KEY_ID_BYTES).toString('hex');
}

/** What opening a record found: its plaintext, and whether a previous key was needed. */
export interface OpenedRecord {
  readonly plaintext: Buffer;
  readonly keyId: string;
  /** Opened with one of the previous keys: the next write seals it with the current one. */
  readonly previousKey: boolean;
}

interface Key {
  readonly id: string;
  readonly bytes: Buffer;
}

export class RecordCipher {
  readonly #current: Key;
  /** Current first, then the previous keys in the order configured. */
  readonly #keys: readonly Key[];

  constructor(key: Buffer, previous: readonly Buffer[] = []) {
    for (const k of [key, ...previous]) {
      if (!Buffer.isBuffer(k) || k.length !== ENCRYPTION_KEY_BYTES) {
        throw new RecordCryptoError('ERR_RECORD_KEY', `store.encryptionKey must be ${ENCRYPTION_KEY_BYTES} bytes`);
      }
    }
    const keys: Key[] = [];
    for (const k of [key, ...previous]) {
      if (!keys.some((x) => x.bytes.equals(k))) keys.push({ id: encryptionKeyId(k), bytes: Buffer.from(k) });
    }
    this.#current = keys[0]!;
    this.#keys = keys;
  }

  /** The id of the key new records are sealed with. */
  get keyId(): string {
    return this.#current.id;
  }

  /** Ids of the previous keys (only opened with, never sealed with). */
  get previousKeyIds(): string[] {
    return this.#keys.slice(1).map((k) => k.id);
  }

  /** Encrypts `plaintext` for the store key `keyName` with the current key (random IV per record). */
  seal(plaintext: Buffer | string, keyName: string): Buffer {
    const header = Buffer.alloc(1 + KEY_ID_BYTES + IV_BYTES);
    header[0] = RECORD_FORMAT_VERSION;
    Buffer.from(this.#current.id, 'hex').copy(header, 1);
    const iv = randomBytes(IV_BYTES);
    iv.copy(header, 1 + KEY_ID_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.#current.bytes, iv, { authTagLength: TAG_BYTES });
    cipher.setAAD(associatedData(header.subarray(0, 1 + KEY_ID_BYTES), keyName));
    const body = Buffer.concat([cipher.update(typeof plaintext === 'string' ? Buffer.from(plaintext, 'utf8') : plaintext), cipher.final()]);
    return Buffer.concat([header, cipher.getAuthTag(), body]);
  }

  /** Decrypts a sealed record; throws RecordCryptoError on an unknown key, a moved record or tampering. */
  open(sealed: Buffer, keyName: string): Buffer {
    return this.unseal(sealed, keyName).plaintext;
  }

  /** Like `open`, and says which key opened it. */
  unseal(sealed: Buffer, keyName: string): OpenedRecord {
    const version = sealed[0];
    if (version === RECORD_FORMAT_VERSION) {
      if (sealed.length < 1 + KEY_ID_BYTES + IV_BYTES + TAG_BYTES) throw new RecordCryptoError('ERR_RECORD_FORMAT', 'stored record is truncated');
      const keyId = sealed.subarray(1, 1 + KEY_ID_BYTES).toString('hex');
      const candidates = this.#keys.filter((k) => k.id === keyId);
      if (candidates.length === 0) {
        throw new RecordCryptoError('ERR_RECORD_KEY_UNKNOWN', `stored record is sealed with encryption key id ${keyId}, which is not configured here (${this.describeKeys()})`, { keyId });
      }
      return this.tryKeys(candidates, sealed, 1 + KEY_ID_BYTES, keyName, keyId);
    }
    if (version === LEGACY_RECORD_FORMAT_VERSION) {
      // No key id: try every configured key, the current one first.
      if (sealed.length < 1 + IV_BYTES + TAG_BYTES) throw new RecordCryptoError('ERR_RECORD_FORMAT', 'stored record is truncated');
      return this.tryKeys(this.#keys, sealed, 1, keyName, undefined);
    }
    if (sealed.length === 0) throw new RecordCryptoError('ERR_RECORD_FORMAT', 'stored record is truncated');
    throw new RecordCryptoError('ERR_RECORD_FORMAT', `stored record has unknown format version ${version}`);
  }

  private tryKeys(keys: readonly Key[], sealed: Buffer, headerBytes: number, keyName: string, keyId: string | undefined): OpenedRecord {
    // The header before the IV (version, and the key id in v2) is authenticated data.
    const aad = associatedData(sealed.subarray(0, headerBytes), keyName);
    const ivStart = headerBytes;
    const ivBytes = sealed.subarray(ivStart, ivStart + IV_BYTES);
    const tag = sealed.subarray(ivStart + IV_BYTES, ivStart + IV_BYTES + TAG_BYTES);
    const body = sealed.subarray(ivStart + IV_BYTES + TAG_BYTES);
    let last: unknown;
    for (const k of keys) {
      try {
        const decipher = createDecipheriv('aes-256-gcm', k.bytes, ivBytes, { authTagLength: TAG_BYTES });
        decipher.setAAD(aad);
        decipher.setAuthTag(tag);
        const plaintext = Buffer.concat([decipher.update(body), decipher.final()]);
        return { plaintext, keyId: k.id, previousKey: k !== this.#current };
      } catch (err) {
        last = err;
      }
    }
    const which = keyId === undefined ? `no configured encryption key (${this.describeKeys()}) opens it` : `key id ${keyId} is configured but does not open it`;
    throw new RecordCryptoError('ERR_RECORD_AUTH', `stored record failed authentication: ${which} (another encryption key, moved between keys, or tampered with)`, { cause: last, ...(keyId ? { keyId } : {}) });
  }

  private describeKeys(): string {
    const prev = this.previousKeyIds;
    return `store.encryptionKey has key id ${this.#current.id}${prev.length ? `, store.previousEncryptionKeys ${prev.join(', ')}` : ', no store.previousEncryptionKeys'}`;
  }
}

/** Authenticated with the ciphertext: the version, the key id (v2) and where the record lives. */
function associatedData(header: Buffer, keyName: string): Buffer {
  return Buffer.concat([header, Buffer.from(keyName, 'utf8')]);
}
