#!/usr/bin/env node
// tokengate serve | check-config | token — the operator's entry points.
import { readFileSync } from 'node:fs';
import { decodeJwt, decodeProtectedHeader } from 'jose';
import { configProblems, startTokengate } from './app.js';
import { budgetDemand, formatRate, infeasibleBudgets } from './config/budget-demand.js';
import { formatProblems } from './config/errors.js';
import { configJsonSchema } from './config/json-schema.js';
import { loadConfigFile } from './config/load.js';
import { sourceLinks } from './config/schema.js';
import type { Config, ProviderConfig } from './config/types.js';
import { createLogger } from './observability/logger.js';
import { redactText } from './observability/redact.js';
import { NEVER_EXPIRES } from './store/store.js';
import { isTokenError } from './tokens/errors.js';
import { TokenManager } from './tokens/manager.js';

const USAGE = `usage:
  tokengate serve --config FILE          run the ext_authz gRPC service
  tokengate check-config --config FILE   validate a config (exit 1 with "path: problem" lines)
  tokengate token PROVIDER --config FILE fetch one token and print a redacted summary
      [--subject-token-file F]           for a per-caller token_exchange provider: exchange the token in F
  tokengate schema                       print the config's JSON Schema (for editors and linters)
  tokengate --version`;

interface Args {
  readonly command: string | undefined;
  readonly positional: string[];
  readonly config: string | undefined;
  readonly subjectTokenFile: string | undefined;
}

function parseArgs(argv: readonly string[]): Args {
  const positional: string[] = [];
  let config: string | undefined;
  let subjectTokenFile: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--config' || a === '-c') config = argv[++i];
    else if (a === '--subject-token-file') subjectTokenFile = argv[++i];
    else if (a.startsWith('--subject-token-file=')) subjectTokenFile = a.slice('--subject-token-file='.length);
    else if (a.startsWith('--config=')) config = a.slice('--config='.length);
    else positional.push(a);
  }
  return { command: positional.shift(), positional, config, subjectTokenFile };
}

function loadOrExit(file: string | undefined): Config {
  if (!file) {
    process.stderr.write(`--config FILE is required\n${USAGE}\n`);
    process.exit(2);
  }
  try {
    return loadConfigFile(file);
  } catch (err) {
    const problems = configProblems(err);
    if (problems) {
      process.stderr.write(`${formatProblems(problems)}\n`);
      process.exit(1);
    }
    throw err;
  }
}

function printWarnings(config: Config): void {
  for (const w of config.warnings) process.stderr.write(`warning: ${w.path}: ${w.problem}\n`);
}

async function checkConfig(file: string | undefined): Promise<number> {
  const config = loadOrExit(file);
  printWarnings(config);
  try {
    // Builds every source (keys parsed, files read) without fetching anything.
    await new TokenManager(config.providers.values()).close(0);
  } catch (err) {
    const problems = configProblems(err);
    if (problems) {
      process.stderr.write(`${formatProblems(problems)}\n`);
      return 1;
    }
    throw err;
  }
  const demands = budgetDemand(config);
  for (const d of demands) {
    process.stdout.write(`token endpoint ${d.origin}: ${d.providers} provider(s), steady-state demand ${formatRate(d.demand)}, budget ${formatRate(d.maxRate)}${d.configured ? '' : ' (default)'}\n`);
  }
  const infeasible = infeasibleBudgets(demands);
  if (infeasible.length) {
    process.stderr.write(`${formatProblems(infeasible)}\n`);
    return 1;
  }
  process.stdout.write(`config ok: ${config.providers.size} provider(s), ${config.routes.length} route(s), store ${config.store.type}\n`);
  return 0;
}

/** The JWT header and claims of a token, for a summary (never the token itself), or null. */
function jwtSummary(token: string): unknown {
  try {
    return { header: decodeProtectedHeader(token), claims: decodeJwt(token) };
  } catch {
    return null;
  }
}

