// Envoy's access-log stream (Envoy's own protos), a loose /metrics reader and a leak scan for the
// operating-surface tests. The admin client is test/support/admin-client.ts.
import * as grpc from '@grpc/grpc-js';
import { EXT_AUTHZ_NAMESPACE } from '../../src/server/accesslog-service.js';
import { accessLogClient } from '../../src/server/protos.js';

// --- Envoy's gRPC access log ------------------------------------------------------------------

export interface LogEntryInit {
  readonly status: number;
  /** Default via_upstream. */
  readonly details?: string;
  /** Both set: the ext_authz dynamic metadata tokengate returned for the request. */
  readonly provider?: string;
  readonly tokenId?: string;
}

/** An envoy.data.accesslog.v3.HTTPAccessLogEntry as Envoy's gRPC access logger fills it. */
export function httpLogEntry(init: LogEntryInit): Record<string, unknown> {
  const fields = {
    ...(init.provider !== undefined ? { provider: { stringValue: init.provider } } : {}),
    ...(init.tokenId !== undefined ? { token_id: { stringValue: init.tokenId } } : {}),
    source: { stringValue: 'cache' },
  };
  return {
    common_properties: {
      downstream_remote_address: { socket_address: { address: '10.0.0.7', port_value: 51234 } },
      start_time: { seconds: String(Math.floor(Date.now() / 1000)), nanos: 0 },
      upstream_cluster: 'upstream_a',
      ...(init.provider !== undefined ? { metadata: { filter_metadata: { [EXT_AUTHZ_NAMESPACE]: { fields } } } } : {}),
    },
    protocol_version: 'HTTP11',
    request: { request_method: 'GET', scheme: 'https', authority: 'api.example.com', path: '/v1/things', request_id: 'r-1' },
    response: { response_code: { value: init.status }, response_code_details: init.details ?? 'via_upstream' },
  };
}

/** StreamAccessLogsMessages, identifier in the first, one HTTP batch each. */
export function accessLogMessages(batches: readonly Record<string, unknown>[][]): Record<string, unknown>[] {
  return batches.map((entries, i) => ({
    ...(i === 0 ? { identifier: { node: { id: 'envoy-test', cluster: 'edge' }, log_name: 'tokengate_feedback' } } : {}),
    http_logs: { log_entry: entries },
  }));
}

type StreamMethod = (cb: (err: grpc.ServiceError | null) => void) => grpc.ClientWritableStream<unknown>;

/** Envoy's side of StreamAccessLogs: writes messages on one stream, ends it, waits for the answer. */
export class AccessLogSender {
  private readonly client: grpc.Client & { StreamAccessLogs: StreamMethod };

  constructor(address: string) {
    const Ctor = accessLogClient();
    this.client = new Ctor(address, grpc.credentials.createInsecure()) as unknown as AccessLogSender['client'];
  }

  send(messages: readonly unknown[]): Promise<void> {
    return new Promise((resolve, reject) => {
      const call = this.client.StreamAccessLogs((err) => (err ? reject(err) : resolve()));
      for (const m of messages) call.write(m);
      call.end();
    });
  }

  /** A stream left open, for tests that break it. */
  open(): grpc.ClientWritableStream<unknown> {
    return this.client.StreamAccessLogs(() => undefined);
  }

  /** Bytes already encoded (e.g. by protobufjs straight from Envoy's .proto), sent as they are. */
  sendRaw(messages: readonly Uint8Array[]): Promise<void> {
    return new Promise((resolve, reject) => {
      const call = this.client.makeClientStreamRequest(
        '/envoy.service.accesslog.v3.AccessLogService/StreamAccessLogs',
        (b: Uint8Array) => Buffer.from(b),
        (b: Buffer) => b,
        (err: grpc.ServiceError | null) => (err ? reject(err) : resolve()),
      );
      for (const m of messages) call.write(m);
      call.end();
    });
  }

  close(): void {
    this.client.close();
  }
}

// --- Prometheus text --------------------------------------------------------------------------

export interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

export function parseMetrics(text: string): { samples: Sample[]; types: Map<string, string> } {
  const samples: Sample[] = [];
  const types = new Map<string, string>();
  for (const line of text.split('\n')) {
    const type = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (type) types.set(type[1]!, type[2]!);
    if (!line || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) throw new Error(`unparseable metrics line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!;
    samples.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return { samples, types };
}

/** The samples of `name` whose labels include `labels`. */
export function find(samples: readonly Sample[], name: string, labels: Record<string, string> = {}): Sample[] {
  return samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
}

export function value(samples: readonly Sample[], name: string, labels: Record<string, string> = {}): number | undefined {
  const hits = find(samples, name, labels);
  return hits.length ? hits.reduce((a, s) => a + s.value, 0) : undefined;
}

// --- leaks ------------------------------------------------------------------------------------

export interface Secret {
  readonly what: string;
  readonly value: string;
}

/** Every (secret, place) pair where the secret occurs; also tries the base64 of each secret. */
export function leaks(secrets: readonly Secret[], places: readonly { where: string; text: string }[]): string[] {
  const out: string[] = [];
  for (const s of secrets) {
    const forms = [s.value, Buffer.from(s.value).toString('base64')];
    for (const p of places) {
      if (forms.some((f) => p.text.includes(f))) out.push(`${s.what} found in ${p.where}`);
    }
  }
  return out;
}
