/**
 * Runnable DEMO token server — NOT FOR PRODUCTION (see token-server.ts for the endpoints).
 *   node dist-demo/token-server-main.js   (npm run build:demo)
 * Env: PORT (8080), HOST (0.0.0.0), CLIENT_ID (demo-client), CLIENT_SECRET (demo-secret),
 *      TOKEN_TTL seconds (300), TOKEN_FORMAT opaque|jwt (opaque),
 *      REFRESH_TOKENS comma-separated initial refresh tokens (none).
 * Prints one JSON line when listening, one per token request (redacted), exits on SIGTERM/SIGINT.
 */
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { DemoTokenServer } from './token-server.js';

type Env = Record<string, string | undefined>;

/** Integer env var within [min, max]; a typo must stop the demo, not silently default. */
export function envInt(env: Env, name: string, fallback: number, min: number, max: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max) throw new Error(`${name} must be an integer ${min}-${max}, got "${raw}"`);
  return n;
}

export async function startTokenServer(env: Env, log: (line: string) => void): Promise<DemoTokenServer> {
  const format = env.TOKEN_FORMAT || 'opaque';
  if (format !== 'opaque' && format !== 'jwt') throw new Error(`TOKEN_FORMAT must be opaque or jwt, got "${format}"`);
  const clientId = env.CLIENT_ID || 'demo-client';
  const server = new DemoTokenServer({
    host: env.HOST || '0.0.0.0',
    port: envInt(env, 'PORT', 8080, 0, 65535),
    tokenTtlSeconds: envInt(env, 'TOKEN_TTL', 300, 0, 31_536_000),
    tokenFormat: format,
    clients: { [clientId]: { secret: env.CLIENT_SECRET || 'demo-secret' } },
    refreshTokens: (env.REFRESH_TOKENS ?? '').split(',').map((t) => t.trim()).filter(Boolean),
    // The record is already redacted: no secret, assertion or token value reaches the log.
    onRequest: (r) => log(JSON.stringify({ msg: 'token request', ...r, at: new Date(r.at).toISOString() })),
  });
  const url = await server.start();
  log(JSON.stringify({ msg: 'DEMO token server listening (not for production)', url, tokenUrl: server.tokenUrl, clientId, tokenFormat: format }));
  return server;
}

export function isMain(moduleUrl: string): boolean {
  const argv1 = process.argv[1];
  if (argv1 === undefined) return false;
  try {
    return realpathSync(argv1) === realpathSync(fileURLToPath(moduleUrl));
  } catch {
    return false;
  }
}

/** Stops on SIGTERM/SIGINT; a watchdog forces exit if some handle lingers. */
export function stopOnSignals(stop: () => Promise<void>, log: (line: string) => void): void {
  const onSignal = (signal: string): void => {
    setTimeout(() => process.exit(1), 5000).unref();
    stop().then(
      () => {
        log(JSON.stringify({ msg: 'stopped', signal }));
        process.exitCode = 0;
      },
      () => process.exit(1),
    );
  };
  process.once('SIGTERM', onSignal);
  process.once('SIGINT', onSignal);
}

if (isMain(import.meta.url)) {
  const log = (line: string): void => void process.stdout.write(line + '\n');
  startTokenServer(process.env, log).then(
    (server) => stopOnSignals(() => server.stop(), log),
    (err: unknown) => {
      process.stderr.write(JSON.stringify({ msg: 'DEMO token server failed to start', error: String((err as Error).message ?? err) }) + '\n');
      process.exit(2);
    },
  );
}
