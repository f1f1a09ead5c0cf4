// Secrets: only substituted in the shipped examples, warned about when literal, and never kept in
// an error object, a stack trace, a serialised error or a log line, whatever the IdP echoes back.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import util from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { ConfigError } from '../../src/config/errors.js';
import { redactText } from '../../src/observability/redact.js';
import { parseConfig } from '../../src/config/load.js';
import { createSource } from '../../src/tokens/sources/index.js';
import { SourceConfigError, TokenError } from '../../src/tokens/errors.js';
import { TokenManager } from '../../src/tokens/manager.js';
import { captureLogger } from '../support/app.js';
import { REPO_ROOT } from '../support/demo-files.js';
import { pemBlock, rsaPair } from '../support/keys.js';
import { LoopbackServer } from './support/servers.js';

const run = promisify(execFile);

/** Every place an error's content can end up. */
function surfaces(err: unknown): Record<string, string> {
  const e = err as Error;
  return {
    message: String(e?.message),
    stack: String(e?.stack),
    json: JSON.stringify(err) ?? '',
    inspect: util.inspect(err, { depth: 10 }),
    string: String(err),
  };
}

function expectNoSecret(where: Record<string, string>, secrets: readonly string[]): void {
  for (const [surface, text] of Object.entries(where)) {
    for (const s of secrets) expect(text.includes(s), `${surface} contains a secret (${s.slice(0, 6)}…)`).toBe(false);
  }
}

/** The forms a secret takes on the wire: as is, url-encoded, form-encoded. */
function wireForms(secret: string): string[] {
  return [...new Set([secret, encodeURIComponent(secret), new URLSearchParams({ x: secret }).toString().slice(2)])];
}

// --- shipped examples ---------------------------------------------------------------------------

/** Keys of a tokengate config whose value is a credential. */
const SECRET_KEYS = new Set(['clientSecret', 'key', 'refreshToken', 'token', 'encryptionKey', 'emergencyToken', 'password', 'privateKey']);
const WHOLE_REF = /^\$\{(env|file):([^}]*)\}$/;
/** Environment variable names that carry a credential. */
const SECRET_ENV = /(SECRET|TOKEN|PASSWORD|PRIVATE|_KEY$|^KEY$)/i;

function walkFiles(dir: string, out: string[] = []): string[] {
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    if (entry.isDirectory()) walkFiles(p, out);
    else if (/\.ya?ml$/.test(entry.name)) out.push(p);
  }
  return out;
}

interface Finding {
  file: string;
  at: string;
  problem: string;
}

/** A file that says of itself that it is a demo (header marker or a demo/ folder). */
function isDemoFile(rel: string, text: string): boolean {
  return rel.split(path.sep).includes('demo') || /DEMO ONLY/.test(text.split('\n').filter((l) => l.startsWith('#')).join('\n'));
}

/** A default that announces itself as a placeholder, not a real credential. */
const PLACEHOLDER = /demo|example|change-?me|replace/i;

function scanTokengateConfig(doc: unknown, file: string, demo: boolean, at: string, out: Finding[]): void {
  const visit = (v: unknown, p: string) => {
    if (Array.isArray(v)) return v.forEach((x, i) => visit(x, `${p}[${i}]`));
    if (!v || typeof v !== 'object') return;
    for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
      const here = p ? `${p}.${k}` : k;
      // `claims` are JWT payload claims, not credentials.
      if (k === 'claims') continue;
      if (SECRET_KEYS.has(k) && x !== null && x !== undefined && typeof x !== 'object') {
        const text = String(x);
        const ref = WHOLE_REF.exec(text);
        if (!ref) out.push({ file, at: `${at}${here}`, problem: 'literal secret (use ${env:NAME} or ${file:PATH})' });
        else if (ref[1] === 'env' && ref[2]!.includes(':-')) {
          const fallback = ref[2]!.slice(ref[2]!.indexOf(':-') + 2);
          if (fallback !== '' && !demo && !PLACEHOLDER.test(fallback)) out.push({ file, at: `${at}${here}`, problem: 'a real-looking default secret outside a demo file' });
        }
      } else visit(x, here);
    }
  };
  visit(doc, '');
}

function isPlaceholderValue(v: string): boolean {
  if (/REPLACE/.test(v)) return true;
  try {
    return /REPLACE/.test(Buffer.from(v, 'base64').toString('utf8'));
  } catch {
    return false;
  }
}

