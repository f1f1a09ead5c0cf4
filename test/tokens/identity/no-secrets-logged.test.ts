// Bad input on the workload-identity paths: each is a clear error with a stable code, and no
// assertion, certificate, key or linked token reaches a log line, an error or a status.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../../src/config/load.js';
import { createLogger } from '../../../src/observability/logger.js';
import { TokenManager } from '../../../src/tokens/manager.js';
import { FakeEndpoint, fakeJwt, type Answer } from './fakes.js';

describe('workload identity: bad input, nothing secret logged', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tokengate-wi-secrets-'));
  const assertion = fakeJwt({ sub: 'ASSERTION-SUBJECT-MARKER', exp: Math.floor(Date.now() / 1000) + 3600 });
  const viaToken = 'VIA-TOKEN-MARKER-0123456789';
  let idp: FakeEndpoint;
  let iam: FakeEndpoint;
  let iamAnswer: () => Answer;
  beforeAll(async () => {
    // An IdP that echoes what it was sent, as some do in error descriptions.
    idp = await FakeEndpoint.start((req) => req.url.pathname === '/static'
      ? { body: { access_token: viaToken, expires_in: 3600 } }
      : { status: 401, body: { error: 'invalid_client', error_description: `assertion ${req.form.client_assertion} rejected` } });
    iam = await FakeEndpoint.start(() => iamAnswer());
  });
  afterAll(async () => {
    await idp?.close();
    await iam?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('an echoed assertion, a refused impersonation and a bad expireTime: stable codes, no secret anywhere', async () => {
    const file = path.join(dir, 'assertion');
    fs.writeFileSync(file, assertion);
    const lines: string[] = [];
    const logger = createLogger({ level: 'debug', sink: (l) => lines.push(l) });
    const config = parseConfig(`
providers:
  fed:
    source: { type: client_credentials, tokenUrl: "${idp.origin}/token", clientId: app, authMethod: client_assertion, clientAssertionFile: ${file} }
    resilience: { retries: 0 }
  via:
    source: { type: client_credentials, tokenUrl: "${idp.origin}/static", clientId: app, clientSecret: s }
  gcp:
    source: { type: gcp_impersonation, endpoint: "${iam.origin}", serviceAccount: sa@p.iam.gserviceaccount.com, via: via }
    resilience: { retries: 0 }
`, { env: {} });
    const m = new TokenManager(config.providers.values(), { logger });
    const errors: string[] = [];
    const fail = async (name: string) => m.refresh(name).then(() => { throw new Error(`${name} should fail`); }, (e: unknown) => {
      const err = e as Error & { code: string };
      errors.push(`${err.code} ${err.message}`);
      return err;
    });
    try {
      const echoed = await fail('fed');
      expect(echoed.code).toBe('ERR_IDP_REJECTED');

      iamAnswer = () => ({ status: 403, body: { error: { code: 403, message: `Permission 'iam.serviceAccounts.getAccessToken' denied (token ${viaToken})`, status: 'PERMISSION_DENIED' } } });
      const denied = await fail('gcp');
      expect(denied.code).toBe('ERR_IDP_REJECTED');
      expect(denied.message).toContain('PERMISSION_DENIED');

      iamAnswer = () => ({ body: { accessToken: 'ya29.x', expireTime: 'tomorrow' } });
      const bad = await fail('gcp');
      expect(bad.code).toBe('ERR_IDP_BAD_RESPONSE');
      expect(bad.message).toContain('expireTime');

      expect(lines.length).toBeGreaterThan(0); // the failures were logged
      const everything = [...lines, ...errors, JSON.stringify(m.stats())].join('\n');
      expect(everything).not.toContain('ASSERTION-SUBJECT-MARKER');
      expect(everything).not.toContain(assertion.split('.')[1]);
      expect(everything).not.toContain(viaToken);
    } finally {
      await m.close(0);
    }
  });
});
