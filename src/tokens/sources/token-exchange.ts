// Placeholder until the fixed-subject token exchange lands (item 6).
import type { TokenExchangeSource } from '../../config/types.js';
import { TokenError } from '../errors.js';
import type { HttpTransport } from '../http/transport.js';
import type { FetchContext, FetchedToken, LinkedTokens, TokenSource } from './source.js';

export class TokenExchange implements TokenSource {
  readonly type = 'token_exchange';
  readonly rotates = false;
  readonly defaultTtlMs: number;

  constructor(config: TokenExchangeSource, _links: LinkedTokens | undefined, _transport?: HttpTransport) {
    this.defaultTtlMs = config.defaultTtl;
  }

  fetch(_ctx: FetchContext): Promise<FetchedToken> {
    return Promise.reject(new TokenError('ERR_SOURCE_CONFIG', 'token_exchange is not implemented yet'));
  }
}
