// Self-signed JWTs (access-key/secret-key APIs): no network, a fresh token per lifetime.
import type { JwtSource } from '../../config/types.js';
import { JwtSigner } from '../signer.js';
import type { FetchContext, FetchedToken, TokenSource } from './source.js';

export class SelfSignedJwt implements TokenSource {
  readonly type = 'jwt';
  readonly rotates = false;
  readonly defaultTtlMs: number;
  private readonly signer: JwtSigner;

  constructor(private readonly config: JwtSource) {
    // The (frozen) config is the signer's options as it is: no copy of them per provider.
    this.signer = new JwtSigner(config);
    this.defaultTtlMs = config.ttl;
  }

  async fetch(ctx: FetchContext): Promise<FetchedToken> {
    const { jwt, expiresAtMs } = await this.signer.sign({ claims: this.config.claims, nowMs: ctx.now, ttlMs: this.config.ttl });
    return { accessToken: jwt, tokenType: 'Bearer', expiresAtMs };
  }
}
