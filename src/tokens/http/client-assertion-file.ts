// A federated client assertion (a Kubernetes projected service-account token, a CI OIDC token)
// read from a file at every fetch: the kubelet rotates the file in place, and an assertion that
// has expired must never be presented again. The content is a credential: never quoted.
import fs from 'node:fs/promises';
import { decodeJwt } from 'jose';
import { TokenError } from '../errors.js';

/** An assertion this close to its exp is treated as expired: it may expire on the way. */
const EXPIRY_MARGIN_MS = 5_000;

export interface ClientAssertion {
  readonly jwt: string;
  /** The assertion's exp, when it has one. */
  readonly expiresAtMs?: number;
}

export async function readClientAssertion(file: string, nowMs: number, what = 'clientAssertionFile'): Promise<ClientAssertion> {
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (err) {
    throw new TokenError('ERR_SOURCE_CONFIG', `cannot read ${what} ${file} (${(err as NodeJS.ErrnoException).code ?? 'error'})`, { cause: err });
  }
  const jwt = text.trim();
  if (!jwt) throw new TokenError('ERR_SOURCE_CONFIG', `${what} ${file} is empty`);
  let exp: unknown;
  try {
    exp = decodeJwt(jwt).exp;
  } catch {
    throw new TokenError('ERR_SOURCE_CONFIG', `${what} ${file} does not hold a JWT`);
  }
  if (typeof exp === 'number') {
    const expiresAtMs = exp * 1000;
    if (expiresAtMs - EXPIRY_MARGIN_MS <= nowMs) {
      throw new TokenError('ERR_SOURCE_CONFIG', `${what} ${file} holds an expired JWT (exp ${new Date(expiresAtMs).toISOString()}); is the file still being rotated?`);
    }
    return { jwt, expiresAtMs };
  }
  return { jwt };
}
