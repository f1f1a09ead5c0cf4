// Turns tracing on from the standard OpenTelemetry environment variables, and only then loads
// the SDK (dynamic imports: a tokengate without OTEL_* never loads it, and pays nothing).
//
// On when OTEL_TRACES_EXPORTER names an exporter (otlp, console), or is unset while an OTLP
// endpoint is (OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT). Off when
// none is set, OTEL_TRACES_EXPORTER=none, or OTEL_SDK_DISABLED=true. The SDK reads the rest
// itself: OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES (resource), OTEL_TRACES_SAMPLER(_ARG),
// OTEL_BSP_* (batching), OTEL_EXPORTER_OTLP_(TRACES_)HEADERS / _TIMEOUT / _ENDPOINT.
// Spans are sent as OTLP/HTTP (JSON); the collector's OTLP/HTTP receiver takes them (port 4318).
import type { Logger } from './logger.js';
import { setTracer, TRACER_NAME } from './tracing.js';

export type Env = Readonly<Record<string, string | undefined>>;

export interface TracingHandle {
  /** The exporters in use, e.g. ["otlp"]. */
  readonly exporters: readonly string[];
  /** Flushes what is buffered and stops exporting. */
  shutdown(): Promise<void>;
}

const KNOWN_EXPORTERS = new Set(['otlp', 'console', 'none']);

/** The exporters the environment asks for; empty: tracing stays off. */
export function tracesExporters(env: Env): string[] {
  if ((env.OTEL_SDK_DISABLED ?? '').trim().toLowerCase() === 'true') return [];
  const named = (env.OTEL_TRACES_EXPORTER ?? '').split(',').map((s) => s.trim().toLowerCase()).filter(Boolean);
  if (named.length === 0) {
    return env.OTEL_EXPORTER_OTLP_ENDPOINT || env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT ? ['otlp'] : [];
  }
  if (named.includes('none')) return [];
  return named;
}

let running: Promise<TracingHandle | undefined> | undefined;

/**
 * Starts tracing once per process (the tracer provider is global); later calls get the same
 * handle. Resolves undefined when the environment does not ask for traces.
 */
export function startTracing(env: Env, logger: Logger): Promise<TracingHandle | undefined> {
  if (tracesExporters(env).length === 0) return Promise.resolve(undefined);
  running ??= load(env, logger).catch((err: unknown) => {
    running = undefined;
    logger.error('tracing could not start; continuing without traces', { error: err });
    return undefined;
  });
  return running;
}

async function load(env: Env, logger: Logger): Promise<TracingHandle> {
  const wanted = tracesExporters(env);
  const unknown = wanted.filter((e) => !KNOWN_EXPORTERS.has(e));
  if (unknown.length) logger.warn('OTEL_TRACES_EXPORTER names exporters tokengate does not have; they are ignored', { unknown, supported: ['otlp', 'console', 'none'] });
  const protocol = env.OTEL_EXPORTER_OTLP_TRACES_PROTOCOL ?? env.OTEL_EXPORTER_OTLP_PROTOCOL;
  if (protocol !== undefined && protocol !== 'http/json' && wanted.includes('otlp')) {
    logger.warn('tokengate exports OTLP over HTTP as JSON; OTEL_EXPORTER_OTLP_PROTOCOL is not followed', { protocol });
  }
  const [node, resources] = await Promise.all([import('@opentelemetry/sdk-trace-node'), import('@opentelemetry/resources')]);
  const processors = [];
  const exporters: string[] = [];
  if (wanted.includes('otlp')) {
    const { OTLPTraceExporter } = await import('@opentelemetry/exporter-trace-otlp-http');
    processors.push(new node.BatchSpanProcessor(new OTLPTraceExporter()));
    exporters.push('otlp');
  }
  if (wanted.includes('console')) {
    processors.push(new node.SimpleSpanProcessor(new node.ConsoleSpanExporter()));
    exporters.push('console');
  }
  const resource = resources.defaultResource().merge(resources.detectResources({ detectors: [resources.envDetector] }));
  const provider = new node.NodeTracerProvider({ resource, spanProcessors: processors });
  // Installs the AsyncLocalStorage context manager and the W3C propagator, globally.
  provider.register();
  setTracer(provider.getTracer(TRACER_NAME));
  logger.info('tracing on', { exporters, service: String(resource.attributes['service.name'] ?? '') });
  return {
    exporters,
    shutdown: async () => {
      setTracer(undefined);
      running = undefined;
      await provider.shutdown();
    },
  };
}
