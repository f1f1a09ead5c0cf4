// The validated, frozen configuration. Everything inward of config/ receives these types and
// never re-reads the environment or re-checks a value. Durations are milliseconds.

export type SourceType = 'client_credentials' | 'refresh_token' | 'jwt' | 'jwt_bearer' | 'static' | 'metadata' | 'gcp_impersonation' | 'token_exchange';
export type ClientAuthMethod =
  | 'client_secret_basic' | 'client_secret_post' | 'private_key_jwt'
  | 'client_assertion' | 'tls_client_auth' | 'self_signed_tls_client_auth' | 'none';
export type JwtAlgorithm = 'HS256' | 'HS384' | 'HS512' | 'RS256' | 'ES256' | 'EdDSA';

export interface EndpointTlsConfig {
  readonly caFile?: string;
  /** base64 SHA-256 of the server certificate's SubjectPublicKeyInfo. */
  readonly pinSha256?: string;
  /** PEM client certificate (chain) and key for mTLS (tls_client_auth); re-read when they change. */
  readonly certFile?: string;
  readonly keyFile?: string;
}

/** What the HTTP-based sources share: where the token endpoint is and how to talk to it. */
export interface TokenEndpointConfig {
  /** Exactly one of tokenUrl and issuer is set (issuer: the token endpoint comes from discovery). */
  readonly tokenUrl?: string;
  readonly issuer?: string;
  /** `aud` of client assertions: the issuer when known (RFC 7523bis), or the token endpoint URL. */
  readonly assertionAudience?: 'issuer' | 'tokenUrl';
  /** A JWT read at each fetch (client_assertion): a projected service-account token. */
  readonly clientAssertionFile?: string;
  readonly clientId?: string;
  readonly clientSecret?: string;
  readonly authMethod: ClientAuthMethod;
  /** PEM private key for private_key_jwt. */
  readonly privateKey?: string;
  readonly keyId?: string;
  readonly assertionAlgorithm: JwtAlgorithm;
  readonly scope?: string;
  readonly audience?: string;
  readonly params: Readonly<Record<string, string>>;
  readonly defaultTtl: number;
  readonly tls?: EndpointTlsConfig;
  /** Opt-in for plain http to a host that is not loopback (demos only). */
  readonly allowPlainHttp: boolean;
}

export interface ClientCredentialsSource extends TokenEndpointConfig {
  readonly type: 'client_credentials';
}

export interface RefreshTokenSource extends TokenEndpointConfig {
  readonly type: 'refresh_token';
  /** The initial refresh token; rotated ones live in the store. */
  readonly refreshToken: string;
  /**
   * Ms during which the IdP accepts the same refresh token again after its first presentation
   * (Auth0's reuse interval, Okta's grace period). 0: any second presentation is a reuse.
   */
  readonly reuseInterval: number;
}

export interface JwtSigningConfig {
  readonly algorithm: JwtAlgorithm;
  /** Secret for HS*, PEM private key otherwise. */
  readonly key: string;
  readonly keyId?: string;
  readonly claims: Readonly<Record<string, unknown>>;
  readonly ttl: number;
}

export interface JwtSource extends JwtSigningConfig {
  readonly type: 'jwt';
}

export interface JwtBearerSource extends TokenEndpointConfig {
  readonly type: 'jwt_bearer';
  readonly assertion: JwtSigningConfig;
}

export interface StaticSource {
  readonly type: 'static';
  readonly token?: string;
  readonly file?: string;
  /** How often a `file` is checked for changes. */
  readonly pollInterval: number;
}

/** The platform's own identity endpoint (GCP metadata server, Azure IMDS). */
export interface MetadataSource {
  readonly type: 'metadata';
  readonly flavor: 'gcp' | 'azure';
  /** Base URL: http://metadata.google.internal or http://169.254.169.254 by default. */
  readonly endpoint: string;
  /** gcp: service account, `default` unless named. */
  readonly serviceAccount: string;
  readonly scopes: readonly string[];
  /** azure: the resource (audience) the token is for, and a user-assigned identity's client id. */
  readonly resource?: string;
  readonly clientId?: string;
  readonly defaultTtl: number;
}

/** IAM Credentials generateAccessToken, authorised by another provider's token (`via`). */
export interface GcpImpersonationSource {
  readonly type: 'gcp_impersonation';
  readonly serviceAccount: string;
  readonly scopes: readonly string[];
  /** Requested lifetime (ms); Google allows up to 1h (12h with the org policy). */
  readonly lifetime: number;
  readonly delegates: readonly string[];
  readonly via: string;
  /** Base URL, https://iamcredentials.googleapis.com by default. */
  readonly endpoint: string;
  readonly defaultTtl: number;
  readonly tls?: EndpointTlsConfig;
}

