// One token slot: the token this process serves for one store key, how a record becomes that
// token (adopt) and stops being it (drop), and who waits for the next change. Everything that
// puts a token in memory goes through here; nothing else holds one. The slot knows nothing of
// fetching, replicas or schedules: the refresh path ends in `adopt`, and whoever needs to react
// to an adoption (the provider's schedule) observes the slot.
import type { Clock } from '../clock.js';
import type { InjectConfig, RefreshConfig } from '../config/types.js';
import type { TokenRecord } from '../store/store.js';
import { CachedToken } from './cached-token.js';
import { refreshAtFor } from './expiry.js';

/**
 * What a slot is keyed by: the store key its record lives under, and a label for logs, metrics
 * and store events (the provider name today). Not the provider name itself, so a provider may
 * own more than one slot (one per caller) without the fetch or coordination code changing.
 */
export interface SlotKey {
  readonly storeKey: string;
  readonly label: string;
}

/** Where an adopted record came from: our own fetch, a read of the store, or another replica's event. */
export type Adoption = 'fetched' | 'store' | 'event';

/**
 * Told of every adoption, after the slot holds the new token and its waiters are woken. An
 * object rather than a closure: the provider itself observes its slot, which costs ten
 * thousand providers nothing.
 */
export interface SlotObserver {
  adopted(entry: CachedToken, how: Adoption, previous: CachedToken | undefined): void;
}

/** How a record becomes a served token: the refresh moment and the injected header. */
export interface SlotPolicy {
  readonly refresh: RefreshConfig;
  readonly inject: InjectConfig;
}

/** Ids of tokens this slot dropped; never adopted again (from the store or an event). */
const DROPPED_MEMORY = 32;

export class TokenSlot {
  /** Kept after hard expiry: the expired-grace rung of the fallback ladder serves it. */
  private token: CachedToken | undefined;
  /** How a hit is labelled: 'stale' once a refresh for the current token has failed. */
  private hit: 'cache' | 'stale' = 'cache';
  /** Created on first use: most slots never drop a token or have anyone waiting. */
  private dropped: string[] | undefined;
  private waiters: Set<() => void> | undefined;
  private observer: SlotObserver | undefined;

  constructor(
    readonly key: SlotKey,
    private readonly policy: SlotPolicy,
    private readonly clock: Clock,
    private readonly random: () => number,
  ) {}

  /** The token in the slot, even past expiry; undefined when there is none. No side effects. */
  peek(): CachedToken | undefined {
    return this.token;
  }

  /** How a hit on the current token is labelled. */
  get hitSource(): 'cache' | 'stale' {
    return this.hit;
  }

  /** A refresh for the current token failed: hits are 'stale' until the next adoption. */
  markStale(): void {
    if (this.token) this.hit = 'stale';
  }

  /** The one observer of adoptions (the owner of the slot's schedule). */
  observe(observer: SlotObserver): void {
    this.observer = observer;
  }

  /**
   * Makes `rec` the slot's token and returns it: wakes the waiters when the token changed, then
   * tells the observer.
   */
  adopt(rec: TokenRecord, how: Adoption): CachedToken {
    const entry = new CachedToken(rec, refreshAtFor(rec, this.policy.refresh, this.random), rec.expiresAt, this.policy.inject);
    const previous = this.token;
    this.token = entry;
    this.hit = 'cache';
    if (previous?.tokenId !== entry.tokenId) this.wake();
    this.observer?.adopted(entry, how, previous);
    return entry;
  }

  /**
   * Never adopts token `id` again, and empties the slot if it holds it: true when it did. Only
   * this process's memory: the store and the other replicas are the coordinator's business.
   */
  drop(id: string): boolean {
    const dropped = (this.dropped ??= []);
    if (!dropped.includes(id)) {
      dropped.push(id);
      if (dropped.length > DROPPED_MEMORY) dropped.shift();
    }
    if (this.token?.tokenId !== id) return false;
    this.token = undefined;
    this.hit = 'cache';
    return true;
  }

  /** True for a token this slot dropped: the store or an event must not bring it back. */
  wasDropped(id: string): boolean {
    return this.dropped !== undefined && this.dropped.includes(id);
  }

  /** Resolves at the next change (an adoption, `wake`) or after `ms`, whichever comes first. */
  waitForChange(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const waiters = (this.waiters ??= new Set());
      const done = () => {
        timer.cancel();
        waiters.delete(done);
        resolve();
      };
      const timer = this.clock.setTimer(done, ms);
      waiters.add(done);
    });
  }

  /** Ends every `waitForChange` now: the token changed, an event came, or we are closing. */
  wake(): void {
    const w = this.waiters;
    if (w === undefined || w.size === 0) return;
    this.waiters = undefined;
    for (const fn of w) fn();
  }
}