/** A manager for the provider and its chain; undefined (problems printed) when a source cannot be built. */
function managerFor(config: Config, provider: string): TokenManager | undefined {
  try {
    return new TokenManager(withLinks(config, provider));
  } catch (err) {
    const problems = configProblems(err);
    if (!problems) throw err;
    process.stderr.write(`${formatProblems(problems)}\n`);
    return undefined;
  }
}

/** `token PROVIDER --subject-token-file F` for a per-caller token_exchange provider: one exchange. */
async function exchangeOnce(config: Config, provider: string, subjectFile: string | undefined): Promise<number> {
  const pc = config.providers.get(provider)!;
  if (!subjectFile) {
    process.stderr.write(`${provider} exchanges each caller's token: give one with --subject-token-file F\n`);
    return 2;
  }
  let subject: string;
  try {
    subject = readFileSync(subjectFile, 'utf8').trim();
  } catch (err) {
    process.stderr.write(`cannot read ${subjectFile} (${(err as NodeJS.ErrnoException).code ?? 'error'})\n`);
    return 1;
  }
  const manager = managerFor(config, provider);
  if (manager === undefined) return 1;
  try {
    const p = manager.perCaller(provider)!;
    const scheme = pc.source.type === 'token_exchange' ? pc.source.subjectToken.request?.scheme ?? '' : '';
    const got = await p.acquire(scheme ? `${scheme} ${subject}` : subject, { waitMs: pc.resilience.timeout * (pc.resilience.retries + 1) + 30_000 });
    switch (got.kind) {
      case 'token': {
        const e = got.entry;
        const scope = got.record?.scope;
        process.stdout.write(`${JSON.stringify({
          provider, type: 'token_exchange', token_type: e.tokenType, token_id: e.tokenId,
          expires_in: `${Math.round((e.expiresAt - Date.now()) / 1000)}s`, subject: e.subject ?? null,
          ...(scope ? { scope } : {}), jwt: jwtSummary(e.accessToken),
        }, null, 2)}\n`);
        return 0;
      }
      case 'invalid_subject':
        process.stderr.write(`invalid_subject_token: ${got.reason} (no exchange was attempted)\n`);
        return 1;
      case 'rejected':
        process.stderr.write(`exchange_rejected: the IdP refused the subject (${got.idpError})\n`);
        return 1;
      case 'unavailable': {
        const e = got.error.toJSON();
        process.stderr.write(`token exchange failed: ${got.error.code}: ${redactText(got.error.message)}\n`);
        if (e.error) process.stderr.write(`IdP error: ${String(e.error)}${e.error_description ? ` (${String(e.error_description)})` : ''}\n`);
        return 1;
      }
    }
  } finally {
    await manager.close(0);
  }
}

/** The provider and every provider its chain builds on (via, subjectToken.provider, …). */
function withLinks(config: Config, name: string): ProviderConfig[] {
  const out = new Map<string, ProviderConfig>();
  const add = (n: string) => {
    const p = config.providers.get(n);
    if (!p || out.has(n)) return;
    out.set(n, p);
    for (const l of sourceLinks(p.source)) add(l.provider);
  };
  add(name);
  return [...out.values()];
}

async function token(provider: string | undefined, file: string | undefined, subjectFile?: string): Promise<number> {
  if (!provider) {
    process.stderr.write(`token needs a PROVIDER\n${USAGE}\n`);
    return 2;
  }
  const config = loadOrExit(file);
  const pc = config.providers.get(provider);
  if (!pc) {
    process.stderr.write(`no provider named ${JSON.stringify(provider)} (configured: ${[...config.providers.keys()].join(', ') || 'none'})\n`);
    return 1;
  }
  if (pc.cache) return exchangeOnce(config, provider, subjectFile);
  const manager = managerFor(config, provider);
  if (manager === undefined) return 1;
  try {
    await manager.refresh(provider);
    // The documented view of the slot: the summary needs the record (scope, refresh token present).
    const entry = manager.handle(provider)?.peek();
    if (!entry) throw new Error(`the refresh of ${provider} succeeded but left no token`);
    const r = entry.record;
    const summary: Record<string, unknown> = {
      provider,
      type: pc.source.type,
      token_type: r.tokenType,
      token_id: entry.tokenId,
      expires_in: r.expiresAt >= NEVER_EXPIRES ? 'never' : `${Math.round((r.expiresAt - Date.now()) / 1000)}s`,
      ...(r.scope ? { scope: r.scope } : {}),
      ...(r.refreshToken ? { refresh_token: 'present (not shown)' } : {}),
    };
    try {
      summary.jwt = { header: decodeProtectedHeader(r.accessToken), claims: decodeJwt(r.accessToken) };
    } catch {
      summary.jwt = null;
    }
    process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
    return 0;
  } catch (err) {
    if (isTokenError(err)) {
      const e = err.toJSON();
      process.stderr.write(`token fetch failed: ${err.code}: ${redactText(err.message)}\n`);
      if (e.error) process.stderr.write(`IdP error: ${String(e.error)}${e.error_description ? ` (${String(e.error_description)})` : ''}\n`);
      return 1;
    }
    throw err;
  } finally {
    await manager.close(0);
  }
}