function scanDocument(doc: Record<string, any>, file: string, demo: boolean, out: Finding[]): void {
  if (doc.providers || doc.listen || doc.store) scanTokengateConfig(doc, file, demo, '', out);
  // Kubernetes ConfigMap carrying a tokengate config.
  if (doc.kind === 'ConfigMap') {
    for (const [k, v] of Object.entries(doc.data ?? {})) {
      if (!/tokengate\.ya?ml$/.test(k)) continue;
      scanTokengateConfig(YAML.parse(String(v)), file, demo, `ConfigMap ${doc.metadata?.name} ${k}: `, out);
    }
  }
  // Kubernetes Secret: only placeholders may be committed.
  if (doc.kind === 'Secret') {
    for (const [k, v] of Object.entries({ ...(doc.stringData ?? {}), ...(doc.data ?? {}) })) {
      if (!isPlaceholderValue(String(v))) out.push({ file, at: `Secret ${doc.metadata?.name} ${k}`, problem: 'committed secret value that is no REPLACE placeholder' });
    }
  }
  // Kubernetes containers: a credential comes from valueFrom (a Secret), never from `value`.
  const containers: any[] = [...(doc.spec?.template?.spec?.containers ?? []), ...(doc.spec?.template?.spec?.initContainers ?? [])];
  for (const c of containers) {
    for (const e of c.env ?? []) {
      if (SECRET_ENV.test(String(e.name)) && e.value !== undefined) out.push({ file, at: `container ${c.name} env ${e.name}`, problem: 'literal credential in env value' });
    }
  }
  // docker compose: literal credentials in `environment` only in a file marked as a demo.
  for (const [name, svc] of Object.entries<any>(doc.services ?? {})) {
    const envs = svc?.environment;
    const pairs: [string, unknown][] = Array.isArray(envs)
      ? envs.map((l: string) => [l.split('=')[0]!, l.includes('=') ? l.slice(l.indexOf('=') + 1) : undefined])
      : Object.entries(envs ?? {});
    for (const [k, v] of pairs) {
      if (!SECRET_ENV.test(k) || v === undefined || v === null || String(v).startsWith('${')) continue;
      if (!demo) out.push({ file, at: `service ${name} environment ${k}`, problem: 'literal credential outside a demo file' });
    }
  }
}

describe('shipped examples', () => {
  const files = [
    ...walkFiles(path.join(REPO_ROOT, 'examples')),
    ...['docker-compose.yml', 'docker-compose.yaml', 'compose.yml', 'compose.yaml'].map((f) => path.join(REPO_ROOT, f)).filter((f) => fs.existsSync(f)),
    ...(fs.existsSync(path.join(REPO_ROOT, 'k8s')) ? walkFiles(path.join(REPO_ROOT, 'k8s')) : []),
  ];

  it('take every secret from ${env:…} or ${file:…} (defaults only in demo files or as placeholders)', () => {
    expect(files.length).toBeGreaterThan(0);
    const findings: Finding[] = [];
    let scannedSecrets = 0;
    for (const f of files) {
      const rel = path.relative(REPO_ROOT, f);
      const text = fs.readFileSync(f, 'utf8');
      const demo = isDemoFile(rel, text);
      for (const d of YAML.parseAllDocuments(text, { merge: true } as never)) {
        const doc = d.toJS({ maxAliasCount: 100 }) as Record<string, any> | null;
        if (doc && typeof doc === 'object') scanDocument(doc, rel, demo, findings);
      }
      scannedSecrets += (text.match(/\b(clientSecret|key|refreshToken|token|encryptionKey|emergencyToken|password|privateKey):/g) ?? []).length;
    }
    expect(scannedSecrets, 'the scan found no secret-bearing key at all: is it looking at the right files?').toBeGreaterThan(0);
    expect(findings).toEqual([]);
  });

  it('the scanner itself flags a literal secret, a literal env credential and a real-looking default', () => {
    const findings: Finding[] = [];
    scanDocument(YAML.parse(`
providers:
  x: { source: { type: client_credentials, tokenUrl: https://a/t, clientId: c, clientSecret: hunter2hunter2 } }
  y: { source: { type: jwt, key: "\${env:K:-0123456789abcdef0123456789abcdef}" } }
store: { encryptionKey: "\${env:ENC}" }
`), 'x.yaml', false, findings);
    scanDocument(YAML.parse(`
spec: { template: { spec: { containers: [ { name: c, env: [ { name: CLIENT_SECRET, value: hunter2 } ] } ] } } }
`), 'y.yaml', false, findings);
    expect(findings.map((f) => f.at)).toEqual(['providers.x.source.clientSecret', 'providers.y.source.key', 'container c env CLIENT_SECRET']);
  });
});

