/**
 * Runnable DEMO echo upstream — NOT FOR PRODUCTION (see echo-upstream.ts).
 *   node dist-demo/echo-upstream-main.js   (npm run build:demo)
 * Env: PORT (8081), HOST (0.0.0.0). Prints one JSON line when listening, exits on SIGTERM/SIGINT.
 */
import { EchoUpstream } from './echo-upstream.js';
import { envInt, isMain, stopOnSignals } from './token-server-main.js';

type Env = Record<string, string | undefined>;

export async function startEchoUpstream(env: Env, log: (line: string) => void): Promise<EchoUpstream> {
  const echo = new EchoUpstream({ host: env.HOST || '0.0.0.0', port: envInt(env, 'PORT', 8081, 0, 65535) });
  const url = await echo.start();
  log(JSON.stringify({ msg: 'DEMO echo upstream listening (not for production)', url }));
  return echo;
}

if (isMain(import.meta.url)) {
  const log = (line: string): void => void process.stdout.write(line + '\n');
  startEchoUpstream(process.env, log).then(
    (echo) => stopOnSignals(() => echo.stop(), log),
    (err: unknown) => {
      process.stderr.write(JSON.stringify({ msg: 'DEMO echo upstream failed to start', error: String((err as Error).message ?? err) }) + '\n');
      process.exit(2);
    },
  );
}
