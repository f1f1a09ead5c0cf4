// Issue #12 finding 4: a rotated refresh token written to the master and not yet replicated is
// lost when the master dies; the promoted replica then hands out the spent one. Real processes:
// a master, a replica and three sentinels on free ports, started here for each trial. A trial
// stores a refresh token, stores its rotation, SIGKILLs the master the moment the write returns,
// lets Sentinel promote the replica, and reads what the next refresher would present.
// The replication stream reaches the replica LINK_DELAY_MS late (another zone); the master's host
// crashing loses what was still on the wire.
//
// FAILOVER_TRIALS_WITHOUT_WAIT=N adds N trials with replicaAcks 0 and FAILOVER_TRIALS=N sets the
// trials with WAIT (default 3); the counts are printed (the figures in docs/redis.md).
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { StoreConfig } from '../../src/config/types.js';
import { storeKey, type TokenStore } from '../../src/store/store.js';
import { redisAvailable } from '../support/redis.js';
import { freePort, RedisServer } from '../support/redis-server.js';
import { removeTmpDir, tmpDir } from '../support/replicas.js';
import { until } from '../support/until.js';
import { connect, record } from '../store/helpers.js';

const MASTER_NAME = 'tgfail';
const TRIALS_WITH_WAIT = Number(process.env.FAILOVER_TRIALS ?? 3);
const TRIALS_WITHOUT_WAIT = Number(process.env.FAILOVER_TRIALS_WITHOUT_WAIT ?? 0);
const LINK_DELAY_MS = 10;

/**
 * The master's network: every connection to it goes through here. What the master sends down a
 * replication stream (the connection sent SYNC/PSYNC) arrives LINK_DELAY_MS late, in order;
 * clients and sentinels are not delayed. `cut()` is the master's host dying: every connection
 * drops, and what was still on the wire is gone.
 */
class MasterLink {
  private readonly sockets = new Set<net.Socket>();
  private constructor(private readonly server: net.Server, readonly port: number) {}

  static async open(targetPort: number): Promise<MasterLink> {
    const port = await freePort();
    const server = net.createServer();
    const link = new MasterLink(server, port);
    server.on('connection', (down) => {
      const up = net.connect(targetPort, '127.0.0.1');
      let replication = false;
      link.sockets.add(down);
      link.sockets.add(up);
      down.on('data', (chunk) => {
        if (/\b(P?SYNC)\b/i.test(chunk.toString('latin1'))) replication = true;
        up.write(chunk);
      });
      up.on('data', (chunk) => {
        if (!replication) down.write(chunk);
        else setTimeout(() => link.sockets.has(down) && down.write(chunk), LINK_DELAY_MS);
      });
      for (const s of [down, up]) {
        s.on('error', () => undefined);
        s.on('close', () => link.drop(down, up));
      }
    });
    await new Promise<void>((r) => server.listen(port, '127.0.0.1', () => r()));
    return link;
  }

  private drop(...sockets: net.Socket[]): void {
    for (const s of sockets) {
      this.sockets.delete(s);
      s.destroy();
    }
  }

  cut(): void {
    this.drop(...this.sockets);
    this.server.close();
  }
}

type Outcome = 'new' | 'spent' | 'lost';

/** One master, one replica, three sentinels (quorum 2, down after 200 ms). */
async function topology(dir: string): Promise<{ master: RedisServer; replica: RedisServer; link: MasterLink; sentinels: RedisServer[] }> {
  const master = await RedisServer.start(undefined, { cwd: dir, args: ['--repl-diskless-sync-delay', '0'] });
  const link = await MasterLink.open(master.port);
  const replica = await RedisServer.start(undefined, { args: ['--replicaof', '127.0.0.1', String(link.port)], cwd: dir });
  const sentinels: RedisServer[] = [];
  for (let i = 0; i < 3; i++) {
    const conf = path.join(dir, `sentinel-${i}.conf`);
    fs.writeFileSync(conf, [
      `sentinel monitor ${MASTER_NAME} 127.0.0.1 ${link.port} 2`,
      `sentinel down-after-milliseconds ${MASTER_NAME} 200`,
      `sentinel failover-timeout ${MASTER_NAME} 2000`,
      '',
    ].join('\n'));
    sentinels.push(await RedisServer.start(undefined, { configFile: conf, args: ['--sentinel'], cwd: dir }));
  }
  return { master, replica, link, sentinels };
}

