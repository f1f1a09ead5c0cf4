// The embedded default: one process, no dependencies. Locks and events exist so the refresh
// logic is one code path whatever the store; here they never contend across processes.
import { randomUUID } from 'node:crypto';
import type { StoreEvent, StoreLock, TokenRecord, TokenStore } from './store.js';

export class MemoryStore implements TokenStore {
  readonly shared = false;
  private readonly records = new Map<string, TokenRecord>();
  private readonly locks = new Map<string, { owner: string; until: number }>();
  private readonly claims = new Map<string, string>();
  private readonly listeners = new Set<(event: StoreEvent) => void>();

  constructor(private readonly now: () => number = Date.now) {}

  async read(key: string): Promise<TokenRecord | undefined> {
    const r = this.records.get(key);
    // A record past its access token's expiry is kept for its refresh token (see remove).
    if (r && r.expiresAt <= this.now() && r.refreshToken === undefined && r.spentRefreshId === undefined) {
      this.records.delete(key);
      return undefined;
    }
    return r;
  }

  async write(key: string, record: TokenRecord, supersedes?: string): Promise<boolean> {
    const current = this.records.get(key);
    // Fenced on when the token was obtained, not on expiry (see the Redis store's WRITE).
    if (current && current.expiresAt > this.now() && current.obtainedAt >= record.obtainedAt
      && current.tokenId !== record.tokenId && current.tokenId !== supersedes) return false;
    this.records.set(key, record);
    this.claims.delete(key);
    return true;
  }

  async remove(key: string, tokenId: string): Promise<boolean> {
    const r = this.records.get(key);
    if (r?.tokenId !== tokenId || r.expiresAt === 0) return false;
    // The refresh token outlives its access token: the next refresh needs it.
    if (r.refreshToken !== undefined) this.records.set(key, { ...r, expiresAt: 0 });
    else this.records.delete(key);
    return true;
  }

  async claimRefresh(key: string, owner: string): Promise<string | undefined> {
    const held = this.claims.get(key);
    if (held !== undefined && held !== owner) return held;
    this.claims.set(key, owner);
    return undefined;
  }

  async releaseRefreshClaim(key: string, owner: string): Promise<void> {
    if (this.claims.get(key) === owner) this.claims.delete(key);
  }

  async tryLock(key: string, ttlMs: number): Promise<StoreLock | undefined> {
    const held = this.locks.get(key);
    if (held && held.until > this.now()) return undefined;
    const owner = randomUUID();
    this.locks.set(key, { owner, until: this.now() + ttlMs });
    return {
      extend: async (ms) => {
        const l = this.locks.get(key);
        if (l?.owner !== owner) return false;
        l.until = this.now() + ms;
        return true;
      },
      release: async () => {
        if (this.locks.get(key)?.owner !== owner) return false;
        this.locks.delete(key);
        return true;
      },
    };
  }

  async publish(event: StoreEvent): Promise<void> {
    for (const l of this.listeners) l(event);
  }

  subscribe(listener: (event: StoreEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  healthy(): boolean {
    return true;
  }

  async close(): Promise<void> {
    this.listeners.clear();
  }
}
