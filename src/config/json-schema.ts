// The config file's shape as a JSON Schema (draft 2020-12), for editors and CI linters.
// `tokengate schema` prints it; schema/tokengate.schema.json is its committed copy.
//
// src/config/schema.ts and its section readers (src/config/read/) stay the authority: this file
// mirrors them section by section, and test/config/json-schema.test.ts keeps the two honest. It
// records every key the validator reads at every path and fails if this schema lacks one (or has
// one the validator does not read), and it runs the examples and a corpus of bad configs through both.
//
// To add a config field: read it in its section's reader (src/config/read/*.ts) as usual, add it
// to the matching object below (`props` of the section) using the helpers (str, dur, int, bool,
// oneOf, …), then run
// `npm run build && node dist/cli.js schema > schema/tokengate.schema.json`.
//
// What the schema cannot say (checked by the validator only): values after ${env:…}/${file:…}
// substitution, duration bounds, key sizes and PEM contents, https-vs-loopback token URLs,
// routes naming a configured provider, and cross-field rules such as drainDelay < deadline.

type Schema = Record<string, unknown>;

export const SCHEMA_ID = 'https://github.com/tokengate/tokengate/raw/main/schema/tokengate.schema.json';

const PLACEHOLDER: Schema = { $ref: '#/$defs/placeholder' };

// --- field helpers: each accepts what the Reader method of the same name accepts --------------

/** Reader.str: text, or a whole number taken as its digits. */
function str(description: string, extra: Schema = {}): Schema {
  if (extra['pattern'] !== undefined) {
    const { pattern, ...rest } = extra;
    return { description, anyOf: [{ type: 'string', pattern }, PLACEHOLDER], ...rest };
  }
  return { description, type: ['string', 'integer'], ...extra };
}

/** A value that should come from ${env:…} or ${file:…}; a literal only draws a warning. */
function secret(description: string): Schema {
  return str(`${description} Use \${env:NAME} or \${file:PATH}.`);
}

function dur(description: string): Schema {
  return { description, anyOf: [{ $ref: '#/$defs/duration' }, PLACEHOLDER] };
}

function oneOf(values: readonly string[], description: string): Schema {
  return { description, anyOf: [{ enum: values }, PLACEHOLDER] };
}

function bool(description: string): Schema {
  return { description, anyOf: [{ type: 'boolean' }, { enum: ['true', 'false'] }, PLACEHOLDER] };
}

function num(description: string, bounds: { minimum?: number; maximum?: number; integer?: boolean }): Schema {
  const { integer, ...range } = bounds;
  return { description, anyOf: [{ type: integer ? 'integer' : 'number', ...range }, PLACEHOLDER] };
}

function fraction(description: string): Schema {
  return { description, anyOf: [{ type: 'number', minimum: 0, maximum: 1 }, { type: 'string', pattern: '^\\s*(100(\\.0+)?|\\d{1,2}(\\.\\d+)?)%\\s*$' }, PLACEHOLDER] };
}

function list(items: Schema, description: string): Schema {
  return { description, type: ['array', 'null'], items };
}

function stringMap(description: string): Schema {
  return { description, type: ['object', 'null'], additionalProperties: { type: ['string', 'integer'] } };
}

/** A mapping with exactly these keys (unknown keys are errors, as in the validator). */
function obj(description: string, props: Record<string, Schema>, more: Schema = {}): Schema {
  return { description, type: 'object', properties: props, additionalProperties: false, ...more };
}

/** An optional section: `listen:` with nothing under it parses as null and means "defaults". */
function section(description: string, props: Record<string, Schema>, more: Schema = {}): Schema {
  return { description, type: ['object', 'null'], properties: props, additionalProperties: false, ...more };
}

