// envoy.service.auth.v3.Authorization/Check: a thin adapter over the TokenManager.
// The cache-hit path is synchronous: one map lookup, one clock read, an identity check and a
// pre-serialised answer handed to grpc-js. Everything else is the slow path.
import type * as grpc from '@grpc/grpc-js';
import type { Clock } from '../clock.js';
import type { Config, ProviderConfig } from '../config/types.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import type { CounterCell } from '../observability/prometheus.js';
import { spanAttributes, traceCheck, tracingEnabled } from '../observability/tracing.js';
import { RouteTable, type HttpRequestView } from '../routing/route-table.js';
import type { CachedToken, TokenServeSource } from '../tokens/cached-token.js';
import { TokenError } from '../tokens/errors.js';
import type { TokenManager } from '../tokens/manager.js';
import type { TokenHandle } from '../tokens/token-handle.js';
import {
  deniedInternal, deniedNoRoute, deniedTokenUnavailable, deniedUnknownProvider, okWithoutToken, okWithToken,
  type CheckResponseObject,
} from './check-response.js';
import { CheckRequestReader, type CheckRequestFields, type CheckRequestRead } from './check-request-reader.js';
import { authorizationServiceDefinition } from './protos.js';
import { answerMessage, framedAnswer, type FramedAnswer } from './framed-answer.js';
import { CallerLane } from './caller-lane.js';

/**
 * On a route whose header tokengate injects, a client's own value of that header never reaches
 * the upstream, even when there is no credential to inject (`onTokenUnavailable: allow`).
 */
function withoutClientCredential(res: CheckResponseObject, config: ProviderConfig): CheckResponseObject {
  const remove = [...new Set([config.inject.header, ...config.inject.removeHeaders])];
  return { ...res, ok_response: { ...(res.ok_response as object | undefined), headers_to_remove: remove } };
}

/** The part of a fully decoded CheckRequest the request log reads. Every field may be absent. */
interface DecodedCheckRequest {
  readonly attributes?: {
    readonly context_extensions?: Readonly<Record<string, string>>;
    readonly request?: { readonly http?: HttpRequestView };
  };
}

type Answer = CheckResponseObject | FramedAnswer;

/** What a request log line reads back from an answer (decoded with Envoy's protos). */
interface AnswerView {
  readonly status?: { readonly code?: number; readonly message?: string };
  readonly denied_response?: { readonly status?: { readonly code?: string | number } };
  readonly dynamic_metadata?: { readonly fields?: Readonly<Record<string, { readonly stringValue?: string }>> };
}
type Callback = (err: grpc.ServiceError | null, value?: Answer) => void;
/** What a Check reads of its call: the request (grpc-js's call, or the node:http2 path's). */
export type CheckCall = Pick<grpc.ServerUnaryCall<CheckRequestFields, Answer>, 'request'>;

/**
 * Per provider that has seen a Check: metric cells resolved once and the encoded answers for
 * the current token. Created on a provider's first Check, so ten thousand configured but idle
 * providers cost nothing here.
 */
class Lane {
  private readonly ok: Partial<Record<TokenServeSource, CounterCell>> = {};
  private entry: CachedToken | undefined;
  private answers: Partial<Record<TokenServeSource, FramedAnswer>> = {};

  constructor(readonly provider: TokenHandle, readonly config: ProviderConfig, private readonly metrics: Metrics, private readonly encode: (v: CheckResponseObject) => Buffer) {}

  countUnavailable(): void {
    this.metrics.checks.cell(this.provider.name, 'denied', 'none').value++;
  }

  countAllowedWithout(): void {
    this.metrics.checks.cell(this.provider.name, 'allowed_without_token', 'none').value++;
  }

  /** The encoded OK answer for this token and source: built once per token, then reused. */
  answer(entry: CachedToken, source: TokenServeSource): FramedAnswer {
    if (entry !== this.entry) {
      this.entry = entry;
      this.answers = {};
    }
    let buf = this.answers[source];
    if (buf === undefined) {
      buf = framedAnswer(this.encode(okWithToken(this.provider.name, entry, source, this.config.inject)));
      this.answers[source] = buf;
    }
    (this.ok[source] ??= this.metrics.checks.cell(this.provider.name, 'ok', source)).value++;
    return buf;
  }
}

