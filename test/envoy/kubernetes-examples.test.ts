// examples/kubernetes/*.yaml: parse every document and check what an operator relies on:
// probes on tokengate's admin port and paths, hardening, grace periods, and that the
// ConfigMap's tokengate config loads and defines the providers the Envoy routes name.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { loadConfigFile } from '../../src/config/load.js';
import type { Config } from '../../src/config/types.js';
import { envoyEndpoints, envoyRoutes, hostPort, readYaml, readYamlDocuments, repoPath, type Obj } from '../support/demo-files.js';
import { BOOTSTRAP_TYPE, EnvoyConfigValidator } from '../support/envoy-validator.js';

const ADMIN_PORT = 9192;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tokengate-k8s-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

function find(docs: Obj[], kind: string, name: string): Obj {
  const d = docs.find((x) => x['kind'] === kind && x['metadata']?.name === name);
  expect(d, `${kind}/${name}`).toBeDefined();
  return d!;
}

function isTokengate(c: Obj): boolean {
  return /(^|\/)tokengate(:|@)/.test(String(c['image']));
}

/** containerPort of a probe's `port` (a number or a named container port). */
function probePort(container: Obj, port: unknown): number {
  if (typeof port === 'number') return port;
  const named = ((container['ports'] ?? []) as Obj[]).find((p) => p['name'] === port);
  expect(named, `named port ${String(port)}`).toBeDefined();
  return Number(named!['containerPort']);
}

/** The container's env with secretKeyRef / configMapKeyRef resolved from the same file. */
function containerEnv(docs: Obj[], container: Obj): Record<string, string> {
  const env: Record<string, string> = {};
  for (const e of (container['env'] ?? []) as Obj[]) {
    if (e['value'] !== undefined) env[e['name']] = String(e['value']);
    const sref = e['valueFrom']?.secretKeyRef as Obj | undefined;
    if (sref) {
      const secret = find(docs, 'Secret', sref['name']);
      const value = secret['stringData']?.[sref['key']] ?? (secret['data']?.[sref['key']] !== undefined ? Buffer.from(secret['data'][sref['key']], 'base64').toString() : undefined);
      expect(value, `Secret ${sref['name']} key ${sref['key']}`).toBeDefined();
      env[e['name']] = value;
    }
    const cref = e['valueFrom']?.configMapKeyRef as Obj | undefined;
    if (cref) env[e['name']] = find(docs, 'ConfigMap', cref['name'])['data'][cref['key']];
  }
  return env;
}

/** The ConfigMap entry that the tokengate container reads with `--config`, and its text. */
function mountedConfig(docs: Obj[], deployment: Obj, container: Obj): { configMap: string; key: string; text: string } {
  const args = [...((container['command'] ?? []) as string[]), ...((container['args'] ?? []) as string[])];
  const configPath = args[args.indexOf('--config') + 1];
  expect(configPath, '--config').toBeDefined();
  const mount = ((container['volumeMounts'] ?? []) as Obj[]).find((m) => configPath!.startsWith(`${m['mountPath']}/`));
  expect(mount, `a volume mounted above ${configPath}`).toBeDefined();
  const volume = (deployment['spec'].template.spec.volumes as Obj[]).find((v) => v['name'] === mount!['name']);
  const cmName = volume?.['configMap']?.name as string;
  expect(cmName, `volume ${mount!['name']} is a ConfigMap`).toBeDefined();
  const key = path.posix.relative(mount!['mountPath'], configPath!);
  const text = find(docs, 'ConfigMap', cmName)['data']?.[key];
  expect(typeof text, `ConfigMap ${cmName} key ${key}`).toBe('string');
  return { configMap: cmName, key, text };
}

/** Loads the ConfigMap's config the way the pod would: the file, plus the container's env. */
function loadMounted(docs: Obj[], deployment: Obj, container: Obj): Config {
  const { configMap, key, text } = mountedConfig(docs, deployment, container);
  expect(() => YAML.parse(text)).not.toThrow();
  const file = path.join(tmp, `${configMap}-${key}`);
  fs.writeFileSync(file, text);
  return loadConfigFile(file, containerEnv(docs, container));
}

function preStopSleepSeconds(container: Obj): number {
  const cmd = ((container['lifecycle']?.preStop?.exec?.command ?? []) as string[]).join(' ');
  const m = /sleep (\d+)/.exec(cmd);
  return m ? Number(m[1]) : 0;
}

const demoEnvoyProviders = envoyRoutes(readYaml('envoy/envoy.yaml'))
  .map((r) => r.contextExtensions['provider'])
  .filter((p): p is string => !!p);

