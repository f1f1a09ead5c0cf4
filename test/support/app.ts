// Start a real tokengate in-process from YAML text (gRPC and admin on port 0 unless it says otherwise).
// Most tests want it together with an IdP: see world.ts.
import { startTokengate, type StartOptions, type Tokengate } from '../../src/app.js';
import { parseConfig } from '../../src/config/load.js';
import { createLogger, type Logger } from '../../src/observability/logger.js';
import { AdminClient } from './admin-client.js';
import { checkServerUnderTest } from './check-server.js';
import { CheckClient, envoyRequest, type CheckResponse, type EnvoyRequestInit } from './envoy-request.js';

export interface TestApp {
  readonly app: Tokengate;
  readonly client: CheckClient;
  /** Admin HTTP (when listen.admin is on) and gRPC TokenAdmin of this app. */
  readonly admin: AdminClient;
  /** Every log line the app wrote (for redaction scans and assertions). */
  readonly logs: string[];
  /** One Envoy-shaped Check through `client`. */
  check(init?: EnvoyRequestInit): Promise<CheckResponse>;
  close(): Promise<void>;
}

export type TestAppOptions = StartOptions & { waitReady?: boolean };

export function captureLogger(lines: string[], level: 'debug' | 'info' = 'debug'): Logger {
  return createLogger({ level, sink: (l) => lines.push(l) });
}

/**
 * Without a `listen:` section the config's defaults would bind 0.0.0.0:9191 and :9192: a test
 * would then collide with any other run on the machine (or a `npm start`). Tests listen on port 0.
 */
export function testListen(yaml: string): string {
  return /^listen:/m.test(yaml) ? yaml : `listen: { grpc: 127.0.0.1:0, admin: 127.0.0.1:0 }\n${yaml}`;
}

export async function startTestApp(yaml: string, opts: TestAppOptions = {}): Promise<TestApp> {
  const parsed = parseConfig(testListen(yaml), { env: opts.env ?? {} });
  const checkServer = checkServerUnderTest();
  const config = checkServer ? { ...parsed, listen: { ...parsed.listen, checkServer } } : parsed;
  const logs: string[] = [];
  const app = await startTokengate(config, { logger: captureLogger(logs), ...opts });
  if (opts.waitReady !== false) await app.ready;
  const client = new CheckClient(app.grpcAddress);
  const admin = new AdminClient({ http: app.adminAddress, grpc: app.grpcAddress });
  let closed: Promise<void> | undefined;
  return {
    app,
    client,
    admin,
    logs,
    check: (init) => client.check(envoyRequest(init)),
    close() {
      closed ??= (async () => {
        client.close();
        admin.close();
        await app.close(2_000);
      })();
      return closed;
    },
  };
}

/**
 * An app whose one provider, `fixed`, is a static token routed by the authority
 * `api.example.com`: for protocol tests, where the token is beside the point. `listen` is added
 * to the listen section (gRPC on port 0, admin off); `extra` is top-level YAML.
 */
export function staticTokenApp(token: string, listen = '', extra = ''): Promise<TestApp> {
  return startTestApp(`
listen: { grpc: 127.0.0.1:0, admin: "off"${listen ? `, ${listen}` : ''} }
${extra}
providers:
  fixed:
    source: { type: static, token: ${token} }
routes:
  - match: { authority: api.example.com }
    provider: fixed
`);
}