export interface AuthzServiceDeps {
  readonly manager: TokenManager;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly metrics: Metrics;
}

export class AuthzService {
  private lanes = new Map<string, Lane>();
  /** Per-caller providers (token_exchange with the caller's subject) that have seen a Check. */
  private callerLanes = new Map<string, CallerLane>();
  private routes = new RouteTable([]);
  private defaults!: Config['defaults'];
  private logRequests = false;
  /** Encodes an answer; each lane keeps what it reuses framed (src/server/framed-answer.ts). */
  private readonly encode: (v: CheckResponseObject) => Buffer;
  private readonly decode: (b: Buffer) => AnswerView;
  /** The full protobufjs decode of a CheckRequest: request logs only. */
  private readonly decodeRequest: (b: Buffer) => DecodedCheckRequest;
  /** Reads only what routing needs; swapped with the route table on reload. */
  private reader!: CheckRequestReader;
  private readonly definition: grpc.ServiceDefinition;
  private readonly unmatchedCells;
  private readonly unknownCell;
  private inflight = 0;
  private idleWaiters: (() => void)[] = [];
  /** Reads a waiting Check's `traceparent` from its raw bytes; made when tracing is first needed. */
  private traceReader: CheckRequestReader | undefined;

  constructor(private readonly deps: AuthzServiceDeps, config: Config) {
    const base = authorizationServiceDefinition();
    const check = base.Check!;
    const encode = check.responseSerialize as (v: CheckResponseObject) => Buffer;
    this.encode = encode;
    this.decode = check.responseDeserialize as (b: Buffer) => AnswerView;
    this.decodeRequest = check.requestDeserialize as (b: Buffer) => DecodedCheckRequest;
    // A pre-serialised answer passes straight through; anything else is encoded as usual.
    // Requests are not decoded into objects: the reader walks the wire format for the few
    // fields a Check reads (malformed bytes throw, and grpc-js answers INTERNAL as before).
    this.definition = {
      ...base,
      Check: {
        ...check,
        requestDeserialize: (b: Buffer) => this.reader.read(b),
        responseSerialize: (v: Answer) => (Buffer.isBuffer(v) ? answerMessage(v) : encode(v)),
      },
    };
    this.unmatchedCells = {
      allow: deps.metrics.checks.cell('', 'allowed_unmatched', 'none'),
      deny: deps.metrics.checks.cell('', 'denied_unmatched', 'none'),
    };
    this.unknownCell = deps.metrics.checks.cell('', 'denied_unknown_provider', 'none');
    this.configure(config);
  }

  get serviceDefinition(): grpc.ServiceDefinition {
    return this.definition;
  }

  /** Applies a (re)loaded config: the lane map and route table are swapped in one assignment each. */
  configure(config: Config): void {
    const lanes = new Map<string, Lane>();
    for (const [name, lane] of this.lanes) if (this.deps.manager.handle(name) === lane.provider) lanes.set(name, lane);
    this.lanes = lanes;
    const callerLanes = new Map<string, CallerLane>();
    for (const [name, lane] of this.callerLanes) if (this.deps.manager.perCaller(name) === lane.provider) callerLanes.set(name, lane);
    this.callerLanes = callerLanes;
    const routes = new RouteTable(config.routes);
    this.routes = routes;
    this.defaults = config.defaults;
    this.reader = new CheckRequestReader(config.defaults.providerKey, routes.size === 0 ? undefined : routes.headerNames, undefined, routes.fallbackOnlyHeaderNames, { remember: true });
    // Decided once here, so the hot path pays a single boolean test when request logs are off.
    this.logRequests = config.log.requests && config.log.level === 'debug';
  }

  /**
   * The node:http2 path's request read (h2/check-stream.ts): the current reader reads the message
   * where it lies, into the holder a pooled call keeps (`reuse`).
   */
  readInto(buf: Buffer, start: number, end: number, reuse: CheckRequestRead | undefined): CheckRequestRead {
    return this.reader.readInto(buf, start, end, reuse);
  }

