// The store on Sentinel and on Cluster: the same operations, through ioredis's own clients.
// Each suite starts its own servers (a master and a sentinel; three cluster masters).
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { StoreConfig } from '../../src/config/types.js';
import { lockKeyFor, storeKey, type StoreEvent, type TokenStore } from '../../src/store/store.js';
import { redisAvailable } from '../support/redis.js';
import { freePort, RedisServer } from '../support/redis-server.js';
import { removeTmpDir, tmpDir } from '../support/replicas.js';
import { connect, record } from './helpers.js';
import { until } from '../support/until.js';

const run = promisify(execFile);
const encryptionKey = randomBytes(32);

function config(redis: Partial<NonNullable<StoreConfig['redis']>>): StoreConfig {
  return { type: 'redis', encryptionKey, redis: { keyPrefix: `tgtest-topo-${randomBytes(3).toString('hex')}:`, commandTimeout: 200, connectTimeout: 2_000, ...redis } };
}

/** Every store operation, across several providers (so, on Cluster, several hash slots). */
/** Two clients of one topology run the whole store contract against each other. */
async function exerciseTopology(c: StoreConfig): Promise<void> {
  const [a, b] = [await connect(c), await connect(c)];
  try {
    expect(a.healthy()).toBe(true);
    await exercise(a, b, c.redis!.keyPrefix);
  } finally {
    await a.close();
    await b.close();
  }
}

async function exercise(a: TokenStore, b: TokenStore, prefix: string): Promise<void> {
  const got: StoreEvent[] = [];
  const off = b.subscribe((e) => got.push(e));
  for (const provider of ['openai', 'kling', 'legacy', 'github', 'stripe']) {
    const key = storeKey(prefix, provider, '0123456789abcdef');
    const rec = record({ refreshToken: `rt-${provider}` });
    expect(await a.write(key, rec)).toBe(true);
    expect(await b.read(key)).toEqual(rec);
    expect(await b.write(key, record({ obtainedAt: rec.obtainedAt - 1, expiresAt: rec.expiresAt + 1 }))).toBe(false);
    const lock = await a.tryLock(lockKeyFor(key), 2_000);
    expect(lock).toBeDefined();
    expect(await b.tryLock(lockKeyFor(key), 2_000)).toBeUndefined();
    expect(await lock!.extend(2_000)).toBe(true);
    await lock!.release();
    expect(await a.claimRefresh!(key, 'a')).toBeUndefined();
    expect(await b.claimRefresh!(key, 'b')).toBe('a');
    expect(await a.remove(key, rec.tokenId)).toBe(true);
    expect((await b.read(key))?.expiresAt).toBe(0);
    await a.publish({ provider, key, token_id: rec.tokenId, kind: 'updated', origin: 'a' });
  }
  await until(() => got.length === 5, 3_000);
  off();
}

describe.skipIf(!(await redisAvailable()))('Redis topologies', () => {
  describe('Sentinel', () => {
    let master: RedisServer;
    let sentinel: RedisServer;
    const dir = tmpDir('sentinel');

    beforeAll(async () => {
      master = await RedisServer.start();
      const conf = path.join(dir, 'sentinel.conf');
      fs.writeFileSync(conf, `sentinel monitor tgmaster 127.0.0.1 ${master.port} 1\nsentinel down-after-milliseconds tgmaster 5000\n`);
      sentinel = await RedisServer.start(undefined, { configFile: conf, args: ['--sentinel'], cwd: dir });
    });

    afterAll(async () => {
      await sentinel?.stop();
      await master?.stop();
      removeTmpDir(dir);
    });

    it('finds the master through the sentinels and does everything there', async () => {
      // A master without replicas: nothing to WAIT for (Sentinel waits for replicaAcks otherwise).
      const c = config({ sentinels: [`127.0.0.1:${sentinel.port}`], name: 'tgmaster', replicaAcks: 0 });
      await exerciseTopology(c);
    }, 20_000);
  });

  describe('Cluster', () => {
    const nodes: RedisServer[] = [];
    const dir = tmpDir('cluster');

    beforeAll(async () => {
      const ports = [await freePort(), await freePort(), await freePort()];
      for (const port of ports) {
        nodes.push(await RedisServer.start(port, { args: ['--cluster-enabled', 'yes', '--cluster-config-file', `nodes-${port}.conf`], cwd: dir }));
      }
      await run('redis-cli', ['--cluster', 'create', ...ports.map((p) => `127.0.0.1:${p}`), '--cluster-replicas', '0', '--cluster-yes']);
      await until(async () => {
        const infos = await Promise.all(ports.map((p) => run('redis-cli', ['-p', String(p), 'cluster', 'info']).then((r) => r.stdout)));
        return infos.every((i) => i.includes('cluster_state:ok'));
      }, 10_000, 'every cluster node to say cluster_state:ok');
    }, 30_000);

    afterAll(async () => {
      await Promise.all(nodes.map((n) => n.stop()));
      removeTmpDir(dir);
    });

    it('routes each provider to its slot; scripts work because a provider\'s keys share a hash tag', async () => {
      const c = config({ cluster: nodes.map((n) => `127.0.0.1:${n.port}`) });
      await exerciseTopology(c);
    }, 20_000);
  });
});
