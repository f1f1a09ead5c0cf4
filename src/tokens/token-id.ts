import { createHash } from 'node:crypto';

/**
 * A short, non-reversible fingerprint: what logs, metrics, metadata and the access-log
 * feedback use to talk about a token without holding it. 72 bits: collisions are not a concern
 * for the handful of tokens alive at once.
 */
export function tokenId(token: string): string {
  return createHash('sha256').update(token).digest('base64url').slice(0, 12);
}
