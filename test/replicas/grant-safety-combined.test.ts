// Issue #12, "what done means": the everyday events that used to revoke a rotating grant, one
// after another on three real replicas (`tokengate serve` processes) sharing a real Redis, with
// a loopback IdP that rotates refresh tokens and revokes the whole family on any reuse:
//   1. a slow IdP (the grant is carried out after tokengate's timeout): the outcome is unknown,
//      the refresh token is never presented again, the operator configures a new one and reloads;
//   2. a reload of every replica while a refresh is in flight at a slow IdP;
//   3. a store encryption key rotation, rolled through the replicas one at a time.
// Checks keep being answered with a credential throughout; at the end the IdP has seen zero
// reuses, no family revoked, and no refresh token presented twice.
import fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DemoTokenServer } from '../../demo/token-server.js';
import { AdminClient, type AdminResponse } from '../support/admin-client.js';
import { REDIS_URL, redisAvailable } from '../support/redis.js';
import { rtSource } from '../support/world.js';
import { envoyRequest, injected } from '../support/envoy-request.js';
import { deleteKeys, newEncryptionKey, newKeyPrefix, removeTmpDir, Replica, sleep, tmpDir, type LogLine } from '../support/replicas.js';

const ADMIN = 'combined-admin-token-0123456789';
const withRedis = await redisAvailable();

interface Shape {
  refreshToken: string;
  header: string;
  key: string;
  previousKeys: string[];
  timeout: string;
}

