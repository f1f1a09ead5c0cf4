// `tokengate schema` and the validator agree: the committed schema file is current, every key
// the validator reads is in the schema at the same place (and nothing else is), every shipped
// config passes both, and every config of the bad corpus fails both.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { configJsonSchema } from '../../src/config/json-schema.js';
import { parseYaml } from '../../src/config/load.js';
import { Reader, type ReadContext } from '../../src/config/reader.js';
import { readConfig } from '../../src/config/schema.js';
import { judge, schemaValidator } from '../support/config-schema.js';
import { readYamlDocuments, repoPath, type Obj } from '../support/demo-files.js';
import { rsaPair } from '../support/keys.js';

type Schema = Record<string, any>;
const SCHEMA = configJsonSchema() as Schema;
const KEY = Buffer.alloc(32, 7).toString('base64');
const PEM = rsaPair().privatePem;

/** Values for the examples' ${env:…} names that have no default (as a deployment sets them). */
const ENV: Record<string, string> = {
  TOKENGATE_ADMIN_TOKEN: 'admin-token-0123456789abcdef',
  TOKENGATE_ENCRYPTION_KEY: KEY,
  DEMO_CLIENT_ID: 'demo-client', DEMO_CLIENT_SECRET: 'demo-secret',
  DEMO_OAUTH_CLIENT_ID: 'demo-client', DEMO_OAUTH_CLIENT_SECRET: 'demo-secret',
  DEMO_JWT_SECRET: 'demo-jwt-secret-0123456789abcdef0123', DEMO_JWT_ISSUER: 'https://issuer.example', EXAMPLE_ACCESS_KEY: 'ak', EXAMPLE_JWT_SECRET: 'x'.repeat(40),
  REDIS_PASSWORD: 'redis', OPENAI_CLIENT_ID: 'openai', OPENAI_SECRET: 's', KLING_SECRET_KEY: 'k'.repeat(40), KLING_ACCESS_KEY: 'ak',
  PARTNER_CLIENT_ID: 'p', PARTNER_CLIENT_SECRET: 's', PARTNER_REFRESH: 'r', SA_PEM: PEM, OPENAI_EMERGENCY: 'e', OPENAI_CLIENT_SECRET: 's',
};

function expectAgree(text: string, verdict: 'valid' | 'invalid', what: string): void {
  const v = judge(text, ENV);
  const summary = `${what}\n  validator: ${v.validator.map((p) => `${p.path}: ${p.problem}`).join('; ') || 'ok'}\n  schema: ${v.schema.join('; ') || 'ok'}`;
  expect(v.validator.length === 0 ? 'valid' : 'invalid', summary).toBe(verdict);
  expect(v.schema.length === 0 ? 'valid' : 'invalid', summary).toBe(verdict);
}

describe('tokengate schema', () => {
  it('schema/tokengate.schema.json is what `tokengate schema` prints (regenerate it: node dist/cli.js schema > schema/tokengate.schema.json)', () => {
    const committed = fs.readFileSync(repoPath('schema/tokengate.schema.json'), 'utf8');
    expect(committed).toBe(`${JSON.stringify(SCHEMA, null, 2)}\n`);
  });

  it('the CLI prints it (dist/cli.js: npm test builds first)', () => {
    const out = execFileSync(process.execPath, [repoPath('dist/cli.js'), 'schema'], { encoding: 'utf8' });
    expect(JSON.parse(out)).toEqual(SCHEMA);
  });

  it('compiles in ajv strict mode as draft 2020-12', () => {
    expect(SCHEMA.$schema).toBe('https://json-schema.org/draft/2020-12/schema');
    expect(typeof schemaValidator()).toBe('function');
  });

  it('every example starts with a yaml-language-server modeline pointing at the committed schema', () => {
    for (const rel of ['examples/tokengate.yaml', 'examples/demo/tokengate.yaml']) {
      const first = fs.readFileSync(repoPath(rel), 'utf8').split('\n')[0]!;
      const m = /^# yaml-language-server: \$schema=(\S+)$/.exec(first);
      expect(m, rel).not.toBeNull();
      expect(fs.realpathSync(repoPath(`${rel}/../${m![1]}`))).toBe(fs.realpathSync(repoPath('schema/tokengate.schema.json')));
    }
  });
});

