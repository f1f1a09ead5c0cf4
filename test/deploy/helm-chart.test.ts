// deploy/helm/tokengate: rendered (by test/support/helm-lite.ts: no helm binary is packaged
// here) with its default values and with the options operators change, every manifest passes
// the kubernetes-models schema, and the rendered config is one tokengate and its JSON Schema accept.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { parseDuration } from '../../src/config/duration.js';
import { loadConfigFile } from '../../src/config/load.js';
import { judge } from '../support/config-schema.js';
import { repoPath } from '../support/demo-files.js';
import { HelmLite } from '../support/helm-lite.js';
import { validateModel } from '../support/k8s-models.js';

type Obj = Record<string, any>;
const chart = new HelmLite(repoPath('deploy/helm/tokengate'));
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tokengate-helm-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** What the operator's Secret holds (envFrom makes each key an environment variable). */
const SECRET_ENV = {
  TOKENGATE_ADMIN_TOKEN: 'admin-token-0123456789abcdef',
  TOKENGATE_ENCRYPTION_KEY: Buffer.alloc(32, 9).toString('base64'),
  PARTNER_CLIENT_SECRET: 'partner-secret',
};

const one = (docs: Obj[], kind: string): Obj => {
  const hits = docs.filter((d) => d['kind'] === kind);
  expect(hits, kind).toHaveLength(1);
  return hits[0]!;
};

function renderedConfig(docs: Obj[]): string {
  return one(docs, 'ConfigMap')['data']['tokengate.yaml'] as string;
}

function loadRendered(docs: Obj[], env: Record<string, string> = SECRET_ENV) {
  const file = path.join(tmp, `config-${Math.random().toString(36).slice(2)}.yaml`);
  fs.writeFileSync(file, renderedConfig(docs));
  return loadConfigFile(file, env);
}

const WITH_PROVIDER = {
  config: {
    defaults: { unmatched: 'deny' },
    providers: {
      partner: { source: { type: 'client_credentials', tokenUrl: 'https://idp.partner.example/token', clientId: 'tokengate', clientSecret: '${env:PARTNER_CLIENT_SECRET}' } },
    },
    routes: [{ match: { authority: 'api.partner.example' }, provider: 'partner' }],
  },
};

describe('helm chart, default values', () => {
  const docs = chart.manifests();
  const deployment = one(docs, 'Deployment');
  const container = deployment['spec'].template.spec.containers[0] as Obj;

  it('renders a ConfigMap, a Deployment, a headless Service and a PodDisruptionBudget, each valid for its schema', () => {
    expect(docs.map((d) => d['kind']).sort()).toEqual(['ConfigMap', 'Deployment', 'PodDisruptionBudget', 'Service']);
    for (const d of docs) expect(validateModel(d), `${d['kind']}/${d['metadata'].name}`).toEqual([]);
    expect(one(docs, 'Service')['spec'].clusterIP).toBe('None');
  });

  it('rendering is deterministic', () => {
    expect(chart.render()).toEqual(chart.render());
  });

  it('the config loads in tokengate and passes the JSON Schema (memory store without redis.url)', () => {
    const config = loadRendered(docs);
    expect(config.store.type).toBe('memory');
    expect(judge(renderedConfig(docs), SECRET_ENV)).toEqual({ validator: [], schema: [] });
  });

  it('secrets come from the named Secret only: envFrom, no Secret rendered, no literal in the ConfigMap', () => {
    expect(container['envFrom']).toEqual([{ secretRef: { name: 'tokengate-secrets' } }]);
    expect(docs.some((d) => d['kind'] === 'Secret')).toBe(false);
    expect(renderedConfig(docs)).toContain('token: ${env:TOKENGATE_ADMIN_TOKEN}');
    for (const v of Object.values(SECRET_ENV)) expect(JSON.stringify(docs)).not.toContain(v);
  });

  it('probes: liveness /healthz and readiness /readyz on the admin port the config listens on', () => {
    const config = loadRendered(docs);
    const ports = Object.fromEntries((container['ports'] as Obj[]).map((p) => [p['name'], p['containerPort']]));
    expect(config.listen.admin).toBe(`0.0.0.0:${ports['admin']}`);
    expect(config.listen.grpc).toBe(`0.0.0.0:${ports['grpc']}`);
    expect(container['livenessProbe'].httpGet).toEqual({ path: '/healthz', port: 'admin' });
    expect(container['readinessProbe'].httpGet).toEqual({ path: '/readyz', port: 'admin' });
    const svc = one(docs, 'Service')['spec'];
    expect(svc.ports.map((p: Obj) => [p['name'], p['port'], p['targetPort']])).toEqual([['grpc', ports['grpc'], 'grpc'], ['admin', ports['admin'], 'admin']]);
  });

  it('the pod outlives preStop plus tokengate’s shutdown deadline', () => {
    const config = loadRendered(docs);
    const preStop = Number(container['lifecycle'].preStop.exec.command[1]);
    expect(deployment['spec'].template.spec.terminationGracePeriodSeconds * 1000).toBeGreaterThan(preStop * 1000 + config.shutdown.deadline);
  });

  it('selectors match the pod labels (Service, Deployment, PDB)', () => {
    const labels = deployment['spec'].template.metadata.labels as Obj;
    for (const sel of [deployment['spec'].selector.matchLabels, one(docs, 'Service')['spec'].selector, one(docs, 'PodDisruptionBudget')['spec'].selector.matchLabels]) {
      for (const [k, v] of Object.entries(sel as Obj)) expect(labels[k]).toBe(v);
    }
  });

  it('hardened like examples/kubernetes: non-root, read-only root, no capabilities, no service account token', () => {
    const pod = deployment['spec'].template.spec;
    expect(pod.automountServiceAccountToken).toBe(false);
    expect(pod.securityContext.runAsNonRoot).toBe(true);
    expect(container['securityContext']).toEqual({ allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } });
    expect(container['image']).toBe('tokengate:0.1.0');
  });
});

