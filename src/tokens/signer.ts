// Local JWT signing with jose: self-signed tokens, client assertions (private_key_jwt) and
// RFC 7523 grant assertions. Every JWT carries iat, nbf, exp and a fresh jti.
import { randomUUID, type KeyObject } from 'node:crypto';
import { SignJWT } from 'jose';
import type { JwtAlgorithm } from '../config/types.js';
import { TokenError } from './errors.js';
import { signingKey } from './signing-keys.js';

export interface SignerOptions {
  readonly algorithm: JwtAlgorithm;
  /** Secret for HS*, PEM private key (PKCS#8, PKCS#1 or SEC1) otherwise. */
  readonly key: string;
  readonly keyId?: string;
}

export interface SignInput {
  readonly claims: Readonly<Record<string, unknown>>;
  readonly nowMs: number;
  readonly ttlMs: number;
}

/** nbf is backdated a little so a verifier whose clock lags ours still accepts the token. */
const NBF_BACKDATE_S = 5;

export class JwtSigner {
  private readonly key: KeyObject;

  constructor(private readonly opts: SignerOptions) {
    try {
      this.key = signingKey(opts.algorithm.startsWith('HS') ? 'secret' : 'private', opts.key);
    } catch (err) {
      // The key text itself is never quoted.
      throw new TokenError('ERR_SOURCE_CONFIG', `cannot load the ${opts.algorithm} signing key (${(err as NodeJS.ErrnoException).code ?? 'invalid key'})`, { cause: err });
    }
    if (!opts.algorithm.startsWith('HS')) {
      const expected: Record<string, string[]> = { RS256: ['rsa'], ES256: ['ec'], EdDSA: ['ed25519', 'ed448'] };
      const type = this.key.asymmetricKeyType ?? '';
      if (!expected[opts.algorithm]?.includes(type)) {
        throw new TokenError('ERR_SOURCE_CONFIG', `a ${type || 'unknown'} key cannot sign ${opts.algorithm}`);
      }
    }
  }

  /** Signs claims; standard time claims and jti are set here and win over configured ones. */
  async sign({ claims, nowMs, ttlMs }: SignInput): Promise<{ jwt: string; expiresAtMs: number }> {
    const iat = Math.floor(nowMs / 1000);
    const exp = iat + Math.max(1, Math.floor(ttlMs / 1000));
    try {
      const jwt = await new SignJWT({ ...claims })
        .setProtectedHeader({ alg: this.opts.algorithm, typ: 'JWT', ...(this.opts.keyId ? { kid: this.opts.keyId } : {}) })
        .setIssuedAt(iat)
        .setNotBefore(iat - NBF_BACKDATE_S)
        .setExpirationTime(exp)
        .setJti(randomUUID())
        .sign(this.key);
      return { jwt, expiresAtMs: exp * 1000 };
    } catch (err) {
      throw new TokenError('ERR_SOURCE_CONFIG', `signing a ${this.opts.algorithm} JWT failed (${(err as Error).name})`, { cause: err });
    }
  }
}
