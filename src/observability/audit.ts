// The audit trail: one structured log line per token minted, exchanged or invalidated and per
// admin action, each with a stable `event` name (docs/operations.md, "Audit events") that log
// pipelines and SIEM rules can match on. Lines go through the logger (and so through
// `redact`), and are written whatever `log.level` says: an audit trail that a quieter log level
// silences is not one.
import type { Logger } from './logger.js';

/** The stable event names. Renaming one breaks the rules people built on it. */
export type AuditEventName =
  | 'token.minted'
  | 'token.exchanged'
  | 'token.invalidated'
  | 'admin.invalidate'
  | 'admin.refresh'
  | 'admin.reload'
  | 'admin.denied'
  | 'config.reload';

/** Who dropped a token: an admin surface, Envoy's access log (an upstream refused it), a reload. */
export type InvalidatedBy = 'admin' | 'access_log' | 'reload';

/** Field values an audit line may carry: names, ids, codes, counts. Never a credential. */
export type AuditFields = Readonly<Record<string, string | number | boolean | null | undefined | readonly string[]>>;

/** The version of the audit line's shape; bumped only when a field changes meaning. */
export const AUDIT_VERSION = 1;

export function audit(logger: Logger, event: AuditEventName, fields: AuditFields): void {
  const line = { audit: AUDIT_VERSION, event, ...fields };
  if (logger.audit) logger.audit(event, line);
  else logger.info(event, line);
}

/**
 * A token a source handed out: `token.exchanged` when the source exchanged a subject token for
 * it (RFC 8693, `token_exchange`), else `token.minted` (a grant at the IdP, a signed JWT, a
 * static token read).
 */
export function auditMinted(logger: Logger, f: { provider: string; tokenId: string; sourceType: string; expiresInS: number | null }): void {
  if (f.sourceType === 'token_exchange') auditExchanged(logger, f);
  else audit(logger, 'token.minted', { provider: f.provider, token_id: f.tokenId, source_type: f.sourceType, expires_in_s: f.expiresInS });
}

/** What a `token.exchanged` line carries (issue 14: provider, subject, audience, actor, token_id). */
export interface ExchangedFields {
  readonly provider: string;
  readonly tokenId: string;
  /** The tokenId of the subject token (a hash); per-caller exchanges only. */
  readonly subjectId?: string;
  /** The `sub` of a subject that passed local verify; null without verify (never an unverified claim). */
  readonly subject?: string | null;
  /** What the token was exchanged for: the audience (else resource, else scope). */
  readonly audience?: string | null;
  /** The provider whose token was the actor_token (delegation), else null. */
  readonly actor?: string | null;
  readonly expiresInS: number | null;
  /** A refresh ahead of a caller's entry rather than a first exchange. */
  readonly refresh?: true;
}

/**
 * An exchange (RFC 8693). A per-caller one names the caller by `subject_id`, the tokenId of the
 * subject token (a hash), never the subject token itself; a fixed subject (file, env, another
 * provider) has none.
 */
export function auditExchanged(logger: Logger, f: ExchangedFields): void {
  audit(logger, 'token.exchanged', {
    provider: f.provider, token_id: f.tokenId, source_type: 'token_exchange', subject_id: f.subjectId,
    ...(f.subject !== undefined ? { subject: f.subject } : {}),
    ...(f.audience !== undefined ? { audience: f.audience } : {}),
    ...(f.actor !== undefined ? { actor: f.actor } : {}),
    expires_in_s: f.expiresInS,
    ...(f.refresh ? { refresh: true } : {}),
  });
}

export function auditInvalidated(logger: Logger, f: { provider: string; tokenId: string; by: InvalidatedBy; status?: number }): void {
  audit(logger, 'token.invalidated', { provider: f.provider, token_id: f.tokenId, by: f.by, ...(f.status !== undefined ? { upstream_status: f.status } : {}) });
}