// --- check-config warns on literal secrets -------------------------------------------------------

describe('check-config on literal secrets', () => {
  let dir: string;
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tokengate-secrets-'));
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('warns for each secret-bearing field that holds a literal, exits 0, and never prints the values', async () => {
    const literals = {
      clientSecret: 'literal-client-secret-9f8e7d',
      adminToken: 'literal-admin-token-0a1b2c3d4e',
      encryptionKey: Buffer.from('literal-encryption-key-32-bytes!').toString('base64'),
      redisPassword: 'literal-redis-password-77',
      jwtKey: 'literal-hs256-key-that-is-long-enough-0123',
      refreshToken: 'literal-refresh-token-5c4b3a',
      staticToken: 'literal-static-token-112233',
      emergencyToken: 'literal-emergency-token-445566',
    };
    const file = path.join(dir, 'tmp.yaml');
    fs.writeFileSync(file, `
admin: { token: ${literals.adminToken} }
store:
  type: memory
  redis: { url: "redis://127.0.0.1:6379/0", password: ${literals.redisPassword} }
  encryptionKey: ${literals.encryptionKey}
providers:
  x:
    source: { type: client_credentials, tokenUrl: "https://idp.example.com/token", clientId: c, clientSecret: ${literals.clientSecret} }
    resilience: { emergencyToken: ${literals.emergencyToken} }
  j:
    source: { type: jwt, algorithm: HS256, key: ${literals.jwtKey} }
  r:
    source: { type: refresh_token, tokenUrl: "https://idp.example.com/token", clientId: c, refreshToken: ${literals.refreshToken} }
  s:
    source: { type: static, token: ${literals.staticToken} }
`);
    // execFile rejects on a non-zero exit: getting here means exit 0.
    const { stdout, stderr } = await run(process.execPath, [path.join(REPO_ROOT, 'dist/cli.js'), 'check-config', '--config', file], { env: { PATH: process.env.PATH ?? '' } });
    const out = stdout + stderr;
    expect(stdout).toMatch(/^config ok/m); // the verdict line, after the per-origin budget lines
    for (const p of [
      'providers.x.source.clientSecret', 'admin.token', 'store.encryptionKey', 'store.redis.password', 'providers.j.source.key',
      'providers.r.source.refreshToken', 'providers.s.source.token', 'providers.x.resilience.emergencyToken',
    ]) {
      expect(stderr).toContain(`warning: ${p}: holds a literal secret`);
    }
    for (const v of Object.values(literals)) expect(out).not.toContain(v);
  });

  it('does not warn when secrets come from ${env:…} or ${file:…}', async () => {
    const secretFile = path.join(dir, 'client_secret');
    fs.writeFileSync(secretFile, 'from-a-file-secret\n');
    const file = path.join(dir, 'ok.yaml');
    fs.writeFileSync(file, `
providers:
  x:
    source: { type: client_credentials, tokenUrl: "https://idp.example.com/token", clientId: c, clientSecret: "\${file:${secretFile}}" }
  j:
    source: { type: jwt, algorithm: HS256, key: "\${env:JWT_KEY}" }
`);
    const { stdout, stderr } = await run(process.execPath, [path.join(REPO_ROOT, 'dist/cli.js'), 'check-config', '--config', file], {
      env: { PATH: process.env.PATH ?? '', JWT_KEY: 'env-provided-hs256-key-long-enough-012345' },
    });
    expect(stdout).toMatch(/^config ok/m); // the verdict line, after the per-origin budget lines
    expect(stderr).not.toMatch(/literal secret/);
    expect(stdout + stderr).not.toContain('from-a-file-secret');
    expect(stdout + stderr).not.toContain('env-provided-hs256-key');
  });
});

// --- secrets are not kept in errors -------------------------------------------------------------