const ALGORITHMS = ['HS256', 'HS384', 'HS512', 'RS256', 'ES256', 'EdDSA'];
const AUTH_METHODS = ['client_secret_basic', 'client_secret_post', 'private_key_jwt', 'client_assertion', 'tls_client_auth', 'self_signed_tls_client_auth', 'none'];
const TOKEN_TYPE = '^urn:[A-Za-z0-9:._-]+$';
const ADDRESS = '^(unix:.+|(\\[[^\\]]+\\]|[^:\\[\\]]+):\\d{1,5})$';

// --- sections, in the order of schema.ts -----------------------------------------------------

const listen = section('Where tokengate listens.', {
  grpc: str('gRPC listener for Envoy: host:port or unix:/path. Default 127.0.0.1:9191.', { pattern: ADDRESS }),
  admin: str('Admin HTTP listener (/healthz, /readyz, /metrics, /v1/…): host:port, unix:/path or off. Default 127.0.0.1:9192.', { pattern: `${ADDRESS}|^off$` }),
  tls: obj('TLS for the gRPC listener (TCP only).', {
    certFile: str('PEM certificate chain.'),
    keyFile: str('PEM private key.'),
    clientCaFile: str('Set: clients must present a certificate this CA signed (mTLS).'),
  }, { required: ['certFile', 'keyFile'] }),
  checkServer: oneOf(['grpc-js', 'http2'], 'Who serves envoy.service.auth.v3.Authorization/Check on the gRPC listener: grpc-js, or node:http2 directly (less CPU per Check; every other service stays on grpc-js). Default http2.'),
  limits: obj('Bounds on what gRPC clients may hold (SECURITY.md, "Resource bounds").', {
    maxConnections: num('Open connections at once; more are closed on accept. Default 100.', { minimum: 1, maximum: 100000, integer: true }),
    maxConcurrentStreams: num('HTTP/2 streams in flight per connection. Default 100.', { minimum: 1, maximum: 100000, integer: true }),
    maxSessionMemoryMb: num('HTTP/2 session memory per connection, MB. Default 2.', { minimum: 1, maximum: 1024, integer: true }),
    keepaliveTime: dur('HTTP/2 PING interval. Default 60s.'),
    keepaliveTimeout: dur('A peer that does not answer a PING within this is dropped. Default 20s.'),
    maxConnectionIdle: dur('A connection without streams this long is closed. Default 5m.'),
    maxConnectionAge: dur('Connections are recycled after this long (new replicas get traffic). Default 5m.'),
    maxMessageBytes: num('Largest CheckRequest or access-log message accepted. Default 4 MiB.', { minimum: 1024, maximum: 67108864, integer: true }),
  }),
});

const admin = section('Admin API access.', {
  token: {
    description: 'Bearer token for the mutating admin endpoints (at least 16 characters); unset: they are off. Use ${env:NAME} or ${file:PATH}.',
    anyOf: [{ type: 'string', minLength: 16 }, { type: 'integer', minimum: 1e15 }, PLACEHOLDER],
  },
});

const redis = obj('Redis connection: one of url, sentinels (with name) or cluster.', {
  url: str('redis://… or rediss://…', { pattern: '^rediss?://' }),
  sentinels: list({ type: ['string', 'integer'] }, 'Sentinel host:port list; needs name.'),
  cluster: list({ type: ['string', 'integer'] }, 'Cluster seed host:port list.'),
  name: str('Sentinel master group name.'),
  password: secret('Redis password.'),
  keyPrefix: str('Prefix of every key tokengate writes. Default "tokengate:".'),
  commandTimeout: dur('Per-command timeout; a slow Redis is a cache miss. Default 50ms.'),
  connectTimeout: dur('Connect timeout. Default 1s.'),
  replicaAcks: num('Redis replicas that must acknowledge a record carrying a refresh token (WAIT) before it is used. Default 1 (capped at the connected replicas).', { minimum: 0, maximum: 16, integer: true }),
  replicaAckTimeout: dur('How long to wait for those acknowledgements.'),
}, {
  oneOf: [
    { required: ['url'], not: { anyOf: [{ required: ['sentinels'] }, { required: ['cluster'] }] } },
    { required: ['sentinels', 'name'], not: { anyOf: [{ required: ['url'] }, { required: ['cluster'] }] } },
    { required: ['cluster'], not: { anyOf: [{ required: ['url'] }, { required: ['sentinels'] }] } },
  ],
});

