// Wires one tokengate process: store, token manager, gRPC services, admin HTTP, reload and
// shutdown. `startTokengate` is what the CLI, the tests and the benchmarks start.
import * as grpc from '@grpc/grpc-js';
import { systemClock, type Clock } from './clock.js';
import { ConfigError, formatProblems } from './config/errors.js';
import { loadConfigFile } from './config/load.js';
import { DEFAULT_LISTEN_LIMITS } from './config/schema.js';
import type { Config, ConfigProblem, ListenLimits } from './config/types.js';
import { audit } from './observability/audit.js';
import { createLogger, type Logger } from './observability/logger.js';
import { packageVersion } from './observability/build-info.js';
import { Metrics } from './observability/metrics.js';
import { startTracing, type TracingHandle } from './observability/tracing-sdk.js';
import { AccessLogService } from './server/accesslog-service.js';
import { AdminApi, type ReloadOutcome } from './server/admin-api.js';
import { AdminGrpcService } from './server/admin-grpc.js';
import { AdminHttpServer } from './server/admin-http.js';
import { AuthzService } from './server/authz-service.js';
import { Health } from './server/health.js';
import { createGrpcServer } from './server/grpc-server.js';
import { capHeapGrowth } from './server/heap-growth.js';
import { stopPretenuring } from './server/pretenuring.js';
import type { StreamDispatch } from './server/h2/stream-dispatch.js';
import { bind, serverCredentials, type GrpcListener } from './server/listen.js';
import { createStore } from './store/create-store.js';
import type { TokenStore } from './store/store.js';
import type { HttpTransport } from './tokens/http/transport.js';
import { SourceConfigError } from './tokens/errors.js';
import { TokenManager } from './tokens/manager.js';

export interface StartOptions {
  readonly clock?: Clock;
  readonly logger?: Logger;
  /** Token endpoint transport (tests). */
  readonly transport?: HttpTransport;
  /** Re-read on SIGHUP / POST /v1/reload. */
  readonly configPath?: string;
  readonly env?: Readonly<Record<string, string | undefined>>;
  readonly random?: () => number;
  /** Use this store instead of the one the config names (tests). */
  readonly store?: TokenStore;
}

/** grpc-js server options: bounded messages, and connections that age out so new replicas get traffic. */
export function grpcServerOptions(limits: ListenLimits): grpc.ServerOptions {
  return {
    'grpc.max_receive_message_length': limits.maxMessageBytes,
    'grpc.max_send_message_length': 1024 * 1024,
    'grpc.max_connection_age_ms': limits.maxConnectionAgeMs,
    'grpc.max_connection_age_grace_ms': 30_000,
    'grpc.max_connection_idle_ms': limits.maxConnectionIdleMs,
    'grpc.keepalive_time_ms': limits.keepaliveTimeMs,
    'grpc.keepalive_timeout_ms': limits.keepaliveTimeoutMs,
    'grpc.max_concurrent_streams': limits.maxConcurrentStreams,
    // Without it grpc-js disables Node's per-session memory bound (docs/field-notes.md: clients that never read
    // their responses would grow the process without limit).
    'grpc-node.max_session_memory': limits.maxSessionMemoryMb,
  };
}

/** The options with the default limits (benchmarks and tests start servers from them). */
export const GRPC_SERVER_OPTIONS: grpc.ServerOptions = grpcServerOptions(DEFAULT_LISTEN_LIMITS);

/** One running tokengate: what startTokengate returns, and what reload and shutdown act on. */
export class Tokengate {
  readonly api: AdminApi;
  /** Bound addresses (real ports when 0 was asked for). */
  grpcAddress = '';
  grpcListener: GrpcListener | undefined;
  adminAddress: string | undefined;
  admin: AdminHttpServer | undefined;
  accessLog: AccessLogService | undefined;
  /** With `listen.checkServer: http2`: the stream dispatch serving Check (tests read `taken`). */
  checkDispatch: StreamDispatch | undefined;
  /** Resolves once every provider has had its first fetch attempt and health is SERVING. */
  ready: Promise<void> = Promise.resolve();
  private stopping = false;
  private closed: Promise<void> | undefined;
  private reloading: Promise<ReloadOutcome> | undefined;
  /** Set when the OTEL_* environment turned tracing on; flushed at shutdown. */
  tracing: TracingHandle | undefined;

