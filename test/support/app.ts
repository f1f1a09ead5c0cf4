// Start a real tokengate (gRPC on port 0, admin off unless asked) from YAML text.
import { startTokengate, type StartOptions, type Tokengate } from '../../src/app.js';
import { parseConfig } from '../../src/config/load.js';
import { createLogger, type Logger } from '../../src/observability/logger.js';
import { CheckClient } from './envoy-request.js';

export interface TestApp {
  readonly app: Tokengate;
  readonly client: CheckClient;
  /** Every log line the app wrote (for redaction scans and assertions). */
  readonly logs: string[];
  close(): Promise<void>;
}

export function captureLogger(lines: string[], level: 'debug' | 'info' = 'debug'): Logger {
  return createLogger({ level, sink: (l) => lines.push(l) });
}

export async function startTestApp(yaml: string, opts: StartOptions & { waitReady?: boolean } = {}): Promise<TestApp> {
  const config = parseConfig(yaml, { env: opts.env ?? {} });
  const logs: string[] = [];
  const app = await startTokengate(config, { logger: captureLogger(logs), ...opts });
  if (opts.waitReady !== false) await app.ready;
  const client = new CheckClient(app.grpcAddress);
  return {
    app,
    client,
    logs,
    async close() {
      client.close();
      await app.close(2_000);
    },
  };
}
