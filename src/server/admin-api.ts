// The one implementation behind both admin surfaces (HTTP and gRPC). Errors carry a stable
// code; each surface translates them in its own table.
import { timingSafeEqual, createHash } from 'node:crypto';
import type { TokenManager } from '../tokens/manager.js';
import type { BudgetStatus } from '../tokens/manager.js';
import type { ProviderStatus } from '../tokens/token-handle.js';
import type { PerCallerStatus } from '../tokens/per-caller/per-caller-provider.js';
import { isTokenError } from '../tokens/errors.js';
import { audit } from '../observability/audit.js';
import { redact } from '../observability/redact.js';

export type AdminErrorCode = 'unauthenticated' | 'disabled' | 'not_found' | 'invalid' | 'failed';

export class AdminError extends Error {
  constructor(readonly code: AdminErrorCode, message: string, readonly details?: Record<string, unknown>) {
    super(message);
    this.name = 'AdminError';
  }
}

export interface ReloadOutcome {
  readonly ok: boolean;
  readonly problems?: readonly string[];
  readonly added?: readonly string[];
  readonly changed?: readonly string[];
  readonly removed?: readonly string[];
}

export interface AdminHost {
  readonly manager: TokenManager;
  readonly adminToken: () => string | undefined;
  reload(): Promise<ReloadOutcome>;
}

function digest(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}

/** An IdP's error_description is free text from outside: it passes through redaction like a log line. */
function safeStatus(s: ProviderStatus): ProviderStatus {
  return s.lastError ? { ...s, lastError: redact(s.lastError) as Record<string, unknown> } : s;
}

export class AdminApi {
  constructor(private readonly host: AdminHost) {}

  /**
   * Checks `authorization: Bearer <admin.token>` in constant time (hashing first makes the
   * comparison length-independent). Without a configured token, mutations are off.
   */
  authorize(header: string | undefined): void {
    const expected = this.host.adminToken();
    if (!expected) {
      audit(this.logger, 'admin.denied', { reason: 'disabled' });
      throw new AdminError('disabled', 'admin mutations are disabled: set admin.token in the config to enable them');
    }
    // RFC 6750 §2.1: the scheme, one space, the token. Nothing is trimmed: a value with spaces
    // around or inside the token is not the configured token.
    const m = /^Bearer ([\x21-\x7e]+)$/i.exec(header ?? '');
    if (!m || !timingSafeEqual(digest(m[1]!), digest(expected))) {
      audit(this.logger, 'admin.denied', { reason: header === undefined ? 'no_credentials' : 'bad_credentials' });
      throw new AdminError('unauthenticated', 'a valid admin bearer token is required');
    }
  }

  /**
   * Providers, and each token-endpoint origin's budget (`*`: the default for origins without an
   * entry). `perCaller`: the token_exchange providers whose tokens are per caller, with their
   * cache size, hit ratio and last error; never a token or a subject. Present only when there are some.
   */
  listTokens(): { providers: ProviderStatus[]; tokenEndpoints: BudgetStatus[]; perCaller?: PerCallerStatus[] } {
    const perCaller = this.host.manager.perCallerStats().map((s) => (s.lastError ? { ...s, lastError: redact(s.lastError) as Record<string, unknown> } : s));
    return { providers: this.host.manager.stats().map(safeStatus), tokenEndpoints: this.host.manager.budgetStatus(), ...(perCaller.length ? { perCaller } : {}) };
  }

  private known(provider: string): void {
    if (!provider) throw new AdminError('invalid', 'provider is required');
    if (!this.host.manager.handle(provider)) throw new AdminError('not_found', 'no such provider', { provider: provider.slice(0, 128) });
  }

  private get logger() {
    return this.host.manager.logger;
  }

  invalidate(provider: string): { provider: string; invalidated: boolean } {
    // A per-caller provider: every caller's token is dropped (each caller's next Check exchanges again).
    const perCaller = provider ? this.host.manager.perCaller(provider) : undefined;
    if (perCaller) {
      perCaller.invalidateAll();
      return { provider, invalidated: true };
    }
    this.known(provider);
    const tokenId = this.host.manager.handle(provider)?.peek()?.tokenId;
    const invalidated = this.host.manager.invalidate(provider, undefined, 'admin');
    audit(this.logger, 'admin.invalidate', { provider, invalidated, token_id: invalidated ? tokenId : undefined });
    return { provider, invalidated };
  }

  async refresh(provider: string): Promise<ProviderStatus> {
    this.known(provider);
    try {
      const status = await this.host.manager.refresh(provider);
      audit(this.logger, 'admin.refresh', { provider, outcome: 'ok', token_id: status.tokenId });
      return safeStatus(status);
    } catch (err) {
      audit(this.logger, 'admin.refresh', { provider, outcome: isTokenError(err) ? err.code : 'ERR_INTERNAL' });
      if (isTokenError(err)) throw new AdminError('failed', 'refresh failed', { provider, cause: redact(err.toJSON()) });
      throw err;
    }
  }

  async reload(): Promise<ReloadOutcome> {
    const outcome = await this.host.reload();
    audit(this.logger, 'admin.reload', { ok: outcome.ok, problems: outcome.problems?.length ?? 0 });
    return outcome;
  }
}