  constructor(
    private config: Config,
    readonly manager: TokenManager,
    readonly authz: AuthzService,
    readonly health: Health,
    private readonly server: grpc.Server,
    readonly logger: Logger,
    readonly metrics: Metrics,
    private readonly opts: StartOptions,
  ) {
    this.api = new AdminApi({ manager, adminToken: () => this.config.admin.token, reload: () => this.reload() });
  }

  get currentConfig(): Config {
    return this.config;
  }

  /** Warm-up finished: serve, unless shutdown already began. */
  markWarm(): void {
    if (!this.stopping) this.health.set(true);
  }

  get isReady(): boolean {
    return this.health.isServing && !this.stopping;
  }

  /** Re-reads the config file; a valid one is swapped in, an invalid one leaves everything as is. */
  reload(): Promise<ReloadOutcome> {
    this.reloading ??= this.doReload().finally(() => (this.reloading = undefined));
    return this.reloading;
  }

  private async doReload(): Promise<ReloadOutcome> {
    if (!this.opts.configPath) return { ok: false, problems: ['(file): tokengate was started without a config file'] };
    // A reload would warm up new providers after shutdown stopped every refresh.
    if (this.stopping) return { ok: false, problems: ['(reload): tokengate is shutting down'] };
    let next: Config;
    try {
      next = loadConfigFile(this.opts.configPath, this.opts.env);
    } catch (err) {
      return this.refused(err);
    }
    const unsupported = ['listen', 'store'].filter((k) => JSON.stringify(next[k as 'listen']) !== JSON.stringify(this.config[k as 'listen']));
    try {
      const result = await this.manager.reload(next.providers.values());
      this.manager.configureBudgets(next.tokenEndpoints);
      this.config = next;
      this.authz.configure(next);
      this.accessLog?.configure(next);
      this.logger.setLevel(next.log.level);
      this.logger.info('config reloaded', { ...result, ...(unsupported.length ? { restartNeededFor: unsupported } : {}) });
      audit(this.logger, 'config.reload', { ok: true, added: result.added, changed: result.changed, removed: result.removed });
      return { ok: true, ...result };
    } catch (err) {
      return this.refused(err);
    }
  }

  /** A config that cannot be used (file, shape or sources): the running one stays. */
  private refused(err: unknown): ReloadOutcome {
    const found = configProblems(err);
    const problems = found ? formatProblems(found).split('\n') : [String(err)];
    this.logger.error('config reload refused; the running config stays', { problems });
    audit(this.logger, 'config.reload', { ok: false, problems: problems.length });
    return { ok: false, problems };
  }

  /**
   * Graceful stop within a deadline: readiness drops first, no new refresh starts, waiting
   * Checks finish, listeners close, in-flight refreshes complete, then the store closes.
   */
  close(deadlineMs = this.config.shutdown.deadline): Promise<void> {
    this.closed ??= this.doClose(deadlineMs);
    return this.closed;
  }

  private async doClose(deadlineMs: number): Promise<void> {
    const started = Date.now();
    const left = () => Math.max(0, deadlineMs - (Date.now() - started));
    this.stopping = true;
    this.health.set(false);
    this.manager.quiesce();
    this.logger.info('shutting down', { deadlineMs });
    // Readiness is already down; Envoy's health checks need a few intervals to notice, and
    // Checks that arrive meanwhile are still answered normally.
    const drainDelay = Math.min(this.config.shutdown.drainDelay, left());
    if (drainDelay > 0) await new Promise((resolve) => setTimeout(resolve, drainDelay));
    await withDeadline(this.authz.idle(), left() / 2);
    // No new connections from here on; the ones open get GOAWAY from tryShutdown.
    void this.grpcListener?.close();
    const drained = new Promise<void>((resolve) => this.server.tryShutdown(() => resolve()));
    // Envoy keeps its access-log stream open for good: end it, or tryShutdown waits out the deadline.
    this.accessLog?.close();
    await withDeadline(drained, left() / 2);
    this.server.forceShutdown();
    await this.manager.close(Math.max(100, left()));
    await this.admin?.close().catch(() => undefined);
    this.metrics.close();
    // The last spans (the shutdown's own refreshes) leave before the process does.
    await withDeadline(this.tracing?.shutdown().catch(() => undefined) ?? Promise.resolve(), Math.max(500, left()));
    this.logger.info('stopped', { tookMs: Date.now() - started });
  }
}

