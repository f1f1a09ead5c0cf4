// The shared store on Redis (ioredis 5; standalone, Sentinel or Cluster): where replicas meet.
// Two connections: one for records, locks and publishing, one dedicated to the event channel.
// Every call fails fast (no offline queue, short command timeout) and every failure is a
// rejected promise: the token layer counts it and carries on without the store.
import { createHash, randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { Cluster, Command, Redis, type ClusterOptions, type RedisOptions } from 'ioredis';
import { parseHostPort, type HostPort } from '../config/host-port.js';
import type { RedisConfig, StoreConfig } from '../config/types.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import type { StoreDeps } from './store-deps.js';
import { RecordCipher, RecordCryptoError, type OpenedRecord } from './crypto.js';
import { NEVER_EXPIRES, type RateQuery, type RateTake, type StoreEvent, type StoreLock, type TokenRecord, type TokenStore } from './store.js';
import { END_EPISODE, TAKE_RATE, THROTTLE_RATE } from './redis-rate-bucket.js';

type Client = Redis | Cluster;

const DAY_MS = 86_400_000;
/** Longest a record lives in Redis; a longer-lived token is simply fetched again. */
const MAX_RECORD_TTL_MS = 30 * DAY_MS;
/** A record carrying a (rotating) refresh token outlives its access token by this much. */
export const REFRESH_RETENTION_MS = 30 * DAY_MS;
/** Reconnect forever, backing off to this interval, so a replica rejoins soon after Redis returns. */
const RECONNECT_MAX_MS = 1_000;

// All scripts take exactly one key (the token record or the lock): Cluster-safe by construction.
// Record layout (a hash): v = sealed record, exp = hard expiry (ms), tid = token id,
// at = when the token was obtained (ms, TokenRecord.obtainedAt), rt = 1 when it carries a
// refresh token, inv = 1 once invalidated, claim = refresh claim owner.

/**
 * Fenced write: over nothing, a dead record, the same token, the record the writer refreshed
 * from (ARGV[8], its token id) or a live record obtained before this one. Fenced on when the
 * token was obtained, not when it expires: an IdP that shortens lifetimes issues a newer token
 * that expires before the stored one, and it must replace it. A record written by an earlier
 * version has no `at`: for it the old rule (a later expiry) still decides (rolling upgrades).
 */
const WRITE = `
local cur = redis.call('HMGET', KEYS[1], 'exp', 'tid', 'at')
local curExp = tonumber(cur[1])
if curExp and cur[2] ~= ARGV[2] and cur[2] ~= ARGV[8] and curExp > tonumber(ARGV[5]) then
  local curAt = tonumber(cur[3])
  if curAt then
    if curAt >= tonumber(ARGV[7]) then return 0 end
  elseif curExp >= tonumber(ARGV[1]) then
    return 0
  end
end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'v', ARGV[3], 'exp', ARGV[1], 'tid', ARGV[2], 'rt', ARGV[6], 'at', ARGV[7])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 1`;

/** Compare-and-delete on the token id; a refresh token stays (marked invalidated). */
const REMOVE = `
local cur = redis.call('HMGET', KEYS[1], 'tid', 'inv', 'rt')
if cur[1] ~= ARGV[1] or cur[2] then return 0 end
if cur[3] == '1' then
  redis.call('HSET', KEYS[1], 'exp', '0', 'inv', '1')
else
  redis.call('DEL', KEYS[1])
end
return 1`;

const CLAIM = `
local cur = redis.call('HGET', KEYS[1], 'claim')
if cur and cur ~= ARGV[1] then return cur end
redis.call('HSET', KEYS[1], 'claim', ARGV[1])
if redis.call('PTTL', KEYS[1]) < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return ''`;

const UNCLAIM = `
if redis.call('HGET', KEYS[1], 'claim') == ARGV[1] then
  redis.call('HDEL', KEYS[1], 'claim')
  return 1
end
return 0`;

/** Compare-and-pexpire: only the owner extends its lock. */
const EXTEND = `
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0`;

/** Compare-and-delete: only the owner releases its lock. */
const RELEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0`;


class Script {
  readonly sha: string;
  constructor(readonly lua: string) {
    this.sha = createHash('sha1').update(lua).digest('hex');
  }

  /** EVALSHA, loading the script with EVAL on a node that has not seen it yet. */
  async run(client: Client, key: string, args: (string | number | Buffer)[]): Promise<unknown> {
    try {
      return await client.evalsha(this.sha, 1, key, ...args);
    } catch (err) {
      if (!(err instanceof Error) || !err.message.startsWith('NOSCRIPT')) throw err;
      return client.eval(this.lua, 1, key, ...args);
    }
  }
}

const SCRIPTS = {
  write: new Script(WRITE),
  remove: new Script(REMOVE),
  claim: new Script(CLAIM),
  unclaim: new Script(UNCLAIM),
  extend: new Script(EXTEND),
  release: new Script(RELEASE),
  takeRate: new Script(TAKE_RATE),
  throttleRate: new Script(THROTTLE_RATE),
  endRateEpisode: new Script(END_EPISODE),
};

/** CRC16/XMODEM, as Redis Cluster computes key slots. */
function crc16(data: Buffer): number {
  let crc = 0;
  for (const byte of data) {
    crc ^= byte << 8;
    for (let i = 0; i < 8; i++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  }
  return crc;
}

/** The Cluster hash slot of `key` (its `{…}` hash tag when it has a non-empty one). */
export function keySlot(key: string): number {
  const open = key.indexOf('{');
  const close = open >= 0 ? key.indexOf('}', open + 1) : -1;
  const tagged = close > open + 1 ? key.slice(open + 1, close) : key;
  return crc16(Buffer.from(tagged, 'utf8')) % 16384;
}

/** Exponential from 50 ms, capped: never gives up, so the store rejoins when Redis returns. */
export function reconnectDelay(attempt: number): number {
  return Math.min(RECONNECT_MAX_MS, 50 * 2 ** Math.min(attempt - 1, 10));
}

/** A node address the config check already accepted (so this throws only on a programming error). */
function nodeAddress(text: string, defaultPort: number): HostPort {
  const node = parseHostPort(text, defaultPort);
  if (!node) throw new Error(`not a host:port: ${JSON.stringify(text)}`);
  return node;
}

/** Options every connection gets: fail fast, never queue, never replay a timed-out command. */
function nodeOptions(redis: RedisConfig, role: string): RedisOptions {
  return {
    connectionName: `tokengate-${role}`,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    // A command that timed out must not run later behind our back (a lock nobody owns).
    autoResendUnfulfilledCommands: false,
    // Resubscribing is done on every `ready` (it also covers a start while Redis was down).
    autoResubscribe: false,
    commandTimeout: redis.commandTimeout,
    connectTimeout: redis.connectTimeout,
    retryStrategy: reconnectDelay,
    ...(redis.password ? { password: redis.password } : {}),
  };
}

export function createClient(redis: RedisConfig, role: string): Client {
  const base = nodeOptions(redis, role);
  if (redis.cluster?.length) {
    const options: ClusterOptions = {
      enableOfflineQueue: false,
      enableReadyCheck: true,
      clusterRetryStrategy: reconnectDelay,
      slotsRefreshTimeout: redis.connectTimeout,
      retryDelayOnFailover: 50,
      retryDelayOnClusterDown: 50,
      maxRedirections: 4,
      redisOptions: base,
    };
    return new Cluster(redis.cluster.map((n) => nodeAddress(n, 6379)), options);
  }
  if (redis.sentinels?.length) {
    return new Redis({
      ...base,
      sentinels: redis.sentinels.map((n) => nodeAddress(n, 26379)),
      name: redis.name!,
      sentinelRetryStrategy: reconnectDelay,
      sentinelCommandTimeout: redis.connectTimeout,
    });
  }
  return new Redis(redis.url!, base);
}

/** Resolves true once `client` is ready, false after `ms`. */
function whenReady(client: Client, ms: number): Promise<boolean> {
  if (client.status === 'ready') return Promise.resolve(true);
  return new Promise((resolve) => {
    const done = (ok: boolean) => {
      clearTimeout(timer);
      client.off('ready', onReady);
      resolve(ok);
    };
    const onReady = () => done(true);
    const timer = setTimeout(() => done(false), ms);
    client.on('ready', onReady);
  });
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** A channel message, checked field by field: anything else on the channel is ignored. */
export function parseEvent(text: string): StoreEvent | undefined {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (!isRecord(v)) return undefined;
  const { provider, key, token_id, kind, origin, status } = v;
  if (typeof provider !== 'string' || typeof key !== 'string' || typeof token_id !== 'string' || typeof origin !== 'string') return undefined;
  if (kind !== 'updated' && kind !== 'invalidated') return undefined;
  const known = typeof status === 'number' && Number.isInteger(status) && status >= 100 && status <= 599;
  return { provider, key, token_id, kind, origin, ...(known ? { status } : {}) };
}

/** A decrypted record, checked before use: a record is never trusted because it decrypted. */
function toRecord(v: unknown): TokenRecord {
  const num = (x: unknown) => typeof x === 'number' && Number.isFinite(x);
  const optStr = (x: unknown) => x === undefined || typeof x === 'string';
  if (
    !isRecord(v) || typeof v.accessToken !== 'string' || typeof v.tokenType !== 'string' || typeof v.tokenId !== 'string' ||
    !num(v.obtainedAt) || !num(v.expiresAt) || !num(v.lifetimeMs) || !optStr(v.refreshToken) || !optStr(v.scope) ||
    !(v.recheckAt === undefined || num(v.recheckAt)) || !optStr(v.spentRefreshId) ||
    !(v.spentPresentedAt === undefined || num(v.spentPresentedAt))
  ) {
    throw new Error('stored token record has an unexpected shape');
  }
  return v as unknown as TokenRecord;
}

/** How long Redis keeps a record: its hard expiry, longer when it carries a refresh token. */
export function recordTtlMs(record: TokenRecord, now: number): number {
  let ttl = record.expiresAt >= NEVER_EXPIRES ? MAX_RECORD_TTL_MS : record.expiresAt - now;
  if (record.refreshToken !== undefined || record.spentRefreshId !== undefined) ttl = Math.max(ttl, REFRESH_RETENTION_MS);
  return Math.max(1, Math.min(Math.round(ttl), MAX_RECORD_TTL_MS));
}

export class RedisStore implements TokenStore {
  readonly shared = true;
  readonly channel: string;
  private readonly listeners = new Set<(event: StoreEvent) => void>();
  /** Lock values say who holds them (`redis-cli GET …:lock`): host, pid, then a random part. */
  private readonly lockOwnerPrefix = `${hostname()}:${process.pid}`;
  private closed = false;
  /** Per connection: down since the last `ready` (so an outage is logged once, not per retry). */
  private readonly down = new Map<string, boolean>();
  private readonly keyPrefix: string;
  /** SUBSCRIBE failures in a row, and the timer of the next try (see resubscribe). */
  private subscribeFailures = 0;
  private subscribeRetry: NodeJS.Timeout | undefined;

  private constructor(
    private readonly commands: Client,
    private readonly events: Client,
    private readonly cipher: RecordCipher,
    keyPrefix: string,
    private readonly now: () => number,
    private readonly logger: Logger,
    private readonly metrics: Metrics,
    private readonly replication: { readonly acks: number; readonly timeoutMs: number; readonly commandTimeoutMs: number; readonly sentinel: boolean },
  ) {
    this.channel = `${keyPrefix}events`;
    this.keyPrefix = keyPrefix;
  }

  private rateKey(origin: string): string {
    return `${this.keyPrefix}{budget:${origin}}:bucket`;
  }

  private static rateArgs(q: RateQuery): string[] {
    return [String(q.maxRate), String(q.ceiling), String(q.burst), String(q.minRate)];
  }

  async takeRate(origin: string, q: RateQuery): Promise<RateTake> {
    const [wait, rate, episode] = (await SCRIPTS.takeRate.run(this.commands, this.rateKey(origin), RedisStore.rateArgs(q))) as [number, string, number];
    return { wait: Number(wait), rate: Number(rate), episode: Number(episode) === 1 };
  }

  async throttleRate(origin: string, q: RateQuery, retryAfterMs: number | undefined): Promise<number> {
    return Number(await SCRIPTS.throttleRate.run(this.commands, this.rateKey(origin), [...RedisStore.rateArgs(q), String(retryAfterMs ?? -1)]));
  }

  async endRateEpisode(origin: string): Promise<void> {
    await SCRIPTS.endRateEpisode.run(this.commands, this.rateKey(origin), []);
  }

  /**
   * Connects both connections and waits (at most connectTimeout) for them. Redis being down is
   * no reason not to start: the replica serves and refreshes on its own, and joins when it can.
   */
  static async connect(config: StoreConfig, deps: StoreDeps): Promise<TokenStore> {
    const redis = config.redis;
    if (!redis) throw new Error('store.redis is required with store.type redis');
    if (!config.encryptionKey) throw new Error('store.encryptionKey is required with store.type redis');
    const store = new RedisStore(
      createClient(redis, 'commands'),
      createClient(redis, 'events'),
      new RecordCipher(config.encryptionKey, config.previousEncryptionKeys ?? []),
      redis.keyPrefix,
      () => deps.clock.now(),
      deps.logger,
      deps.metrics,
      { acks: redis.replicaAcks ?? 1, timeoutMs: redis.replicaAckTimeout ?? 1_000, commandTimeoutMs: redis.commandTimeout, sentinel: !redis.cluster?.length && !!redis.sentinels?.length },
    );
    store.watch(store.commands, 'commands');
    store.watch(store.events, 'events');
    store.events.on('message', (channel: string, message: string) => store.deliver(channel, message));
    store.events.on('ready', () => void store.resubscribe());
    const ready = await Promise.all([whenReady(store.commands, redis.connectTimeout), whenReady(store.events, redis.connectTimeout)]);
    if (ready[1]) await store.resubscribe();
    if (!ready[0] || !ready[1]) {
      deps.metrics.storeErrors.inc({ op: 'connect' });
      deps.logger.warn('redis not ready; starting without the shared store (serving and refreshing locally until it is reachable)', {
        mode: redis.cluster ? 'cluster' : redis.sentinels ? 'sentinel' : 'standalone', waitedMs: redis.connectTimeout,
      });
    } else {
      deps.logger.info('redis store connected', {
        mode: redis.cluster ? 'cluster' : redis.sentinels ? 'sentinel' : 'standalone', channel: store.channel,
        encryptionKeyId: store.cipher.keyId, previousEncryptionKeyIds: store.cipher.previousKeyIds,
      });
    }
    return store;
  }

  private watch(client: Client, role: string): void {
    this.down.set(role, false);
    client.on('error', (err: Error) => {
      if (this.closed || this.down.get(role)) return;
      this.down.set(role, true);
      this.logger.warn('redis connection error; retrying in the background', { connection: role, error: err });
    });
    client.on('close', () => {
      if (this.closed || this.down.get(role)) return;
      this.down.set(role, true);
      this.metrics.storeErrors.inc({ op: 'connection' });
      this.logger.warn('redis connection lost; retrying in the background', { connection: role });
    });
    client.on('ready', () => {
      if (!this.down.get(role)) return;
      this.down.set(role, false);
      this.logger.info('redis connection restored', { connection: role });
    });
  }

  /**
   * Subscribes the events connection to the channel. A failure on a connection that stays up
   * (a SUBSCRIBE that timed out, a NOPERM the operator fixes later) is retried with the
   * reconnect backoff: waiting for the next `ready` would leave this replica deaf to every
   * store event (new tokens, upstream refusals) for as long as the connection lives.
   */
  private async resubscribe(): Promise<void> {
    if (this.closed) return;
    clearTimeout(this.subscribeRetry);
    this.subscribeRetry = undefined;
    try {
      await this.events.subscribe(this.channel);
      if (this.subscribeFailures > 0) this.logger.info('redis subscribed after failures', { failures: this.subscribeFailures });
      this.subscribeFailures = 0;
    } catch (err) {
      this.subscribeFailures += 1;
      this.metrics.storeErrors.inc({ op: 'subscribe' });
      if (this.subscribeFailures === 1) {
        this.logger.warn('redis subscribe failed; retrying (until then this replica learns of new tokens by reading the store)', { error: err });
      } else {
        this.logger.debug('redis subscribe failed again', { failures: this.subscribeFailures, error: err });
      }
      // A connection that is not ready resubscribes on its next `ready`.
      if (!this.closed && this.events.status === 'ready' && !this.subscribeRetry) {
        this.subscribeRetry = setTimeout(() => void this.resubscribe(), reconnectDelay(this.subscribeFailures));
        this.subscribeRetry.unref();
      }
    }
  }

  private deliver(channel: string, message: string): void {
    if (channel !== this.channel) return;
    const event = parseEvent(message);
    if (!event) {
      this.logger.debug('ignored a malformed store event', { channel });
      return;
    }
    for (const l of this.listeners) {
      try {
        l(event);
      } catch {
        // one listener's failure is not the channel's
      }
    }
  }

  async read(key: string): Promise<TokenRecord | undefined> {
    const [sealed, inv, rt] = await this.commands.hmgetBuffer(key, 'v', 'inv', 'rt');
    if (!sealed) return undefined;
    let opened: OpenedRecord;
    try {
      opened = this.cipher.unseal(sealed, key);
    } catch (err) {
      if (!(err instanceof RecordCryptoError)) throw err;
      this.metrics.storeRecordOpens.inc({ key: 'none' });
      // Without a refresh token it holds nothing that cannot be fetched again: absent. With one
      // (or an older record that does not say), it may hold the only unspent refresh token of a
      // rotating grant: the caller must not fall back to the configured one.
      if (rt?.toString() === '0') {
        this.logger.warn('stored record does not open with any configured encryption key; it holds no refresh token, so it is fetched again', { key, error: err });
        return undefined;
      }
      throw err;
    }
    this.metrics.storeRecordOpens.inc({ key: opened.previousKey ? 'previous' : 'current' });
    const record = toRecord(JSON.parse(opened.plaintext.toString('utf8')));
    // Invalidated: the access token is dead, its refresh token is still the newest one.
    return inv ? { ...record, expiresAt: 0 } : record;
  }

  async write(key: string, record: TokenRecord, supersedes?: string): Promise<boolean> {
    const now = this.now();
    const sealed = this.cipher.seal(JSON.stringify(record), key);
    const written = await SCRIPTS.write.run(this.commands, key, [
      String(record.expiresAt), record.tokenId, sealed, recordTtlMs(record, now), String(now), record.refreshToken === undefined && record.spentRefreshId === undefined ? '0' : '1',
      String(record.obtainedAt), supersedes ?? '',
    ]);
    // A (rotated) refresh token only on the master is lost if the master dies before it
    // replicates: a promoted replica would hand out the spent one. Wait for a replica first.
    // The same for the mark of a spent one: losing it would let a replica present it again.
    if (written === 1 && (record.refreshToken !== undefined || record.spentRefreshId !== undefined)) await this.awaitReplicas(key);
    return written === 1;
  }

  /**
   * WAIT for `replicaAcks` replicas to acknowledge this connection's writes, bounded by
   * replicaAckTimeout. With Sentinel, always: a Sentinel deployment has replicas, and one that is
   * reconnecting right now (when it matters most) acknowledges after its resync. Standalone and
   * Cluster: at most as many as the master has connected (`ROLE`), so no replicas, no waiting.
   * Not acknowledged in time: the record is on the master, which is all that can be had; the
   * refresh goes on (the IdP has rotated already) and the risk is logged and counted.
   */
  private async awaitReplicas(key: string): Promise<void> {
    const { acks, timeoutMs, commandTimeoutMs } = this.replication;
    if (acks <= 0) return;
    let wanted = acks;
    let acked = 0;
    try {
      const node = this.masterFor(key);
      if (!node) throw new Error('no connection to the master of this key');
      if (!this.replication.sentinel) {
        // Standalone or Cluster: wait only for replicas that exist, so no replicas, no waiting.
        const role = await node.call('ROLE');
        const connected = Array.isArray(role) && role[0] === 'master' && Array.isArray(role[2]) ? role[2].length : 0;
        wanted = Math.min(acks, connected);
        if (wanted === 0) return;
      }
      // WAIT blocks for up to timeoutMs: its own budget, not the short commandTimeout.
      const wait = new Command('wait', [String(wanted), String(timeoutMs)], { replyEncoding: 'utf8' });
      wait.setTimeout(timeoutMs + commandTimeoutMs);
      acked = Number(await node.sendCommand(wait));
      if (acked >= wanted) return;
    } catch (err) {
      this.metrics.storeErrors.inc({ op: 'replicate' });
      this.logger.warn('could not confirm that a replica has the refresh token record; a failover before it replicates would lose it', { key, error: err });
      return;
    }
    this.metrics.storeErrors.inc({ op: 'replicate' });
    this.logger.warn('refresh token record not acknowledged by a replica in time; a failover before it replicates would lose it', {
      key, acked, wanted, waitedMs: timeoutMs,
    });
  }

  /** The connection our writes to `key` went over: WAIT counts only that connection's writes. */
  private masterFor(key: string): Redis | undefined {
    const c = this.commands;
    if (!(c instanceof Cluster)) return c;
    const nodeKey = c.slots[keySlot(key)]?.[0];
    return c.nodes('master').find((n) => `${n.options.host}:${n.options.port}` === nodeKey);
  }

  async remove(key: string, tokenId: string): Promise<boolean> {
    return (await SCRIPTS.remove.run(this.commands, key, [tokenId])) === 1;
  }

  async claimRefresh(key: string, owner: string): Promise<string | undefined> {
    const held = await SCRIPTS.claim.run(this.commands, key, [owner, REFRESH_RETENTION_MS]);
    if (typeof held === 'string' && held !== '') return held;
    // The claim must survive a failover too: a promoted replica without it would let another
    // replica present the refresh token the holder is presenting now.
    await this.awaitReplicas(key);
    return undefined;
  }

  async releaseRefreshClaim(key: string, owner: string): Promise<void> {
    await SCRIPTS.unclaim.run(this.commands, key, [owner]);
  }

  async tryLock(key: string, ttlMs: number): Promise<StoreLock | undefined> {
    const owner = `${this.lockOwnerPrefix}:${randomBytes(12).toString('base64url')}`;
    let ok: string | null;
    try {
      ok = await this.commands.set(key, owner, 'PX', Math.max(1, Math.round(ttlMs)), 'NX');
    } catch (err) {
      // A timed-out SET may still have run: release it, or nobody refreshes until it lapses.
      // Same connection, so Redis runs this after the SET if the SET got there at all.
      SCRIPTS.release.run(this.commands, key, [owner]).catch(() => undefined);
      throw err;
    }
    if (ok !== 'OK') return undefined;
    return {
      extend: async (ms) => (await SCRIPTS.extend.run(this.commands, key, [owner, Math.max(1, Math.round(ms))])) === 1,
      release: async () => (await SCRIPTS.release.run(this.commands, key, [owner])) === 1,
    };
  }

  async publish(event: StoreEvent): Promise<void> {
    const { provider, key, token_id, kind, origin, status } = event;
    await this.commands.publish(this.channel, JSON.stringify({ provider, key, token_id, kind, origin, status }));
  }

  subscribe(listener: (event: StoreEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  healthy(): boolean {
    return !this.closed && this.commands.status === 'ready' && this.events.status === 'ready';
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.subscribeRetry);
    this.listeners.clear();
    await Promise.all([this.commands, this.events].map(async (c) => {
      // QUIT when connected (bounded), then drop the socket and stop reconnecting either way.
      let t: NodeJS.Timeout | undefined;
      if (c.status === 'ready') {
        await Promise.race([c.quit().catch(() => undefined), new Promise<void>((r) => (t = setTimeout(r, 200)))]);
        clearTimeout(t);
      }
      c.disconnect();
    }));
  }
}
