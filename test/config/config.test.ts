import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseDuration } from '../../src/config/duration.js';
import { ConfigError } from '../../src/config/errors.js';
import { loadConfigFile, parseConfig } from '../../src/config/load.js';
import { DEFAULT_LISTEN_LIMITS } from '../../src/config/schema.js';

function problems(yaml: string, env: Record<string, string> = {}): string[] {
  try {
    parseConfig(yaml, { env });
  } catch (err) {
    if (err instanceof ConfigError) return err.problems.map((p) => `${p.path}: ${p.problem}`);
    throw err;
  }
  return [];
}

const CC = 'type: client_credentials, tokenUrl: "https://idp.example/token", clientId: c, clientSecret: "${env:S}"';

describe('durations', () => {
  it.each([['250ms', 250], ['30s', 30_000], ['5m', 300_000], ['1h', 3_600_000], ['1d', 86_400_000], ['1m30s', 90_000], ['1.5s', 1500], ['0', 0]])('%s = %d ms', (text, ms) => {
    expect(parseDuration(text)).toBe(ms);
  });
  it.each(['', '5', 'ms', '5 m', '-1s', '1y', '1s2'])('rejects %j', (text) => {
    expect(parseDuration(text)).toBeUndefined();
  });
});

describe('config: defaults and shape', () => {
  it('fills the documented defaults', () => {
    const c = parseConfig(`providers: { p: { source: { ${CC} } } }`, { env: { S: 'x' } });
    expect(c.listen).toEqual({ grpc: '127.0.0.1:9191', admin: '127.0.0.1:9192', checkServer: 'http2', limits: DEFAULT_LISTEN_LIMITS });
    expect(c.listen.limits).toMatchObject({ maxConnections: 100, maxConcurrentStreams: 100, maxSessionMemoryMb: 2 });
    expect(c.store.type).toBe('memory');
    expect(c.defaults).toEqual({ unmatched: 'allow', onTokenUnavailable: 'deny', providerKey: 'provider' });
    const p = c.providers.get('p')!;
    expect(p.inject).toEqual({ header: 'authorization', format: 'Bearer {token}', removeHeaders: [], maxTokenBytes: 16_384 });
    expect(p.refresh).toEqual({ jitter: 0.1, waitBudget: 150 });
    expect(p.resilience).toMatchObject({ timeout: 5000, retries: 3, backoff: { base: 200, max: 5000 }, breaker: { window: 60_000, volumeThreshold: 5, errorThresholdPercentage: 50, resetTimeout: 30_000 }, serveExpiredFor: 0 });
    expect(p.purgeOnUpstreamStatus).toEqual([401]);
    expect(p.source).toMatchObject({ authMethod: 'client_secret_basic', defaultTtl: 3_600_000 });
    expect(Object.isFrozen(c) && Object.isFrozen(p) && Object.isFrozen(p.resilience.breaker)).toBe(true);
  });

  it('loads the shipped example', () => {
    const c = loadConfigFile('examples/tokengate.yaml', {});
    expect([...c.providers.keys()]).toEqual(['example-jwt']);
  });
});

