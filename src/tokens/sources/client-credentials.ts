// RFC 6749 §4.4: the service's own credentials for an access token.
import type { ClientCredentialsSource } from '../../config/types.js';
import { TokenEndpoint } from '../http/token-endpoint.js';
import type { HttpTransport } from '../http/transport.js';
import type { FetchContext, FetchedToken, TokenSource } from './source.js';

export class ClientCredentials implements TokenSource {
  readonly type = 'client_credentials';
  readonly rotates = false;
  readonly endpoint: string;
  readonly defaultTtlMs: number;
  private readonly client: TokenEndpoint;

  constructor(config: ClientCredentialsSource, transport?: HttpTransport) {
    this.client = new TokenEndpoint(config, transport);
    this.endpoint = this.client.endpointId;
    this.defaultTtlMs = config.defaultTtl;
  }

  fetch(ctx: FetchContext): Promise<FetchedToken> {
    return this.client.request({ grant_type: 'client_credentials' }, ctx);
  }

  close(): void {
    this.client.close();
  }
}
