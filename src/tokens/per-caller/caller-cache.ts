// The per-caller cache of one provider: exchanged tokens by subject key (a SHA-256 of the exact
// subject token), least recently used evicted first, bounded by entries and by approximate
// bytes; and a negative cache of subjects refused recently. A Map's insertion order is the LRU
// order: a hit moves its entry to the end unless it is already there.
import { headerValueFor } from '../cached-token.js';

/**
 * One caller's exchanged token: one object and its strings, nothing else. 100 000 callers make
 * 100 000 of these, so every field counts (bench/FINDINGS.md, "Per-caller credentials"): no
 * token record or CachedToken beside it, no header string and no encoded answer (a hit splices
 * its answer from the provider's template and these strings, src/server/answer-template.ts),
 * no closures.
 */
export class CallerEntry {
  /** The last time a Check of this caller was served (refresh ahead is only for callers still calling). */
  lastUsed: number;
  /** A refresh ahead failed: hits are labelled stale until one succeeds. */
  stale = false;
  constructor(
    readonly key: string,
    readonly accessToken: string,
    readonly tokenType: string,
    /** The exchanged token's id (logs, metadata, Envoy's access-log feedback), never the token. */
    readonly tokenId: string,
    /** Hard expiry, already bounded by the subject's own exp. */
    readonly expiresAt: number,
    /** The `sub` of a subject that passed verify; undefined without verify (never an unverified claim). */
    readonly subject: string | undefined,
    /** Where a refresh ahead starts; +Infinity when the subject's own exp bounds the entry. */
    public refreshAt: number,
    readonly bytes: number,
    now: number,
    /**
     * How long before `expiresAt` the token was obtained (ms): kept as this difference, a small
     * integer stored in the object, rather than a second epoch time boxed per caller.
     */
    private readonly obtainedBeforeExpiry: number,
  ) {
    this.lastUsed = now;
  }

  /** When the token was obtained (the IdP's answer, or the record another replica stored): what makes one token newer than another. */
  get obtainedAt(): number {
    return this.expiresAt - this.obtainedBeforeExpiry;
  }

  /** The injected header's value for `format` (e.g. "Bearer {token}"): built per call, never kept. */
  headerValue(format: string): string {
    return headerValueFor(format, this.tokenType, this.accessToken);
  }
}

/** Why a subject is answered from memory without an exchange. */
export interface NegativeEntry {
  readonly until: number;
  readonly kind: 'invalid_subject' | 'rejected' | 'unavailable';
  /** The IdP's OAuth error for `rejected`, the local reason for `invalid_subject`, the error code for `unavailable`. */
  readonly reason: string;
}

/**
 * Per-entry bookkeeping beyond the token and subject bytes: the entry object (10 fields, three
 * boxed doubles), the key and token-id strings, and the slots in both maps (by key, by token
 * id). Measured at ~420 bytes on Node 20 (64-bit, no pointer compression); rounded up.
 */
const ENTRY_OVERHEAD_BYTES = 512;
const NEGATIVE_OVERHEAD_BYTES = 200;

/**
 * Approximate bytes an entry holds: the token, the subject (two bytes a character at worst),
 * plus bookkeeping (no answer is kept per caller). An estimate, deliberately on the high side.
 */
export function entryBytes(tokenLength: number, subjectLength: number): number {
  return tokenLength + subjectLength * 2 + ENTRY_OVERHEAD_BYTES;
}

export interface CacheBounds {
  readonly maxEntries: number;
  readonly maxBytes: number;
}

export class CallerCache {
  private readonly entries = new Map<string, CallerEntry>();
  /**
   * The same entries by the exchanged token's id: Envoy's access log names a token an upstream
   * refused by that id (the CheckResponse's dynamic metadata), never by the caller.
   */
  private readonly byTokenId = new Map<string, CallerEntry>();
  private readonly negatives = new Map<string, NegativeEntry>();
  private newest: CallerEntry | undefined;
  private bytes = 0;
  hits = 0;
  misses = 0;
  evictions = 0;

