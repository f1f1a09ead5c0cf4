// Readers for the demo's deployment files (docker-compose.yml, envoy/envoy.yaml, Dockerfile),
// shared by the tests under test/envoy/.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import YAML from 'yaml';

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

export type Obj = Record<string, any>;

export function repoPath(rel: string): string {
  return path.join(REPO_ROOT, rel);
}

export function readYaml(rel: string): Obj {
  // merge: compose files share settings through `<<: *anchor`
  return YAML.parse(fs.readFileSync(repoPath(rel), 'utf8'), { merge: true }) as Obj;
}

export function readYamlDocuments(rel: string): Obj[] {
  return YAML.parseAllDocuments(fs.readFileSync(repoPath(rel), 'utf8'), { merge: true })
    .map((d) => {
      if (d.errors.length > 0) throw new Error(`${rel}: ${d.errors.map((e) => e.message).join('; ')}`);
      return d.toJS() as Obj | null;
    })
    .filter((d): d is Obj => d !== null);
}

// --- envoy.yaml -------------------------------------------------------------------------------

export interface EnvoyEndpoint {
  cluster: string;
  host: string;
  port: number;
}

export function envoyEndpoints(bootstrap: Obj): EnvoyEndpoint[] {
  const out: EnvoyEndpoint[] = [];
  for (const c of (bootstrap['static_resources']?.clusters ?? []) as Obj[]) {
    for (const group of (c['load_assignment']?.endpoints ?? []) as Obj[]) {
      for (const lb of (group['lb_endpoints'] ?? []) as Obj[]) {
        const sa = lb['endpoint']?.address?.socket_address as Obj | undefined;
        if (sa) out.push({ cluster: c['name'], host: sa['address'], port: Number(sa['port_value']) });
      }
    }
  }
  return out;
}

export interface EnvoyRoute {
  listenerPort: number;
  domains: string[];
  prefix: string;
  cluster: string;
  /** ext_authz switched off for this route. */
  authzDisabled: boolean;
  contextExtensions: Record<string, string>;
}

const EXT_AUTHZ = 'envoy.filters.http.ext_authz';

function hcmConfigs(bootstrap: Obj): { port: number; hcm: Obj }[] {
  const out: { port: number; hcm: Obj }[] = [];
  for (const l of (bootstrap['static_resources']?.listeners ?? []) as Obj[]) {
    for (const chain of (l['filter_chains'] ?? []) as Obj[]) {
      for (const f of (chain['filters'] ?? []) as Obj[]) {
        if (f['name'] === 'envoy.filters.network.http_connection_manager') {
          out.push({ port: Number(l['address'].socket_address.port_value), hcm: f['typed_config'] });
        }
      }
    }
  }
  return out;
}

/** Every route with its effective ext_authz settings (virtual host → route, as Envoy merges them). */
export function envoyRoutes(bootstrap: Obj): EnvoyRoute[] {
  const out: EnvoyRoute[] = [];
  for (const { port, hcm } of hcmConfigs(bootstrap)) {
    for (const vh of (hcm['route_config']?.virtual_hosts ?? []) as Obj[]) {
      const vhAuthz = vh['typed_per_filter_config']?.[EXT_AUTHZ] as Obj | undefined;
      for (const r of (vh['routes'] ?? []) as Obj[]) {
        const rAuthz = r['typed_per_filter_config']?.[EXT_AUTHZ] as Obj | undefined;
        out.push({
          listenerPort: port,
          domains: vh['domains'],
          prefix: r['match']?.prefix ?? r['match']?.path,
          cluster: r['route']?.cluster,
          authzDisabled: (rAuthz?.['disabled'] ?? vhAuthz?.['disabled'] ?? false) === true,
          contextExtensions: {
            ...(vhAuthz?.['check_settings']?.context_extensions ?? {}),
            ...(rAuthz?.['check_settings']?.context_extensions ?? {}),
          },
        });
      }
    }
  }
  return out;
}

// --- docker-compose.yml -----------------------------------------------------------------------

export function composeEnv(service: Obj): Record<string, string> {
  const env = service['environment'];
  if (!env) return {};
  if (Array.isArray(env)) {
    return Object.fromEntries(
      env.map((line: string) => {
        const i = line.indexOf('=');
        return i === -1 ? [line, ''] : [line.slice(0, i), line.slice(i + 1)];
      }),
    );
  }
  return Object.fromEntries(Object.entries(env as Obj).map(([k, v]) => [k, v === null ? '' : String(v)]));
}

export interface PortMapping {
  published?: number;
  target: number;
}

export function composePorts(service: Obj): PortMapping[] {
  return ((service['ports'] ?? []) as unknown[]).map((p) => {
    if (typeof p === 'object' && p !== null) {
      const o = p as Obj;
      return { target: Number(o['target']), ...(o['published'] !== undefined ? { published: Number(o['published']) } : {}) };
    }
    const parts = String(p).split('/')[0]!.split(':');
    const target = Number(parts[parts.length - 1]);
    const published = parts.length > 1 ? Number(parts[parts.length - 2]) : undefined;
    return { target, ...(published !== undefined ? { published } : {}) };
  });
}

/** `host → container` bind mounts (short syntax). */
export function composeMounts(service: Obj): { source: string; target: string; readOnly: boolean }[] {
  return ((service['volumes'] ?? []) as unknown[]).map((v) => {
    if (typeof v === 'object' && v !== null) {
      const o = v as Obj;
      return { source: String(o['source']), target: String(o['target']), readOnly: o['read_only'] === true };
    }
    const [source, target, mode] = String(v).split(':');
    return { source: source!, target: target!, readOnly: (mode ?? '').split(',').includes('ro') };
  });
}

