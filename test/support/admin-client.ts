// tokengate's admin surfaces as an operator and a control plane reach them: admin HTTP (fetch)
// and the gRPC TokenAdmin API on the gRPC listener. No bearer is sent unless a call passes one,
// so the same client drives the 401/403 tests and the authorised ones.
import * as grpc from '@grpc/grpc-js';
import { tokenAdminClient } from '../../src/server/admin-grpc.js';

/** A bearer token, or the exact `authorization` value to send (for malformed-header tests). */
export type AdminAuth = string | { readonly authorization: string };

export type AdminRpc = 'ListTokens' | 'Invalidate' | 'Refresh';

export interface AdminResponse {
  readonly status: number;
  readonly headers: Headers;
  readonly text: string;
  json<T = Record<string, unknown>>(): T;
}

export interface AdminAddresses {
  /** listen.admin as bound (host:port); needed for `http`. */
  readonly http?: string;
  /** listen.grpc as bound; needed for `call` / `error`. */
  readonly grpc?: string;
}

type Unary = (req: unknown, md: grpc.Metadata, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res: unknown) => void) => void;
type TokenAdminStub = grpc.Client & Record<AdminRpc, Unary>;

function authorization(auth: AdminAuth | undefined): string | undefined {
  if (auth === undefined) return undefined;
  return typeof auth === 'string' ? `Bearer ${auth}` : auth.authorization;
}

export class AdminClient {
  private stub: TokenAdminStub | undefined;

  constructor(private readonly addresses: AdminAddresses) {}

  /** One admin HTTP request; any method, so tests can probe HEAD/PUT/DELETE too. */
  async http(method: string, path: string, auth?: AdminAuth): Promise<AdminResponse> {
    if (this.addresses.http === undefined) throw new Error('AdminClient: this app serves no admin HTTP (listen.admin is off)');
    const value = authorization(auth);
    const res = await fetch(`http://${this.addresses.http}${path}`, { method, headers: value === undefined ? {} : { authorization: value } });
    const text = await res.text();
    return { status: res.status, headers: res.headers, text, json: <T>() => JSON.parse(text) as T };
  }

  /** One TokenAdmin call; rejects with the grpc.ServiceError. */
  call<T = Record<string, unknown>>(method: AdminRpc, req: unknown, auth?: AdminAuth): Promise<T> {
    const md = new grpc.Metadata();
    const value = authorization(auth);
    if (value !== undefined) md.set('authorization', value);
    const stub = this.grpcStub();
    return new Promise((resolve, reject) => {
      stub[method](req, md, { deadline: Date.now() + 10_000 }, (err, res) => (err ? reject(err) : resolve(res as T)));
    });
  }

  /** The call's failure, or undefined when it succeeded. */
  async error(method: AdminRpc, req: unknown, auth?: AdminAuth): Promise<grpc.ServiceError | undefined> {
    try {
      await this.call(method, req, auth);
      return undefined;
    } catch (err) {
      return err as grpc.ServiceError;
    }
  }

  close(): void {
    this.stub?.close();
    this.stub = undefined;
  }

  private grpcStub(): TokenAdminStub {
    if (this.addresses.grpc === undefined) throw new Error('AdminClient: no gRPC address to call TokenAdmin on');
    if (!this.stub) {
      const Ctor = tokenAdminClient();
      this.stub = new Ctor(this.addresses.grpc, grpc.credentials.createInsecure()) as unknown as TokenAdminStub;
    }
    return this.stub;
  }
}