/** Where a fixed (not per-caller) subject or actor token comes from. */
export interface FixedTokenRef {
  readonly file?: string;
  readonly env?: string;
  /** The value of `env`, read when the config was loaded. */
  readonly value?: string;
  readonly provider?: string;
  /** RFC 8693 token type URI. */
  readonly type: string;
}

/** `subjectToken.verify`: the caller's token is checked locally (jose) before any exchange. */
export interface SubjectVerifyConfig {
  /** Expected `iss`; also where the JWKS is discovered when `jwksUri` is not given. */
  readonly issuer: string;
  /** Expected `aud` (any of them). */
  readonly audience?: readonly string[];
  readonly jwksUri?: string;
  /** Allowed signature algorithms (never `none`). */
  readonly algorithms: readonly string[];
  /** Tolerance (ms) on `exp`/`nbf` at request time. */
  readonly leeway: number;
}

/** `subjectToken.request`: the caller's token from a request header (per-caller exchange). */
export interface SubjectFromRequest {
  /** Lower-case header name. */
  readonly header: string;
  /** Auth scheme before the token ("Bearer"), compared case-insensitively; "" when the header is the bare token. */
  readonly scheme: string;
  /** Longest subject token accepted (bytes); longer ones are answered 401 without hashing. */
  readonly maxBytes: number;
}

/** A fixed subject (file, env, provider), or the caller's own (`request`, per-caller tokens). */
export interface SubjectTokenConfig extends FixedTokenRef {
  readonly request?: SubjectFromRequest;
  readonly verify?: SubjectVerifyConfig;
}

/**
 * RFC 8693 token exchange: with a fixed subject (workload identity federation, STS), or per
 * caller (`subjectToken.request`; the provider then has `cache`). `style: entra_obo` is Entra
 * ID's on-behalf-of variant (per caller).
 */
export interface TokenExchangeSource extends TokenEndpointConfig {
  readonly type: 'token_exchange';
  readonly style: 'rfc8693' | 'entra_obo';
  readonly subjectToken: SubjectTokenConfig;
  readonly actorToken?: FixedTokenRef;
  readonly requestedTokenType?: string;
  readonly resource?: string | readonly string[];
}

/** `cache`: the per-caller token cache of a token_exchange provider whose subject is the caller's. */
export interface PerCallerCacheConfig {
  /** Callers kept at once; the least recently used is evicted first. */
  readonly maxEntries: number;
  /** Approximate bytes the cache may hold (tokens, answers, bookkeeping). */
  readonly maxBytes: number;
  /** How long a subject the IdP refused (or that failed verify) is answered from memory. */
  readonly negativeTtl: number;
  /** Also keep exchanged tokens in the shared store (Redis), encrypted, for every replica. */
  readonly shared: boolean;
}

export type SourceConfig =
  | ClientCredentialsSource | RefreshTokenSource | JwtSource | JwtBearerSource | StaticSource
  | MetadataSource | GcpImpersonationSource | TokenExchangeSource;

export interface InjectConfig {
  readonly header: string;
  readonly format: string;
  readonly removeHeaders: readonly string[];
  /** Longest token (bytes) that may be injected; a longer one is refused as a bad response. */
  readonly maxTokenBytes: number;
}

export interface RefreshConfig {
  readonly before?: number;
  /** Fraction of `before` (0.1 = 10%). */
  readonly jitter: number;
  readonly waitBudget: number;
  readonly skew?: number;
}

export interface BreakerConfig {
  readonly window: number;
  readonly volumeThreshold: number;
  readonly errorThresholdPercentage: number;
  readonly resetTimeout: number;
}

export interface ResilienceConfig {
  readonly timeout: number;
  readonly retries: number;
  readonly backoff: { readonly base: number; readonly max: number };
  readonly breaker: BreakerConfig;
  readonly serveExpiredFor: number;
  readonly emergencyToken?: string;
}

export interface ProviderConfig {
  readonly name: string;
  readonly source: SourceConfig;
  readonly inject: InjectConfig;
  readonly refresh: RefreshConfig;
  readonly resilience: ResilienceConfig;
  readonly purgeOnUpstreamStatus: readonly number[];
  /** Per-caller cache; set only for token_exchange providers whose subject comes from the request. */
  readonly cache?: PerCallerCacheConfig;
}

