// `subjectToken.verify`: the caller's token checked locally before any exchange, so a forged,
// expired or foreign token never reaches the IdP. Keys come from jose's remote key set (the
// configured jwksUri, or the issuer's discovery document), which refetches on an unknown `kid`
// at most once per 30 s.
import { createRemoteJWKSet, jwtVerify, type JWTVerifyGetKey } from 'jose';
import type { Clock } from '../../clock.js';
import type { SubjectVerifyConfig } from '../../config/types.js';
import type { UnverifiedClaims } from './subject-token.js';

/** The unknown-kid refetch floor the contract names. */
const JWKS_COOLDOWN_MS = 30_000;
const DISCOVERY_TIMEOUT_MS = 5_000;

/** Which structural check refused a subject (all are answered 401 verify_failed). */
export type PrecheckFailure = 'not_a_jwt' | 'algorithm' | 'issuer' | 'no_exp' | 'audience';

export type VerifyOutcome =
  | { readonly ok: true; readonly sub: string | undefined }
  | { readonly ok: false; readonly reason: 'expired' | 'not_yet_valid' | 'verify_failed' | 'keys_unavailable' };

export class SubjectVerifier {
  private keys: JWTVerifyGetKey | undefined;
  private discovering: Promise<JWTVerifyGetKey> | undefined;

  constructor(private readonly config: SubjectVerifyConfig, private readonly clock: Clock) {
    if (config.jwksUri) this.keys = createRemoteJWKSet(new URL(config.jwksUri), { cooldownDuration: JWKS_COOLDOWN_MS });
  }

  /**
   * The checks that need no key and no signature, on what the token says about itself: a token
   * that is not a JWT, names an algorithm not allowed (`none` included), another issuer or
   * audience, or has no `exp` cannot pass `verify`, so it is refused here (synchronously, a
   * decode's cost) instead of queueing for a signature check. Only ever a reason to deny; which
   * check failed is returned so a misconfigured `verify` (an issuer with a stray trailing slash
   * refuses every caller) can be told from a flood of forgeries in the logs.
   */
  precheck(claims: UnverifiedClaims | undefined): PrecheckFailure | undefined {
    if (claims === undefined) return 'not_a_jwt';
    if (claims.alg === undefined || !this.config.algorithms.includes(claims.alg)) return 'algorithm';
    if (claims.iss !== this.config.issuer) return 'issuer';
    if (claims.expMs === undefined) return 'no_exp';
    const want = this.config.audience;
    if (want !== undefined && want.length > 0) {
      const aud = claims.aud;
      const ok = typeof aud === 'string' ? want.includes(aud) : Array.isArray(aud) && aud.some((a) => want.includes(a));
      if (!ok) return 'audience';
    }
    return undefined;
  }

  /** Verifies signature (allowed algorithms only), iss, aud, exp and nbf (with leeway). */
  async verify(token: string): Promise<VerifyOutcome> {
    let keys: JWTVerifyGetKey;
    try {
      keys = this.keys ?? (await this.discover());
    } catch {
      return { ok: false, reason: 'keys_unavailable' };
    }
    try {
      const { payload } = await jwtVerify(token, keys, {
        issuer: this.config.issuer,
        ...(this.config.audience ? { audience: [...this.config.audience] } : {}),
        algorithms: [...this.config.algorithms],
        clockTolerance: Math.floor(this.config.leeway / 1000),
        currentDate: new Date(this.clock.now()),
        // A token without exp would live in the cache for as long as the exchanged one.
        requiredClaims: ['exp'],
      });
      return { ok: true, sub: typeof payload.sub === 'string' ? payload.sub : undefined };
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (code === 'ERR_JWT_EXPIRED') return { ok: false, reason: 'expired' };
      if (code === 'ERR_JWT_CLAIM_VALIDATION_FAILED' && (err as { claim?: string }).claim === 'nbf') return { ok: false, reason: 'not_yet_valid' };
      // No key could be had at all (JWKS endpoint down): not the caller's fault.
      if (code === 'ERR_JWKS_TIMEOUT' || (code === undefined && (err as Error).name === 'TypeError')) return { ok: false, reason: 'keys_unavailable' };
      return { ok: false, reason: 'verify_failed' };
    }
  }

  /** jwks_uri from the issuer's metadata: OpenID discovery, else RFC 8414. Retried after a failure. */
  private discover(): Promise<JWTVerifyGetKey> {
    this.discovering ??= (async () => {
      const base = this.config.issuer.replace(/\/$/, '');
      for (const path of ['/.well-known/openid-configuration', '/.well-known/oauth-authorization-server']) {
        const res = await fetch(base + path, { redirect: 'manual', signal: AbortSignal.timeout(DISCOVERY_TIMEOUT_MS) }).catch(() => undefined);
        if (!res || res.status !== 200) continue;
        const doc = (await res.json().catch(() => undefined)) as { issuer?: unknown; jwks_uri?: unknown } | undefined;
        if (doc && doc.issuer === this.config.issuer && typeof doc.jwks_uri === 'string') {
          this.keys = createRemoteJWKSet(new URL(doc.jwks_uri), { cooldownDuration: JWKS_COOLDOWN_MS });
          return this.keys;
        }
      }
      throw new Error(`no usable discovery document at ${this.config.issuer}`);
    })();
    return this.discovering.catch((err: unknown) => {
      this.discovering = undefined;
      throw err;
    });
  }
}