describe('helm chart, operator options', () => {
  it('redis.url: a redis store with the encryption key and password from the Secret', () => {
    const docs = chart.manifests({ redis: { url: 'redis://redis-master.redis:6379/0' } });
    for (const d of docs) expect(validateModel(d)).toEqual([]);
    const config = loadRendered(docs);
    expect(config.store.type).toBe('redis');
    expect(config.store.redis?.url).toBe('redis://redis-master.redis:6379/0');
    expect(config.store.encryptionKey?.length).toBe(32);
    expect(config.store.redis?.password).toBeUndefined(); // not in the Secret: absent
    expect(loadRendered(docs, { ...SECRET_ENV, TOKENGATE_REDIS_PASSWORD: 'pw' }).store.redis?.password).toBe('pw');
    expect(judge(renderedConfig(docs), SECRET_ENV)).toEqual({ validator: [], schema: [] });
    // Without the key in the Secret tokengate refuses to start rather than store plain tokens.
    const { TOKENGATE_ENCRYPTION_KEY: _dropped, ...withoutKey } = SECRET_ENV;
    expect(() => loadRendered(docs, withoutKey)).toThrow(/encryptionKey/);
  });

  it('config: providers and routes land in tokengate.yaml; a change rolls the pods', () => {
    const plain = chart.manifests();
    const docs = chart.manifests(WITH_PROVIDER);
    const config = loadRendered(docs);
    expect([...config.providers.keys()]).toEqual(['partner']);
    expect(config.routes).toHaveLength(1);
    expect(config.defaults.unmatched).toBe('deny');
    expect(judge(renderedConfig(docs), SECRET_ENV)).toEqual({ validator: [], schema: [] });
    const checksum = (d: Obj[]) => one(d, 'Deployment')['spec'].template.metadata.annotations['checksum/config'];
    expect(checksum(docs)).toMatch(/^[0-9a-f]{64}$/);
    expect(checksum(docs)).not.toBe(checksum(plain));
  });

  it('podDisruptionBudget.enabled: false drops the PDB; existingSecret, image, replicas, extraEnv are honoured', () => {
    const docs = chart.manifests({
      podDisruptionBudget: { enabled: false }, existingSecret: 'my-secrets', image: { repository: 'registry.example/tokengate', tag: '1.2.3' },
      replicaCount: 3, extraEnv: [{ name: 'OTEL_SERVICE_NAME', value: 'tokengate' }], shutdown: { deadline: '20s' },
    });
    for (const d of docs) expect(validateModel(d)).toEqual([]);
    expect(docs.some((d) => d['kind'] === 'PodDisruptionBudget')).toBe(false);
    const dep = one(docs, 'Deployment')['spec'];
    const c = dep.template.spec.containers[0] as Obj;
    expect(c['envFrom']).toEqual([{ secretRef: { name: 'my-secrets' } }]);
    expect(c['image']).toBe('registry.example/tokengate:1.2.3');
    expect(dep.replicas).toBe(3);
    expect(c['env']).toContainEqual({ name: 'OTEL_SERVICE_NAME', value: 'tokengate' });
    expect(loadRendered(docs).shutdown.deadline).toBe(parseDuration('20s'));
  });

  it('an empty existingSecret is refused at render time', () => {
    expect(() => chart.manifests({ existingSecret: '' })).toThrow(/existingSecret/);
  });

  it('values.yaml documents every top-level value the templates use', () => {
    const values = YAML.parse(fs.readFileSync(repoPath('deploy/helm/tokengate/values.yaml'), 'utf8')) as Obj;
    const used = new Set<string>();
    for (const f of fs.readdirSync(repoPath('deploy/helm/tokengate/templates'))) {
      for (const m of fs.readFileSync(repoPath(`deploy/helm/tokengate/templates/${f}`), 'utf8').matchAll(/\.Values\.([A-Za-z]+)/g)) used.add(m[1]!);
    }
    used.delete('fullnameOverride'); // optional, Helm convention
    expect([...used].filter((k) => !(k in values))).toEqual([]);
  });
});