// --- the keys: what the validator reads vs what the schema declares --------------------------

/** A config that makes the validator read every section, every source type and every nested block. */
const FULL = `
listen: { grpc: 0.0.0.0:9191, admin: off, tls: { certFile: c, keyFile: k, clientCaFile: ca }, limits: { maxConnections: 64 } }
admin: { token: admin-token-0123456789 }
store: { type: redis, redis: { url: "redis://r:6379", keyPrefix: "t:" }, encryptionKey: ${KEY} }
defaults: { unmatched: deny }
log: { level: warn }
shutdown: { deadline: 5s }
tokenEndpoints: { "http://localhost:8080": { maxRate: 5/s, burst: 5, maxConcurrent: 4, fallbackShare: 1/3 } }
providers:
  client_credentials:
    source: { type: client_credentials, tokenUrl: "https://idp/t", clientId: a, clientSecret: b, tls: { caFile: ca } }
    inject: { header: x-a }
    refresh: { before: 1m }
    resilience: { retries: 1, backoff: { base: 1s }, breaker: { window: 10s } }
  refresh_token:
    source: { type: refresh_token, tokenUrl: "https://idp/t", refreshToken: r }
  jwt:
    source: { type: jwt, key: "0123456789abcdef0123456789abcdef" }
  jwt_bearer:
    source: { type: jwt_bearer, tokenUrl: "https://idp/t", assertion: { key: "0123456789abcdef0123456789abcdef" } }
  static:
    source: { type: static, token: t }
  metadata:
    source: { type: metadata, flavor: gcp }
  gcp_impersonation:
    source: { type: gcp_impersonation, serviceAccount: a@p.iam.gserviceaccount.com, via: metadata, tls: { caFile: ca } }
  token_exchange:
    source: { type: token_exchange, issuer: "https://idp", subjectToken: { file: /t, type: "urn:ietf:params:oauth:token-type:jwt" }, actorToken: { provider: metadata, type: "urn:ietf:params:oauth:token-type:access_token" } }
  token_exchange_per_caller:
    source: { type: token_exchange, tokenUrl: "https://idp/t", subjectToken: { request: { header: authorization }, verify: { issuer: "https://idp" } }, actorToken: { provider: static }, style: rfc8693, resource: ["https://r"] }
    cache: { maxEntries: 10 }
routes:
  - { provider: jwt, match: { authority: a.example } }
`;

/** Every key the validator reads or asks about (`value`, `has`), by the path of its mapping. */
function readKeys(text: string): Map<string, Set<string>> {
  const seen = new Map<string, Set<string>>();
  const note = (path: string, key: string) => {
    let s = seen.get(path);
    if (!s) seen.set(path, (s = new Set()));
    s.add(key);
  };
  const { value, has } = Reader.prototype;
  Reader.prototype.value = function (this: Reader, key: string) {
    note(this.path, key);
    return value.call(this, key);
  };
  Reader.prototype.has = function (this: Reader, key: string) {
    note(this.path, key);
    return has.call(this, key);
  };
  try {
    const ctx: ReadContext = { env: {}, baseDir: process.cwd(), problems: [], warnings: [] };
    expect(readConfig(parseYaml(text), ctx), JSON.stringify(ctx.problems)).toBeDefined();
  } finally {
    Object.assign(Reader.prototype, { value, has });
  }
  return seen;
}

function deref(node: Schema): Schema {
  let n = node;
  while (n.$ref) n = SCHEMA.$defs[String(n.$ref).replace('#/$defs/', '')];
  return n;
}

/** The schema node for a validator path such as `providers.jwt.source` or `routes[0].match`. */
function schemaAt(path: string, raw: unknown): Schema {
  let node: Schema = SCHEMA;
  let value: any = raw;
  for (const seg of path.match(/[^.[\]]+/g) ?? []) {
    node = deref(node);
    if (/^\d+$/.test(seg)) node = node.items;
    else node = node.properties?.[seg] ?? node.additionalProperties;
    value = value?.[seg];
    node = deref(node);
    // A source's keys depend on its type: pick the branch its `if` selects.
    if (node === SCHEMA.$defs.source) node = SCHEMA.$defs[`source_${value.type}`];
  }
  return node;
}