  constructor(private readonly bounds: CacheBounds, private readonly onEvict: (n: number) => void = () => undefined) {}

  get size(): number {
    return this.entries.size;
  }
  get negativeSize(): number {
    return this.negatives.size;
  }
  get approximateBytes(): number {
    return this.bytes;
  }

  /** The entry for `key` before its hard expiry, moved to most recently used. No allocation on a hit. */
  get(key: string, now: number): CallerEntry | undefined {
    const e = this.entries.get(key);
    if (e === undefined) return undefined;
    if (now >= e.expiresAt) {
      this.delete(e);
      return undefined;
    }
    if (e !== this.newest) {
      this.entries.delete(key);
      // Re-inserted under the entry's own key string, not this lookup's: the map would otherwise
      // hold a second 32-character string per caller beside `e.key` (~48 bytes × 100 000).
      this.entries.set(e.key, e);
      this.newest = e;
    }
    e.lastUsed = now;
    return e;
  }

  /** The entry even past hard expiry (status, tests); does not touch the LRU order. */
  peek(key: string): CallerEntry | undefined {
    return this.entries.get(key);
  }

  set(e: CallerEntry): void {
    const old = this.entries.get(e.key);
    if (old) this.delete(old);
    this.negatives.delete(e.key);
    this.entries.set(e.key, e);
    this.byTokenId.set(e.tokenId, e);
    this.newest = e;
    this.bytes += e.bytes;
    this.trim();
  }

  /** The entry holding the exchanged token with this id, if still cached. */
  byToken(tokenId: string): CallerEntry | undefined {
    return this.byTokenId.get(tokenId);
  }

  /** Drops `e` if it is still the entry for its key. */
  remove(e: CallerEntry): void {
    if (this.entries.get(e.key) === e) this.delete(e);
  }

  getNegative(key: string, now: number): NegativeEntry | undefined {
    const n = this.negatives.get(key);
    if (n === undefined) return undefined;
    if (now >= n.until) {
      this.negatives.delete(key);
      this.bytes -= NEGATIVE_OVERHEAD_BYTES;
      return undefined;
    }
    return n;
  }

  setNegative(key: string, n: NegativeEntry): void {
    if (n.until <= 0) return;
    if (!this.negatives.has(key)) this.bytes += NEGATIVE_OVERHEAD_BYTES;
    else this.negatives.delete(key);
    this.negatives.set(key, n);
    this.trim();
  }

  clear(): void {
    this.entries.clear();
    this.byTokenId.clear();
    this.negatives.clear();
    this.newest = undefined;
    this.bytes = 0;
  }

  private delete(e: CallerEntry): void {
    this.entries.delete(e.key);
    if (this.byTokenId.get(e.tokenId) === e) this.byTokenId.delete(e.tokenId);
    this.bytes -= e.bytes;
    if (this.newest === e) this.newest = undefined;
  }

  /**
   * Evicts until both bounds hold: refused subjects first (oldest first: a flood of garbage must
   * not push out real callers), then the least recently used callers.
   */
  private trim(): void {
    const { maxEntries, maxBytes } = this.bounds;
    let evicted = 0;
    while (this.negatives.size > maxEntries || (this.bytes > maxBytes && this.negatives.size > 0)) {
      const oldest = this.negatives.keys().next().value as string;
      this.negatives.delete(oldest);
      this.bytes -= NEGATIVE_OVERHEAD_BYTES;
    }
    while (this.entries.size > maxEntries || (this.bytes > maxBytes && this.entries.size > 1)) {
      const oldest = this.entries.values().next().value as CallerEntry;
      this.delete(oldest);
      evicted++;
    }
    if (evicted) {
      this.evictions += evicted;
      this.onEvict(evicted);
    }
  }
}
