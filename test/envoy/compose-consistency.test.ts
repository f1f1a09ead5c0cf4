// docker-compose.yml, envoy/envoy.yaml, the tokengate config compose mounts and the Dockerfile
// must agree with each other: a wrong host name or port only shows up at `docker compose up`
// otherwise, and there is no Docker engine in CI.
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfigFile } from '../../src/config/load.js';
import type { Config } from '../../src/config/types.js';
import {
  asArgv,
  composeEnv,
  composeMounts,
  composePorts,
  envoyEndpoints,
  envoyRoutes,
  hostPort,
  readDockerfile,
  resolveStage,
  readYaml,
  repoPath,
  type Obj,
} from '../support/demo-files.js';

const compose = readYaml('docker-compose.yml');
const services = compose['services'] as Record<string, Obj>;
const envoy = readYaml('envoy/envoy.yaml');
const dockerfile = readDockerfile();

const TOKENGATE_IMAGE_SERVICES = Object.entries(services).filter(([, s]) => s['build'] !== undefined);

/** The argv a compose service runs, with the Dockerfile's ENTRYPOINT/CMD for services built from it. */
function argv(service: Obj): string[] {
  const built = service['build'] !== undefined;
  const stage = built ? resolveStage(dockerfile, service['build'].target as string | undefined) : undefined;
  const entrypoint = service['entrypoint'] !== undefined ? asArgv(service['entrypoint']) : stage?.entrypoint ?? [];
  // Docker: overriding the entrypoint drops the image's CMD
  const command = service['command'] !== undefined ? asArgv(service['command']) : stage && service['entrypoint'] === undefined ? stage.cmd ?? [] : [];
  return [...entrypoint, ...command];
}

function flag(args: string[], name: string): string | undefined {
  const i = args.indexOf(name);
  return i === -1 ? undefined : args[i + 1];
}

function tokengateServiceName(): string {
  const names = TOKENGATE_IMAGE_SERVICES.filter(([, s]) => argv(s).join(' ').includes('dist/cli.js serve')).map(([n]) => n);
  expect(names).toHaveLength(1);
  return names[0]!;
}

/** The repository file that compose mounts where `tokengate serve --config` reads. */
function mountedConfigFile(serviceName: string): string {
  const svc = services[serviceName]!;
  const configPath = flag(argv(svc), '--config');
  expect(configPath, 'tokengate serve --config').toBeDefined();
  const mount = composeMounts(svc).find((m) => m.target === configPath);
  expect(mount, `a volume mounted at ${configPath}`).toBeDefined();
  return path.relative(repoPath('.'), path.resolve(repoPath('.'), mount!.source));
}

function tokengateConfig(): Config {
  const name = tokengateServiceName();
  return loadConfigFile(repoPath(mountedConfigFile(name)), composeEnv(services[name]!));
}

/** Ports a compose service listens on inside its container, from its env, command or config. */
function listeningPorts(name: string): number[] {
  const svc = services[name]!;
  if (name === tokengateServiceName()) {
    const cfg = tokengateConfig();
    return [cfg.listen.grpc, cfg.listen.admin].filter((a): a is string => !!a && !a.startsWith('unix:')).map((a) => hostPort(a).port);
  }
  const env = composeEnv(svc);
  if (env['PORT']) return [Number(env['PORT'])];
  const image = String(svc['image'] ?? '');
  if (image.startsWith('redis:')) return [Number(flag(argv(svc), '--port') ?? 6379)];
  if (image.startsWith('envoyproxy/envoy')) {
    return [
      ...(envoy['static_resources'].listeners as Obj[]).map((l) => Number(l['address'].socket_address.port_value)),
      Number(envoy['admin'].address.socket_address.port_value),
    ];
  }
  throw new Error(`cannot tell which port compose service ${name} listens on`);
}