function withDeadline(p: Promise<void>, ms: number): Promise<void> {
  let t: NodeJS.Timeout | undefined;
  return Promise.race([p, new Promise<void>((resolve) => { t = setTimeout(resolve, ms); })]).finally(() => clearTimeout(t));
}

/**
 * The `path: problem` pairs of a config that cannot be used: the file's own (ConfigError) or a
 * source that cannot work as configured (the token layer's SourceConfigError).
 */
export function configProblems(err: unknown): readonly ConfigProblem[] | undefined {
  return err instanceof ConfigError || err instanceof SourceConfigError ? err.problems : undefined;
}

export async function startTokengate(config: Config, opts: StartOptions = {}): Promise<Tokengate> {
  // Before the warm-up: its mark-compacts set how far the heap grows under load (heap-growth.ts).
  capHeapGrowth();
  // Before any traffic: a site V8 has tenured stays tenured (pretenuring.ts).
  stopPretenuring();
  const clock = opts.clock ?? systemClock;
  const logger = opts.logger ?? createLogger({ level: config.log.level });
  const metrics = new Metrics();
  // Global to the process like the SDK's own provider; the SDK reads process.env itself.
  const tracing = await startTracing(process.env, logger);
  const store = opts.store ?? (await createStore(config.store, { clock, logger, metrics }));
  metrics.startRuntime({ version: packageVersion() });
  const manager = new TokenManager(config.providers.values(), {
    clock, store, logger, metrics,
    ...(opts.transport ? { transport: opts.transport } : {}),
    ...(opts.random ? { random: opts.random } : {}),
    ...(config.store.redis?.keyPrefix ? { keyPrefix: config.store.redis.keyPrefix } : {}),
    ...(config.tokenEndpoints ? { tokenEndpoints: config.tokenEndpoints } : {}),
    ...(config.store.encryptionKey ? { subjectKeySecret: config.store.encryptionKey } : {}),
  });
  const authz = new AuthzService({ manager, clock, logger, metrics }, config);
  const health = new Health();
  const { server, dispatch, afterBind } = createGrpcServer(grpcServerOptions(config.listen.limits), config.listen.checkServer, authz, config.listen.limits.maxMessageBytes);
  const accessLog = new AccessLogService({ manager, logger, metrics }, config);
  server.addService(accessLog.serviceDefinition, { StreamAccessLogs: accessLog.streamAccessLogs });
  health.addTo(server);
  const app = new Tokengate(config, manager, authz, health, server, logger, metrics, opts);
  app.accessLog = accessLog;
  app.tracing = tracing;
  app.checkDispatch = dispatch;
  const adminGrpc = new AdminGrpcService(app.api, logger);
  server.addService(adminGrpc.serviceDefinition, adminGrpc.handlers);
  try {
    app.grpcListener = await bind(server, config.listen.grpc, serverCredentials(config.listen.tls), config.listen.limits.maxConnections);
    app.grpcAddress = app.grpcListener.address;
    afterBind();
    if (config.listen.admin) {
      app.admin = new AdminHttpServer({ api: app.api, metrics, logger, live: () => true, ready: () => app.isReady });
      app.adminAddress = await app.admin.listen(config.listen.admin);
    }
  } catch (err) {
    await app.grpcListener?.close();
    server.forceShutdown();
    metrics.close();
    await manager.close(0);
    throw err;
  }
  app.ready = manager.warmUp().then(() => {
    app.markWarm();
    logger.info('warm-up done', { providers: manager.stats().map((s) => ({ name: s.name, state: s.state })) });
  });
  return app;
}
