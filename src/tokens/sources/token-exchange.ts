// RFC 8693 token exchange with a fixed subject: a projected service-account token from a file,
// a token from the environment, or another provider's current token (a chain: projected token
// → STS → impersonation). The request and the answer's checks are the shared exchange codec's
// (tokens/http/token-exchange.ts); this file only finds the subject and actor tokens.
import fs from 'node:fs/promises';
import type { FixedTokenRef, TokenExchangeSource } from '../../config/types.js';
import { TokenError } from '../errors.js';
import { readClientAssertion } from '../http/client-assertion-file.js';
import { TokenEndpoint } from '../http/token-endpoint.js';
import { exchangeToken } from '../http/token-exchange.js';
import type { HttpTransport } from '../http/transport.js';
import { capToLinks } from './chain.js';
import type { FetchContext, FetchedToken, LinkedToken, LinkedTokens, TokenSource } from './source.js';

/** Token types that are JWTs: their exp is checked before they are presented. */
const JWT_TYPES = new Set(['urn:ietf:params:oauth:token-type:jwt', 'urn:ietf:params:oauth:token-type:id_token']);

export class TokenExchange implements TokenSource {
  readonly type = 'token_exchange';
  readonly rotates = false;
  readonly endpoint: string;
  readonly defaultTtlMs: number;
  private readonly client: TokenEndpoint;

  constructor(private readonly config: TokenExchangeSource, private readonly links: LinkedTokens | undefined, transport?: HttpTransport) {
    if (!links && (config.subjectToken.provider || config.actorToken?.provider)) {
      throw new TokenError('ERR_SOURCE_CONFIG', 'a subject or actor token from another provider needs provider links');
    }
    this.client = new TokenEndpoint(config, transport);
    this.endpoint = this.client.endpointId;
    this.defaultTtlMs = config.defaultTtl;
  }

  /** The token a reference names, and the link it came from (for the chain's expiry). */
  private async resolve(ref: FixedTokenRef, key: string, ctx: FetchContext): Promise<{ token: string; link?: LinkedToken }> {
    if (ref.provider) {
      const link = await this.links!.get(ref.provider, ctx.signal);
      return { token: link.accessToken, link };
    }
    if (ref.value !== undefined) return { token: ref.value };
    const file = ref.file!;
    // A projected token is rotated in place by the kubelet: read at every fetch, never stale.
    if (JWT_TYPES.has(ref.type)) return { token: (await readClientAssertion(file, ctx.now, `${key}.file`)).jwt };
    let text: string;
    try {
      text = (await fs.readFile(file, 'utf8')).trim();
    } catch (err) {
      throw new TokenError('ERR_SOURCE_CONFIG', `cannot read ${key}.file ${file} (${(err as NodeJS.ErrnoException).code ?? 'error'})`, { cause: err });
    }
    if (!text) throw new TokenError('ERR_SOURCE_CONFIG', `${key}.file ${file} is empty`);
    return { token: text };
  }

  async fetch(ctx: FetchContext): Promise<FetchedToken> {
    const c = this.config;
    const subject = await this.resolve(c.subjectToken, 'subjectToken', ctx);
    const actor = c.actorToken ? await this.resolve(c.actorToken, 'actorToken', ctx) : undefined;
    // audience and scope come from the endpoint's configured parameters.
    const res = await exchangeToken(this.client, {
      style: 'rfc8693',
      subjectToken: subject.token,
      subjectTokenType: c.subjectToken.type,
      ...(actor ? { actorToken: actor.token, actorTokenType: c.actorToken!.type } : {}),
      ...(c.resource ? { resource: c.resource } : {}),
      ...(c.requestedTokenType ? { requestedTokenType: c.requestedTokenType } : {}),
    }, ctx);
    const fetched: FetchedToken = {
      accessToken: res.accessToken,
      tokenType: res.tokenType,
      ...(res.expiresInMs !== undefined ? { expiresInMs: res.expiresInMs } : {}),
      ...(res.scope ? { scope: res.scope } : {}),
    };
    const links = [subject.link, actor?.link].filter((l): l is LinkedToken => l !== undefined);
    return links.length ? capToLinks(fetched, links, ctx.now, this.defaultTtlMs) : fetched;
  }

  close(): void {
    this.client.close();
  }
}