describe('config: strict validation names the path', () => {
  it('reports unknown keys at every level', () => {
    expect(problems(`
listen: { grpc: 127.0.0.1:1, gprc: x }
providers:
  p:
    source: { ${CC}, tokenURL: x }
    resilience: { breaker: { windw: 1s } }
    refreshh: {}
bogus: 1
`, { S: 'x' })).toEqual([
      'listen.gprc: unknown key',
      'providers.p.source.tokenURL: unknown key',
      'providers.p.resilience.breaker.windw: unknown key',
      'providers.p.refreshh: unknown key',
      'bogus: unknown key',
    ]);
  });

  it('reports wrong types and bad values', () => {
    const out = problems(`
listen: { grpc: "nohost" }
defaults: { unmatched: maybe }
providers:
  p:
    source: { ${CC} }
    refresh: { waitBudget: soon, jitter: 150% }
    resilience: { retries: many, timeout: 5, serveExpiredFor: 48h, breaker: { volumeThreshold: 0 } }
    inject: { format: "Bearer" }
    purgeOnUpstreamStatus: [401, 999]
  "bad name!": { source: { type: static, token: x } }
routes:
  - match: { pathPrefix: v1 }
    provider: missing
`, { S: 'x' });
    expect(out).toEqual(expect.arrayContaining([
      'listen.grpc: expected host:port or unix:/path',
      'defaults.unmatched: must be one of allow, deny',
      'providers.p.refresh.waitBudget: expected a duration such as 250ms, 30s, 5m or 1h',
      'providers.p.refresh.jitter: expected a percentage such as 10%',
      'providers.p.resilience.retries: expected a number',
      'providers.p.resilience.timeout: expected a duration such as 250ms, 30s, 5m or 1h',
      'providers.p.resilience.serveExpiredFor: must be at most 86400000ms',
      'providers.p.resilience.breaker.volumeThreshold: must be at least 1',
      'providers.p.inject.format: must contain {token}',
      'providers.p.purgeOnUpstreamStatus[1]: expected an HTTP status code',
      'providers."bad name!": provider names use letters, digits, _, . and - (at most 128)',
      'routes[0].provider: names no configured provider',
      'routes[0].match.pathPrefix: must start with /',
    ]));
  });

  it('requires https for non-loopback token endpoints, unless allowPlainHttp', () => {
    expect(problems(`providers: { p: { source: { type: client_credentials, tokenUrl: "http://idp.example/t", clientId: c, clientSecret: s } } }`))
      .toContain('providers.p.source.tokenUrl: must be https (plain http is allowed only to loopback addresses, or with allowPlainHttp: true)');
    expect(problems(`providers: { p: { source: { type: client_credentials, tokenUrl: "http://127.0.0.1:8080/t", clientId: c, clientSecret: "\${env:S}" } } }`, { S: 's' })).toEqual([]);
    const c = parseConfig(`providers: { p: { source: { type: client_credentials, tokenUrl: "http://idp:8080/t", clientId: c, clientSecret: "\${env:S}", allowPlainHttp: true } } }`, { env: { S: 's' } });
    expect(c.warnings.map((w) => w.path)).toContain('providers.p.source.allowPlainHttp');
  });

  it('client ids and secrets are printable ASCII (RFC 6749 VSCHAR), refused unquoted otherwise', () => {
    const hint = 'may hold only printable ASCII (RFC 6749 VSCHAR): is there a byte-order mark, tab or control character in its source?';
    const src = (id: string) => `providers: { p: { source: { type: client_credentials, tokenUrl: "https://idp.example/t", clientId: "${id}", clientSecret: "\${env:S}" } } }`;
    expect(problems(src('svc'), { S: 'sec\tret' })).toEqual([`providers.p.source.clientSecret: ${hint}`]);
    expect(problems(src('svc\u00e9'), { S: 'x' })).toEqual([`providers.p.source.clientId: ${hint}`]);
    expect(problems(src('svc'), { S: ' !"#%&+/:=?@[]~ with spaces' })).toEqual([]);
  });

  it('requires an encryption key with the redis store', () => {
    expect(problems(`store: { type: redis, redis: { url: "redis://127.0.0.1:6379" } }`)).toEqual([
      'store.encryptionKey: is required with type: redis (tokens are encrypted at rest)',
    ]);
    expect(problems(`store: { type: redis, redis: { url: "redis://x" }, encryptionKey: "\${env:K}" }`, { K: Buffer.alloc(16).toString('base64') }))
      .toEqual(['store.encryptionKey: must be 32 bytes, base64-encoded (e.g. `openssl rand -base64 32`)']);
  });

  it('finding 9: check-config rejects Redis sentinels and cluster entries that are not host:port', () => {
    const K = Buffer.alloc(32, 7).toString('base64');
    expect(problems(`store: { type: redis, encryptionKey: "\${env:K}", redis: { name: m, sentinels: ["127.0.0.1:26379", "redis://s2:26379", "s3:99999", "", "[::1]:26379", "s4"] } }`, { K }))
      .toEqual([
        'store.redis.sentinels[1]: expected host:port',
        'store.redis.sentinels[2]: expected host:port',
        'store.redis.sentinels[3]: expected host:port',
      ]);
    expect(problems(`store: { type: redis, encryptionKey: "\${env:K}", redis: { cluster: ["n1:7000", "n2:7001:7002", { host: n3 }] } }`, { K }))
      .toEqual([
        'store.redis.cluster[1]: expected host:port',
        'store.redis.cluster[2]: expected host:port, got a mapping',
      ]);
  });

  it('finding 3: store.previousEncryptionKeys are validated like encryptionKey; replicaAcks and its timeout are checked', () => {
    const env = { K: Buffer.alloc(32, 1).toString('base64'), P: Buffer.alloc(32, 2).toString('base64'), S: Buffer.alloc(16).toString('base64') };
    const c = parseConfig(`store: { type: redis, redis: { url: "redis://x" }, encryptionKey: "\${env:K}", previousEncryptionKeys: ["\${env:P}", "\${env:UNSET:-}"] }`, { env });
    expect(c.store.previousEncryptionKeys).toEqual([Buffer.alloc(32, 2)]);
    expect(c.store.redis).toMatchObject({ replicaAcks: 1, replicaAckTimeout: 1000 });
    expect(problems(`store: { type: redis, redis: { url: "redis://x", replicaAcks: -1, replicaAckTimeout: 0ms }, encryptionKey: "\${env:K}", previousEncryptionKeys: ["\${env:P}", "\${env:S}", 7, "\${env:NOPE}"] }`, env))
      .toEqual([
        'store.redis.replicaAcks: must be at least 0',
        'store.redis.replicaAckTimeout: must be at least 1ms',
        'store.previousEncryptionKeys[1]: must be 32 bytes, base64-encoded (e.g. `openssl rand -base64 32`)',
        'store.previousEncryptionKeys[2]: expected a base64 string',
        'store.previousEncryptionKeys[3]: is required (environment variable NOPE is not set)',
      ]);
    expect(problems(`store: { type: memory, previousEncryptionKeys: ["\${env:P}"] }`, env))
      .toEqual(['store.previousEncryptionKeys: needs store.encryptionKey (the key new records are sealed with)']);
  });

  it('reports YAML syntax errors with a position, never the source line', () => {
    expect(problems('providers: [unclosed')[0]).toMatch(/^\(yaml\): .+ at line \d+, column \d+$/);
    const out = problems('providers:\n  p:\n    source: { type: static, token: "hunter2-literal" }\n   bad: indentation: here\n');
    expect(out[0]).toMatch(/^\(yaml\): /);
    expect(out.join('\n')).not.toContain('hunter2');
  });

  it('refuses duplicate keys, keeps dates as strings, and supports merge keys', () => {
    expect(problems('providers: { a: { source: { type: static, token: x } } }\nproviders: {}')[0]).toMatch(/^\(yaml\): duplicated mapping key/);
    const c = parseConfig(`
x-defaults: &resilience { retries: 1, timeout: 2s }
providers:
  a:
    source: { type: client_credentials, tokenUrl: "https://i/t", clientId: 2024-01-01, clientSecret: "\${env:S}" }
    resilience: { <<: *resilience, serveExpiredFor: 1m }
`.replace('x-defaults: &resilience { retries: 1, timeout: 2s }\n', '').replace('resilience: { <<: *resilience, serveExpiredFor: 1m }', 'resilience: { <<: { retries: 1, timeout: 2s }, serveExpiredFor: 1m }'), { env: { S: 's' } });
    const p = c.providers.get('a')!;
    expect(p.source).toMatchObject({ clientId: '2024-01-01' });
    const numeric = parseConfig('providers: { n: { source: { type: client_credentials, tokenUrl: "https://i/t", clientId: 1234567, clientSecret: "${env:S}" } } }', { env: { S: 's' } });
    expect(numeric.providers.get('n')!.source).toMatchObject({ clientId: '1234567' });
    expect(p.resilience).toMatchObject({ retries: 1, timeout: 2000, serveExpiredFor: 60_000 });
  });
});