describe('the schema declares exactly the keys the validator reads', () => {
  const raw = parseYaml(FULL);
  const seen = readKeys(FULL);
  const visited = new Set<Schema>();
  afterAll(() => undefined);

  it('at every path the validator reads', () => {
    const mismatches: string[] = [];
    for (const [path, keys] of seen) {
      const node = schemaAt(path, raw);
      // A free-form map (params, headers, providers' names): its keys are the user's.
      if (!node.properties) continue;
      visited.add(node);
      const declared = Object.keys(node.properties);
      for (const k of keys) if (!declared.includes(k)) mismatches.push(`${path || '(root)'}.${k}: read by the validator, missing in the schema`);
      for (const k of declared) if (!keys.has(k)) mismatches.push(`${path || '(root)'}.${k}: in the schema, not read by the validator`);
    }
    expect(mismatches).toEqual([]);
  });

  it('and FULL reaches every object the schema declares', () => {
    const all: string[] = [];
    const walk = (n: Schema, where: string) => {
      if (!n || typeof n !== 'object') return;
      if (n.properties && !visited.has(n)) all.push(where);
      for (const [k, v] of Object.entries(n)) if (k !== '$defs' && k !== 'if' && typeof v === 'object') walk(v as Schema, `${where}/${k}`);
    };
    walk(SCHEMA, '#');
    for (const [name, d] of Object.entries(SCHEMA.$defs as Record<string, Schema>)) walk(d, `#/$defs/${name}`);
    // `source` declares only `type`; its branches carry the keys.
    expect(all.filter((w) => w !== '#/$defs/source')).toEqual([]);
  });
});

// --- verdicts -------------------------------------------------------------------------------

/** The tokengate configs inside the Kubernetes examples' ConfigMaps. */
function configMapConfigs(): [string, string][] {
  const out: [string, string][] = [];
  for (const rel of ['examples/kubernetes/deployment.yaml', 'examples/kubernetes/sidecar.yaml', 'examples/istio/egress-credentials.yaml']) {
    for (const d of readYamlDocuments(rel) as Obj[]) {
      if (d['kind'] === 'ConfigMap' && typeof d['data']?.['tokengate.yaml'] === 'string') out.push([`${rel} ConfigMap/${d['metadata'].name}`, d['data']['tokengate.yaml']]);
    }
  }
  return out;
}

/** README's configuration reference, with its illustrative file secrets and pin made concrete. */
function readmeReference(): string {
  const readme = fs.readFileSync(repoPath('README.md'), 'utf8');
  const block = [...readme.matchAll(/```yaml\n([\s\S]*?)```/g)].map((m) => m[1]!).find((b) => /^providers:/m.test(b) && /^listen:/m.test(b));
  expect(block, 'README configuration reference').toBeDefined();
  return block!
    .replace('${file:/run/secrets/openai_client_secret}', '${env:OPENAI_CLIENT_SECRET}')
    .replace('${file:/run/secrets/openai_emergency}', '${env:OPENAI_EMERGENCY}')
    .replace('${file:/run/secrets/partner_refresh_token}', '${env:PARTNER_REFRESH}')
    .replace('${file:/run/secrets/sa.pem}', '${env:SA_PEM}')
    .replace('pinSha256: "base64 SPKI sha256"', `pinSha256: "${Buffer.alloc(32, 1).toString('base64')}"`);
}

describe('shipped configs pass both', () => {
  const shipped: [string, string][] = [
    ['examples/tokengate.yaml', fs.readFileSync(repoPath('examples/tokengate.yaml'), 'utf8')],
    ['examples/demo/tokengate.yaml (the compose demo)', fs.readFileSync(repoPath('examples/demo/tokengate.yaml'), 'utf8')],
    ...configMapConfigs(),
    ['README configuration reference', readmeReference()],
    ['the key-coverage config', FULL],
  ];
  it('there are at least five of them', () => expect(shipped.length).toBeGreaterThanOrEqual(5));
  for (const [what, text] of shipped) it(what, () => expectAgree(text, 'valid', what));
});

const MIN_PROVIDER = 'p: { source: { type: static, token: "${env:T}" } }';