function checkPodHardening(deployment: Obj): void {
  const pod = deployment['spec'].template.spec as Obj;
  for (const c of pod['containers'] as Obj[]) {
    const sc = { ...(pod['securityContext'] ?? {}), ...(c['securityContext'] ?? {}) } as Obj;
    expect(sc['runAsNonRoot'], `${c['name']} runAsNonRoot`).toBe(true);
    expect(typeof sc['runAsUser'], `${c['name']} numeric runAsUser`).toBe('number');
    expect(sc['runAsUser']).toBeGreaterThan(0);
    expect(sc['readOnlyRootFilesystem'], `${c['name']} readOnlyRootFilesystem`).toBe(true);
    expect(sc['allowPrivilegeEscalation'], `${c['name']} allowPrivilegeEscalation`).toBe(false);
    expect(sc['capabilities']?.drop, `${c['name']} drops capabilities`).toContain('ALL');
    expect(c['resources']?.requests?.cpu, `${c['name']} cpu request`).toBeDefined();
    expect(c['resources']?.requests?.memory, `${c['name']} memory request`).toBeDefined();
    expect(c['resources']?.limits?.memory, `${c['name']} memory limit`).toBeDefined();
    expect(c['readinessProbe'], `${c['name']} readinessProbe`).toBeDefined();
    expect(c['livenessProbe'], `${c['name']} livenessProbe`).toBeDefined();
    expect(String(c['image']), `${c['name']} image tag`).toMatch(/:v?\d+\.\d+\.\d+/);
  }
}

function checkTokengateContainer(docs: Obj[], deployment: Obj, container: Obj): Config {
  expect(container['livenessProbe'].httpGet.path).toBe('/healthz');
  expect(probePort(container, container['livenessProbe'].httpGet.port)).toBe(ADMIN_PORT);
  expect(container['readinessProbe'].httpGet.path).toBe('/readyz');
  expect(probePort(container, container['readinessProbe'].httpGet.port)).toBe(ADMIN_PORT);
  const cfg = loadMounted(docs, deployment, container);
  // the kubelet probes the pod IP: admin must listen beyond loopback, on the probed port
  expect(cfg.listen.admin, 'listen.admin').toBeDefined();
  const admin = hostPort(cfg.listen.admin!);
  expect(admin.port).toBe(ADMIN_PORT);
  expect(admin.host).toBe('0.0.0.0');
  // Kubernetes must not SIGKILL a tokengate that is still draining
  const grace = Number(deployment['spec'].template.spec.terminationGracePeriodSeconds);
  expect(grace * 1000).toBeGreaterThan(preStopSleepSeconds(container) * 1000 + cfg.shutdown.deadline);
  return cfg;
}

describe('examples/kubernetes/deployment.yaml (shared service)', () => {
  const docs = readYamlDocuments('examples/kubernetes/deployment.yaml');
  const deployment = find(docs, 'Deployment', 'tokengate');
  const container = (deployment['spec'].template.spec.containers as Obj[]).find(isTokengate)!;

  it('parses into the expected objects', () => {
    expect(docs.map((d) => `${d['kind']}/${d['metadata'].name}`).sort()).toEqual([
      'ConfigMap/tokengate-config',
      'Deployment/tokengate',
      'Deployment/tokengate-redis',
      'PodDisruptionBudget/tokengate',
      'Secret/tokengate-secrets',
      'Service/tokengate',
      'Service/tokengate-redis',
    ]);
    expect(deployment['spec'].replicas).toBe(2);
    expect(container).toBeDefined();
  });

  it('probes /healthz and /readyz on the admin port; the grace period covers the shutdown deadline', () => {
    checkTokengateContainer(docs, deployment, container);
  });

  it('the ConfigMap config loads with the Secret and defines the providers the Envoy routes name', () => {
    const cfg = loadMounted(docs, deployment, container);
    expect(demoEnvoyProviders.length).toBeGreaterThan(0);
    for (const p of demoEnvoyProviders) expect([...cfg.providers.keys()]).toContain(p);
    expect(cfg.store.type).toBe('redis');
    expect(cfg.store.encryptionKey?.length).toBe(32);
  });

  it('the Service exposes gRPC headless to the pods, and the Redis URL names the Redis Service', () => {
    const cfg = loadMounted(docs, deployment, container);
    const svc = find(docs, 'Service', 'tokengate');
    expect(svc['spec'].clusterIP).toBe('None');
    expect(svc['spec'].selector).toEqual(deployment['spec'].selector.matchLabels);
    const grpc = (svc['spec'].ports as Obj[]).find((p) => p['name'] === 'grpc')!;
    expect(grpc['port']).toBe(hostPort(cfg.listen.grpc).port);
    expect(probePort(container, grpc['targetPort'])).toBe(hostPort(cfg.listen.grpc).port);
    const redis = hostPort(cfg.store.redis!.url!);
    const redisSvc = find(docs, 'Service', redis.host);
    expect((redisSvc['spec'].ports as Obj[]).map((p) => p['port'])).toContain(redis.port);
    expect(redisSvc['spec'].selector).toEqual(find(docs, 'Deployment', 'tokengate-redis')['spec'].selector.matchLabels);
  });

  it('every container runs non-root on a read-only root filesystem, with resources and probes', () => {
    checkPodHardening(deployment);
    checkPodHardening(find(docs, 'Deployment', 'tokengate-redis'));
  });
});

