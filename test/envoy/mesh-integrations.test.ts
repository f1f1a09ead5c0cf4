// examples/envoy-gateway and examples/istio: every manifest passes the schema it targets
// (Envoy Gateway's and Gateway API's CRDs from ../shared/fixtures, the kubernetes-models
// packages for Istio and core objects), and the pieces fit together: the policies point at
// tokengate's Service and port, and name providers tokengate's config defines.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Ajv } from 'ajv';
import { loadConfigFile } from '../../src/config/load.js';
import { parseDuration } from '../../src/config/duration.js';
import type { Config } from '../../src/config/types.js';
import { CrdValidator } from '../support/crd-validator.js';
import { readYamlDocuments, type Obj } from '../support/demo-files.js';
import { validateModel } from '../support/k8s-models.js';
import { sharedPath } from '../support/shared-fixtures.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tokengate-mesh-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const ENV = {
  TOKENGATE_ADMIN_TOKEN: 'admin-token-0123456789abcdef',
  TOKENGATE_ENCRYPTION_KEY: Buffer.alloc(32, 3).toString('base64'),
  DEMO_OAUTH_CLIENT_ID: 'client', DEMO_OAUTH_CLIENT_SECRET: 'secret',
  DEMO_JWT_SECRET: 'demo-jwt-secret-0123456789abcdef0123', DEMO_JWT_ISSUER: 'https://issuer.example',
};

function configFromConfigMap(docs: Obj[], name = 'tokengate-config'): Config {
  const cm = docs.find((d) => d['kind'] === 'ConfigMap' && d['metadata']?.name === name);
  expect(cm, `ConfigMap ${name}`).toBeDefined();
  const file = path.join(tmp, `${name}-${Math.random().toString(36).slice(2)}.yaml`);
  fs.writeFileSync(file, cm!['data']['tokengate.yaml']);
  return loadConfigFile(file, ENV);
}

const byKind = (docs: Obj[], kind: string) => docs.filter((d) => d['kind'] === kind);
const tokengateDocs = readYamlDocuments('examples/kubernetes/deployment.yaml') as Obj[];
const tokengateService = tokengateDocs.find((d) => d['kind'] === 'Service' && d['metadata'].name === 'tokengate')!;
const tokengateConfig = configFromConfigMap(tokengateDocs);

