import type { SourceConfig } from '../../config/types.js';
import { TokenError } from '../errors.js';
import type { HttpTransport } from '../http/transport.js';
import { ClientCredentials } from './client-credentials.js';
import { SelfSignedJwt } from './jwt.js';
import { JwtBearer } from './jwt-bearer.js';
import { RefreshToken } from './refresh-token.js';
import type { TokenSource } from './source.js';
import { StaticToken } from './static.js';

export type { FetchContext, FetchedToken, TokenSource } from './source.js';

/** Builds the source a provider's config describes. Throws TokenError(ERR_SOURCE_CONFIG). */
export function createSource(config: SourceConfig, transport?: HttpTransport): TokenSource {
  switch (config.type) {
    case 'client_credentials':
      return new ClientCredentials(config, transport);
    case 'refresh_token':
      return new RefreshToken(config, transport);
    case 'jwt':
      return new SelfSignedJwt(config);
    case 'jwt_bearer':
      return new JwtBearer(config, transport);
    case 'static':
      return new StaticToken(config);
    case 'token_exchange':
      // Per-caller exchanges (subject from the request) are tokens/per-caller's, one per caller.
      throw new TokenError('ERR_SOURCE_CONFIG', 'token_exchange with a fixed subject (file, env, provider) is not available yet; use subjectToken.request');
  }
}