describe('envoy.yaml ↔ docker-compose.yml', () => {
  it('every cluster endpoint is a compose service, on the port that service listens on', () => {
    const endpoints = envoyEndpoints(envoy);
    expect(endpoints.map((e) => `${e.cluster}→${e.host}:${e.port}`)).toEqual([
      'tokengate→tokengate:9191',
      'upstream_a→echo-a:8081',
      'upstream_b→echo-b:8081',
    ]);
    for (const e of endpoints) {
      expect(Object.keys(services), `cluster ${e.cluster}: host ${e.host}`).toContain(e.host);
      expect(listeningPorts(e.host), `cluster ${e.cluster}: ${e.host} listens on`).toContain(e.port);
    }
  });

  it('the tokengate cluster port is listen.grpc of the config compose mounts, bound beyond loopback', () => {
    const cfg = tokengateConfig();
    const tg = envoyEndpoints(envoy).find((e) => e.cluster === 'tokengate')!;
    const grpc = hostPort(cfg.listen.grpc);
    expect(grpc.port).toBe(tg.port);
    expect(grpc.host).toBe('0.0.0.0'); // Envoy runs in another container
    expect(tg.host).toBe(tokengateServiceName());
  });

  it('every provider named in context_extensions exists in that config', () => {
    const cfg = tokengateConfig();
    const key = cfg.defaults.providerKey;
    const named = envoyRoutes(envoy)
      .map((r) => r.contextExtensions[key])
      .filter((p): p is string => p !== undefined);
    expect(named.sort()).toEqual(['demo-jwt', 'demo-oauth']);
    for (const p of named) expect([...cfg.providers.keys()], `provider ${p}`).toContain(p);
    // and every checked route names one (unmatched requests would pass without a credential)
    for (const r of envoyRoutes(envoy).filter((x) => !x.authzDisabled)) expect(r.contextExtensions[key], r.prefix).toBeDefined();
  });

  it('Envoy reads the mounted envoy.yaml and publishes the listener and admin ports', () => {
    const svc = services['envoy']!;
    const configPath = flag(argv(svc), '-c') ?? flag(argv(svc), '--config-path') ?? '/etc/envoy/envoy.yaml';
    const mount = composeMounts(svc).find((m) => m.target === configPath);
    expect(path.normalize(mount?.source ?? '')).toBe(path.normalize('./envoy/envoy.yaml'));
    expect(mount!.readOnly).toBe(true);
    const published = composePorts(svc).map((p) => `${p.published}:${p.target}`);
    expect(published).toEqual(expect.arrayContaining(['10000:10000', '9901:9901']));
    for (const p of composePorts(svc)) expect(listeningPorts('envoy')).toContain(p.target);
  });
});

describe('the mounted tokengate config ↔ docker-compose.yml', () => {
  it('is examples/demo/tokengate.yaml, mounted read-only, and loads with the compose environment', () => {
    const name = tokengateServiceName();
    expect(mountedConfigFile(name)).toBe(path.normalize('examples/demo/tokengate.yaml'));
    expect(composeMounts(services[name]!).every((m) => m.readOnly)).toBe(true);
    const cfg = tokengateConfig();
    expect(cfg.store.type).toBe('redis');
    expect(cfg.store.encryptionKey?.length).toBe(32);
    expect(cfg.defaults).toMatchObject({ unmatched: 'allow', onTokenUnavailable: 'deny' });
  });

  it('publishes the admin port and sets demo-marked secrets', () => {
    const name = tokengateServiceName();
    const cfg = tokengateConfig();
    expect(cfg.listen.admin).toBeDefined();
    const admin = hostPort(cfg.listen.admin!);
    expect(admin.port).toBe(9192);
    expect(composePorts(services[name]!)).toContainEqual({ published: 9192, target: 9192 });
    const env = composeEnv(services[name]!);
    expect(env['TOKENGATE_ADMIN_TOKEN']).toMatch(/demo/i);
    expect(Buffer.from(env['TOKENGATE_ENCRYPTION_KEY']!, 'base64').toString()).toMatch(/demo/i);
    // the gRPC port is for Envoy only: not published on the host
    expect(composePorts(services[name]!).map((p) => p.target)).not.toContain(hostPort(cfg.listen.grpc).port);
  });

  it('demo-oauth fetches from the token-server service with the credentials that server accepts', () => {
    const cfg = tokengateConfig();
    const source = cfg.providers.get('demo-oauth')!.source;
    expect(source.type).toBe('client_credentials');
    if (source.type !== 'client_credentials') return;
    const url = new URL(source.tokenUrl ?? '');
    expect(url.pathname).toBe('/oauth2/token');
    expect(Object.keys(services)).toContain(url.hostname);
    expect(listeningPorts(url.hostname)).toContain(Number(url.port || 80));
    expect(source.allowPlainHttp).toBe(true);
    const serverEnv = composeEnv(services[url.hostname]!);
    expect(source.clientId).toBe(serverEnv['CLIENT_ID']);
    expect(source.clientSecret).toBe(serverEnv['CLIENT_SECRET']);
    expect(argv(services[url.hostname]!)).toEqual(['node', 'dist-demo/token-server-main.js']);
    expect(services[url.hostname]!['build'].target).toBe('demo');
  });

  it('the Redis URL points at the redis service', () => {
    const cfg = tokengateConfig();
    const r = hostPort(cfg.store.redis!.url!);
    expect(Object.keys(services)).toContain(r.host);
    expect(listeningPorts(r.host)).toContain(r.port);
  });
});