describe('Envoy Gateway: examples/envoy-gateway/security-policy.yaml', () => {
  const crds = new CrdValidator([
    sharedPath('fixtures/envoy-gateway/gateway.envoyproxy.io_securitypolicies.yaml'),
    sharedPath('fixtures/envoy-gateway/gatewayapi-crds.yaml'),
  ]);
  const docs = readYamlDocuments('examples/envoy-gateway/security-policy.yaml') as Obj[];
  const policies = byKind(docs, 'SecurityPolicy');

  it('every manifest passes its CRD schema (unknown fields refused)', () => {
    expect(docs.map((d) => d['kind'])).toEqual(['GatewayClass', 'Gateway', 'HTTPRoute', 'HTTPRoute', 'SecurityPolicy', 'SecurityPolicy']);
    for (const d of docs) expect(crds.validate(d), `${d['kind']}/${d['metadata'].name}`).toEqual([]);
  });

  it('the validator is not a rubber stamp: broken policies are refused', () => {
    const p = policies[0]!;
    const broken = (mutate: (spec: Obj) => void): Obj => {
      const copy = structuredClone(p);
      mutate(copy['spec']);
      return copy;
    };
    expect(crds.validate(broken((s) => { s['extAuth']['contextExtension'] = s['extAuth']['contextExtensions']; }))).not.toEqual([]);
    expect(crds.validate(broken((s) => { s['extAuth']['contextExtensions'][0]['type'] = 'Literal'; }))).not.toEqual([]);
    expect(crds.validate(broken((s) => { s['extAuth']['timeout'] = '0.5s'; }))).not.toEqual([]);
    expect(crds.validate(broken((s) => { s['extAuth']['statusOnError'] = 200; }))).not.toEqual([]);
    expect(crds.validate(broken((s) => { delete s['extAuth']['grpc']['backendRefs'][0]['name']; }))).not.toEqual([]);
  });

  it('the CEL rules the CRD enforces at admission hold (checked here by hand)', () => {
    for (const p of policies) {
      const ext = p['spec']['extAuth'] as Obj;
      // "one of grpc or http must be specified" / "only one of grpc or http"
      expect(!!ext['grpc'] !== !!ext['http']).toBe(true);
      // targetRefs: group gateway.networking.k8s.io, kind Gateway/HTTPRoute/…
      for (const ref of p['spec']['targetRefs'] as Obj[]) {
        expect(ref['group']).toBe('gateway.networking.k8s.io');
        expect(['Gateway', 'ListenerSet', 'HTTPRoute', 'GRPCRoute', 'TCPRoute']).toContain(ref['kind']);
      }
      // "Exactly one of value or valueRef must be set with correct type"
      for (const c of ext['contextExtensions'] as Obj[]) expect(c['type'] === 'Value' && typeof c['value'] === 'string' && c['valueRef'] === undefined).toBe(true);
    }
  });

  it('each policy targets an HTTPRoute of the file, on the Gateway of the file', () => {
    const routes = byKind(docs, 'HTTPRoute').map((r) => r['metadata'].name);
    const gateway = byKind(docs, 'Gateway')[0]!;
    expect(gateway['spec'].gatewayClassName).toBe(byKind(docs, 'GatewayClass')[0]!['metadata'].name);
    for (const p of policies) for (const ref of p['spec']['targetRefs'] as Obj[]) expect(routes).toContain(ref['name']);
    for (const r of byKind(docs, 'HTTPRoute')) expect(r['spec'].parentRefs).toEqual([{ name: gateway['metadata'].name }]);
    // One policy per route: a second policy on the same route would be ignored by Envoy Gateway.
    const targets = policies.flatMap((p) => (p['spec']['targetRefs'] as Obj[]).map((r) => r['name']));
    expect(new Set(targets).size).toBe(targets.length);
  });

  it('extAuth.grpc points at tokengate’s Service and gRPC port (examples/kubernetes/deployment.yaml)', () => {
    const grpcPort = (tokengateService['spec'].ports as Obj[]).find((p) => p['name'] === 'grpc')!;
    for (const p of policies) {
      expect(p['spec'].extAuth.grpc.backendRefs).toEqual([{ name: tokengateService['metadata'].name, port: grpcPort['port'] }]);
    }
  });

  it('the provider travels as the context extension tokengate reads, and names a configured provider', () => {
    for (const p of policies) {
      const ext = p['spec'].extAuth as Obj;
      const provider = (ext['contextExtensions'] as Obj[]).find((c) => c['name'] === tokengateConfig.defaults.providerKey);
      expect(provider, `${p['metadata'].name}: contextExtensions[name=${tokengateConfig.defaults.providerKey}]`).toBeDefined();
      expect([...tokengateConfig.providers.keys()]).toContain(provider!['value']);
    }
  });

  it('fails closed, with a timeout above every provider’s wait budget and a 503 when tokengate is unreachable', () => {
    for (const p of policies) {
      const ext = p['spec'].extAuth as Obj;
      expect(ext['failOpen']).toBe(false);
      expect(ext['statusOnError']).toBe(503);
      const timeout = parseDuration(String(ext['timeout']))!;
      for (const pc of tokengateConfig.providers.values()) expect(timeout).toBeGreaterThan(pc.refresh.waitBudget);
    }
  });
});

/**
 * Istio's EnvoyExternalAuthorizationGrpcProvider, transcribed from istio/api
 * mesh/v1alpha1/config.proto (MeshConfig.ExtensionProvider): the kubernetes-models package
 * types IstioOperator's spec as free-form, so this is the part of MeshConfig we check by hand.
 */
const ISTIO_GRPC_PROVIDER = {
  type: 'object',
  additionalProperties: false,
  required: ['name', 'envoyExtAuthzGrpc'],
  properties: {
    name: { type: 'string', minLength: 1 },
    envoyExtAuthzGrpc: {
      type: 'object',
      additionalProperties: false,
      required: ['service', 'port'],
      properties: {
        service: { type: 'string', pattern: '^([a-z0-9-]+/)?[a-z0-9.-]+$' },
        port: { type: 'integer', minimum: 1, maximum: 65535 },
        timeout: { type: 'string', pattern: '^\\d+(\\.\\d+)?s$' },
        failOpen: { type: 'boolean' },
        statusOnError: { type: 'string', pattern: '^[1-5]\\d\\d$' },
        includeRequestBodyInCheck: {
          type: 'object',
          additionalProperties: false,
          properties: { maxRequestBytes: { type: 'integer', minimum: 0 }, allowPartialMessage: { type: 'boolean' }, packAsBytes: { type: 'boolean' } },
        },
      },
    },
  },
};

