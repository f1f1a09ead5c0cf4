// RFC 6749 §6. The refresh token may rotate on every use; the provider's refresh path
// presents only the newest one the store knows, under the store's lock, and stores the new
// one with the token.
import type { RefreshTokenSource } from '../../config/types.js';
import { TokenEndpoint } from '../http/token-endpoint.js';
import type { HttpTransport } from '../http/transport.js';
import type { FetchContext, FetchedToken, TokenSource } from './source.js';

export class RefreshToken implements TokenSource {
  readonly type = 'refresh_token';
  readonly rotates = true;
  readonly endpoint: string;
  readonly defaultTtlMs: number;
  private readonly client: TokenEndpoint;

  constructor(private readonly config: RefreshTokenSource, transport?: HttpTransport) {
    // A fresh connection per grant (refreshes are rare): a reset on an idle keep-alive socket the
    // IdP had closed would leave unknown whether the grant ran, and spend the refresh token.
    this.client = new TokenEndpoint(config, transport, { keepAlive: false });
    this.endpoint = this.client.endpointId;
    this.defaultTtlMs = config.defaultTtl;
  }

  async fetch(ctx: FetchContext): Promise<FetchedToken> {
    const presented = ctx.refreshToken ?? this.config.refreshToken;
    const res = await this.client.request({ grant_type: 'refresh_token', refresh_token: presented }, ctx);
    // No rotation in the answer: the presented refresh token stays valid and is kept.
    return { ...res, refreshToken: res.refreshToken ?? presented };
  }

  close(): void {
    this.client.close();
  }
}
