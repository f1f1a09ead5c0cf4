import type { SourceConfig } from '../../config/types.js';
import { TokenError } from '../errors.js';
import type { HttpTransport } from '../http/transport.js';
import { ClientCredentials } from './client-credentials.js';
import { GcpImpersonation } from './gcp-impersonation.js';
import { SelfSignedJwt } from './jwt.js';
import { JwtBearer } from './jwt-bearer.js';
import { MetadataToken } from './metadata.js';
import { RefreshToken } from './refresh-token.js';
import type { LinkedTokens, TokenSource } from './source.js';
import { StaticToken } from './static.js';
import { TokenExchange } from './token-exchange.js';

export type { FetchContext, FetchedToken, LinkedToken, LinkedTokens, TokenSource } from './source.js';

/**
 * Builds the source a provider's config describes. `links` reaches other providers' tokens
 * (chains). Throws TokenError(ERR_SOURCE_CONFIG).
 */
export function createSource(config: SourceConfig, transport?: HttpTransport, links?: LinkedTokens): TokenSource {
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
    case 'metadata':
      return new MetadataToken(config, transport);
    case 'gcp_impersonation':
      return new GcpImpersonation(config, links, transport);
    case 'token_exchange':
      return new TokenExchange(config, links, transport);
  }
}