const store = section('Where tokens are kept: memory (one replica) or redis (shared, encrypted at rest).', {
  type: oneOf(['memory', 'redis'], 'Default memory.'),
  redis,
  encryptionKey: secret('32 bytes, base64 (openssl rand -base64 32); required with redis.'),
  previousEncryptionKeys: list({ type: ['string', 'integer'] }, 'Older keys (base64, 32 bytes) still accepted for reading during a key rotation.'),
}, {
  if: { properties: { type: { const: 'redis' } }, required: ['type'] },
  then: { required: ['redis', 'encryptionKey'] },
});

const defaults = section('Behaviour shared by every route.', {
  unmatched: oneOf(['allow', 'deny'], 'A request no route matches: allow (no credential) or deny. Default allow.'),
  onTokenUnavailable: oneOf(['deny', 'allow'], 'No token can be had: deny (503) or allow without a credential. Default deny.'),
  providerKey: str('The context_extensions key that names a provider. Default "provider".'),
});

const log = section('Logging.', {
  level: oneOf(['debug', 'info', 'warn', 'error'], 'Default info.'),
  requests: bool('Log every Check (debug aid). Default false.'),
});

const shutdown = section('SIGTERM handling.', {
  deadline: dur('Upper bound on a graceful stop (100ms–5m). Default 10s.'),
  drainDelay: dur('Answer Checks this long after readiness drops, before closing (shorter than deadline). Default 0.'),
});

const signing = {
  algorithm: oneOf(ALGORITHMS, 'Default HS256.'),
  key: secret('HMAC secret (HS*) or PEM private key.'),
  keyId: str('kid header.'),
  claims: { description: 'Claims of every minted token; strings may use ${env:…}.', type: ['object', 'null'] },
  ttl: dur('Lifetime of each minted token.'),
};

const endpointTls = obj('TLS towards the endpoint.', {
  caFile: str('Extra CA bundle.'),
  pinSha256: str('Base64 SHA-256 of the server certificate public key.', { pattern: '^[A-Za-z0-9+/]{43}=$' }),
  certFile: str('PEM client certificate for tls_client_auth / self_signed_tls_client_auth (RFC 8705); re-read when it changes.'),
  keyFile: str('PEM key of certFile; re-read when it changes.'),
}, { dependentRequired: { certFile: ['keyFile'], keyFile: ['certFile'] } });

const endpoint = {
  tokenUrl: str('OAuth token endpoint (https; plain http only to loopback or with allowPlainHttp). Or set issuer.'),
  issuer: str('Issuer identifier: the token endpoint comes from its discovery document (https, or loopback).'),
  assertionAudience: oneOf(['issuer', 'tokenUrl'], 'aud of client assertions with issuer: the issuer (RFC 7523bis, default) or the token endpoint URL.'),
  clientAssertionFile: str('A JWT read at each fetch for authMethod client_assertion (e.g. a projected service-account token).'),
  allowPlainHttp: bool('Allow plain http to a non-loopback token endpoint. Default false.'),
  clientId: str('OAuth client id (printable ASCII, RFC 6749 VSCHAR).'),
  authMethod: oneOf(AUTH_METHODS, 'Client authentication. Default client_secret_basic.'),
  clientSecret: secret('OAuth client secret (printable ASCII, RFC 6749 VSCHAR).'),
  privateKey: secret('PEM key for private_key_jwt.'),
  keyId: str('kid of the client assertion.'),
  assertionAlgorithm: oneOf(ALGORITHMS, 'Algorithm of the private_key_jwt client assertion. Default RS256.'),
  scope: str('scope parameter.'),
  audience: str('audience parameter.'),
  params: stringMap('Extra form parameters for the token request.'),
  defaultTtl: dur('Lifetime assumed when the IdP omits expires_in. Default 1h.'),
  tls: endpointTls,
};

