// `cache.shared: true`: exchanged per-caller tokens kept in the shared store as well, so a
// caller costs one exchange across all replicas. The key is an HMAC of the caller's subject key
// (the SHA-256 of the exact subject token) under a key derived from the store's encryption key:
// neither the token nor a plain hash of it (which could confirm a guessed token) is readable in
// Redis, and any replica holding the caller's entry can name the record without keeping the
// token. The record itself is sealed by the store like any other. A per-subject lock (the
// store's refresh lock) makes one replica exchange while the others wait for its record. The
// store is a help, never a dependency: every failure falls back to this replica's own exchange.
// Local eviction never touches the shared record; it expires with the token, or is removed
// (compare-and-delete) when an upstream refused the token it holds.
import { createHmac, hkdfSync } from 'node:crypto';
import type { Clock } from '../../clock.js';
import { lockKeyFor, storeKey, type StoreEvent, type StoreLock, type TokenRecord, type TokenStore } from '../../store/store.js';

/** How often a replica that lost the lock looks for the winner's record. */
const FOLLOW_POLL_MS = 25;

export class SharedCallers {
  private readonly hmacKey: Buffer;
  /**
   * The `key` of an invalidation that names no record: the replica that learned of the refusal
   * does not hold that caller, so a replica that does removes the record.
   */
  readonly anyRecordKey: string;

  constructor(
    private readonly store: TokenStore,
    private readonly clock: Clock,
    private readonly keyPrefix: string,
    private readonly provider: string,
    /** Identifies the exchange's configuration: a changed audience never reuses an old token. */
    private readonly configHash: string,
    /** The store's encryption key; the HMAC key is derived from it (never used as is). */
    secret: Buffer,
    /** This process, in store events (a replica ignores its own). */
    readonly replicaId: string,
  ) {
    // v2: keyed by the subject key, not the token (v1 records are orphaned and expire).
    this.hmacKey = Buffer.from(hkdfSync('sha256', secret, Buffer.alloc(0), 'tokengate per-caller subject key v2', 32));
    this.anyRecordKey = storeKey(keyPrefix, provider, `${configHash}.c`);
  }

  /** The record key for the caller whose subject key (the SHA-256 digest of the subject token, as Latin-1) this is. */
  keyFor(subjectKey: string): string {
    const mac = createHmac('sha256', this.hmacKey).update(subjectKey, 'latin1').digest('base64url');
    return storeKey(this.keyPrefix, this.provider, `${this.configHash}.c.${mac}`);
  }

  /** The stored record if it is usable now, else undefined (also when the store fails). */
  async read(key: string, usable: (r: TokenRecord) => boolean): Promise<TokenRecord | undefined> {
    try {
      const r = await this.store.read(key);
      return r && r.expiresAt > this.clock.now() && usable(r) ? r : undefined;
    } catch {
      return undefined;
    }
  }

  /** The per-subject lock beside the record `key`. */
  async tryLock(key: string, ttlMs: number): Promise<StoreLock | 'held' | 'failed'> {
    try {
      return (await this.store.tryLock(lockKeyFor(key), ttlMs)) ?? 'held';
    } catch {
      return 'failed';
    }
  }

  /** Polls for the lock holder's record until `until` (epoch ms on the clock). */
  async follow(key: string, until: number, usable: (r: TokenRecord) => boolean, signal?: AbortSignal): Promise<TokenRecord | undefined> {
    while (this.clock.now() < until && !signal?.aborted) {
      await this.clock.sleep(FOLLOW_POLL_MS, signal).catch(() => undefined);
      const r = await this.read(key, usable);
      if (r) return r;
    }
    return undefined;
  }

  async write(key: string, record: TokenRecord): Promise<void> {
    try {
      await this.store.write(key, record);
    } catch {
      // The next replica exchanges for itself: one more exchange, never a failed Check.
    }
  }

  /**
   * Compare-and-delete: removes the record only while it still holds token `tokenId` (a newer
   * exchange stays). 'failed' when the store did not answer.
   */
  async remove(key: string, tokenId: string): Promise<boolean | 'failed'> {
    try {
      return await this.store.remove(key, tokenId);
    } catch {
      return 'failed';
    }
  }

  /** Tells the other replicas that an upstream refused token `tokenId`; false when the store did not take it. */
  async publishRefused(key: string, tokenId: string, status: number): Promise<boolean> {
    const event: StoreEvent = { provider: this.provider, key, token_id: tokenId, kind: 'invalidated', origin: this.replicaId, status };
    try {
      await this.store.publish(event);
      return true;
    } catch {
      return false;
    }
  }
}
