// The caller's token as it arrives in a request header: scheme, size and syntax checks, the key
// it is cached under, and what may be read from it without trusting it. Nothing here logs or
// echoes the token.
import * as crypto from 'node:crypto';
import { decodeJwt, decodeProtectedHeader } from 'jose';
import type { SubjectFromRequest } from '../../config/types.js';

/** RFC 6750 §2.1 b64token: a Bearer credential; also excludes CR, LF, NUL, spaces and commas. */
const B64TOKEN = /^[A-Za-z0-9\-._~+/]+=*$/;

/**
 * Why a subject is refused before any exchange (all are answered 401 invalid_subject_token);
 * `refused_upstream`: upstreams refused this caller's exchanged tokens repeatedly (a hold).
 */
export type SubjectProblem = 'missing' | 'too_large' | 'malformed' | 'expired' | 'not_yet_valid' | 'verify_failed' | 'refused_upstream';

/**
 * The token inside a header value, or undefined when the header does not carry one in the
 * configured scheme. Fast path for the cache hit: no regex, no allocation beyond the slice.
 * The syntax is checked only on a miss (`isWellFormed`): a hit is an exact match of a token that
 * was checked when its entry was made.
 */
export function tokenFromHeader(value: string | undefined, req: SubjectFromRequest): string | undefined {
  if (value === undefined) return undefined;
  const scheme = req.scheme;
  if (scheme === '') return value.length ? value : undefined;
  const n = scheme.length;
  // "<scheme> <token>", scheme case-insensitive (RFC 9110 §11.1), exactly one space.
  if (value.length <= n + 1 || value.charCodeAt(n) !== 0x20) return undefined;
  for (let i = 0; i < n; i++) {
    let c = value.charCodeAt(i);
    if (c >= 0x41 && c <= 0x5a) c += 0x20;
    let d = scheme.charCodeAt(i);
    if (d >= 0x41 && d <= 0x5a) d += 0x20;
    if (c !== d) return undefined;
  }
  return value.slice(n + 1);
}

/** A token that may be presented to an IdP: b64token syntax (no CR/LF, no commas from joined duplicates). */
export function isWellFormed(token: string): boolean {
  return B64TOKEN.test(token);
}

/**
 * The cache key: SHA-256 of the exact token bytes, the 32 digest bytes as a Latin-1 string (32
 * characters: the shortest string a Map can key by; base64url would be 43). Never a claim read
 * from the token: a forgery that copies another caller's claims hashes differently. Never
 * printed: it lives in this replica's memory only (logs name a token by `tokenId`).
 */
export function subjectKey(token: string): string {
  return oneShot ? oneShot('sha256', token, 'latin1') : crypto.createHash('sha256').update(token, 'utf8').digest().toString('latin1');
}

/**
 * `crypto.hash` (Node ≥ 20.12): a one-shot digest without a Hash object, about twice as fast on
 * the cache-hit path. Input is hashed as UTF-8 either way, so both give the same key.
 */
const oneShot = (crypto as unknown as { hash?: (alg: string, data: string, enc: 'latin1') => string }).hash;

/** What a JWT says about itself, unverified: used only to bound a lifetime or deny, never to grant. */
export interface UnverifiedClaims {
  readonly expMs?: number;
  readonly nbfMs?: number;
  readonly alg?: string;
  readonly iss?: string;
  /** `aud`, a string or a list, as the token has it. */
  readonly aud?: string | readonly string[];
}

/** Claims of a JWT-shaped token, or undefined for an opaque token (or one that does not decode). */
export function peekJwt(token: string): UnverifiedClaims | undefined {
  if (!token.startsWith('eyJ')) return undefined;
  let dots = 0;
  for (let i = 0; i < token.length; i++) if (token.charCodeAt(i) === 0x2e) dots++;
  if (dots !== 2) return undefined;
  try {
    const claims = decodeJwt(token);
    const header = decodeProtectedHeader(token);
    return {
      ...(typeof claims.exp === 'number' ? { expMs: claims.exp * 1000 } : {}),
      ...(typeof claims.nbf === 'number' ? { nbfMs: claims.nbf * 1000 } : {}),
      ...(typeof header.alg === 'string' ? { alg: header.alg } : {}),
      ...(typeof claims.iss === 'string' ? { iss: claims.iss } : {}),
      ...(claims.aud !== undefined ? { aud: claims.aud } : {}),
    };
  } catch {
    return undefined;
  }
}