describe('docker-compose.yml on its own', () => {
  it('pins the Envoy image tag (and every other pulled image)', () => {
    expect(services['envoy']!['image']).toMatch(/^envoyproxy\/envoy(-distroless)?:v\d+\.\d+\.\d+$/);
    for (const [name, svc] of Object.entries(services)) {
      if (svc['build'] !== undefined) continue;
      const image = String(svc['image']);
      expect(image, name).not.toMatch(/:latest$|^[^:]+$/);
      expect(image, name).toMatch(/:v?\d+\.\d+\.\d+/);
    }
  });

  it('has the demo services, the demo programs built from this repository', () => {
    expect(Object.keys(services).sort()).toEqual(['echo-a', 'echo-b', 'envoy', 'redis', 'token-server', 'tokengate']);
    for (const [name, svc] of TOKENGATE_IMAGE_SERVICES) {
      expect(svc['build'].context ?? svc['build'], name).toBe('.');
      const script = argv(svc).find((a) => /^dist(-demo)?\//.test(a))!;
      const source = script.replace(/^dist-demo\//, 'demo/').replace(/^dist\//, 'src/').replace(/\.js$/, '.ts');
      expect(fs.existsSync(repoPath(source)), `${name} runs ${script}, built from ${source}`).toBe(true);
    }
    for (const echo of ['echo-a', 'echo-b']) {
      expect(argv(services[echo]!)).toEqual(['node', 'dist-demo/echo-upstream-main.js']);
      expect(services[echo]!['build'].target).toBe('demo');
      expect(composeEnv(services[echo]!)['PORT']).toBe('8081');
    }
  });

  it('depends_on conditions wait for services that have a health check', () => {
    for (const [name, svc] of Object.entries(services)) {
      const deps = svc['depends_on'];
      if (!deps || Array.isArray(deps)) continue;
      for (const [dep, spec] of Object.entries(deps as Record<string, Obj>)) {
        expect(Object.keys(services), `${name} depends on ${dep}`).toContain(dep);
        if (spec['condition'] === 'service_healthy') expect(services[dep]!['healthcheck'], `${dep} healthcheck`).toBeDefined();
      }
    }
    expect(services['envoy']!['depends_on'].tokengate.condition).toBe('service_healthy');
    expect(services['tokengate']!['depends_on'].redis.condition).toBe('service_healthy');
  });

  it('health checks probe what each service serves', () => {
    const cfg = tokengateConfig();
    const tgCheck = (services['tokengate']!['healthcheck'].test as string[]).join(' ');
    expect(tgCheck).toContain(`:${hostPort(cfg.listen.admin!).port}/readyz`);
    expect((services['token-server']!['healthcheck'].test as string[]).join(' ')).toContain(':8080/healthz');
  });
});

describe('Dockerfile', () => {
  it('is multi-stage on a pinned node:20 bookworm-slim image', () => {
    expect(dockerfile.from.length).toBeGreaterThanOrEqual(2);
    for (const image of dockerfile.from) expect(image).toMatch(/^node:20\.\d+\.\d+-bookworm-slim(@sha256:[0-9a-f]{64})?$/);
  });

  it('builds with dev dependencies and ships production dependencies only', () => {
    expect(dockerfile.runs.some((r) => /npm ci(?!.*--omit=dev)/.test(r))).toBe(true);
    expect(dockerfile.runs.some((r) => /npm run build/.test(r))).toBe(true);
    expect(dockerfile.runs.some((r) => /npm ci .*--omit=dev/.test(r))).toBe(true);
  });

  it('runs `node dist/cli.js serve --config /etc/tokengate/tokengate.yaml` as the node user', () => {
    expect(dockerfile.user).toBe('node');
    expect(dockerfile.entrypoint).toEqual(['node', 'dist/cli.js']);
    expect(dockerfile.cmd).toEqual(['serve', '--config', '/etc/tokengate/tokengate.yaml']);
    expect(dockerfile.expose.sort()).toEqual([9191, 9192]);
  });

  it('the production image (the default target) holds no demo code: only dist/ and proto/ from the build', () => {
    const runtime = resolveStage(dockerfile);
    expect(runtime.name).toBe('runtime');
    const fromBuild = runtime.copies.filter((c) => c.from !== undefined).flatMap((c) => c.sources);
    expect(fromBuild.sort()).toEqual(['/app/dist', '/app/proto']);
    // Nothing from the build context but the package manifests (the build stage compiles the rest).
    expect(runtime.copies.filter((c) => c.from === undefined).flatMap((c) => c.sources).sort()).toEqual(['package-lock.json', 'package.json']);
    // dist/ is compiled from src/ alone; the demo compiles to dist-demo/, which only the demo target copies.
    const build = JSON.parse(fs.readFileSync(repoPath('tsconfig.build.json'), 'utf8')) as { include: string[]; compilerOptions: { outDir: string } };
    expect(build.include).toEqual(['src']);
    expect(build.compilerOptions.outDir).toBe('dist');
    expect(fs.existsSync(repoPath('src/demo'))).toBe(false);
    const demo = resolveStage(dockerfile, 'demo');
    expect(demo.copies.filter((c) => c.from !== undefined).flatMap((c) => c.sources)).toEqual(['/app/dist-demo']);
  });

  it('.dockerignore keeps node_modules and dist out but not the sources', () => {
    const ignored = fs.readFileSync(repoPath('.dockerignore'), 'utf8').split(/\r?\n/).map((l) => l.trim());
    expect(ignored).toEqual(expect.arrayContaining(['node_modules', 'dist', '.git']));
    for (const needed of ['src', 'demo', 'proto', 'package.json', 'package-lock.json', 'tsconfig.json', 'tsconfig.build.json']) {
      expect(ignored).not.toContain(needed);
    }
  });
});