describe('config: substitution', () => {
  it('substitutes ${env:NAME}, ${env:NAME:-default} and ${file:PATH} (trailing newline dropped)', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tokengate-cfg-'));
    fs.writeFileSync(path.join(dir, 'secret'), 'file-secret\n');
    fs.writeFileSync(path.join(dir, 'tokengate.yaml'), `
admin: { token: "\${env:ADMIN:-default-admin-token-123}" }
providers:
  p:
    source: { type: client_credentials, tokenUrl: "https://\${env:HOST}/token", clientId: "\${env:ID}", clientSecret: "\${file:secret}" }
    resilience: { retries: "\${env:RETRIES:-2}" }
`);
    const c = loadConfigFile(path.join(dir, 'tokengate.yaml'), { HOST: 'idp.example', ID: 'client-1' });
    const p = c.providers.get('p')!;
    expect(p.source).toMatchObject({ tokenUrl: 'https://idp.example/token', clientId: 'client-1', clientSecret: 'file-secret' });
    expect(p.resilience.retries).toBe(2);
    expect(c.admin.token).toBe('default-admin-token-123');
    expect(c.warnings).toEqual([]);
    fs.rmSync(dir, { recursive: true });
  });

  it('treats an unset optional variable as absent and an unset required one as a problem', () => {
    const c = parseConfig('admin: { token: "${env:NOPE}" }', { env: {} });
    expect(c.admin.token).toBeUndefined();
    expect(problems(`providers: { p: { source: { type: client_credentials, tokenUrl: "https://i/t", clientId: "\${env:CID}", clientSecret: x } } }`))
      .toContain('providers.p.source.clientId: is required (environment variable CID is not set)');
  });

  it('never quotes a secret in a problem or a warning', () => {
    const secret = 'sup3r-s3cret-value-that-must-not-leak';
    const out = problems(`
providers:
  p:
    source: { type: client_credentials, tokenUrl: "https://i/t", clientId: c, clientSecret: "${secret}", authMethod: "${secret}" }
    resilience: { emergencyToken: "${secret}", retries: "${secret}" }
`);
    expect(out.length).toBeGreaterThan(0);
    expect(out.join('\n')).not.toContain(secret);
    const c = parseConfig(`providers: { p: { source: { type: static, token: "${secret}" } } }`);
    expect(c.warnings).toEqual([{ path: 'providers.p.source.token', problem: 'holds a literal secret; use ${env:NAME} or ${file:PATH}' }]);
  });

  it('reports an unreadable ${file:…}', () => {
    expect(problems('admin: { token: "${file:/nonexistent/tokengate-secret}" }')).toEqual(['admin.token: cannot read file /nonexistent/tokengate-secret (ENOENT)']);
  });
});

