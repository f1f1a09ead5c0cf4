// envoy.service.accesslog.v3.AccessLogService/StreamAccessLogs: Envoy streams its HTTP access
// log here, and an entry showing that the upstream rejected the token tokengate injected purges
// that token (once) and starts a refresh. The stream is lossy by design: whatever goes wrong
// with it is logged and the call is ended, never the process.
import type * as grpc from '@grpc/grpc-js';
import type { Config } from '../config/types.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import type { TokenManager } from '../tokens/manager.js';
import { accessLogServiceDefinition } from './protos.js';

/** Where Envoy files the CheckResponse's dynamic_metadata. */
export const EXT_AUTHZ_NAMESPACE = 'envoy.filters.http.ext_authz';

/** A decoded google.protobuf.Value: proto-loader's bundled Struct types are camelCase, even with keepCase. */
interface StructValueView {
  readonly stringValue?: string;
}

/** The part of a decoded HTTPAccessLogEntry this service reads. Every field may be absent. */
export interface HttpLogEntryView {
  readonly common_properties?: {
    readonly metadata?: {
      readonly filter_metadata?: Readonly<Record<string, { readonly fields?: Readonly<Record<string, StructValueView>> } | undefined>>;
    };
  };
  readonly response?: {
    readonly response_code?: { readonly value?: number };
    readonly response_code_details?: string;
  };
}

/** A decoded StreamAccessLogsMessage: `identifier` only in a stream's first message. */
export interface StreamAccessLogsMessageView {
  readonly identifier?: { readonly node?: { readonly id?: string; readonly cluster?: string }; readonly log_name?: string };
  readonly http_logs?: { readonly log_entry?: readonly HttpLogEntryView[] };
}

export interface AccessLogServiceDeps {
  readonly manager: TokenManager;
  readonly logger: Logger;
  readonly metrics: Metrics;
}

type Call = grpc.ServerReadableStream<StreamAccessLogsMessageView, Record<string, never>>;
type Callback = grpc.sendUnaryData<Record<string, never>>;

export class AccessLogService {
  /** Every provider's purgeOnUpstreamStatus together: the cheap first filter. */
  private purgeCodes: ReadonlySet<number> = new Set();
  /** Ends each open stream (shutdown). */
  private readonly open = new Set<() => void>();

  constructor(private readonly deps: AccessLogServiceDeps, config: Config) {
    this.configure(config);
  }

  get serviceDefinition(): grpc.ServiceDefinition {
    return accessLogServiceDefinition();
  }

  /** Applies a (re)loaded config. */
  configure(config: Config): void {
    this.purgeCodes = new Set([...config.providers.values()].flatMap((p) => p.purgeOnUpstreamStatus));
  }

  /** The grpc-js handler (client streaming). Always ends the call, whatever the stream does. */
  readonly streamAccessLogs = (call: Call, callback: Callback): void => {
    const { logger } = this.deps;
    let finished = false;
    let envoy: string | undefined;
    const finish = (): void => {
      if (finished) return;
      finished = true;
      this.open.delete(finish);
      try {
        callback(null, {});
      } catch { /* the call is already gone */ }
    };
    this.open.add(finish);
    call.on('data', (msg: StreamAccessLogsMessageView) => {
      if (envoy === undefined && msg.identifier) {
        envoy = msg.identifier.node?.id ?? '';
        logger.debug('access-log stream opened', { envoy: envoy.slice(0, 128), log_name: msg.identifier.log_name?.slice(0, 128) });
      }
      try {
        this.onMessage(msg);
      } catch (err) {
        logger.warn('access-log message skipped', { error: err });
      }
    });
    call.on('end', finish);
    call.on('cancelled', () => {
      logger.debug('access-log stream cancelled by the client', { envoy });
      finish();
    });
    call.on('error', (err: Error) => {
      logger.warn('access-log stream broke; Envoy reconnects on its own', { envoy, error: err });
      finish();
    });
  };

  /** Ends every open stream with OK: Envoy reconnects (to another replica, during shutdown). */
  close(): void {
    for (const finish of [...this.open]) finish();
  }

  private onMessage(msg: StreamAccessLogsMessageView): void {
    const entries = msg.http_logs?.log_entry;
    if (entries === undefined) return; // tcp_logs, or an empty batch
    for (const e of entries) {
      // The status first: nearly every entry stops here, before any metadata is looked at.
      const code = e.response?.response_code?.value;
      if (code === undefined || !this.purgeCodes.has(code)) continue;
      if (e.response!.response_code_details !== 'via_upstream') continue; // Envoy's own local reply
      const fields = e.common_properties?.metadata?.filter_metadata?.[EXT_AUTHZ_NAMESPACE]?.fields;
      const provider = fields?.provider?.stringValue;
      const tokenId = fields?.token_id?.stringValue;
      if (!provider || !tokenId) continue; // not a request tokengate put a credential on
      this.rejected(provider, tokenId, code);
    }
  }

  private rejected(name: string, tokenId: string, status: number): void {
    const { manager, metrics, logger } = this.deps;
    const provider = manager.handle(name);
    if (provider === undefined) {
      this.callerRejected(name, tokenId, status);
      return;
    }
    // Unknown names and statuses outside the provider's list are ignored: labels stay bounded.
    if (!provider || !provider.config.purgeOnUpstreamStatus.includes(status)) return;
    metrics.upstreamRejections.inc({ provider: name, status: String(status) });
    // Only the current token is dropped, once: later entries for it (Envoy batches, several
    // in-flight requests) find a different or no token and do nothing.
    if (provider.peek()?.tokenId !== tokenId) return;
    if (manager.invalidate(name, tokenId, 'access_log', status)) {
      logger.info('upstream rejected the current token; refreshing', { provider: name, token_id: tokenId, status });
    }
  }

  /**
   * A per-caller provider: the token id names one caller's exchanged token; that caller alone is
   * evicted, in every replica with cache.shared, once per token (the provider keeps the count
   * and writes the audit line).
   */
  private callerRejected(name: string, tokenId: string, status: number): void {
    const { manager, metrics } = this.deps;
    const provider = manager.perCaller(name);
    if (!provider || !provider.config.purgeOnUpstreamStatus.includes(status)) return;
    metrics.upstreamRejections.inc({ provider: name, status: String(status) });
    provider.refusedByUpstream(tokenId, status);
  }
}