describe.skipIf(!withRedis)('grant safety: slow IdP, reload and key rotation on three replicas', () => {
  let idp: DemoTokenServer;
  let dir: string;
  const prefix = newKeyPrefix('combined');
  const replicas: Replica[] = [];
  const shape: Shape = { refreshToken: 'rt-combined-initial', header: 'authorization', key: newEncryptionKey(), previousKeys: [], timeout: '1s' };

  const yaml = (s: Shape) => `
listen: { grpc: "127.0.0.1:0", admin: "127.0.0.1:0" }
admin: { token: "${ADMIN}" }
store:
  type: redis
  redis: { url: "${REDIS_URL}", keyPrefix: "${prefix}" }
  encryptionKey: "${s.key}"
  previousEncryptionKeys: [${s.previousKeys.map((k) => `"${k}"`).join(', ')}]
log: { level: info }
shutdown: { deadline: 5s }
providers:
  p:
    source: ${rtSource(idp, s.refreshToken)}
    inject: { header: ${s.header} }
    refresh: { waitBudget: 3s }
    resilience: { timeout: ${s.timeout}, retries: 2, backoff: { base: 50ms, max: 100ms } }
routes:
  - match: { authority: api.example.com }
    provider: p
`;

  async function start(name: string): Promise<Replica> {
    const r = await Replica.start(name, yaml(shape), dir);
    await r.ready;
    return r;
  }

  function adminAddress(r: Replica): string {
    return String(r.logs.find((l) => l.msg === 'tokengate listening')!.admin);
  }

  /** An authorised admin HTTP call to one replica. */
  function admin(r: Replica, path: string, method = 'POST'): Promise<AdminResponse> {
    return new AdminClient({ http: adminAddress(r) }).http(method, path, ADMIN);
  }

  async function state(r: Replica): Promise<string> {
    const list = (await admin(r, '/v1/tokens', 'GET')).json<{ providers: { state: string }[] }>().providers;
    return list[0]!.state;
  }

  /** Rewrites every replica's config file and sends SIGHUP; resolves when each has reloaded. */
  async function reloadAll(): Promise<void> {
    await Promise.all(replicas.map(async (r) => {
      const before = r.logs.filter((l) => l.msg === 'config reloaded').length;
      fs.writeFileSync(`${dir}/${r.name}.yaml`, yaml(shape));
      process.kill(r.pid, 'SIGHUP');
      await r.waitFor(((n = 0) => (l: LogLine) => l.msg === 'config reloaded' && ++n > before)(), 10_000);
    }));
  }

  /** 20 Checks on each replica at once: every one answered OK with a credential in `header`. */
  async function checksServed(header: string): Promise<void> {
    const req = envoyRequest({ authority: 'api.example.com' });
    const answers = await Promise.all(replicas.flatMap((r) => Array.from({ length: 20 }, () => r.client.check(req, 10_000))));
    const bad = answers.filter((res) => (res.status?.code ?? 0) !== 0 || !injected(res, header)?.header?.value);
    expect(bad.map((res) => `${res.status?.code}: ${res.denied_response?.body ?? 'no credential in ' + header}`)).toEqual([]);
  }

  function expectGrantNeverReused(): void {
    expect(idp.reuseDetectedCount).toBe(0);
    expect(idp.anyFamilyRevoked).toBe(false);
    expect(idp.maxPresentations).toBeLessThanOrEqual(1);
  }

  beforeAll(async () => {
    idp = new DemoTokenServer({ refreshTokens: [shape.refreshToken], tokenTtlSeconds: 600 });
    await idp.start();
    dir = tmpDir('combined');
    for (const n of ['a', 'b', 'c']) replicas.push(await start(n));
  }, 60_000);

  afterAll(async () => {
    await Promise.all(replicas.map((r) => r.stop()));
    await idp?.stop();
    await deleteKeys(REDIS_URL, prefix);
    if (dir) removeTmpDir(dir);
  });

  it('three replicas start on one grant: one presentation of the configured refresh token', async () => {
    expect(idp.tokenRequestCount).toBe(1);
    await checksServed('authorization');
    expectGrantNeverReused();
  });

  it('1. a slow IdP: the outcome is unknown, nobody presents the token again, a new refresh token and a reload recover', async () => {
    const [a, b, c] = replicas as [Replica, Replica, Replica];
    const spent = idp.issuedRefreshTokens.at(-1)!;
    // 1.5 s against a 1 s timeout; the IdP carries the grant out after tokengate gave up.
    idp.setBehaviourSequence([{ kind: 'delay', ms: 1_500 }]);
    const refused = await admin(a, '/v1/tokens/p/refresh');
    expect(refused.status).toBe(502);
    await sleep(1_000); // the delayed grant has now rotated `spent` at the IdP
    expect(idp.presentations(spent)).toBe(1);
    // The other replicas refuse too (the store marks the token spent), without calling the IdP.
    const requests = idp.tokenRequestCount;
    for (const r of [b, c]) expect((await admin(r, '/v1/tokens/p/refresh')).status).toBe(502);
    expect(idp.tokenRequestCount).toBe(requests);
    for (const r of replicas) expect(await state(r)).toBe('needs_attention');
    // Checks keep flowing on the cached access token.
    await checksServed('authorization');
    expectGrantNeverReused();

    // The operator gets a new refresh token from the IdP and reloads every replica.
    shape.refreshToken = 'rt-combined-operator-1';
    idp.addRefreshToken(shape.refreshToken);
    await reloadAll();
    for (const r of replicas) expect(await state(r)).toBe('valid');
    expect(idp.presentations(shape.refreshToken)).toBe(1);
    await checksServed('authorization');
    expectGrantNeverReused();
  }, 60_000);

  it('2. a reload of every replica while a refresh is in flight at a slow IdP', async () => {
    const [a] = replicas as [Replica];
    shape.timeout = '5s';
    await reloadAll();
    const before = idp.tokenRequestCount;
    idp.setBehaviourSequence([{ kind: 'delay', ms: 1_500 }]);
    const inFlight = admin(a, '/v1/tokens/p/refresh');
    await idp.waitForRequests(before + 1);
    shape.header = 'x-upstream-token';
    await reloadAll();
    const done = await inFlight;
    expect(done.status).toBe(200);
    expect(idp.tokenRequestCount).toBe(before + 1);
    // The rotation finished; every replica serves under the new header.
    const newest = idp.issuedAccessTokens.at(-1)!;
    await checksServed('x-upstream-token');
    // The next refresh presents the refresh token that rotation returned, once.
    expect((await admin(replicas[1]!, '/v1/tokens/p/refresh')).status).toBe(200);
    expect(idp.issuedAccessTokens.at(-1)).not.toBe(newest);
    expectGrantNeverReused();
  }, 60_000);

  it('3. a store key rotation rolled through the replicas keeps the grant', async () => {
    const old = shape.key;
    shape.key = newEncryptionKey();
    shape.previousKeys = [old];
    const requests = idp.tokenRequestCount;
    // Roll: one replica at a time, each started on the new key with the old one as previous.
    for (let i = 0; i < replicas.length; i++) {
      const r = replicas[i]!;
      await r.stop();
      replicas[i] = await start(`${r.name}2`);
      await checksServed('x-upstream-token');
    }
    // The sealed record opened with the previous key: no replica fetched at start.
    expect(idp.tokenRequestCount).toBe(requests);
    // A refresh after the roll re-seals with the new key; then the previous key can go.
    expect((await admin(replicas[0]!, '/v1/tokens/p/refresh')).status).toBe(200);
    shape.previousKeys = [];
    for (let i = 0; i < replicas.length; i++) {
      const r = replicas[i]!;
      await r.stop();
      replicas[i] = await start(`${r.name}x`);
    }
    for (const r of replicas) expect(await state(r)).toBe('valid');
    expect((await admin(replicas[2]!, '/v1/tokens/p/refresh')).status).toBe(200);
    await checksServed('x-upstream-token');
    expectGrantNeverReused();
    expect(idp.invalidGrantCount).toBe(0);
  }, 90_000);
});