/** [what is wrong, YAML]: each must be refused by both. */
const BAD: [string, string][] = [
  ['unknown top-level key', 'listn: { grpc: 127.0.0.1:1 }'],
  ['unknown key in listen', 'listen: { grpc: 127.0.0.1:1, admn: off }'],
  ['unknown key in a provider', `providers: { p: { source: { type: static, token: t }, injct: {} } }`],
  ['unknown key in a source', 'providers: { p: { source: { type: jwt, key: "0123456789abcdef0123456789abcdef", scope: x } } }'],
  ['unknown key in a route match', `providers: { ${MIN_PROVIDER} }\nroutes: [{ provider: p, match: { host: a } }]`],
  ['unknown key in store.redis', `store: { type: redis, redis: { url: "redis://r", db: 1 }, encryptionKey: ${KEY} }`],
  ['listen is a list', 'listen: [a]'],
  ['providers is a list', 'providers: [a]'],
  ['routes is a mapping', 'routes: { a: 1 }'],
  ['a boolean where a string goes', 'defaults: { providerKey: true }'],
  ['a mapping where a string goes', `providers: { p: { source: { type: static, token: { a: 1 } } } }`],
  ['retries is text', `providers: { p: { source: { type: static, token: t }, resilience: { retries: many } } }`],
  ['retries above 20', `providers: { p: { source: { type: static, token: t }, resilience: { retries: 21 } } }`],
  ['retries fractional', `providers: { p: { source: { type: static, token: t }, resilience: { retries: 1.5 } } }`],
  ['errorThresholdPercentage 0', `providers: { p: { source: { type: static, token: t }, resilience: { breaker: { errorThresholdPercentage: 0 } } } }`],
  ['log.requests not a boolean', 'log: { requests: yes }'],
  ['duration without unit', 'shutdown: { deadline: 10 }'],
  ['duration with a bad unit', 'shutdown: { deadline: 10sec }'],
  ['duration as a word', `providers: { p: { source: { type: static, token: t }, refresh: { waitBudget: soon } } }`],
  ['negative duration', `providers: { p: { source: { type: static, token: t }, refresh: { before: -5s } } }`],
  ['jitter above 100%', `providers: { p: { source: { type: static, token: t }, refresh: { jitter: 150% } } }`],
  ['store.type not an enum value', 'store: { type: postgres }'],
  ['log.level not an enum value', 'log: { level: verbose }'],
  ['defaults.unmatched not an enum value', 'defaults: { unmatched: maybe }'],
  ['unknown source type', 'providers: { p: { source: { type: saml } } }'],
  ['authMethod not an enum value', 'providers: { p: { source: { type: client_credentials, tokenUrl: "https://i/t", clientId: a, clientSecret: b, authMethod: mtls } } }'],
  ['algorithm not an enum value', 'providers: { p: { source: { type: jwt, algorithm: none, key: "0123456789abcdef0123456789abcdef" } } }'],
  ['provider without source', 'providers: { p: { inject: { header: x-a } } }'],
  ['source without type', 'providers: { p: { source: { token: t } } }'],
  ['client_credentials without tokenUrl', 'providers: { p: { source: { type: client_credentials, clientId: a, clientSecret: b } } }'],
  ['client_credentials without clientId', 'providers: { p: { source: { type: client_credentials, tokenUrl: "https://i/t", clientSecret: b } } }'],
  ['client_credentials without clientSecret', 'providers: { p: { source: { type: client_credentials, tokenUrl: "https://i/t", clientId: a } } }'],
  ['private_key_jwt without privateKey', 'providers: { p: { source: { type: client_credentials, tokenUrl: "https://i/t", clientId: a, authMethod: private_key_jwt } } }'],
  ['refresh_token without refreshToken', 'providers: { p: { source: { type: refresh_token, tokenUrl: "https://i/t" } } }'],
  ['jwt without key', 'providers: { p: { source: { type: jwt } } }'],
  ['jwt_bearer without assertion', 'providers: { p: { source: { type: jwt_bearer, tokenUrl: "https://i/t" } } }'],
  ['static with token and file', 'providers: { p: { source: { type: static, token: t, file: /f } } }'],
  ['static with neither token nor file', 'providers: { p: { source: { type: static } } }'],
  ['route without provider', `providers: { ${MIN_PROVIDER} }\nroutes: [{ match: { authority: a } }]`],
  ['route pathPrefix without /', `providers: { ${MIN_PROVIDER} }\nroutes: [{ provider: p, match: { pathPrefix: v1 } }]`],
  ['tls without keyFile', 'listen: { grpc: 127.0.0.1:1, tls: { certFile: c } }'],
  ['grpc listen without port', 'listen: { grpc: localhost }'],
  ['redis without redis section', `store: { type: redis, encryptionKey: ${KEY} }`],
  ['redis without encryptionKey', 'store: { type: redis, redis: { url: "redis://r" } }'],
  ['redis url and cluster', `store: { type: redis, redis: { url: "redis://r", cluster: [a:1] }, encryptionKey: ${KEY} }`],
  ['redis sentinels without name', `store: { type: redis, redis: { sentinels: [a:1] }, encryptionKey: ${KEY} }`],
  ['redis url with another scheme', `store: { type: redis, redis: { url: "http://r" }, encryptionKey: ${KEY} }`],
  ['admin token too short', 'admin: { token: short }'],
  ['bad provider name', 'providers: { "has space": { source: { type: static, token: t } } }'],
  ['inject format without {token}', `providers: { p: { source: { type: static, token: t }, inject: { format: Bearer } } }`],
  ['purge status out of range', `providers: { p: { source: { type: static, token: t }, purgeOnUpstreamStatus: [700] } }`],
  ['pinSha256 not a digest', 'providers: { p: { source: { type: client_credentials, tokenUrl: "https://i/t", clientId: a, clientSecret: b, tls: { pinSha256: abc } } } }'],
  ['tokenUrl and issuer', 'providers: { p: { source: { type: client_credentials, tokenUrl: "https://i/t", issuer: "https://i", clientId: a, clientSecret: b } } }'],
  ['client_assertion without clientAssertionFile', 'providers: { p: { source: { type: client_credentials, tokenUrl: "https://i/t", clientId: a, authMethod: client_assertion } } }'],
  ['tls_client_auth without a certificate', 'providers: { p: { source: { type: client_credentials, tokenUrl: "https://i/t", clientId: a, authMethod: tls_client_auth } } }'],
  ['tls certFile without keyFile', 'providers: { p: { source: { type: client_credentials, tokenUrl: "https://i/t", clientId: a, authMethod: tls_client_auth, tls: { certFile: c } } } }'],
  ['metadata without flavor', 'providers: { p: { source: { type: metadata } } }'],
  ['azure metadata without resource', 'providers: { p: { source: { type: metadata, flavor: azure } } }'],
  ['gcp_impersonation without via', 'providers: { p: { source: { type: gcp_impersonation, serviceAccount: a@p.iam.gserviceaccount.com } } }'],
  ['token_exchange subject with file and env', 'providers: { p: { source: { type: token_exchange, tokenUrl: "https://i/t", subjectToken: { file: /t, env: T, type: "urn:ietf:params:oauth:token-type:jwt" } } } }'],
  ['token_exchange subject without type', 'providers: { p: { source: { type: token_exchange, tokenUrl: "https://i/t", subjectToken: { file: /t } } } }'],
];