/** tokenUrl or issuer, not both. */
const ENDPOINT_CHOICE: Schema = { oneOf: [{ required: ['tokenUrl'], not: { required: ['issuer'] } }, { required: ['issuer'], not: { required: ['tokenUrl'] } }] };

const tokenRef = (description: string) => obj(description, {
  file: str('File holding the token (re-read at each fetch).'),
  env: str('Environment variable holding the token.', { pattern: '^[A-Za-z_][A-Za-z0-9_]*$' }),
  provider: str('Another provider whose current token is used (a chain).'),
  type: str('RFC 8693 token type URI, e.g. urn:ietf:params:oauth:token-type:jwt.', { pattern: TOKEN_TYPE }),
}, { required: ['type'], oneOf: [{ required: ['file'] }, { required: ['env'] }, { required: ['provider'] }] });

/** What each authMethod needs; `clientSecretRequired` for client_credentials' secret methods. */
function authRules(clientSecretRequired: boolean): Schema[] {
  const when = (methods: string[], then: Schema): Schema => ({ if: { properties: { authMethod: { enum: methods } }, required: ['authMethod'] }, then });
  return [
    ENDPOINT_CHOICE,
    when(['private_key_jwt'], { required: ['privateKey', 'clientId'] }),
    when(['client_assertion'], { required: ['clientAssertionFile'] }),
    // That tls holds certFile/keyFile is the validator's check (a nested rule here would be an
    // object the key-coverage test cannot reach).
    when(['tls_client_auth', 'self_signed_tls_client_auth'], { required: ['tls', 'clientId'] }),
    ...(clientSecretRequired ? [{
      if: { anyOf: [{ not: { required: ['authMethod'] } }, { properties: { authMethod: { enum: ['client_secret_basic', 'client_secret_post'] } } }] },
      then: { required: ['clientSecret'] },
    }] : []),
  ];
}

function sourceOf(type: string, description: string, props: Record<string, Schema>, more: Schema = {}): Schema {
  return obj(description, { type: { const: type }, ...props }, more);
}

