// RFC 7523 §2.1: a self-signed assertion exchanged for an access token (service accounts).
import type { JwtBearerSource } from '../../config/types.js';
import { TokenEndpoint } from '../http/token-endpoint.js';
import type { HttpTransport } from '../http/transport.js';
import { JwtSigner } from '../signer.js';
import type { FetchContext, FetchedToken, TokenSource } from './source.js';

const GRANT_TYPE = 'urn:ietf:params:oauth:grant-type:jwt-bearer';

export class JwtBearer implements TokenSource {
  readonly type = 'jwt_bearer';
  readonly rotates = false;
  readonly endpoint: string;
  readonly defaultTtlMs: number;
  private readonly client: TokenEndpoint;
  private readonly signer: JwtSigner;

  constructor(private readonly config: JwtBearerSource, transport?: HttpTransport) {
    this.client = new TokenEndpoint(config, transport);
    const a = config.assertion;
    this.signer = new JwtSigner(a);
    this.endpoint = this.client.endpointId;
    this.defaultTtlMs = config.defaultTtl;
  }

  async fetch(ctx: FetchContext): Promise<FetchedToken> {
    const claims = { aud: await this.client.assertionAudience(ctx.signal), ...this.config.assertion.claims };
    const { jwt } = await this.signer.sign({ claims, nowMs: ctx.now, ttlMs: this.config.assertion.ttl });
    return this.client.request({ grant_type: GRANT_TYPE, assertion: jwt }, ctx);
  }

  close(): void {
    this.client.close();
  }
}
