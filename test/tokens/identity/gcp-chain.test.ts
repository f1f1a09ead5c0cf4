// The full GCP workload-identity chain: a projected token file (static) → Google's STS (token
// exchange) → IAM Credentials generateAccessToken (impersonation). One expiry refreshes the
// whole chain; one link failing says which link failed while the last good token is served.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../../src/clock.js';
import { parseConfig } from '../../../src/config/load.js';
import { TokenManager } from '../../../src/tokens/manager.js';
import { FakeEndpoint, fakeJwt, type Answer, type Seen } from './fakes.js';

const JWT_TYPE = 'urn:ietf:params:oauth:token-type:jwt';
const ACCESS_TYPE = 'urn:ietf:params:oauth:token-type:access_token';

/** Lets real I/O (the fakes) and promise chains settle while the manual clock stands still. */
const settle = () => new Promise((r) => setTimeout(r, 50));

describe('GCP workload identity federation chain', () => {
  const clock = new ManualClock(Date.now());
  let dir: string;
  let projected: string;
  let sts: FakeEndpoint;
  let iam: FakeEndpoint;
  let stsAnswer: (req: Seen) => Answer;
  let iamAnswer: (req: Seen) => Answer;
  let stsN = 0;
  let iamN = 0;

  const okSts = (): Answer => ({ body: { access_token: `sts-${++stsN}`, issued_token_type: ACCESS_TYPE, token_type: 'Bearer', expires_in: 600 } });
  const okIam = (req: Seen): Answer => {
    const lifetime = Number(/^(\d+)s$/.exec(String((JSON.parse(req.body) as { lifetime: string }).lifetime))![1]);
    return { body: { accessToken: `gcp-${++iamN}`, expireTime: new Date(clock.now() + lifetime * 1000).toISOString() } };
  };

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tokengate-wif-'));
    projected = path.join(dir, 'token');
    sts = await FakeEndpoint.start((req) => stsAnswer(req));
    iam = await FakeEndpoint.start((req) => iamAnswer(req));
  });
  afterAll(async () => {
    await sts?.close();
    await iam?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  function manager(): TokenManager {
    const config = parseConfig(`
providers:
  k8s-sa:
    source: { type: static, file: ${projected}, pollInterval: 1m }
  sts:
    source:
      type: token_exchange
      tokenUrl: ${sts.origin}/v1/token
      audience: //iam.googleapis.com/projects/123/locations/global/workloadIdentityPools/pool/providers/k8s
      scope: https://www.googleapis.com/auth/cloud-platform
      requestedTokenType: ${ACCESS_TYPE}
      subjectToken: { provider: k8s-sa, type: "${JWT_TYPE}" }
    refresh: { jitter: 0% }
    resilience: { retries: 0 }
  gcp:
    source:
      type: gcp_impersonation
      endpoint: ${iam.origin}
      serviceAccount: reader@proj.iam.gserviceaccount.com
      scopes: [https://www.googleapis.com/auth/cloud-platform]
      lifetime: 1h
      via: sts
    refresh: { jitter: 0% }
    resilience: { retries: 0, serveExpiredFor: 1h }
`, { env: {} });
    return new TokenManager(config.providers.values(), { clock });
  }

  const projectedToken = (jti: string) => fakeJwt({ iss: 'https://kubernetes.default.svc', sub: 'system:serviceaccount:ns:app', aud: 'sts', exp: Math.floor(clock.now() / 1000) + 3600, jti });

  it('exchanges the projected token, impersonates with the STS token, and refreshes the whole chain when a link would expire', async () => {
    stsAnswer = okSts;
    iamAnswer = okIam;
    fs.writeFileSync(projected, projectedToken('first'));
    const m = manager();
    try {
      const first = await m.getToken('gcp');
      expect(first.value).toBe('gcp-1');
      expect(sts.requests[0]!.form).toMatchObject({
        grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange', subject_token: fs.readFileSync(projected, 'utf8'),
        subject_token_type: JWT_TYPE, requested_token_type: ACCESS_TYPE,
      });
      expect(sts.requests[0]!.form.client_id).toBeUndefined(); // authMethod none
      expect(iam.requests[0]!.url.pathname).toBe('/v1/projects/-/serviceAccounts/reader@proj.iam.gserviceaccount.com:generateAccessToken');
      expect(iam.requests[0]!.headers.authorization).toBe('Bearer sts-1');
      expect(JSON.parse(iam.requests[0]!.body)).toEqual({ scope: ['https://www.googleapis.com/auth/cloud-platform'], lifetime: '3600s' });
      // The impersonated token asked for 1h, but its STS link lives 10 min: the chain's expiry.
      expect(first.expiresAt).toBeLessThanOrEqual(clock.now() + 600_000);

      // The kubelet rotates the projected token; time passes to the impersonated token's refresh.
      fs.writeFileSync(projected, projectedToken('second'));
      clock.advance(5 * 60_000);
      await settle();
      const next = await m.getToken('gcp');
      await settle();
      expect(next.value).toBe('gcp-2');
      expect(sts.requests).toHaveLength(2);
      expect(sts.requests[1]!.form.subject_token).toBe(fs.readFileSync(projected, 'utf8'));
      expect(iam.requests).toHaveLength(2);
      expect(iam.requests[1]!.headers.authorization).toBe('Bearer sts-2');
    } finally {
      await m.close(0);
    }
  });

  it('a failing link is named, and the last good token keeps being served', async () => {
    stsAnswer = okSts;
    iamAnswer = okIam;
    fs.writeFileSync(projected, projectedToken('third'));
    const m = manager();
    try {
      const good = await m.getToken('gcp');
      stsAnswer = () => ({ status: 400, body: { error: 'invalid_grant', error_description: 'subject token audience mismatch' } });
      // While the STS link's token is still good a failed STS refresh does not stop the chain
      // (the old link token is used); past its expiry the chain cannot go on.
      clock.advance(11 * 60_000);
      await settle();
      const err = await m.refresh('gcp').then(() => undefined, (e: unknown) => e as Error & { code: string });
      expect(err?.code).toBe('ERR_IDP_REJECTED');
      expect(err?.message).toContain('link sts failed');
      expect(err?.message).toContain('invalid_grant');
      const served = await m.getToken('gcp');
      expect(served.value).toBe(good.value);
      expect(served.source).toBe('expired_grace');
    } finally {
      await m.close(0);
    }
  });

  it('refuses an STS answer whose issued_token_type is not the requested one', async () => {
    stsAnswer = () => ({ body: { access_token: 'an-id-token', issued_token_type: JWT_TYPE, token_type: 'Bearer', expires_in: 600 } });
    fs.writeFileSync(projected, projectedToken('fourth'));
    const m = manager();
    try {
      const err = await m.refresh('sts').then(() => undefined, (e: unknown) => e as Error & { code: string });
      expect(err?.code).toBe('ERR_IDP_BAD_RESPONSE');
      expect(err?.message).toContain('not the requested');
    } finally {
      await m.close(0);
    }
  });
});