export function asArgv(v: unknown): string[] {
  if (v === undefined || v === null) return [];
  if (Array.isArray(v)) return v.map(String);
  return String(v).split(/\s+/).filter(Boolean);
}

// --- Dockerfile -------------------------------------------------------------------------------

export interface DockerStage {
  name: string | undefined;
  /** What the stage starts from: an image (ARG defaults substituted) or an earlier stage's name. */
  base: string;
  entrypoint: string[] | undefined;
  cmd: string[] | undefined;
  user: string | undefined;
  expose: number[];
  runs: string[];
  /** COPY instructions: `from` is the stage (or undefined for the build context). */
  copies: { from: string | undefined; sources: string[]; dest: string }[];
}

export interface DockerfileInfo {
  args: Record<string, string>;
  /** Every external `FROM` image (stage names excluded), ARG defaults substituted. */
  from: string[];
  stages: DockerStage[];
  /** The last stage, what `docker build .` produces, with ENTRYPOINT/CMD/USER inherited from its bases. */
  entrypoint: string[];
  cmd: string[];
  user: string | undefined;
  expose: number[];
  runs: string[];
}

/** A stage with what it inherits from the stages it is built on. */
export function resolveStage(info: DockerfileInfo, name?: string): DockerStage & { chain: DockerStage[] } {
  const byName = new Map(info.stages.filter((s) => s.name).map((s) => [s.name!, s]));
  let stage = name === undefined ? info.stages[info.stages.length - 1] : byName.get(name);
  if (!stage) throw new Error(`Dockerfile has no stage ${name}`);
  const chain: DockerStage[] = [];
  for (let s: DockerStage | undefined = stage; s; s = byName.get(s.base)) chain.unshift(s);
  const pick = <K extends 'entrypoint' | 'cmd' | 'user'>(k: K): DockerStage[K] => {
    for (let i = chain.length - 1; i >= 0; i--) if (chain[i]![k] !== undefined) return chain[i]![k];
    return undefined as DockerStage[K];
  };
  return {
    ...stage,
    entrypoint: pick('entrypoint'),
    cmd: pick('cmd'),
    user: pick('user'),
    expose: chain.flatMap((s) => s.expose),
    runs: chain.flatMap((s) => s.runs),
    copies: chain.flatMap((s) => s.copies),
    chain,
  };
}

export function readDockerfile(rel = 'Dockerfile'): DockerfileInfo {
  const text = fs.readFileSync(repoPath(rel), 'utf8').replace(/\\\r?\n/g, ' ');
  const info: DockerfileInfo = { args: {}, from: [], stages: [], entrypoint: [], cmd: [], user: undefined, expose: [], runs: [] };
  const expand = (s: string): string => s.replace(/\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?/g, (_m, n: string) => info.args[n] ?? '');
  let stage: DockerStage | undefined;
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const [instr, ...rest] = line.split(/\s+/);
    const body = rest.join(' ');
    const op = instr!.toUpperCase();
    if (op === 'ARG' && !stage) {
      const [k, v] = body.split('=');
      if (v !== undefined) info.args[k!] = v;
      continue;
    }
    if (op === 'FROM') {
      const parts = body.split(/\s+/);
      const base = expand(parts[0]!);
      const as = parts.findIndex((p) => p.toUpperCase() === 'AS');
      stage = { name: as >= 0 ? parts[as + 1] : undefined, base, entrypoint: undefined, cmd: undefined, user: undefined, expose: [], runs: [], copies: [] };
      if (!info.stages.some((s) => s.name === base)) info.from.push(base);
      info.stages.push(stage);
      continue;
    }
    if (!stage) continue;
    switch (op) {
      case 'ENTRYPOINT':
        stage.entrypoint = JSON.parse(body) as string[];
        break;
      case 'CMD':
        stage.cmd = JSON.parse(body) as string[];
        break;
      case 'USER':
        stage.user = body;
        break;
      case 'EXPOSE':
        stage.expose.push(...body.split(/\s+/).map((p) => Number(p.split('/')[0])));
        break;
      case 'RUN':
        stage.runs.push(body);
        info.runs.push(body);
        break;
      case 'COPY': {
        const words = body.split(/\s+/);
        const fromFlag = words.find((w) => w.startsWith('--from='));
        const paths = words.filter((w) => !w.startsWith('--'));
        stage.copies.push({ from: fromFlag?.slice('--from='.length), sources: paths.slice(0, -1), dest: paths[paths.length - 1]! });
        break;
      }
    }
  }
  const last = resolveStage(info);
  info.entrypoint = last.entrypoint ?? [];
  info.cmd = last.cmd ?? [];
  info.user = last.user;
  info.expose = last.expose;
  return info;
}

/** host:port of a `host:port` listen address or a URL. */
export function hostPort(address: string): { host: string; port: number } {
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(address)) {
    const u = new URL(address);
    const port = u.port ? Number(u.port) : ({ 'http:': 80, 'https:': 443, 'redis:': 6379, 'rediss:': 6379 } as Record<string, number>)[u.protocol];
    return { host: u.hostname, port: port ?? NaN };
  }
  const i = address.lastIndexOf(':');
  return { host: address.slice(0, i).replace(/^\[|\]$/g, ''), port: Number(address.slice(i + 1)) };
}