describe('Istio: examples/istio/mesh-config.yaml and egress-credentials.yaml', () => {
  const mesh = readYamlDocuments('examples/istio/mesh-config.yaml') as Obj[];
  const docs = readYamlDocuments('examples/istio/egress-credentials.yaml') as Obj[];
  const validateProvider = new Ajv({ strict: true, allErrors: true }).compile(ISTIO_GRPC_PROVIDER);
  const providers = mesh[0]!['spec'].meshConfig.extensionProviders as Obj[];
  const policy = byKind(docs, 'AuthorizationPolicy')[0]!;
  const config = configFromConfigMap(docs);

  it('every manifest passes its kubernetes-models schema', () => {
    for (const d of [...mesh, ...docs]) expect(validateModel(d), `${d['kind']}/${d['metadata'].name}`).toEqual([]);
    // Not a rubber stamp:
    expect(validateModel({ ...policy, spec: { ...policy['spec'], action: 'ASK_TOKENGATE' } })).not.toEqual([]);
  });

  it('meshConfig.extensionProviders[].envoyExtAuthzGrpc matches Istio’s MeshConfig fields', () => {
    for (const p of providers) expect(validateProvider(p), JSON.stringify(validateProvider.errors)).toBe(true);
    expect(validateProvider({ name: 'x', envoyExtAuthzGrpc: { service: 's', port: 1, failureModeAllow: true } })).toBe(false);
  });

  it('the provider points at tokengate’s Service in namespace tokengate, on its gRPC port, failing closed', () => {
    const grpc = providers.find((p) => p['name'] === 'tokengate')!['envoyExtAuthzGrpc'] as Obj;
    const grpcPort = (tokengateService['spec'].ports as Obj[]).find((p) => p['name'] === 'grpc')!;
    expect(grpc['service']).toBe(`${tokengateService['metadata'].name}.tokengate.svc.cluster.local`);
    expect(grpc['port']).toBe(grpcPort['port']);
    expect(grpc['failOpen']).toBe(false);
    expect(grpc['statusOnError']).toBe('503');
    for (const pc of config.providers.values()) expect(parseDuration(String(grpc['timeout']))!).toBeGreaterThan(pc.refresh.waitBudget);
  });

  it('the AuthorizationPolicy is CUSTOM with the registered provider, on the egress gateway', () => {
    expect(policy['spec'].action).toBe('CUSTOM');
    expect(providers.map((p) => p['name'])).toContain(policy['spec'].provider.name);
    const gateway = byKind(docs, 'Gateway')[0]!;
    expect(policy['spec'].selector.matchLabels).toEqual(gateway['spec'].selector);
  });

  it('every host the policy sends to tokengate has a tokengate route naming a configured provider', () => {
    const hosts = (policy['spec'].rules as Obj[]).flatMap((r) => (r['to'] as Obj[]).flatMap((t) => t['operation'].hosts as string[]));
    expect(hosts.length).toBeGreaterThan(0);
    for (const host of hosts) {
      const route = config.routes.find((r) => r.match.authority === host);
      expect(route, `a tokengate route for ${host}`).toBeDefined();
      expect(config.providers.has(route!.provider)).toBe(true);
    }
    // Nothing else reaches tokengate from this gateway, so a request no route names is refused.
    expect(config.defaults.unmatched).toBe('deny');
  });

  it('the egress path is complete: ServiceEntry, Gateway, VirtualService through the gateway, TLS origination', () => {
    const host = 'api.partner.example';
    expect(byKind(docs, 'ServiceEntry')[0]!['spec'].hosts).toContain(host);
    expect(byKind(docs, 'Gateway')[0]!['spec'].servers[0].hosts).toContain(host);
    const vs = byKind(docs, 'VirtualService')[0]!['spec'];
    expect(vs.gateways).toEqual(['mesh', byKind(docs, 'Gateway')[0]!['metadata'].name]);
    expect(vs.http[1].route[0].destination).toEqual({ host, port: { number: 443 } });
    const dr = byKind(docs, 'DestinationRule')[0]!['spec'];
    expect(dr.host).toBe(host);
    expect(dr.trafficPolicy.portLevelSettings[0].tls.mode).toBe('SIMPLE');
  });
});
