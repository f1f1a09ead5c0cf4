// envoy/envoy.yaml checked against Envoy's own protos (no Envoy binary needed), plus the
// properties of the demo bootstrap that tokengate's contract depends on.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { BOOTSTRAP_TYPE, EnvoyConfigValidator, type EnvoyConfigProblem } from '../support/envoy-validator.js';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const ENVOY_YAML = path.join(REPO, 'envoy/envoy.yaml');
const TEXT = fs.readFileSync(ENVOY_YAML, 'utf8');

type Obj = Record<string, any>;

let validator: EnvoyConfigValidator;
beforeAll(() => {
  validator = new EnvoyConfigValidator();
});

function parse(text: string): Obj {
  return YAML.parse(text) as Obj;
}

/** The YAML text with `from` replaced (exactly once), so negative tests start from the real file. */
function mutated(from: string, to: string): Obj {
  expect(TEXT.includes(from), `${JSON.stringify(from)} occurs in envoy.yaml`).toBe(true);
  return parse(TEXT.replace(from, to));
}

function paths(problems: EnvoyConfigProblem[]): string[] {
  return problems.map((p) => `${p.path}: ${p.problem}`);
}

const HCM = 'static_resources.listeners[0].filter_chains[0].filters[0].typed_config';

function hcm(doc: Obj): Obj {
  return doc['static_resources'].listeners[0].filter_chains[0].filters[0].typed_config as Obj;
}
function httpFilter(doc: Obj, name: string): Obj {
  const f = (hcm(doc)['http_filters'] as Obj[]).find((x) => x['name'] === name);
  expect(f, `http filter ${name}`).toBeDefined();
  return f!;
}
function cluster(doc: Obj, name: string): Obj {
  const c = (doc['static_resources'].clusters as Obj[]).find((x) => x['name'] === name);
  expect(c, `cluster ${name}`).toBeDefined();
  return c!;
}
function routes(doc: Obj): Obj[] {
  return hcm(doc)['route_config'].virtual_hosts[0].routes as Obj[];
}
function grpcAccessLog(doc: Obj): Obj {
  const a = (hcm(doc)['access_log'] as Obj[]).find((x) => x['name'] === 'envoy.access_loggers.http_grpc');
  expect(a, 'gRPC access log').toBeDefined();
  return a!;
}

describe('envoy/envoy.yaml against Envoy protos', () => {
  it('every field, @type, enum, duration and oneof is valid for envoy.config.bootstrap.v3.Bootstrap', () => {
    expect(paths(validator.check(BOOTSTRAP_TYPE, parse(TEXT)))).toEqual([]);
  });

  it('survives fromObject → encode → decode unchanged (nothing silently dropped)', () => {
    expect(paths(validator.roundTrip(BOOTSTRAP_TYPE, parse(TEXT)))).toEqual([]);
    const type = validator.lookupType(BOOTSTRAP_TYPE);
    const bytes = type.encode(type.fromObject(validator.toProtobufObject(BOOTSTRAP_TYPE, parse(TEXT)))).finish();
    const decoded = type.toObject(type.decode(bytes), { enums: String, longs: Number }) as Obj;
    expect(decoded['static_resources'].clusters.map((c: Obj) => c['name'])).toEqual(['tokengate', 'upstream_a', 'upstream_b']);
    // the ext_authz body, packed into an Any, decodes back with the settings we wrote
    const extAuthzAny = decoded['static_resources'].listeners[0].filter_chains[0].filters[0].typed_config;
    const hcmType = validator.lookupType('envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager');
    const hcmMsg = hcmType.toObject(hcmType.decode(extAuthzAny.value), { enums: String }) as Obj;
    const authzAny = (hcmMsg['http_filters'] as Obj[])[0]!['typed_config'];
    const authzType = validator.lookupType('envoy.extensions.filters.http.ext_authz.v3.ExtAuthz');
    const authz = authzType.toObject(authzType.decode(authzAny.value), { enums: String, longs: Number }) as Obj;
    expect(authz['transport_api_version']).toBe('V3');
    expect(authz['grpc_service'].timeout).toEqual({ nanos: 500_000_000 });
  });
});

