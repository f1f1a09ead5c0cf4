// Envoy-shaped CheckRequests and a real gRPC client decoding answers with Envoy's own protos.
import * as grpc from '@grpc/grpc-js';
import { authorizationClient } from '../../src/server/protos.js';

export interface EnvoyRequestInit {
  readonly authority?: string;
  readonly path?: string;
  readonly method?: string;
  readonly scheme?: string;
  readonly headers?: Record<string, string>;
  readonly contextExtensions?: Record<string, string>;
}

/** What Envoy sends: lower-case keys, pseudo-headers inside `headers`, host = :authority. */
export function envoyRequest(init: EnvoyRequestInit = {}): Record<string, unknown> {
  const authority = init.authority ?? 'api.example.com';
  const path = init.path ?? '/v1/things?x=1';
  const method = init.method ?? 'GET';
  const headers: Record<string, string> = {
    ':authority': authority,
    ':path': path,
    ':method': method,
    ':scheme': init.scheme ?? 'https',
    'user-agent': 'curl/8.5.0',
    accept: '*/*',
    'x-request-id': '4f3c2a1e-8d7b-4c6a-9e5f-0a1b2c3d4e5f',
    'x-forwarded-proto': 'https',
    'x-envoy-expected-rq-timeout-ms': '15000',
    ...Object.fromEntries(Object.entries(init.headers ?? {}).map(([k, v]) => [k.toLowerCase(), v])),
  };
  return {
    attributes: {
      source: { address: { socket_address: { address: '10.0.0.7', port_value: 51234 } } },
      destination: { address: { socket_address: { address: '10.0.0.8', port_value: 10000 } } },
      request: {
        time: { seconds: String(Math.floor(Date.now() / 1000)), nanos: 0 },
        http: { id: '1234567890', method, headers, path, host: authority, scheme: init.scheme ?? 'https', protocol: 'HTTP/1.1' },
      },
      ...(init.contextExtensions ? { context_extensions: init.contextExtensions } : {}),
    },
  };
}

export interface HeaderValueOption {
  header?: { key?: string; value?: string };
  append?: { value?: boolean };
  append_action?: string;
}

export interface CheckResponse {
  status?: { code?: number; message?: string };
  ok_response?: { headers?: HeaderValueOption[]; headers_to_remove?: string[] };
  denied_response?: { status?: { code?: string | number }; headers?: HeaderValueOption[]; body?: string };
  dynamic_metadata?: { fields?: Record<string, { stringValue?: string; string_value?: string }> };
}

export class CheckClient {
  private readonly client: grpc.Client & { Check: (req: unknown, md: grpc.Metadata, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res: CheckResponse) => void) => void };

  constructor(address: string, credentials: grpc.ChannelCredentials = grpc.credentials.createInsecure(), options: grpc.ChannelOptions = {}) {
    const Ctor = authorizationClient();
    this.client = new Ctor(address, credentials, options) as unknown as CheckClient['client'];
  }

  check(req: Record<string, unknown>, deadlineMs = 5_000): Promise<CheckResponse> {
    return new Promise((resolve, reject) => {
      this.client.Check(req, new grpc.Metadata(), { deadline: Date.now() + deadlineMs }, (err, res) => (err ? reject(err) : resolve(res)));
    });
  }

  close(): void {
    this.client.close();
  }
}

/** The injected header of an OK answer, or undefined. */
export function injected(res: CheckResponse, name = 'authorization'): HeaderValueOption | undefined {
  return res.ok_response?.headers?.find((h) => h.header?.key === name);
}

export function metadata(res: CheckResponse): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(res.dynamic_metadata?.fields ?? {})) out[k] = v.stringValue ?? v.string_value ?? '';
  return out;
}

export function deniedBody(res: CheckResponse): Record<string, unknown> {
  return JSON.parse(res.denied_response?.body ?? '{}') as Record<string, unknown>;
}

export function deniedHeader(res: CheckResponse, name: string): string | undefined {
  return res.denied_response?.headers?.find((h) => h.header?.key === name)?.header?.value;
}
