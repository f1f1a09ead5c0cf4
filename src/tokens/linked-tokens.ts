// Providers whose source builds on another provider's token reach it through here: the link's
// cached token while it is fresh, else its (single-flight) refresh, bounded by the caller's
// signal. A failure keeps the link's error code and names the link, so `tokengate token` and
// status pages say which link of a chain failed.
import type { Clock } from '../clock.js';
import type { TokenRecord } from '../store/store.js';
import { TokenError, toTokenError } from './errors.js';
import type { LinkedToken, LinkedTokens } from './sources/source.js';

/** What a link needs of a provider's token slot (Provider has it). */
export interface LinkSlot {
  lookup(now: number): { readonly record: TokenRecord; readonly expiresAt: number; readonly refreshAt: number } | undefined;
  refresh(reason: string): Promise<{ readonly record: TokenRecord; readonly expiresAt: number }>;
}

/**
 * A link with less than this left is refreshed before a token is derived from it: the derived
 * token would otherwise be cut short by it (capToLinks), so the chain refreshes as one.
 */
const LINK_FRESHNESS_MS = 10 * 60_000;

function linked(entry: { readonly record: TokenRecord; readonly expiresAt: number }): LinkedToken {
  return { accessToken: entry.record.accessToken, tokenType: entry.record.tokenType, expiresAt: entry.expiresAt };
}

function untilAborted<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(toTokenError(signal.reason, 'ERR_IDP_TIMEOUT'));
    if (signal.aborted) return onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      (v) => { signal.removeEventListener('abort', onAbort); resolve(v); },
      (e: unknown) => { signal.removeEventListener('abort', onAbort); reject(e); },
    );
  });
}

export class ProviderLinks implements LinkedTokens {
  constructor(private readonly slot: (name: string) => LinkSlot | undefined, private readonly clock: Clock) {}

  async get(provider: string, signal: AbortSignal): Promise<LinkedToken> {
    const slot = this.slot(provider);
    if (!slot) throw new TokenError('ERR_SOURCE_CONFIG', `link ${provider}: no provider of that name`);
    const now = this.clock.now();
    const hit = slot.lookup(now);
    if (hit && now < hit.refreshAt && hit.expiresAt - now >= LINK_FRESHNESS_MS) return linked(hit);
    try {
      return linked(await untilAborted(slot.refresh('chain'), signal));
    } catch (err) {
      // The link's refresh failed but its token is still good: the chain goes on with it.
      if (hit && this.clock.now() < hit.expiresAt) return linked(hit);
      const e = toTokenError(err, 'ERR_IDP_UNAVAILABLE', provider);
      throw new TokenError(e.code, `link ${provider} failed: ${e.message}`, {
        provider, ...(e.status !== undefined ? { status: e.status } : {}),
        ...(e.oauthError ? { oauthError: e.oauthError } : {}),
        ...(e.oauthErrorDescription ? { oauthErrorDescription: e.oauthErrorDescription } : {}), cause: e,
      });
    }
  }
}
