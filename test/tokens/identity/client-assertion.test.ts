// authMethod: client_assertion — a federated credential (a projected service-account token)
// read from a file at each fetch: rotation is picked up, an expired, empty, missing or garbled
// file is ERR_SOURCE_CONFIG naming the path (never its content), and the last good token is
// served meanwhile.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../../src/config/load.js';
import { TokenManager } from '../../../src/tokens/manager.js';
import { FakeEndpoint, fakeJwt } from './fakes.js';

const ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';

describe('client_assertion from a file', () => {
  let idp: FakeEndpoint;
  let dir: string;
  let n = 0;
  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tokengate-assertion-'));
    idp = await FakeEndpoint.start(() => ({ body: { access_token: `at-${++n}`, token_type: 'Bearer', expires_in: 3600 } }));
  });
  afterAll(async () => {
    await idp.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const inAnHour = () => Math.floor(Date.now() / 1000) + 3600;

  function manager(file: string): TokenManager {
    return new TokenManager(parseConfig(`
providers:
  entra:
    refresh: { waitBudget: 10s }
    source:
      type: client_credentials
      tokenUrl: ${idp.origin}/oauth2/v2.0/token
      clientId: app-id
      authMethod: client_assertion
      clientAssertionFile: ${file}
      scope: https://graph.example/.default
`, { env: {} }).providers.values());
  }

  it('sends the file as client_assertion and re-reads it when the kubelet rotates it', async () => {
    const file = path.join(dir, 'rotated');
    const first = fakeJwt({ sub: 'system:serviceaccount:ns:sa', exp: inAnHour(), jti: 'one' });
    const second = fakeJwt({ sub: 'system:serviceaccount:ns:sa', exp: inAnHour(), jti: 'two' });
    fs.writeFileSync(file, `${first}\n`);
    const m = manager(file);
    try {
      idp.requests.length = 0;
      await m.getToken('entra');
      expect(idp.requests[0]!.form).toMatchObject({ client_id: 'app-id', client_assertion_type: ASSERTION_TYPE, client_assertion: first, grant_type: 'client_credentials' });
      expect(idp.requests[0]!.headers.authorization).toBeUndefined();
      // The kubelet replaces the file (write + rename) during the run.
      fs.writeFileSync(`${file}.tmp`, second);
      fs.renameSync(`${file}.tmp`, file);
      await m.refresh('entra');
      expect(idp.requests[1]!.form.client_assertion).toBe(second);
    } finally {
      await m.close(0);
    }
  });

  it('never presents an expired assertion: ERR_SOURCE_CONFIG naming the file, the last good token still served', async () => {
    const file = path.join(dir, 'expiring');
    fs.writeFileSync(file, fakeJwt({ exp: inAnHour() }));
    const m = manager(file);
    try {
      const good = await m.getToken('entra');
      const before = idp.requests.length;
      fs.writeFileSync(file, fakeJwt({ exp: Math.floor(Date.now() / 1000) - 60 }));
      const err = await m.refresh('entra').then(() => undefined, (e: unknown) => e as { code: string; message: string });
      expect(err?.code).toBe('ERR_SOURCE_CONFIG');
      expect(err?.message).toContain(file);
      expect(err?.message).toContain('expired');
      expect(idp.requests.length).toBe(before); // nothing was sent
      const served = await m.getToken('entra');
      expect(served.value).toBe(good.value);
      expect(m.stats().find((s) => s.name === 'entra')?.lastError).toBeTruthy();
    } finally {
      await m.close(0);
    }
  });

  it.each([
    ['empty', '', /is empty/],
    ['garbage', 'not-a-jwt SECRET-GARBAGE-VALUE', /does not hold a JWT/],
  ])('a %s file is ERR_SOURCE_CONFIG naming the path, never quoting the content', async (_name, content, problem) => {
    const file = path.join(dir, `bad-${_name}`);
    fs.writeFileSync(file, fakeJwt({ exp: inAnHour() }));
    const m = manager(file);
    try {
      const good = await m.getToken('entra');
      fs.writeFileSync(file, content); // replaced by garbage in the middle of a run
      const err = await m.refresh('entra').then(() => undefined, (e: unknown) => e as Error & { code: string });
      expect(err?.code).toBe('ERR_SOURCE_CONFIG');
      expect(err?.message).toContain(file);
      expect(err?.message).toMatch(problem);
      expect(err?.message).not.toContain('SECRET-GARBAGE-VALUE');
      expect((await m.getToken('entra')).value).toBe(good.value);
    } finally {
      await m.close(0);
    }
  });

  it('a missing file is ERR_SOURCE_CONFIG naming the path', async () => {
    const file = path.join(dir, 'never-written');
    const m = manager(file);
    try {
      const err = await m.refresh('entra').then(() => undefined, (e: unknown) => e as Error & { code: string });
      expect(err?.code).toBe('ERR_SOURCE_CONFIG');
      expect(err?.message).toContain(`cannot read clientAssertionFile ${file} (ENOENT)`);
    } finally {
      await m.close(0);
    }
  });
});