async function trial(replicaAcks: number): Promise<Outcome> {
  const dir = tmpDir('failover');
  const { master, replica, link, sentinels } = await topology(dir);
  const stores: TokenStore[] = [];
  try {
    const redis = {
      sentinels: sentinels.map((s) => `127.0.0.1:${s.port}`), name: MASTER_NAME,
      keyPrefix: `tgtest-failover-${randomBytes(3).toString('hex')}:`, commandTimeout: 500, connectTimeout: 2_000,
      replicaAcks, replicaAckTimeout: 1_000,
    };
    const config: StoreConfig = { type: 'redis', encryptionKey: randomBytes(32), redis };
    const logs: string[] = [];
    const leader = await connect(config, logs);
    stores.push(leader);
    const key = storeKey(redis.keyPrefix, 'p', '0123456789abcdef');
    // The token the grant started from, replicated for sure (a sentinel sees the replica too).
    expect(await leader.write(key, record({ refreshToken: 'rt-1' }))).toBe(true);
    await waitForReplica(replica, key);
    // The rotation: rt-1 has been presented, the IdP answered rt-2. The master dies right after.
    const rotated = record({ refreshToken: 'rt-2' });
    expect(await leader.write(key, rotated)).toBe(true);
    link.cut(); // the master's host dies: what its link had not delivered is gone
    await master.stop('SIGKILL');
    // The next refresher (another replica) reads through Sentinel once the replica is promoted.
    const next = await connect(config);
    stores.push(next);
    const end = Date.now() + 45_000;
    for (;;) {
      try {
        const rec = await next.read(key);
        if (await isMaster(replica)) {
          const outcome: Outcome = rec === undefined ? 'lost' : rec.refreshToken === 'rt-2' ? 'new' : 'spent';
          if ((outcome !== 'new' && process.env.FAILOVER_VERBOSE) || process.env.FAILOVER_VERBOSE === '2') process.stdout.write(`${logs.join('\n')}\n`);
          return outcome;
        }
      } catch {
        // not promoted yet, or ioredis still reconnecting
      }
      if (Date.now() > end) throw new Error('sentinel did not fail over');
      await new Promise((r) => setTimeout(r, 50));
    }
  } finally {
    await Promise.all(stores.map((s) => s.close()));
    link.cut();
    await Promise.all([...sentinels, replica, master].map((s) => s.stop()));
    removeTmpDir(dir);
  }
}

async function redisCli(port: number, ...args: string[]): Promise<string> {
  const { execFile } = await import('node:child_process');
  return new Promise((resolve, reject) => execFile('redis-cli', ['-p', String(port), ...args], (err, out) => (err ? reject(err) : resolve(out))));
}

async function waitForReplica(replica: RedisServer, key: string): Promise<void> {
  // A replica still (re)syncing may drop a connection: ask again.
  await until(async () => (await redisCli(replica.port, 'EXISTS', key).catch(() => '')).trim() === '1', 10_000, `the replica on ${replica.port} to sync ${key}`);
}

async function isMaster(server: RedisServer): Promise<boolean> {
  return (await redisCli(server.port, 'ROLE').catch(() => '')).startsWith('master');
}

describe.skipIf(!(await redisAvailable()))('finding 4: a failover between a rotation and its replication', () => {
  it('with WAIT for a replica, the promoted replica holds the rotated refresh token (no reuse)', async () => {
    const tally = async (acks: number, trials: number) => {
      const counts: Record<Outcome, number> = { new: 0, spent: 0, lost: 0 };
      for (let i = 0; i < trials; i++) {
        const started = Date.now();
        const outcome = await trial(acks);
        counts[outcome]++;
        if (process.env.FAILOVER_VERBOSE) process.stdout.write(`replicaAcks ${acks} trial ${i + 1}: ${outcome} (${Date.now() - started} ms)\n`);
      }
      return counts;
    };
    const without = await tally(0, TRIALS_WITHOUT_WAIT);
    const withWait = await tally(1, TRIALS_WITH_WAIT);
    process.stdout.write(`failover right after a rotation (link delay ${LINK_DELAY_MS} ms): replicaAcks 0, ${TRIALS_WITHOUT_WAIT} trials → ${JSON.stringify(without)}; replicaAcks 1, ${TRIALS_WITH_WAIT} trials → ${JSON.stringify(withWait)}\n`);
    expect(withWait).toEqual({ new: TRIALS_WITH_WAIT, spent: 0, lost: 0 });
  }, 30_000 + 20_000 * (TRIALS_WITH_WAIT + TRIALS_WITHOUT_WAIT));
});
