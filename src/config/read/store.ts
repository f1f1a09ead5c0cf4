// `store`: memory or Redis (one url, sentinels or a cluster) and the keys records are sealed with.
import { parseHostPort } from '../host-port.js';
import { Reader } from '../reader.js';
import { substitute } from '../substitute.js';
import type { RedisConfig, StoreConfig } from '../types.js';

/** `sentinels` / `cluster`: each entry an address the client can dial, checked here, not at connect. */
function nodeList(r: Reader, key: string): string[] {
  const out: string[] = [];
  for (const { value, path } of r.list(key)) {
    const text = typeof value === 'string' ? value : typeof value === 'number' ? String(value) : undefined;
    if (text === undefined || parseHostPort(text, 6379) === undefined) {
      const got = text === undefined ? `, got ${value === null ? 'null' : Array.isArray(value) ? 'a list' : `a ${typeof value === 'object' ? 'mapping' : typeof value}`}` : '';
      r.ctx.problems.push({ path, problem: `expected host:port${got}` });
    } else {
      out.push(text);
    }
  }
  return out;
}

function readRedis(r: Reader): RedisConfig {
  const url = r.str('url', { pattern: /^rediss?:\/\//, patternHint: 'expected redis://… or rediss://…' });
  const sentinels = nodeList(r, 'sentinels');
  const cluster = nodeList(r, 'cluster');
  const name = r.str('name');
  const password = r.str('password', { secret: true });
  const modes = [url, sentinels.length ? 1 : undefined, cluster.length ? 1 : undefined].filter((x) => x !== undefined).length;
  if (modes === 0) r.problem(undefined, 'needs one of url, sentinels (with name) or cluster');
  if (modes > 1) r.problem(undefined, 'url, sentinels and cluster are alternatives; set one');
  if (sentinels.length && !name) r.problem('name', 'is required with sentinels (the master group name)');
  const out: RedisConfig = {
    ...(url ? { url } : {}),
    ...(sentinels.length ? { sentinels } : {}),
    ...(cluster.length ? { cluster } : {}),
    ...(name ? { name } : {}),
    ...(password ? { password } : {}),
    keyPrefix: r.str('keyPrefix') ?? 'tokengate:',
    commandTimeout: r.duration('commandTimeout', 50, { min: 1 }),
    connectTimeout: r.duration('connectTimeout', 1000, { min: 1 }),
    replicaAcks: r.num('replicaAcks', 1, { min: 0, max: 16, integer: true }),
    replicaAckTimeout: r.duration('replicaAckTimeout', 1000, { min: 1, max: 60_000 }),
  };
  r.done();
  return out;
}

export function readStore(r: Reader): StoreConfig {
  const type = r.oneOf('type', ['memory', 'redis'] as const, 'memory');
  const redisReader = r.has('redis') ? r.child('redis') : undefined;
  const redis = redisReader ? readRedis(redisReader) : undefined;
  const keyText = r.str('encryptionKey', { secret: true });
  let encryptionKey: Buffer | undefined;
  if (keyText !== undefined) {
    const buf = Buffer.from(keyText, 'base64');
    if (buf.length !== 32) r.problem('encryptionKey', 'must be 32 bytes, base64-encoded (e.g. `openssl rand -base64 32`)');
    else encryptionKey = buf;
  }
  // Keys records may still be sealed with (a key rotation): opened with, never sealed with.
  const previousEncryptionKeys: Buffer[] = [];
  for (const { value, path } of r.list('previousEncryptionKeys')) {
    const text = typeof value === 'string' ? substituteSecret(r, path, value) : undefined;
    if (text === undefined) {
      if (typeof value !== 'string') r.ctx.problems.push({ path, problem: 'expected a base64 string' });
      continue;
    }
    // `${env:PREVIOUS_KEY:-}` left empty: no previous key this time (one template for both phases).
    if (text === '' && (value as string).includes('${')) continue;
    const buf = Buffer.from(text, 'base64');
    if (buf.length !== 32) r.ctx.problems.push({ path, problem: 'must be 32 bytes, base64-encoded (e.g. `openssl rand -base64 32`)' });
    else previousEncryptionKeys.push(buf);
  }
  if (previousEncryptionKeys.length && keyText === undefined) r.problem('previousEncryptionKeys', 'needs store.encryptionKey (the key new records are sealed with)');
  if (type === 'redis') {
    if (!redis) r.problem('redis', 'is required with type: redis');
    if (!encryptionKey && keyText === undefined) r.problem('encryptionKey', 'is required with type: redis (tokens are encrypted at rest)');
  }
  r.done();
  return {
    type, ...(redis ? { redis } : {}), ...(encryptionKey ? { encryptionKey } : {}),
    ...(previousEncryptionKeys.length ? { previousEncryptionKeys } : {}),
  };
}

/** A list entry that holds a secret: substituted like `str(…, { secret: true })`, never quoted back. */
function substituteSecret(r: Reader, path: string, raw: string): string | undefined {
  const s = substitute(raw, r.ctx);
  if (s.kind === 'error') {
    r.ctx.problems.push({ path, problem: s.problem });
    return undefined;
  }
  if (s.kind === 'unset') {
    r.ctx.problems.push({ path, problem: `is required (${s.reason})` });
    return undefined;
  }
  if (!s.substituted && s.value !== '') r.ctx.warnings.push({ path, problem: 'holds a literal secret; use ${env:NAME} or ${file:PATH}' });
  return s.value;
}