  /** The Check handler (grpc-js or node:http2). Always answers; never lets a rejection escape. */
  readonly check = (call: CheckCall, callback: Callback): void => {
    let req = call.request;
    if (this.logRequests) callback = this.logged(req.raw, callback);
    let name: string | undefined;
    try {
      // Read before a config reload swapped the reader (provider key or route headers may differ).
      if (req.reader !== this.reader) req = this.reader.read(req.raw);
      name = req.provider;
      if (name === undefined) name = this.routes.match(req.http);
      if (name === undefined) {
        callback(null, this.unmatched());
        return;
      }
      const lane = this.lanes.get(name) ?? this.newLane(name);
      if (lane === undefined) {
        const caller = this.callerLanes.get(name) ?? this.newCallerLane(name);
        if (caller !== undefined) {
          const header = caller.subjectHeader(req.raw);
          const buf = caller.hit(header, this.deps.clock.now());
          if (buf !== undefined) callback(null, buf);
          else this.slowCaller(caller, header, callback, req.raw);
          return;
        }
        this.unknownCell.value++;
        this.deps.logger.error('Check names a provider that is not configured', { provider: name.slice(0, 128) });
        callback(null, deniedUnknownProvider(name));
        return;
      }
      const hit = lane.provider.lookup(this.deps.clock.now());
      if (hit !== undefined) {
        callback(null, lane.answer(hit, lane.provider.hotSource));
        return;
      }
      this.slow(lane, callback, req.raw);
    } catch (err) {
      this.deps.logger.error('Check failed unexpectedly', { provider: name, error: err });
      callback(null, deniedInternal());
    }
  };

  /**
   * `log.requests: true`: one debug line per Check saying what Envoy was told. The answer is
   * read back from what was sent (pre-encoded or not), so the line cannot disagree with it.
   * Never the query string or a header value: both can carry credentials.
   */
  private logged(raw: Buffer, callback: Callback): Callback {
    const started = performance.now();
    return (err, value) => {
      try {
        callback(err, value);
      } finally {
        try {
          const request = this.decodeRequest(raw);
          const http = request.attributes?.request?.http;
          const res: AnswerView = value === undefined ? {} : Buffer.isBuffer(value) ? this.decode(answerMessage(value as FramedAnswer)) : (value as AnswerView);
          const md = res.dynamic_metadata?.fields;
          const ok = (res.status?.code ?? 0) === 0;
          this.deps.logger.debug('check', {
            method: http?.method,
            authority: http?.host?.slice(0, 256),
            path: http?.path?.split('?', 1)[0]?.slice(0, 512),
            result: err ? 'error' : ok ? 'ok' : 'denied',
            ...(ok ? {} : { reason: res.status?.message, http_status: res.denied_response?.status?.code }),
            // Denials carry no metadata: name the provider the way check() found it.
            provider: md?.provider?.stringValue ?? request.attributes?.context_extensions?.[this.defaults.providerKey] ?? this.routes.match(http),
            token_id: md?.token_id?.stringValue,
            source: md?.source?.stringValue,
            ms: Math.round((performance.now() - started) * 1000) / 1000,
          });
        } catch { /* a log line must never break a Check */ }
      }
    };
  }

  private newLane(name: string): Lane | undefined {
    const p = this.deps.manager.handle(name);
    if (p === undefined) return undefined;
    const lane = new Lane(p, p.config, this.deps.metrics, this.encode);
    this.lanes.set(name, lane);
    return lane;
  }

  private newCallerLane(name: string): CallerLane | undefined {
    const p = this.deps.manager.perCaller(name);
    if (p === undefined) return undefined;
    const lane = new CallerLane(p, this.deps.metrics, this.encode);
    this.callerLanes.set(name, lane);
    return lane;
  }

