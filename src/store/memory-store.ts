// The embedded default: one process, no dependencies. Locks and events exist so the refresh
// logic is one code path whatever the store; here they never contend across processes.
import { randomUUID } from 'node:crypto';
import type { StoreEvent, StoreLock, TokenRecord, TokenStore } from './store.js';

export class MemoryStore implements TokenStore {
  readonly shared = false;
  private readonly records = new Map<string, TokenRecord>();
  private readonly locks = new Map<string, { owner: string; until: number }>();
  private readonly listeners = new Set<(event: StoreEvent) => void>();

  constructor(private readonly now: () => number = Date.now) {}

  async read(key: string): Promise<TokenRecord | undefined> {
    const r = this.records.get(key);
    if (r && r.expiresAt <= this.now()) {
      this.records.delete(key);
      return undefined;
    }
    return r;
  }

  async write(key: string, record: TokenRecord): Promise<boolean> {
    const current = this.records.get(key);
    if (current && current.expiresAt > this.now() && current.expiresAt >= record.expiresAt && current.tokenId !== record.tokenId) return false;
    this.records.set(key, record);
    return true;
  }

  async remove(key: string, tokenId: string): Promise<boolean> {
    if (this.records.get(key)?.tokenId !== tokenId) return false;
    this.records.delete(key);
    return true;
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
        if (this.locks.get(key)?.owner === owner) this.locks.delete(key);
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