describe('the validator finds mistakes and names their path', () => {
  it('a misspelt field', () => {
    // the ext_authz filter's own line (22 spaces in); the access log's is indented deeper
    const line = `\n${' '.repeat(22)}transport_api_version: V3\n`;
    const problems = validator.check(BOOTSTRAP_TYPE, mutated(line, line.replace('version', 'verison')));
    expect(problems).toHaveLength(1);
    expect(problems[0]!.path).toBe(`${HCM}.http_filters[0].typed_config.transport_api_verison`);
    expect(problems[0]!.problem).toMatch(/unknown field "transport_api_verison" in envoy\.extensions\.filters\.http\.ext_authz\.v3\.ExtAuthz/);
    expect(problems[0]!.problem).toContain('did you mean "transport_api_version"');
  });

  it('a misspelt field in the bootstrap itself', () => {
    const problems = validator.check(BOOTSTRAP_TYPE, mutated('static_resources:', 'static_resource:'));
    expect(paths(problems)).toEqual([expect.stringMatching(/^static_resource: unknown field .*did you mean "static_resources"/)]);
  });

  it('a wrong @type', () => {
    const problems = validator.check(
      BOOTSTRAP_TYPE,
      mutated('envoy.extensions.filters.http.router.v3.Router', 'envoy.extensions.filters.http.router.v3.Routr'),
    );
    expect(problems).toHaveLength(1);
    expect(problems[0]!.path).toBe(`${HCM}.http_filters[1].typed_config.@type`);
    expect(problems[0]!.problem).toMatch(/unknown type "type\.googleapis\.com\/envoy\.extensions\.filters\.http\.router\.v3\.Routr"/);
  });

  it('a body that does not match its @type', () => {
    // ExtAuthz settings under the Router type: every ExtAuthz field is unknown there
    const doc = mutated(
      'type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz\n',
      'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router\n',
    );
    const problems = validator.check(BOOTSTRAP_TYPE, doc);
    expect(problems.map((p) => p.path)).toContain(`${HCM}.http_filters[0].typed_config.failure_mode_allow`);
  });

  it('a bad enum value', () => {
    const problems = validator.check(BOOTSTRAP_TYPE, mutated('type: STRICT_DNS', 'type: STRICT_DNZ'));
    expect(problems).toHaveLength(1);
    expect(problems[0]!.path).toBe('static_resources.clusters[0].type');
    expect(problems[0]!.problem).toMatch(/"STRICT_DNZ" is not a value of enum envoy\.config\.cluster\.v3\.Cluster\.DiscoveryType.*did you mean "STRICT_DNS"/);
  });

  it('a Duration in a form Envoy does not parse', () => {
    const problems = validator.check(BOOTSTRAP_TYPE, mutated('timeout: 0.5s', 'timeout: 500ms'));
    expect(paths(problems)).toEqual([
      expect.stringMatching(/^static_resources\.listeners\[0\].*http_filters\[0\]\.typed_config\.grpc_service\.timeout: a Duration is a string like "0\.5s"/),
    ]);
  });

  it('a wrapper written as {value: …}', () => {
    const problems = validator.check(BOOTSTRAP_TYPE, mutated('match_if_key_not_found: false', 'match_if_key_not_found: { value: false }'));
    expect(problems.map((p) => p.path)).toEqual([
      `${HCM}.access_log[1].filter.and_filter.filters[1].metadata_filter.match_if_key_not_found`,
    ]);
  });

  it('two members of one oneof', () => {
    const problems = validator.check(
      BOOTSTRAP_TYPE,
      mutated('disabled: true', 'disabled: true\n                              check_settings: { context_extensions: { provider: x } }'),
    );
    expect(paths(problems)).toEqual([
      expect.stringMatching(/typed_per_filter_config\["envoy\.filters\.http\.ext_authz"\]: oneof override: only one of disabled, check_settings may be set/),
    ]);
  });

  it('a required field left out', () => {
    const problems = validator.check(BOOTSTRAP_TYPE, mutated(' log_name: tokengate_feedback\n', '\n'));
    expect(paths(problems)).toEqual([
      `${HCM}.access_log[1].typed_config.common_config.log_name: missing: envoy.extensions.access_loggers.grpc.v3.CommonGrpcAccessLogConfig.log_name is required (min_len 1)`,
    ]);
  });

  it('a list where a message belongs, and a number where a string belongs', () => {
    const doc = parse(TEXT);
    hcm(doc)['stat_prefix'] = 42;
    doc['admin'].address = [doc['admin'].address];
    expect(validator.check(BOOTSTRAP_TYPE, doc).map((p) => p.path).sort()).toEqual(['admin.address', `${HCM}.stat_prefix`]);
  });

  it('the round trip catches what protobufjs would silently drop (snake_case Struct values)', () => {
    const problems = validator.roundTripObject('google.protobuf.Struct', { fields: { a: { string_value: 'x' } } });
    expect(paths(problems)).toEqual([expect.stringMatching(/^fields\.a\.string_value: dropped by the round trip/)]);
    expect(validator.roundTripObject('google.protobuf.Struct', { fields: { a: { stringValue: 'x' } } })).toEqual([]);
  });
});