export interface RouteMatch {
  readonly authority?: string;
  readonly pathPrefix?: string;
  readonly method?: string;
  readonly headers?: Readonly<Record<string, string>>;
}

export interface RouteConfig {
  readonly match: RouteMatch;
  readonly provider: string;
}

export interface TlsListenConfig {
  readonly certFile: string;
  readonly keyFile: string;
  readonly clientCaFile?: string;
}

export interface RedisConfig {
  readonly url?: string;
  readonly sentinels?: readonly string[];
  readonly name?: string;
  readonly cluster?: readonly string[];
  readonly password?: string;
  readonly keyPrefix: string;
  readonly commandTimeout: number;
  readonly connectTimeout: number;
  /**
   * Replicas that must acknowledge a record carrying a rotated refresh token (Redis WAIT) before
   * the claim is released and the new token used (default 1; 0 turns it off). Capped at the replicas the
   * master has connected, so a standalone Redis never waits.
   */
  readonly replicaAcks?: number;
  /** How long to wait for those acknowledgements (ms); default 1000. */
  readonly replicaAckTimeout?: number;
}

export interface StoreConfig {
  readonly type: 'memory' | 'redis';
  readonly redis?: RedisConfig;
  /** 32 bytes, from base64. */
  readonly encryptionKey?: Buffer;
  /** Keys older records may be sealed with (a rotation in progress): opened with, never sealed with. */
  readonly previousEncryptionKeys?: readonly Buffer[];
}

/** `tokenEndpoints.<origin>`: the budget of requests to the token endpoints on one origin. */
export interface TokenEndpointBudgetConfig {
  /** Requests a second, all replicas together (with a shared store). */
  readonly maxRate: number;
  /** Token-bucket capacity: requests that may go back to back. */
  readonly burst: number;
  /** Requests in flight at once, per replica. */
  readonly maxConcurrent: number;
  /** Of maxRate, per replica, while the shared budget is unreachable (and before it is connected). */
  readonly fallbackShare: number;
}

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

/** `listen.limits`: see SECURITY.md, "Resource bounds on the gRPC listener". */
export interface ListenLimits {
  /** Open connections at once; more are closed on accept. */
  readonly maxConnections: number;
  /** HTTP/2 streams in flight per connection (SETTINGS_MAX_CONCURRENT_STREAMS). */
  readonly maxConcurrentStreams: number;
  /** HTTP/2 session memory per connection, in MB (nghttp2 refuses new streams past it). */
  readonly maxSessionMemoryMb: number;
  readonly keepaliveTimeMs: number;
  readonly keepaliveTimeoutMs: number;
  /** A connection with no stream for this long is closed (GOAWAY). */
  readonly maxConnectionIdleMs: number;
  /** Connections are recycled after this long, so new replicas get traffic. */
  readonly maxConnectionAgeMs: number;
  readonly maxMessageBytes: number;
}

/** Who serves Check on the gRPC listener: grpc-js, or node:http2 directly (bench/FINDINGS.md). */
export type CheckServer = 'grpc-js' | 'http2';

export interface Config {
  readonly listen: {
    readonly grpc: string;
    /** Check on grpc-js or on node:http2; every other service is grpc-js either way. */
    readonly checkServer: CheckServer;
    /** Bounds on what gRPC clients may hold: memory and connections stay finite under any client. */
    readonly limits: ListenLimits;
    /** "host:port", or undefined when `off`. */
    readonly admin?: string;
    readonly tls?: TlsListenConfig;
  };
  readonly admin: { readonly token?: string };
  readonly store: StoreConfig;
  readonly defaults: {
    readonly unmatched: 'allow' | 'deny';
    readonly onTokenUnavailable: 'deny' | 'allow';
    readonly providerKey: string;
  };
  readonly log: { readonly level: LogLevel; readonly requests: boolean };
  readonly shutdown: {
    readonly deadline: number;
    /** After readiness drops, keep serving this long so Envoy's health checks notice first. */
    readonly drainDelay: number;
  };
  readonly providers: ReadonlyMap<string, ProviderConfig>;
  /** Per-origin token-endpoint budgets (origin → budget); origins not listed get the default. */
  readonly tokenEndpoints?: ReadonlyMap<string, TokenEndpointBudgetConfig>;
  readonly routes: readonly RouteConfig[];
  /** Warnings that do not stop the config from loading (e.g. a literal secret). */
  readonly warnings: readonly ConfigProblem[];
}

export interface ConfigProblem {
  readonly path: string;
  readonly problem: string;
}
