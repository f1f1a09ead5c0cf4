// Redis-backed suites need a real Redis. On a laptop without one they skip, loudly; in CI
// (TOKENGATE_REQUIRE_REDIS=1, set by .ci/run) a missing Redis is a failure, never a skip.
import net from 'node:net';

export const REDIS_URL = process.env.TOKENGATE_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379/0';

function reachable(url: string): Promise<boolean> {
  const u = new URL(url);
  return new Promise((resolve) => {
    const s = net.connect({ host: u.hostname, port: Number(u.port || 6379) });
    const done = (ok: boolean) => {
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(500, () => done(false));
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
  });
}

/** true: run the suite. false: skip it (after a loud warning). Throws in CI when Redis is missing. */
export async function redisAvailable(url = REDIS_URL): Promise<boolean> {
  if (await reachable(url)) return true;
  const msg = `Redis is not reachable at ${url}`;
  if (process.env.TOKENGATE_REQUIRE_REDIS === '1' || process.env.CI === 'true') {
    throw new Error(`${msg}; this run requires it (TOKENGATE_REQUIRE_REDIS / CI)`);
  }
  process.stderr.write(`\n*** SKIPPING Redis-backed tests: ${msg} ***\n\n`);
  return false;
}
