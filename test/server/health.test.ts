// grpc.health.v1.Health: NOT_SERVING until every provider had its first fetch attempt.
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { describe, expect, it } from 'vitest';
import { HEALTH_PROTO } from '../../src/server/protos.js';
import { startTestApp } from '../support/app.js';
import { startWorld } from '../support/world.js';
import { envoyRequest, injected } from '../support/envoy-request.js';

type HealthClient = grpc.Client & { Check(req: { service: string }, cb: (err: grpc.ServiceError | null, res: { status: string }) => void): void };

function healthClient(address: string): HealthClient {
  const def = protoLoader.loadSync(HEALTH_PROTO, { keepCase: true, enums: String });
  const pkg = grpc.loadPackageDefinition(def) as unknown as { grpc: { health: { v1: { Health: grpc.ServiceClientConstructor } } } };
  return new pkg.grpc.health.v1.Health(address, grpc.credentials.createInsecure()) as unknown as HealthClient;
}

const status = (c: HealthClient, service: string) =>
  new Promise<string>((resolve, reject) => c.Check({ service }, (err, res) => (err ? reject(err) : resolve(res.status))));

describe('health', () => {
  it('is NOT_SERVING during warm-up and SERVING after it, even when a provider failed its first fetch', async () => {
    const t = await startWorld({
      beforeApp: (idp) => idp.setBehaviour({ kind: 'delay', ms: 400 }),
      yaml: ({ idp, cc }) => `
providers:
  slow: { source: ${cc()} }
  failing: { source: ${cc({ tokenUrl: `${idp.url}/no-such-endpoint` })}, resilience: { retries: 0 } }
`,
      waitReady: false,
    });
    const c = healthClient(t.app.grpcAddress);
    try {
      expect(await status(c, '')).toBe('NOT_SERVING');
      expect(await status(c, 'envoy.service.auth.v3.Authorization')).toBe('NOT_SERVING');
      await t.app.ready;
      expect(await status(c, '')).toBe('SERVING');
      expect(await status(c, 'envoy.service.auth.v3.Authorization')).toBe('SERVING');
      expect(t.app.manager.stats().map((s) => [s.name, s.state])).toEqual([['slow', 'valid'], ['failing', 'missing']]);
      await t.app.close(2_000);
      expect(await status(c, '').catch(() => 'UNREACHABLE')).not.toBe('SERVING');
    } finally {
      c.close();
      await t.close();
    }
  });

  it('keeps answering Checks during shutdown.drainDelay while health already says NOT_SERVING', async () => {
    const t = await startTestApp(`
listen: { grpc: 127.0.0.1:0, admin: "off" }
shutdown: { deadline: 3s, drainDelay: 400ms }
providers:
  s: { source: { type: static, token: drain-token } }
`);
    const c = healthClient(t.app.grpcAddress);
    try {
      expect(await status(c, '')).toBe('SERVING');
      const closing = t.app.close();
      expect(await status(c, '')).toBe('NOT_SERVING');
      const res = await t.client.check(envoyRequest({ contextExtensions: { provider: 's' } }));
      expect(injected(res)?.header?.value).toBe('Bearer drain-token');
      await closing;
    } finally {
      c.close();
      await t.close();
    }
  });
});
