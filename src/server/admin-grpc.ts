// tokengate.admin.v1.TokenAdmin on the gRPC listener: the control-plane face of the same
// AdminApi the HTTP admin endpoints use. Every call needs `authorization: Bearer <admin.token>`.
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import type { Logger } from '../observability/logger.js';
import type { PerCallerStatus } from '../tokens/per-caller/per-caller-provider.js';
import type { ProviderStatus } from '../tokens/token-handle.js';
import { AdminApi, AdminError, type AdminErrorCode } from './admin-api.js';
import { OWN_PROTO_DIR } from './protos.js';

export const ADMIN_PROTO = 'tokengate/admin/v1/admin.proto';
export const ADMIN_SERVICE_NAME = 'tokengate.admin.v1.TokenAdmin';

/** `defaults: true`: a control plane reading an answer sees every field, empty or not. */
const ADMIN_LOADER_OPTIONS: protoLoader.Options = Object.freeze({
  keepCase: true,
  longs: Number,
  enums: String,
  defaults: true,
  oneofs: true,
  includeDirs: [OWN_PROTO_DIR],
});

/** The translation table from admin errors to gRPC status codes. */
const GRPC_STATUS: Readonly<Record<AdminErrorCode, grpc.status>> = {
  unauthenticated: grpc.status.UNAUTHENTICATED,
  disabled: grpc.status.PERMISSION_DENIED,
  not_found: grpc.status.NOT_FOUND,
  invalid: grpc.status.INVALID_ARGUMENT,
  failed: grpc.status.UNAVAILABLE,
};

let cached: grpc.ServiceClientConstructor | undefined;

/** A client constructor for TokenAdmin (tests, control planes written in Node). */
export function tokenAdminClient(): grpc.ServiceClientConstructor {
  if (!cached) {
    const def = protoLoader.loadSync(path.join(OWN_PROTO_DIR, ADMIN_PROTO), ADMIN_LOADER_OPTIONS);
    let node: unknown = grpc.loadPackageDefinition(def);
    for (const part of ADMIN_SERVICE_NAME.split('.')) node = (node as Record<string, unknown>)[part];
    if (typeof node !== 'function') throw new Error(`service ${ADMIN_SERVICE_NAME} not found in ${ADMIN_PROTO}`);
    cached = node as grpc.ServiceClientConstructor;
  }
  return cached;
}

/** tokengate.admin.v1.ProviderStatus, as proto-loader encodes it. */
export interface ProviderStatusMessage {
  name: string;
  state: string;
  expires_in_seconds?: number;
  token_id: string;
  source: string;
  breaker: string;
  last_error: string;
}

/** "<code>: <message> (status N) [error: error_description]" from an error summary. */
export function errorSummary(e: Record<string, unknown> | null | undefined): string {
  if (!e) return '';
  let s = `${String(e.code ?? 'error')}: ${String(e.message ?? '')}`;
  if (e.status !== undefined) s += ` (status ${String(e.status)})`;
  if (e.error !== undefined) s += ` [${String(e.error)}${e.error_description !== undefined ? `: ${String(e.error_description)}` : ''}]`;
  return s;
}

export function toProviderStatusMessage(s: ProviderStatus): ProviderStatusMessage {
  return {
    name: s.name,
    state: s.state,
    ...(s.expiresIn !== null ? { expires_in_seconds: s.expiresIn } : {}),
    token_id: s.tokenId ?? '',
    source: s.source ?? '',
    breaker: s.breaker,
    last_error: errorSummary(s.lastError),
  };
}

/** tokengate.admin.v1.PerCallerStatus, as proto-loader encodes it. */
export interface PerCallerStatusMessage {
  name: string;
  entries: number;
  refused: number;
  approximate_bytes: number;
  hits: number;
  misses: number;
  hit_ratio?: number;
  evictions: number;
  exchanges_in_flight: number;
  breaker: string;
  last_error: string;
}

export function toPerCallerStatusMessage(s: PerCallerStatus): PerCallerStatusMessage {
  return {
    name: s.name, entries: s.entries, refused: s.refused, approximate_bytes: s.approximateBytes,
    hits: s.hits, misses: s.misses, ...(s.hitRatio !== null ? { hit_ratio: s.hitRatio } : {}),
    evictions: s.evictions, exchanges_in_flight: s.exchangesInFlight, breaker: s.breaker, last_error: errorSummary(s.lastError),
  };
}

function toServiceError(err: AdminError): Partial<grpc.StatusObject> {
  const detail = err.details?.cause as Record<string, unknown> | undefined;
  return { code: GRPC_STATUS[err.code], details: detail ? `${err.message}: ${errorSummary(detail)}` : err.message };
}

interface ProviderRequest {
  provider?: string;
}

export class AdminGrpcService {
  constructor(private readonly api: AdminApi, private readonly logger: Logger) {}

  get serviceDefinition(): grpc.ServiceDefinition {
    return tokenAdminClient().service;
  }

  get handlers(): grpc.UntypedServiceImplementation {
    return {
      ListTokens: this.unary(() => {
        const all = this.api.listTokens();
        return { providers: all.providers.map(toProviderStatusMessage), per_caller: (all.perCaller ?? []).map(toPerCallerStatusMessage) };
      }),
      Invalidate: this.unary((req: ProviderRequest) => this.api.invalidate(req.provider ?? '')),
      Refresh: this.unary(async (req: ProviderRequest) => toProviderStatusMessage(await this.api.refresh(req.provider ?? ''))),
    };
  }

  /** Authorizes, runs, and always answers: an async handler that never called back would hang the caller. */
  private unary<Req, Res>(fn: (req: Req) => Res | Promise<Res>): grpc.handleUnaryCall<Req, Res> {
    return (call, callback) => {
      Promise.resolve()
        .then(() => {
          const auth = call.metadata.get('authorization').find((v): v is string => typeof v === 'string');
          this.api.authorize(auth);
          return fn(call.request);
        })
        .then(
          (res) => callback(null, res),
          (err: unknown) => {
            if (err instanceof AdminError) return callback(toServiceError(err));
            this.logger.error('admin gRPC call failed', { method: call.getPath(), error: err });
            callback({ code: grpc.status.INTERNAL, details: 'internal error' });
          },
        )
        .catch(() => undefined); // the callback threw: the call is gone
    };
  }
}
