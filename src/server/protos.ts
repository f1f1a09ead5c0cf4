// Envoy's own contract, loaded from the protos that ship in @grpc/grpc-js-xds.
// Nothing of Envoy's is hand-written here: if a field name is wrong, the encoder drops it,
// so the tests decode every answer with these same definitions.
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as protoLoader from '@grpc/proto-loader';
import * as grpc from '@grpc/grpc-js';

const require = createRequire(import.meta.url);
const xdsRoot = path.dirname(require.resolve('@grpc/grpc-js-xds/package.json'));
const healthRoot = path.dirname(require.resolve('grpc-health-check/package.json'));

export const PROTO_INCLUDE_DIRS: readonly string[] = Object.freeze([
  path.join(xdsRoot, 'deps/envoy-api'),
  path.join(xdsRoot, 'deps/xds'),
  path.join(xdsRoot, 'deps/googleapis'),
  path.join(xdsRoot, 'deps/protoc-gen-validate'),
]);

/** tokengate's own protos (the admin API). */
export const OWN_PROTO_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../proto');

export const HEALTH_PROTO = path.join(healthRoot, 'proto/health/v1/health.proto');

/**
 * Decoding options for the request path. `keepCase` keeps Envoy's snake_case names; no
 * `defaults`/`arrays`/`objects` so a decoded CheckRequest allocates only what is on the wire.
 * Consequence: every field may be absent, and the code must say what absent means.
 */
export const LOADER_OPTIONS: protoLoader.Options = Object.freeze({
  keepCase: true,
  longs: String,
  enums: String,
  defaults: false,
  oneofs: true,
  includeDirs: [...PROTO_INCLUDE_DIRS],
});

export const AUTHZ_PROTO = 'envoy/service/auth/v3/external_auth.proto';
export const ACCESSLOG_PROTO = 'envoy/service/accesslog/v3/als.proto';

let cached: protoLoader.PackageDefinition | undefined;

/** One package definition for Authorization and AccessLogService (they share most types). */
export function envoyPackageDefinition(): protoLoader.PackageDefinition {
  cached ??= protoLoader.loadSync([AUTHZ_PROTO, ACCESSLOG_PROTO], LOADER_OPTIONS);
  return cached;
}

export function envoyGrpcObject(): grpc.GrpcObject {
  return grpc.loadPackageDefinition(envoyPackageDefinition());
}

function serviceAt(root: grpc.GrpcObject, dotted: string): grpc.ServiceClientConstructor {
  let node: unknown = root;
  for (const part of dotted.split('.')) node = (node as Record<string, unknown>)[part];
  if (typeof node !== 'function') throw new Error(`service ${dotted} not found in loaded protos`);
  return node as grpc.ServiceClientConstructor;
}

export const AUTHZ_SERVICE_NAME = 'envoy.service.auth.v3.Authorization';
export const ACCESSLOG_SERVICE_NAME = 'envoy.service.accesslog.v3.AccessLogService';

/** A client constructor for Envoy's Authorization service (tests, bench, `tokengate` tooling). */
export function authorizationClient(): grpc.ServiceClientConstructor {
  return serviceAt(envoyGrpcObject(), AUTHZ_SERVICE_NAME);
}

export function accessLogClient(): grpc.ServiceClientConstructor {
  return serviceAt(envoyGrpcObject(), ACCESSLOG_SERVICE_NAME);
}

export function authorizationServiceDefinition(): grpc.ServiceDefinition {
  return authorizationClient().service;
}

export function accessLogServiceDefinition(): grpc.ServiceDefinition {
  return accessLogClient().service;
}
