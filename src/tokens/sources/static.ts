// A token from the config (env) or from a file. Files are re-read when they change, because
// mounted secrets rotate by being replaced underneath us.
import fs from 'node:fs/promises';
import type { StaticSource } from '../../config/types.js';
import { TokenError } from '../errors.js';
import type { FetchContext, FetchedToken, TokenSource } from './source.js';

export class StaticToken implements TokenSource {
  readonly type = 'static';
  readonly rotates = false;
  readonly defaultTtlMs = Number.POSITIVE_INFINITY;

  constructor(private readonly config: StaticSource) {}

  async fetch(_ctx: FetchContext): Promise<FetchedToken> {
    const { token, file, pollInterval } = this.config;
    if (token !== undefined) return { accessToken: token, tokenType: 'Bearer', neverExpires: true };
    let text: string;
    try {
      text = await fs.readFile(file!, 'utf8');
    } catch (err) {
      throw new TokenError('ERR_SOURCE_CONFIG', `cannot read token file ${file} (${(err as NodeJS.ErrnoException).code ?? 'error'})`, { cause: err });
    }
    const value = text.trim();
    if (!value) throw new TokenError('ERR_SOURCE_CONFIG', `token file ${file} is empty`);
    return { accessToken: value, tokenType: 'Bearer', neverExpires: true, recheckAfterMs: pollInterval };
  }
}