/** [what, YAML]: valid for both; each sits next to a BAD case and shows the line is where it should be. */
const GOOD: [string, string][] = [
  ['empty config', '{}'],
  ['durations in every unit and sums', `providers: { p: { source: { type: static, token: t }, refresh: { before: 1m30s, waitBudget: 250ms, skew: 0 } } }\nshutdown: { deadline: 4m59s, drainDelay: 0.5s }`],
  ['placeholders where enums, numbers, booleans and durations go', 'store: { type: "${env:S:-memory}" }\nlog: { level: "${env:L:-info}", requests: "${env:R:-false}" }\nshutdown: { deadline: "${env:D:-10s}" }\nproviders: { p: { source: { type: static, token: t }, resilience: { retries: "${env:N:-3}" } } }'],
  ['a whole number where a string goes', 'providers: { p: { source: { type: client_credentials, tokenUrl: "https://i/t", clientId: 12345, clientSecret: b } } }'],
  ['jitter as a fraction and as a percentage', 'providers: { a: { source: { type: static, token: t }, refresh: { jitter: 0.2 } }, b: { source: { type: static, token: t }, refresh: { jitter: 20% } } }'],
  ['booleans as text', 'log: { requests: "true" }'],
  ['empty sections', 'listen:\nadmin:\nstore:\ndefaults:\nlog:\nshutdown:\nproviders:\nroutes:'],
  ['redis with sentinels and name', `store: { type: redis, redis: { sentinels: [a:1, b:2], name: m }, encryptionKey: ${KEY} }`],
  ['redis cluster', `store: { type: redis, redis: { cluster: [a:1] }, encryptionKey: ${KEY} }`],
  ['private_key_jwt with a key', `providers: { p: { source: { type: client_credentials, tokenUrl: "https://i/t", clientId: a, authMethod: private_key_jwt, privateKey: "\${env:SA_PEM}" } } }`],
  ['refresh_token without clientId (public client)', 'providers: { p: { source: { type: refresh_token, tokenUrl: "https://i/t", refreshToken: r } } }'],
  ['issuer instead of tokenUrl', 'providers: { p: { source: { type: client_credentials, issuer: "https://i", clientId: a, clientSecret: b } } }'],
  ['client_assertion with a file', 'providers: { p: { source: { type: client_credentials, issuer: "https://i", clientId: a, authMethod: client_assertion, clientAssertionFile: /var/run/secrets/tokens/idp } } }'],
  ['tls_client_auth with a certificate', 'providers: { p: { source: { type: client_credentials, issuer: "https://i", clientId: a, authMethod: tls_client_auth, tls: { certFile: c, keyFile: k } } } }'],
  ['metadata azure with resource', 'providers: { p: { source: { type: metadata, flavor: azure, resource: "https://vault.azure.net" } } }'],
  ['the GCP chain', 'providers: { k: { source: { type: static, file: /t } }, s: { source: { type: token_exchange, tokenUrl: "https://sts.googleapis.com/v1/token", subjectToken: { provider: k, type: "urn:ietf:params:oauth:token-type:jwt" } } }, g: { source: { type: gcp_impersonation, serviceAccount: a@p.iam.gserviceaccount.com, via: s } } }'],
  ['unix socket and admin off', 'listen: { grpc: "unix:/run/tokengate.sock", admin: "off" }'],
  ['route matching everything', `providers: { ${MIN_PROVIDER} }\nroutes: [{ provider: p, match: { authority: "*" } }, { provider: p }]`],
];

