// YAML for the bench's tokengate processes. Secrets come from the environment (`${env:…}`),
// as in production, so no config warns about literal secrets. Logs at warn: a cache hit never
// logs anyway, and 10 000 "token fetched" lines would only measure the log sink.
// Connections are kept for the whole run (maxConnectionAge and maxConnectionIdle 24h): the
// generator connects each target once, and a target's saturating connection sits idle while
// the latency blocks run (~5 min at 80 rotations), past the 5 min idle default, which closed
// it under the next size's rounds (ERR_HTTP2_INVALID_SESSION, 2026-12-07 13:28 UTC). A day, not
// an hour: a run with more rounds (BENCH_SIZE_ROUNDS=30 …, README) lasts ~80 min.
import crypto from 'node:crypto';

export const BENCH_ENV = {
  BENCH_JWT_KEY: crypto.randomBytes(32).toString('hex'),
  BENCH_ADMIN_TOKEN: crypto.randomBytes(24).toString('hex'),
  BENCH_ENC_KEY: crypto.randomBytes(32).toString('base64'),
};

export const providerName = (i) => `p${i}`;
export const routeAuthority = (i) => `svc-${i}.bench.example`;

function jwtProvider(i) {
  return `  ${providerName(i)}: { source: { type: jwt, algorithm: HS256, key: "\${env:BENCH_JWT_KEY}", claims: { iss: bench-${i}, aud: upstream-${i} }, ttl: 30m } }`;
}

function storeBlock(store) {
  if (store !== 'redis') return '';
  return [
    'store:',
    '  type: redis',
    '  redis: { url: "${env:BENCH_REDIS_URL}", keyPrefix: "tokengate-bench:" }',
    '  encryptionKey: "${env:BENCH_ENC_KEY}"',
  ].join('\n');
}

/**
 * `n` self-signed JWT providers (HS256, 30 min) and one route per provider, in order:
 * `svc-<i>.bench.example` under `/v1/` → p<i>. The last route is the worst case of a
 * first-match scan.
 */
/** The header rule of the size matrix: `api.example.com` with `x-tenant: blue` → p0 (after the n routes). */
export const HEADER_ROUTE = { authority: 'api.example.com', header: ['x-tenant', 'blue'] };

export function providersYaml(n, { store = 'memory', headerRoute = false, checkServer } = {}) {
  const lines = [
    `listen: { grpc: "127.0.0.1:0", admin: "off", ${checkServer ? `checkServer: ${checkServer}, ` : ''}limits: { maxConnectionAge: 24h, maxConnectionIdle: 24h } }`,
    'log: { level: warn }',
    storeBlock(store),
    'providers:',
  ];
  for (let i = 0; i < n; i++) lines.push(jwtProvider(i));
  lines.push('routes:');
  for (let i = 0; i < n; i++) lines.push(`  - { match: { authority: ${routeAuthority(i)}, pathPrefix: /v1/ }, provider: ${providerName(i)} }`);
  if (headerRoute) lines.push(`  - { match: { authority: ${HEADER_ROUTE.authority}, headers: { ${HEADER_ROUTE.header[0]}: ${HEADER_ROUTE.header[1]} } }, provider: ${providerName(0)} }`);
  return `${lines.filter(Boolean).join('\n')}\n`;
}

/**
 * One client_credentials provider against the demo IdP. `refresh.before: 0s` and no jitter:
 * the scheduled refresh starts exactly at hard expiry, so a Check arriving then finds no
 * usable token and must wait for the single in-flight refresh (the storm).
 */
export function stormYaml() {
  return `listen: { grpc: "127.0.0.1:0", admin: "127.0.0.1:0", limits: { maxConnectionAge: 24h, maxConnectionIdle: 24h } }
admin: { token: "\${env:BENCH_ADMIN_TOKEN}" }
log: { level: warn }
providers:
  storm:
    source: { type: client_credentials, tokenUrl: "\${env:BENCH_IDP_URL}", clientId: demo-client, clientSecret: "\${env:BENCH_IDP_SECRET}" }
    refresh: { before: 0s, jitter: 0 }
  storm-slow:
    source: { type: client_credentials, tokenUrl: "\${env:BENCH_IDP_URL}", clientId: demo-client, clientSecret: "\${env:BENCH_IDP_SECRET}" }
    refresh: { waitBudget: 10s }
`;
}