describe('the demo bootstrap does what tokengate expects', () => {
  const doc = parse(TEXT);

  it('listens on 0.0.0.0:10000, admin on 0.0.0.0:9901', () => {
    expect(doc['static_resources'].listeners[0].address.socket_address).toEqual({ address: '0.0.0.0', port_value: 10000 });
    expect(doc['admin'].address.socket_address).toEqual({ address: '0.0.0.0', port_value: 9901 });
  });

  it('runs ext_authz (gRPC to tokengate, V3, 0.5s, fail closed) before the router, which is last', () => {
    const names = (hcm(doc)['http_filters'] as Obj[]).map((f) => f['name']);
    expect(names).toEqual(['envoy.filters.http.ext_authz', 'envoy.filters.http.router']);
    const authz = httpFilter(doc, 'envoy.filters.http.ext_authz')['typed_config'] as Obj;
    expect(authz['@type']).toBe('type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz');
    expect(authz['transport_api_version']).toBe('V3');
    expect(authz['grpc_service']).toEqual({ envoy_grpc: { cluster_name: 'tokengate' }, timeout: '0.5s' });
    expect(authz['failure_mode_allow']).toBe(false);
    expect(authz['http_service']).toBeUndefined();
  });

  it("does not send the client's own authorization or cookie to tokengate", () => {
    const authz = httpFilter(doc, 'envoy.filters.http.ext_authz')['typed_config'] as Obj;
    const disallowed = (authz['disallowed_headers'].patterns as Obj[]).map((p) => p['exact']);
    expect(disallowed).toEqual(expect.arrayContaining(['authorization', 'cookie']));
    // an allow list would have to leave them out too; there is none, so the deny list decides
    const allowed = ((authz['allowed_headers']?.patterns ?? []) as Obj[]).map((p) => p['exact']);
    expect(allowed).not.toContain('authorization');
    expect(allowed).not.toContain('cookie');
  });

  it('routes /a/ → upstream_a as demo-oauth, /b/ → upstream_b as demo-jwt, /public/ without a check', () => {
    const table = routes(doc).map((r) => {
      const per = r['typed_per_filter_config']?.['envoy.filters.http.ext_authz'] as Obj | undefined;
      expect(per?.['@type']).toBe('type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthzPerRoute');
      return {
        prefix: r['match'].prefix,
        cluster: r['route'].cluster,
        disabled: per?.['disabled'] ?? false,
        provider: per?.['check_settings']?.context_extensions?.provider,
      };
    });
    expect(table).toEqual([
      { prefix: '/public/', cluster: 'upstream_a', disabled: true, provider: undefined },
      { prefix: '/a/', cluster: 'upstream_a', disabled: false, provider: 'demo-oauth' },
      { prefix: '/b/', cluster: 'upstream_b', disabled: false, provider: 'demo-jwt' },
    ]);
  });

  it('sends 401s on requests that carried a tokengate token to tokengate over the gRPC access log', () => {
    const log = grpcAccessLog(doc);
    expect(log['typed_config']['@type']).toBe('type.googleapis.com/envoy.extensions.access_loggers.grpc.v3.HttpGrpcAccessLogConfig');
    const common = log['typed_config'].common_config as Obj;
    expect(common['log_name']).toBeTruthy();
    expect(common['transport_api_version']).toBe('V3');
    expect(common['grpc_service'].envoy_grpc.cluster_name).toBe('tokengate');
    const filters = log['filter'].and_filter.filters as Obj[];
    const status = filters.find((f) => f['status_code_filter'])!['status_code_filter'];
    expect(status.comparison.op).toBe('EQ');
    expect(status.comparison.value.default_value).toBe(401);
    const meta = filters.find((f) => f['metadata_filter'])!['metadata_filter'];
    expect(meta.matcher.filter).toBe('envoy.filters.http.ext_authz');
    expect(meta.matcher.path).toEqual([{ key: 'token_id' }]);
    expect(meta.match_if_key_not_found).toBe(false);
  });

  it('never logs the authorization header', () => {
    for (const log of hcm(doc)['access_log'] as Obj[]) {
      const body = JSON.stringify(log['typed_config']).toLowerCase();
      expect(body).not.toMatch(/authorization/);
    }
  });

  it('reaches tokengate over HTTP/2 with a gRPC health check on the Authorization service', () => {
    const tg = cluster(doc, 'tokengate');
    expect(tg['type']).toBe('STRICT_DNS');
    const opts = tg['typed_extension_protocol_options']['envoy.extensions.upstreams.http.v3.HttpProtocolOptions'];
    expect(opts['@type']).toBe('type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions');
    expect(opts.explicit_http_config.http2_protocol_options).toBeDefined();
    expect(tg['load_assignment'].endpoints[0].lb_endpoints[0].endpoint.address.socket_address).toEqual({
      address: 'tokengate',
      port_value: 9191,
    });
    expect(tg['health_checks']).toHaveLength(1);
    expect(tg['health_checks'][0].grpc_health_check).toEqual({ service_name: 'envoy.service.auth.v3.Authorization' });
  });
});