describe('config: refresh_token reuseInterval', () => {
  const RT = 'type: refresh_token, tokenUrl: "https://idp.example/token", clientId: c, refreshToken: "${env:R}"';

  it('defaults to 0 (no reuse grace) and takes a duration', () => {
    const c = parseConfig(`providers: { p: { source: { ${RT} } }, q: { source: { ${RT}, reuseInterval: 30s } } }`, { env: { R: 'r' } });
    expect(c.providers.get('p')!.source).toMatchObject({ reuseInterval: 0 });
    expect(c.providers.get('q')!.source).toMatchObject({ reuseInterval: 30_000 });
  });

  it('refuses a malformed or out-of-range value, and the field on other source types', () => {
    expect(problems(`providers: { p: { source: { ${RT}, reuseInterval: soon } } }`, { R: 'r' }))
      .toEqual(['providers.p.source.reuseInterval: expected a duration such as 250ms, 30s, 5m or 1h']);
    expect(problems(`providers: { p: { source: { ${RT}, reuseInterval: 2d } } }`, { R: 'r' }))
      .toEqual(['providers.p.source.reuseInterval: must be at most 86400000ms']);
    expect(problems(`providers: { p: { source: { ${CC}, reuseInterval: 1s } } }`, { S: 's' })).toHaveLength(1);
  });
});
