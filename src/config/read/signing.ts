// JWTs tokengate signs itself: the `jwt` source and the `jwt_bearer` assertion.
import { MAX_LIFETIME_MS, MIN_LIFETIME_MS } from '../lifetime-bounds.js';
import { join, type Reader } from '../reader.js';
import { substitute } from '../substitute.js';
import type { JwtAlgorithm, JwtSigningConfig } from '../types.js';

export const ALGORITHMS: readonly JwtAlgorithm[] = ['HS256', 'HS384', 'HS512', 'RS256', 'ES256', 'EdDSA'];

export function readSigning(r: Reader, defaults: { ttl: number }): JwtSigningConfig | undefined {
  const algorithm = r.oneOf('algorithm', ALGORITHMS, 'HS256');
  const key = r.str('key', { required: true, secret: true });
  const keyId = r.str('keyId');
  const claims = readClaims(r);
  const ttl = r.duration('ttl', defaults.ttl, { min: MIN_LIFETIME_MS, max: MAX_LIFETIME_MS });
  if (key === undefined) return undefined;
  if (algorithm.startsWith('HS') && key.length < 32) r.warn('key', 'an HMAC secret shorter than 32 bytes is weak');
  if (!algorithm.startsWith('HS') && !key.includes('-----BEGIN')) r.problem('key', `${algorithm} needs a PEM private key`);
  return { algorithm, key, claims, ttl, ...(keyId ? { keyId } : {}) };
}

function readClaims(r: Reader): Record<string, unknown> {
  const raw = r.value('claims');
  const path = join(r.path, 'claims');
  if (raw === undefined || raw === null) return {};
  if (typeof raw !== 'object' || Array.isArray(raw)) {
    r.problem('claims', 'expected a mapping');
    return {};
  }
  const walk = (v: unknown, p: string): unknown => {
    if (typeof v === 'string') {
      const s = substitute(v, r.ctx);
      if (s.kind === 'value') return s.value;
      r.ctx.problems.push({ path: p, problem: s.kind === 'unset' ? `is required (${s.reason})` : s.problem });
      return undefined;
    }
    if (Array.isArray(v)) return v.map((x, i) => walk(x, join(p, i)));
    if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, walk(x, join(p, k))]));
    return v;
  };
  return walk(raw, path) as Record<string, unknown>;
}