describe('examples/kubernetes/sidecar.yaml (tokengate next to Envoy in one pod)', () => {
  const docs = readYamlDocuments('examples/kubernetes/sidecar.yaml');
  const deployment = find(docs, 'Deployment', 'api-gateway');
  const containers = deployment['spec'].template.spec.containers as Obj[];
  const tokengate = containers.find(isTokengate)!;
  const envoyContainer = containers.find((c) => String(c['image']).startsWith('envoyproxy/envoy'))!;
  const envoyConfigMap = (deployment['spec'].template.spec.volumes as Obj[]).find(
    (v) => v['name'] === (envoyContainer['volumeMounts'] as Obj[]).find((m) => m['mountPath'] === '/etc/envoy')!['name'],
  )!['configMap'].name as string;
  const envoyBootstrap = YAML.parse(find(docs, 'ConfigMap', envoyConfigMap)['data']['envoy.yaml']) as Obj;

  it('runs Envoy and tokengate in one pod', () => {
    expect(tokengate).toBeDefined();
    expect(envoyContainer).toBeDefined();
    expect(String(envoyContainer['image'])).toMatch(/^envoyproxy\/envoy:v\d+\.\d+\.\d+$/);
  });

  it('probes /healthz and /readyz on the admin port; the grace period covers the shutdown deadline', () => {
    checkTokengateContainer(docs, deployment, tokengate);
  });

  it('tokengate listens for gRPC on loopback, where the Envoy bootstrap looks for it', () => {
    const cfg = loadMounted(docs, deployment, tokengate);
    const grpc = hostPort(cfg.listen.grpc);
    expect(grpc.host).toBe('127.0.0.1');
    const tg = envoyEndpoints(envoyBootstrap).find((e) => e.cluster === 'tokengate')!;
    expect(tg).toEqual({ cluster: 'tokengate', host: '127.0.0.1', port: grpc.port });
    // not exposed as a container port either
    expect(((tokengate['ports'] ?? []) as Obj[]).map((p) => p['containerPort'])).not.toContain(grpc.port);
  });

  it('the ConfigMap config defines every provider the Envoy routes name (sidecar and demo)', () => {
    const cfg = loadMounted(docs, deployment, tokengate);
    const named = envoyRoutes(envoyBootstrap)
      .map((r) => r.contextExtensions['provider'])
      .filter((p): p is string => !!p);
    expect(named.sort()).toEqual(['demo-jwt', 'demo-oauth']);
    for (const p of [...named, ...demoEnvoyProviders]) expect([...cfg.providers.keys()]).toContain(p);
  });

  it("the sidecar's Envoy bootstrap validates against Envoy's protos", () => {
    const validator = new EnvoyConfigValidator();
    expect(validator.validate(BOOTSTRAP_TYPE, envoyBootstrap).map((p) => `${p.path}: ${p.problem}`)).toEqual([]);
  });

  it('Envoy drains before tokengate stops; the grace period covers both', () => {
    const grace = Number(deployment['spec'].template.spec.terminationGracePeriodSeconds);
    const envoyPreStop = (envoyContainer['lifecycle'].preStop.exec.command as string[]).join(' ');
    expect(envoyPreStop).toContain('drain_listeners');
    expect(preStopSleepSeconds(tokengate)).toBeGreaterThan(preStopSleepSeconds(envoyContainer));
    expect(grace).toBeGreaterThan(preStopSleepSeconds(envoyContainer));
  });

  it('every container runs non-root on a read-only root filesystem, with resources and probes', () => {
    checkPodHardening(deployment);
  });
});

describe('examples/kubernetes/README.md', () => {
  it('explains both layouts', () => {
    const text = fs.readFileSync(repoPath('examples/kubernetes/README.md'), 'utf8');
    for (const needle of ['deployment.yaml', 'sidecar.yaml', '/healthz', '/readyz', '9192', 'terminationGracePeriodSeconds']) {
      expect(text).toContain(needle);
    }
  });
});
