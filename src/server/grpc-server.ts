// The grpc.Server every service is added to, with Check served by grpc-js or, with
// `listen.checkServer: http2`, on node:http2 directly (src/server/h2/, bench/FINDINGS.md).
import * as grpc from '@grpc/grpc-js';
import type { CheckServer } from '../config/types.js';
import type { AuthzService } from './authz-service.js';
import type { CheckRequestRead } from './check-request-reader.js';
import { CheckStreams } from './h2/check-stream.js';
import { StreamDispatch } from './h2/stream-dispatch.js';

/** The server, and a check to run once its listener is bound (the http2 path verifies its hook). */
export interface GrpcServer {
  readonly server: grpc.Server;
  /** The http2 path's stream dispatch (absent with grpc-js). */
  readonly dispatch?: StreamDispatch;
  afterBind(): void;
}

export function createGrpcServer(options: grpc.ServerOptions, checkServer: CheckServer, authz: AuthzService, maxMessageBytes: number): GrpcServer {
  const def = authz.serviceDefinition.Check!;
  if (checkServer === 'grpc-js') {
    const server = new grpc.Server(options);
    server.addService(authz.serviceDefinition, { Check: authz.check });
    return { server, afterBind: () => undefined };
  }
  const server = new grpc.Server(options);
  const dispatch = new StreamDispatch(server);
  // Registered with grpc-js too: a Check stream our path declines (compressed, a bad
  // grpc-timeout, a non-gRPC content-type) is answered by grpc-js as before.
  server.addService(authz.serviceDefinition, { Check: authz.check });
  const streams = new CheckStreams(def.path, {
    deserialize: def.requestDeserialize as (b: Buffer) => CheckRequestRead,
    // Each pooled call keeps one request holder, read into where the message lies (no view of it).
    inPlace: {
      readInto: (buf: Buffer, start: number, end: number, reuse: CheckRequestRead | undefined) => authz.readInto(buf, start, end, reuse),
      clear: (req: CheckRequestRead) => req.clear(),
    },
    serialize: def.responseSerialize as (v: unknown) => Buffer,
    // A pre-encoded answer is a FramedAnswer (authz-service's only Buffer answers).
    framed: (v: unknown) => (Buffer.isBuffer(v) ? v : undefined),
    handle: authz.check,
  }, maxMessageBytes);
  dispatch.take(def.path, (stream, headers) => streams.accept(stream, headers));
  return { server, dispatch, afterBind: () => dispatch.assertWired(1) };
}
