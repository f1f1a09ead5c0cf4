// OpenTelemetry spans for the slow paths: token fetches, refreshes, exchanges and the Checks
// that waited on them; never a cache hit. Code speaks only `@opentelemetry/api`. Until a tracer
// is installed (tracing-sdk.ts does, when the OTEL_* environment asks for it) every helper
// here returns after one test of a module variable: no span, no context switch, no allocation.
//
// What may go into an attribute or event is decided here, not at each call site: values are
// provider names, source types, codes, counts and token ids (hashes). `safeAttributes` drops
// any key that names a credential, as a net under callers that get it wrong.
import {
  context, createContextKey, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, TraceFlags,
  type Attributes, type Context, type Span, type Tracer,
} from '@opentelemetry/api';

export { SpanKind };

/** Attribute values tokengate sets: never a token, secret, assertion or subject token. */
export type SpanAttributes = Readonly<Record<string, string | number | boolean | undefined>>;

/** The instrumentation scope name spans carry. */
export const TRACER_NAME = 'tokengate';

/** Keys that could carry a credential; `token_id` (a hash) is allowed. */
const CREDENTIAL_KEY = /(^|[._])(access_?token|refresh_?token|id_?token|subject_?token|token|secret|client_?secret|assertion|password|authorization|cookie|key|private_?key)$/i;

let tracer: Tracer | undefined;

/** Installs (or, with undefined, removes) the tracer the helpers use. */
export function setTracer(t: Tracer | undefined): void {
  tracer = t;
}

export function tracingEnabled(): boolean {
  return tracer !== undefined;
}

export function safeAttributes(attrs: SpanAttributes): Attributes {
  const out: Attributes = {};
  for (const k in attrs) {
    const v = attrs[k];
    if (v === undefined || CREDENTIAL_KEY.test(k)) continue;
    out[k] = v;
  }
  return out;
}

/**
 * Runs `fn` inside a span (the active context's child, or `parent`'s), ended when `fn`
 * settles. A failure sets the status to ERROR with the error's stable `code` only: an error's
 * message may quote an IdP's answer, which is not ours to export.
 */
export function inSpan<T>(name: string, attrs: SpanAttributes, fn: () => Promise<T>, opts: { kind?: SpanKind; parent?: Context } = {}): Promise<T> {
  const t = tracer;
  if (t === undefined) return fn();
  const parent = opts.parent ?? context.active();
  const span = t.startSpan(name, { kind: opts.kind ?? SpanKind.INTERNAL, attributes: safeAttributes(attrs) }, parent);
  let p: Promise<T>;
  try {
    p = context.with(trace.setSpan(parent, span), fn);
  } catch (err) {
    endFailed(span, err);
    throw err;
  }
  return p.then(
    (v) => {
      span.end();
      return v;
    },
    (err: unknown) => {
      endFailed(span, err);
      throw err;
    },
  );
}

function endFailed(span: Span, err: unknown): void {
  const code = errorCode(err);
  span.setAttribute('error.type', code);
  span.setStatus({ code: SpanStatusCode.ERROR, message: code });
  span.end();
}

function errorCode(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^[A-Za-z0-9_.-]{1,64}$/.test(code) ? code : 'ERR_INTERNAL';
}

/**
 * Marks a Check's context: a refresh that Check starts is its child. A refresh's own context
 * drops the mark, so the timers it arms (the next scheduled refresh) start traces of their own
 * instead of growing one trace for the life of the process.
 */
const IN_CHECK = createContextKey('tokengate.check');

/**
 * A Check that had to wait for a token (never a cache hit): a SERVER span whose parent is the
 * caller's `traceparent`, when it sent one.
 */
export function traceCheck<T>(traceparent: string | undefined, attrs: SpanAttributes, fn: () => Promise<T>): Promise<T> {
  if (tracer === undefined) return fn();
  const parent = (parentFromTraceparent(traceparent) ?? ROOT_CONTEXT).setValue(IN_CHECK, true);
  return inSpan('tokengate.check', attrs, fn, { kind: SpanKind.SERVER, parent });
}

/** A refresh: the child of the Check that started it, else the root of its own trace. */
export function traceRefresh<T>(provider: string, reason: string, fn: () => Promise<T>): Promise<T> {
  if (tracer === undefined) return fn();
  const active = context.active();
  const parent = active.getValue(IN_CHECK) === true ? active.deleteValue(IN_CHECK) : ROOT_CONTEXT;
  return inSpan('tokengate.refresh', { 'tokengate.provider': provider, 'tokengate.refresh.reason': reason }, fn, { parent });
}

/**
 * A per-caller token exchange (RFC 8693): a CLIENT span, the child of the Check it serves. The
 * caller is named by `subjectId` (the subject token's id, a hash), never the subject token.
 */
export function traceExchange<T>(provider: string, subjectId: string, fn: () => Promise<T>): Promise<T> {
  if (tracer === undefined) return fn();
  return inSpan('tokengate.token.exchange', { 'tokengate.provider': provider, 'tokengate.subject_id': subjectId }, fn, { kind: SpanKind.CLIENT });
}

/** An event on the active span (a lock decision, a retry, a store read); nothing when off. */
export function spanEvent(name: string, attrs?: SpanAttributes): void {
  if (tracer === undefined) return;
  trace.getSpan(context.active())?.addEvent(name, attrs ? safeAttributes(attrs) : undefined);
}

/** Attributes on the active span (an outcome known only at the end); nothing when off. */
export function spanAttributes(attrs: SpanAttributes): void {
  if (tracer === undefined) return;
  trace.getSpan(context.active())?.setAttributes(safeAttributes(attrs));
}

const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/;

/**
 * The parent context a W3C `traceparent` header names (https://www.w3.org/TR/trace-context/),
 * or undefined for a missing or malformed one (then the span starts its own trace). Parsed
 * here rather than with the SDK's propagator: the server reads it without loading the SDK.
 */
export function parentFromTraceparent(value: string | undefined): Context | undefined {
  if (value === undefined) return undefined;
  const m = TRACEPARENT.exec(value.trim().toLowerCase());
  if (!m) return undefined;
  const [, version, traceId, spanId, flags, rest] = m;
  // Version ff is invalid; version 00 has nothing after the flags.
  if (version === 'ff' || (version === '00' && rest !== undefined)) return undefined;
  if (/^0+$/.test(traceId!) || /^0+$/.test(spanId!)) return undefined;
  return trace.setSpanContext(ROOT_CONTEXT, {
    traceId: traceId!, spanId: spanId!, isRemote: true,
    traceFlags: parseInt(flags!, 16) & TraceFlags.SAMPLED,
  });
}