  /** A per-caller miss: the caller's exchange (or the refusal), answered per the contract. */
  private slowCaller(lane: CallerLane, header: string | undefined, callback: Callback, raw: Buffer): void {
    const started = performance.now();
    this.inflight++;
    const acquired = tracingEnabled()
      ? traceCheck(this.traceparent(raw), { 'tokengate.provider': lane.provider.name }, () => lane.provider.acquire(header).then((a) => {
        spanAttributes({ 'tokengate.answer': a.kind, 'tokengate.source': a.kind === 'token' ? a.source : 'none', 'error.type': a.kind === 'unavailable' ? a.error.code : undefined });
        return a;
      }))
      : lane.provider.acquire(header);
    this.answerWhenSettled(
      acquired,
      (a) => {
        // onTokenUnavailable: allow lets the request go without a credential, but never with the caller's own.
        if (a.kind === 'unavailable' && this.defaults.onTokenUnavailable === 'allow') {
          this.deps.metrics.checks.cell(lane.provider.name, 'allowed_without_token', 'none').value++;
          const remove = [...new Set([lane.config.inject.header, lane.provider.header, ...lane.config.inject.removeHeaders])];
          return callback(null, { ...okWithoutToken(lane.provider.name), ok_response: { headers_to_remove: remove } });
        }
        callback(null, lane.answer(a, (u) => (u.error.retryAfterMs !== undefined ? u.error.retryAfterMs / 1000
          : lane.provider.breakerState === 'open' ? lane.config.resilience.breaker.resetTimeout / 1000 : 1)));
      },
      lane.provider.name, callback, started,
    );
  }

  private unmatched(): CheckResponseObject {
    if (this.defaults.unmatched === 'deny') {
      this.unmatchedCells.deny.value++;
      return deniedNoRoute();
    }
    this.unmatchedCells.allow.value++;
    return okWithoutToken();
  }

  private slow(lane: Lane, callback: Callback, raw: Buffer): void {
    const started = performance.now();
    this.inflight++;
    const acquired = tracingEnabled() ? this.tracedAcquire(lane, raw) : lane.provider.acquire();
    this.answerWhenSettled(
      acquired,
      (got) => {
        if (got.entry) return callback(null, lane.answer(got.entry, got.source));
        if (this.defaults.onTokenUnavailable === 'allow') {
          lane.countAllowedWithout();
          return callback(null, withoutClientCredential(okWithoutToken(lane.provider.name), lane.config));
        }
        lane.countUnavailable();
        callback(null, deniedTokenUnavailable(lane.provider.name, got.error, this.retryAfterSeconds(lane, got.error)));
      },
      lane.provider.name, callback, started,
    );
  }

  /**
   * The end of every Check that waited: `answer` once the token (or its absence) is known; an
   * unexpected rejection is a logged internal error; then the duration and the drain count.
   */
  private answerWhenSettled<T>(acquired: Promise<T>, answer: (got: T) => void, provider: string, callback: Callback, started: number): void {
    acquired.then(answer, (err: unknown) => {
      this.deps.logger.error('Check failed unexpectedly', { provider, error: err });
      callback(null, deniedInternal());
    }).catch((err: unknown) => {
      // The callback itself threw (e.g. the call was cancelled): nothing left to answer.
      this.deps.logger.debug('Check callback failed', { error: err });
    }).finally(() => {
      this.deps.metrics.checkDuration.observe((performance.now() - started) / 1000);
      if (--this.inflight === 0) for (const w of this.idleWaiters.splice(0)) w();
    });
  }

  /** acquire() inside a Check span, the child of the caller's `traceparent` when it sent one. */
  private tracedAcquire(lane: Lane, raw: Buffer): ReturnType<TokenHandle['acquire']> {
    return traceCheck(this.traceparent(raw), { 'tokengate.provider': lane.provider.name }, () => lane.provider.acquire().then((got) => {
      spanAttributes({ 'tokengate.source': got.source ?? 'none', 'error.type': got.error?.code });
      return got;
    }));
  }

  /** A waiting Check's `traceparent`, read from its raw bytes (slow path only). */
  private traceparent(raw: Buffer): string | undefined {
    try {
      this.traceReader ??= new CheckRequestReader(this.defaults.providerKey, ['traceparent']);
      return this.traceReader.readHttp(raw)?.headers?.traceparent;
    } catch {
      return undefined; // no parent then: the request itself was read fine a moment ago
    }
  }

  private retryAfterSeconds(lane: Lane, err: TokenError): number {
    if (err.retryAfterMs !== undefined) return err.retryAfterMs / 1000;
    if (lane.provider.breakerState === 'open') return lane.config.resilience.breaker.resetTimeout / 1000;
    return 1;
  }

  /** Resolves when no slow-path Check is waiting (shutdown drains these). */
  idle(): Promise<void> {
    if (this.inflight === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }
}