const sources: Record<string, Schema> = {
  client_credentials: sourceOf('client_credentials', 'OAuth 2.0 client credentials grant.', {
    ...endpoint, authMethod: oneOf(AUTH_METHODS.filter((m) => m !== 'none'), 'Client authentication. Default client_secret_basic.'),
  }, { required: ['type', 'clientId'], allOf: authRules(true) }),
  refresh_token: sourceOf('refresh_token', 'OAuth 2.0 refresh token grant (rotation-aware).', { refreshToken: secret('The refresh token.'), reuseInterval: dur("The IdP's reuse grace for a rotated refresh token (Auth0 reuse interval, Okta grace period). Default 0s."), ...endpoint }, { required: ['type', 'refreshToken'], allOf: authRules(false) }),
  jwt: sourceOf('jwt', 'A JWT tokengate signs itself.', signing, { required: ['type', 'key'] }),
  jwt_bearer: sourceOf('jwt_bearer', 'RFC 7523 JWT bearer grant: a signed assertion exchanged for a token.', {
    assertion: obj('The assertion tokengate signs.', signing, { required: ['key'] }),
    ...endpoint,
  }, { required: ['type', 'assertion'], allOf: authRules(false) }),
  static: sourceOf('static', 'A fixed token, inline or from a file (re-read when it changes).', {
    token: secret('The token.'),
    file: str('File holding the token.'),
    pollInterval: dur('How often the file is checked. Default 5s.'),
  }, { required: ['type'], oneOf: [{ required: ['token'] }, { required: ['file'] }] }),
  metadata: sourceOf('metadata', "The platform's identity endpoint: GCP metadata server or Azure IMDS (plain http to link-local by design).", {
    flavor: oneOf(['gcp', 'azure'], 'gcp (Metadata-Flavor: Google) or azure (IMDS, Metadata: true).'),
    endpoint: str('Base URL. Default http://metadata.google.internal (gcp) or http://169.254.169.254 (azure).'),
    serviceAccount: str('gcp: service account email, or default. Default default.'),
    scopes: list({ type: 'string' }, 'gcp: OAuth scopes.'),
    resource: str('azure: the resource the token is for (required).'),
    clientId: str('azure: client id of a user-assigned managed identity.'),
    defaultTtl: dur('Lifetime assumed when the answer has no expires_in. Default 1h.'),
  }, { required: ['type', 'flavor'], if: { properties: { flavor: { const: 'azure' } } }, then: { required: ['resource'] } }),
  gcp_impersonation: sourceOf('gcp_impersonation', 'IAM Credentials generateAccessToken for a service account, authorised by another provider (via).', {
    serviceAccount: str('Service account email to impersonate.', { pattern: '^[^/\\s]+@[^/\\s]+$' }),
    scopes: list({ type: 'string' }, 'OAuth scopes. Default [https://www.googleapis.com/auth/cloud-platform].'),
    lifetime: dur('Requested lifetime (up to 12h with the org policy). Default 1h.'),
    delegates: list({ type: 'string' }, 'Delegation chain of service accounts.'),
    via: str('The provider whose token authorises the call (e.g. a token_exchange at Google STS).'),
    endpoint: str('Base URL. Default https://iamcredentials.googleapis.com.'),
    defaultTtl: dur('Fallback lifetime. Default 1h.'),
    tls: endpointTls,
  }, { required: ['type', 'serviceAccount', 'via'] }),
  token_exchange: sourceOf('token_exchange', 'RFC 8693 token exchange (or Entra ID on-behalf-of) with a fixed subject (file, env or another provider), or per caller (subjectToken.request: the caller\'s own token, cached per caller).', {
    style: oneOf(['rfc8693', 'entra_obo'], 'rfc8693 (token-exchange grant) or entra_obo (jwt-bearer grant, requested_token_use=on_behalf_of; per caller only). Default rfc8693.'),
    subjectToken: obj('The subject token: { file | env | provider, type } (a fixed subject), or { request, type?, verify? } (the caller\'s own token: per-caller tokens).', {
      file: str('File holding the token (re-read at each fetch).'),
      env: str('Environment variable holding the token.', { pattern: '^[A-Za-z_][A-Za-z0-9_]*$' }),
      provider: str('Another provider whose current token is used (a chain).'),
      type: str('subject_token_type (a token type URI); required with file, env or provider, default urn:ietf:params:oauth:token-type:access_token with request.'),
      request: obj('The caller\'s token, from a request header. Envoy must not list the header in disallowed_headers.', {
        header: str('Header holding the caller\'s token. Default authorization.', { pattern: "^[!#$%&'*+.^_`|~0-9a-zA-Z-]+$" }),
        scheme: str('Auth scheme before the token, case-insensitive; "" for a bare token. Default Bearer for authorization.'),
        maxBytes: num('Longest subject token accepted; longer ones are answered 401. Default 16384.', { minimum: 64, maximum: 65536, integer: true }),
      }),
      verify: obj('Check the caller\'s token locally before any exchange (jose).', {
        issuer: str('Expected iss; the JWKS is discovered from it unless jwksUri is set.'),
        audience: { description: 'Expected aud (one or a list).', anyOf: [{ type: 'string' }, { type: 'array', items: { type: 'string' } }, PLACEHOLDER] },
        jwksUri: str('JWKS URL (https; http only to loopback).'),
        algorithms: list({ enum: ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'] }, 'Allowed signature algorithms. Default [RS256, PS256, ES256, EdDSA].'),
        leeway: dur('Tolerance on exp/nbf (≤5m). Default 0s.'),
      }, { required: ['issuer'] }),
    }, { oneOf: [{ required: ['file', 'type'] }, { required: ['env', 'type'] }, { required: ['provider', 'type'] }, { required: ['request'] }] }),
    actorToken: (() => {
      // Per caller, `type` defaults to access_token; a fixed subject's actor needs it (the validator says so).
      const ref = tokenRef('An actor token (delegation): { file | env | provider, type }; per caller: { provider, type? }.');
      delete ref.required;
      return ref;
    })(),
    requestedTokenType: str('requested_token_type; the answer must carry the same issued_token_type.', { pattern: TOKEN_TYPE }),
    resource: { description: 'resource parameter(s): absolute URIs.', anyOf: [{ type: 'string' }, { type: 'array', items: { type: 'string' } }, PLACEHOLDER] },
    ...endpoint,
  }, { required: ['type', 'subjectToken'], allOf: authRules(false) }),
};

const source: Schema = {
  description: 'Where the provider gets its token.',
  type: 'object',
  required: ['type'],
  properties: { type: { enum: Object.keys(sources) } },
  allOf: Object.keys(sources).map((t) => ({ if: { properties: { type: { const: t } }, required: ['type'] }, then: { $ref: `#/$defs/source_${t}` } })),
};

const provider = obj('One upstream credential.', {
  source: { $ref: '#/$defs/source' },
  inject: section('How the token is attached to the upstream request.', {
    header: str('Header to set. Default authorization.', { pattern: "^[!#$%&'*+.^_`|~0-9a-zA-Z-]+$" }),
    format: str('Header value; must contain {token}. Default "Bearer {token}".', { pattern: '\\{token\\}' }),
    removeHeaders: list({ type: ['string', 'integer'] }, 'Request headers to strip.'),
    maxTokenBytes: num('Largest token accepted from the source (bytes). Default 16384.', { minimum: 64, maximum: 65536, integer: true }),
  }),
  refresh: section('When tokens are refreshed.', {
    jitter: fraction('Random spread of the refresh point, e.g. 10%. Default 10%.'),
    waitBudget: dur('How long a Check may wait for a refresh (≤60s). Default 150ms.'),
    before: dur('Refresh this long before expiry.'),
    skew: dur('Assume the IdP clock is this far ahead.'),
  }),
  resilience: section('Timeouts, retries, circuit breaker and fallbacks for token fetches.', {
    timeout: dur('Per attempt. Default 5s.'),
    retries: num('Retries per fetch (0–20). Default 3.', { minimum: 0, maximum: 20, integer: true }),
    backoff: section('Exponential backoff between retries.', { base: dur('Default 200ms.'), max: dur('Default 5s.') }),
    breaker: section('Circuit breaker per token endpoint.', {
      window: dur('Rolling window. Default 60s.'),
      volumeThreshold: num('Calls in the window before it may open. Default 5.', { minimum: 1, integer: true }),
      errorThresholdPercentage: num('Failure percentage that opens it. Default 50.', { minimum: 1, maximum: 100 }),
      resetTimeout: dur('Open → half-open after. Default 30s.'),
    }),
    serveExpiredFor: dur('Serve an expired token this long when refreshes fail (≤1d). Default 0.'),
    emergencyToken: secret('Last-resort token when nothing else is available.'),
  }),
  purgeOnUpstreamStatus: list({ anyOf: [{ type: 'integer', minimum: 100, maximum: 599 }, PLACEHOLDER] }, 'Upstream statuses (from Envoy\'s access log) that purge the token. Default [401].'),
  cache: section('Per-caller cache (token_exchange with subjectToken.request only).', {
    maxEntries: num('Callers kept; the least recently used is evicted first. Default 10000.', { minimum: 1, maximum: 10000000, integer: true }),
    maxBytes: num('Approximate bytes the cache may hold. Default 64 MiB.', { minimum: 65536, maximum: 17179869184, integer: true }),
    negativeTtl: dur('How long a refused subject is answered from memory (≤1d). Default 30s.'),
    shared: bool('Also keep exchanged tokens in the Redis store (encrypted, keyed by an HMAC of the subject). Default false.'),
  }),
}, { required: ['source'] });

const route = obj('Picks a provider for requests Envoy sends without a provider context extension.', {
  provider: str('A configured provider name.'),
  match: section('All given conditions must hold.', {
    authority: str('Host name, *.suffix or *.', { pattern: '^(\\*\\.)?[A-Za-z0-9.-]+(:\\d+)?$|^\\*$' }),
    pathPrefix: str('Path prefix; starts with /.', { pattern: '^/' }),
    method: str('HTTP method.'),
    headers: stringMap('Header name → exact value.'),
  }),
}, { required: ['provider'] });

/** The whole document. */
export function configJsonSchema(): Schema {
  return {
    $schema: 'https://json-schema.org/draft/2020-12/schema',
    $id: SCHEMA_ID,
    title: 'tokengate configuration',
    description: 'tokengate.yaml: see the README section "Configuration". Generated by `tokengate schema`.',
    type: 'object',
    additionalProperties: false,
    properties: {
      listen, admin, store, defaults, log, shutdown,
      tokenEndpoints: {
        description: 'Per-origin budgets for token-endpoint requests (README, "Token-endpoint budgets"). Origins without an entry get maxRate 10/s, burst 10, maxConcurrent 4, fallbackShare 1/3.',
        type: ['object', 'null'],
        propertyNames: { pattern: '^https?://[^/]+/?$' },
        additionalProperties: { $ref: '#/$defs/tokenEndpoint' },
      },
      providers: {
        description: 'Credentials by provider name (letters, digits, _ . -; at most 128).',
        type: ['object', 'null'],
        propertyNames: { pattern: '^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$' },
        additionalProperties: { $ref: '#/$defs/provider' },
      },
      routes: list({ $ref: '#/$defs/route' }, 'Host/path/method/header rules naming a provider, first match wins.'),
    },
    $defs: {
      placeholder: { description: 'A value resolved when the config is loaded: ${env:NAME}, ${env:NAME:-default} or ${file:PATH}.', type: 'string', pattern: '\\$\\{(env|file):[^}]*\\}' },
      duration: {
        description: 'A duration such as 250ms, 30s, 5m, 1h, 1d or 1m30s; 0 is allowed.',
        anyOf: [{ type: 'string', pattern: '^\\s*(0|(\\d+(\\.\\d+)?(ms|s|m|h|d))+)\\s*$' }, { const: 0 }],
      },
      provider,
      tokenEndpoint: {
        type: ['object', 'null'],
        additionalProperties: false,
        properties: {
          maxRate: str('Token requests a second, all replicas together: 5/s, 300/m, or a number per second (at least 1/m). Default 10/s.', { pattern: '^\\s*\\d+(\\.\\d+)?\\s*(/\\s*(s|m|h))?\\s*$' }),
          burst: num('Requests that may go back to back (token-bucket capacity). Default: maxRate per second, at least 1.', { minimum: 1, maximum: 100000, integer: true }),
          maxConcurrent: num('Requests in flight at once, per replica. Default 4.', { minimum: 1, maximum: 1000, integer: true }),
          fallbackShare: str('Share of maxRate each replica uses while the shared budget (Redis) is unreachable: 1/3, 50% or 0.5. Default 1/3.'),
        },
      },
      route,
      source,
      ...Object.fromEntries(Object.entries(sources).map(([t, s]) => [`source_${t}`, s])),
    },
  };
}