describe('the bad-config corpus fails both', () => {
  for (const [what, text] of BAD) it(what, () => expectAgree(text, 'invalid', what));
});

describe('their valid neighbours pass both', () => {
  for (const [what, text] of GOOD) it(what, () => expectAgree(text, 'valid', what));
});

/**
 * Where they differ, on purpose: the schema sees the file before substitution and cannot
 * compute across fields or read keys. Pinned so a change on either side is noticed.
 */
const VALIDATOR_ONLY: [string, string][] = [
  ['an encryption key of the wrong size', 'store: { type: redis, redis: { url: "redis://r" }, encryptionKey: c2hvcnQ= }'],
  ['plain http to a non-loopback token endpoint', 'providers: { p: { source: { type: client_credentials, tokenUrl: "http://idp.example/t", clientId: a, clientSecret: b } } }'],
  ['a route naming no configured provider', 'routes: [{ provider: ghost }]'],
  ['drainDelay not shorter than deadline', 'shutdown: { deadline: 1s, drainDelay: 2s }'],
  ['a duration under its minimum', 'shutdown: { deadline: 1ms }'],
  ['an RS256 key that is not PEM', 'providers: { p: { source: { type: jwt, algorithm: RS256, key: not-a-pem } } }'],
  ['an unset ${env:…} in a required field', 'providers: { p: { source: { type: jwt, key: "${env:UNSET_IN_THIS_TEST}" } } }'],
];

describe('known differences: refused by the validator only', () => {
  for (const [what, text] of VALIDATOR_ONLY) {
    it(what, () => {
      const v = judge(text, ENV);
      expect(v.validator.length, what).toBeGreaterThan(0);
      expect(v.schema, what).toEqual([]);
    });
  }
});

it('YAML is only parsed once per judge (sanity: the corpus texts are YAML)', () => {
  for (const [, text] of [...BAD, ...GOOD]) expect(() => YAML.parse(text)).not.toThrow();
});