/** A hostile IdP: refuses every request and echoes everything it received in the OAuth error. */
function echoingIdp(status: number): LoopbackServer {
  const seen: string[] = [];
  const server = LoopbackServer.http((req, body, res) => {
    const form = new URLSearchParams(body);
    const basic = req.headers.authorization ?? '';
    const decodedBasic = basic.startsWith('Basic ') ? Buffer.from(basic.slice(6), 'base64').toString('utf8') : '';
    seen.push(body, basic, ...form.values());
    const echo = `you sent ${[...form.values()].join(' ')} ${body} ${basic} ${decodedBasic}`;
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ error: status === 401 ? 'invalid_client' : 'server_error', error_description: echo }));
  });
  return Object.assign(server, { seen });
}

describe('secrets are not kept in error objects, stack traces or logs', () => {
  const rsa = rsaPair();
  const secrets = {
    basic: 'cs-basic-secret-4a5b6c7d',
    post: 'cs-post secret&with=odd+chars',
    refresh: 'rt-refresh-token-8e9f0a1b',
    bearerKey: 'jwt-bearer-hs256-key-that-is-long-enough-2c3d',
  };
  let idp401: LoopbackServer & { seen: string[] };
  let idp500: LoopbackServer & { seen: string[] };
  beforeAll(async () => {
    idp401 = echoingIdp(401) as LoopbackServer & { seen: string[] };
    idp500 = echoingIdp(500) as LoopbackServer & { seen: string[] };
    await idp401.start();
    await idp500.start();
  });
  afterAll(async () => {
    await idp401?.stop();
    await idp500?.stop();
  });

  const sources = (url: string) => ({
    basic: `{ type: client_credentials, tokenUrl: "${url}", clientId: echo-client, clientSecret: "\${env:S_BASIC}" }`,
    post: `{ type: client_credentials, tokenUrl: "${url}", clientId: echo-client, authMethod: client_secret_post, clientSecret: "\${env:S_POST}" }`,
    privateKeyJwt: `
      type: client_credentials
      tokenUrl: "${url}"
      clientId: echo-client
      authMethod: private_key_jwt
      privateKey: ${pemBlock(rsa.privatePem, 8)}`,
    refresh: `{ type: refresh_token, tokenUrl: "${url}", clientId: echo-client, clientSecret: "\${env:S_BASIC}", refreshToken: "\${env:S_REFRESH}" }`,
    jwtBearer: `{ type: jwt_bearer, tokenUrl: "${url}", assertion: { algorithm: HS256, key: "\${env:S_BEARER}", claims: { iss: svc } } }`,
  });
  const env = { S_BASIC: secrets.basic, S_POST: secrets.post, S_REFRESH: secrets.refresh, S_BEARER: secrets.bearerKey };
  const pemBody = rsa.privatePem.split('\n').filter((l) => l && !l.startsWith('-----'));

  for (const status of [401, 500] as const) {
    for (const kind of ['basic', 'post', 'privateKeyJwt', 'refresh', 'jwtBearer'] as const) {
      it(`${kind}: an IdP ${status} that echoes every credential back leaves none in the error or the logs`, async () => {
        const idp = status === 401 ? idp401 : idp500;
        idp.seen.length = 0;
        const src = sources(idp.tokenUrl())[kind];
        const yaml = `
providers:
  p:
    source: ${src.startsWith('{') ? src : `\n${src.replace(/^\n/, '')}`}
    resilience: { retries: 0 }
`;
        const logs: string[] = [];
        const m = new TokenManager(parseConfig(yaml, { env }).providers.values(), { logger: captureLogger(logs) });
        let caught: unknown;
        try {
          await m.refresh('p');
        } catch (err) {
          caught = err;
        } finally {
          await m.close(0);
        }
        expect(caught).toBeInstanceOf(TokenError);
        // A 500 to a refresh_token grant is ambiguous (the grant may have run): the token is spent.
        expect((caught as TokenError).code).toBe(status === 401 ? 'ERR_IDP_REJECTED' : kind === 'refresh' ? 'ERR_GRANT_AMBIGUOUS' : 'ERR_IDP_UNAVAILABLE');
        // The IdP's own error stays visible; only the credentials in it are gone.
        expect((caught as TokenError).oauthErrorDescription).toMatch(/^you sent /);
        // Everything the IdP received that is a credential: secrets, the Basic header, assertions.
        const basicHeaders = idp.seen.filter((s) => s.startsWith('Basic '));
        const credentialValues = [
          ...Object.values(secrets).flatMap(wireForms),
          ...basicHeaders.map((h) => h.slice(6)),
          ...idp.seen.filter((s) => s.startsWith('eyJ')), // client assertions and grant assertions
          ...pemBody,
        ];
        expect(idp.seen.length).toBeGreaterThan(0);
        expectNoSecret({ ...surfaces(caught), logs: logs.join('\n') }, credentialValues);
      });
    }
  }

  it('a bad PEM key: neither the TokenError (with its cause) nor the SourceConfigError quotes the key', () => {
    const marker = 'MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7SECRETKEYMATERIAL';
    const badPem = `-----BEGIN PRIVATE KEY-----\n${marker}\n-----END PRIVATE KEY-----`;
    for (const yaml of [
      `providers:\n  p:\n    source:\n      type: jwt\n      algorithm: RS256\n      key: ${pemBlock(badPem, 8)}\n`,
      `providers:\n  p:\n    source:\n      type: client_credentials\n      tokenUrl: https://idp.example.com/t\n      clientId: c\n      authMethod: private_key_jwt\n      privateKey: ${pemBlock(badPem, 8)}\n`,
      `providers:\n  p:\n    source:\n      type: jwt_bearer\n      tokenUrl: https://idp.example.com/t\n      assertion:\n        algorithm: ES256\n        key: ${pemBlock(badPem, 10)}\n`,
    ]) {
      const pc = parseConfig(yaml, { env: {} }).providers.get('p')!;
      let sourceErr: unknown;
      try {
        createSource(pc.source);
      } catch (err) {
        sourceErr = err;
      }
      expect(sourceErr).toBeInstanceOf(TokenError);
      expect((sourceErr as TokenError).code).toBe('ERR_SOURCE_CONFIG');
      let configErr: unknown;
      try {
        new TokenManager([pc]);
      } catch (err) {
        configErr = err;
      }
      expect(configErr).toBeInstanceOf(SourceConfigError);
      expect((configErr as SourceConfigError).problems.map((p) => p.path)).toEqual(['providers.p.source']);
      expectNoSecret({ ...surfaces(sourceErr), ...Object.fromEntries(Object.entries(surfaces(configErr)).map(([k, v]) => [`config ${k}`, v])) }, [marker, 'SECRETKEYMATERIAL']);
    }
  });

  it('redactText removes credentials quoted as JSON, as form fields and as bearer/basic values', () => {
    const text = `bad body {"access_token":"at-123456789","token_type":"Bearer","refresh_token" : "rt-\\"quoted\\"-987"} `
      + 'form client_secret=cs-abcdef&client_id=c header Bearer abcdefghijkl Basic ZGVtbzpzZWNyZXQ=';
    const out = redactText(text);
    for (const s of ['at-123456789', 'rt-', 'cs-abcdef', 'abcdefghijkl', 'ZGVtbzpzZWNyZXQ=']) expect(out).not.toContain(s);
    expect(out).toContain('"token_type":"Bearer"');
    expect(out).toContain('client_id=c');
  });

  it('config problems about secret-bearing fields never quote the value', () => {
    const bad = {
      admin: 'short-adm1n', // under 16 characters
      enc: 'not-base64-32-bytes-secret-value',
      pin: 'this-is-no-sha256-pin-but-a-secret',
      claimsRef: 'unset-var-secretish',
    };
    let err: unknown;
    try {
      parseConfig(`
admin: { token: ${bad.admin} }
store: { type: memory, encryptionKey: ${bad.enc} }
providers:
  p:
    source: { type: client_credentials, tokenUrl: "https://idp.example.com/t", clientId: c, clientSecret: x, tls: { pinSha256: ${bad.pin} } }
  q:
    source: { type: jwt, algorithm: RS256, key: not-a-pem-but-a-secret-value-000 }
`, { env: {} });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    const paths = (err as ConfigError).problems.map((p) => p.path);
    expect(paths).toEqual(expect.arrayContaining(['admin.token', 'store.encryptionKey', 'providers.p.source.tls.pinSha256', 'providers.q.source.key']));
    expectNoSecret(surfaces(err), [bad.admin, bad.enc, bad.pin, 'not-a-pem-but-a-secret-value-000']);
  });
});