async function serve(file: string | undefined): Promise<void> {
  const config = loadOrExit(file);
  printWarnings(config);
  const logger = createLogger({ level: config.log.level });
  let app;
  try {
    app = await startTokengate(config, { logger, configPath: file! });
  } catch (err) {
    const problems = configProblems(err);
    if (problems) {
      process.stderr.write(`${formatProblems(problems)}\n`);
      process.exit(1);
    }
    logger.error('tokengate could not start', { error: err });
    process.exit(1);
  }
  logger.info('tokengate listening', { grpc: app.grpcAddress, admin: app.adminAddress ?? 'off', providers: [...config.providers.keys()], store: config.store.type });
  void app.ready.then(() => logger.info('ready', { health: 'SERVING' }));
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) {
      // A second signal: the operator does not want to wait for the drain.
      logger.warn('second signal: exiting without waiting for the drain', { signal });
      process.exit(1);
    }
    stopping = true;
    logger.info('signal received', { signal });
    const deadline = app.currentConfig.shutdown.deadline;
    // Backstop: whatever happens, the process is gone shortly after the deadline.
    setTimeout(() => process.exit(1), deadline + 2_000).unref();
    app.close(deadline).then(() => {
      // Exit by letting the event loop run dry: a timer or socket that outlives close() is a
      // leak, said out loud here rather than hidden by process.exit().
      process.exitCode = 0;
      setTimeout(() => {
        logger.warn('shutdown finished but something keeps the process alive; exiting anyway', { resources: process.getActiveResourcesInfo() });
        process.exit(0);
      }, 1_000).unref();
    }, (err: unknown) => {
      logger.error('shutdown failed', { error: err });
      process.exit(1);
    });
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGHUP', () => {
    if (!stopping) void app.reload();
  });
}

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

async function main(argv: readonly string[]): Promise<number | undefined> {
  const args = parseArgs(argv);
  switch (args.command) {
    case 'serve':
      await serve(args.config);
      return undefined;
    case 'check-config':
      return checkConfig(args.config);
    case 'token':
      return token(args.positional[0], args.config, args.subjectTokenFile);
    case 'schema':
      process.stdout.write(`${JSON.stringify(configJsonSchema(), null, 2)}\n`);
      return 0;
    case '--version':
    case 'version':
      process.stdout.write(`${version()}\n`);
      return 0;
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(`${USAGE}\n`);
      return args.command === undefined ? 2 : 0;
    default:
      process.stderr.write(`unknown command ${JSON.stringify(args.command)}\n${USAGE}\n`);
      return 2;
  }
}

process.on('unhandledRejection', (err) => {
  // Logged, never fatal: one bad promise must not take every route down.
  process.stderr.write(`${JSON.stringify({ level: 'error', msg: 'unhandled rejection', error: redactText(String(err)) })}\n`);
});

main(process.argv.slice(2)).then((code) => {
  if (code !== undefined) process.exitCode = code;
}, (err: unknown) => {
  process.stderr.write(`tokengate: ${redactText(err instanceof Error ? err.message : String(err))}\n`);
  process.exitCode = 1;
});
