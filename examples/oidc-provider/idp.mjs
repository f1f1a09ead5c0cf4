#!/usr/bin/env node
// A real OAuth server for tokengate's per-caller example: oidc-provider 8 (OpenID-certified), in
// process, on loopback, with the example's token-exchange grant (token-exchange-grant.mjs).
//
//   node examples/oidc-provider/idp.mjs        # listens on http://127.0.0.1:4000 (PORT=…)
//
// It writes alice's and bob's access tokens (as if they had signed in to `web-app`; audience
// `gateway`) to a temporary directory and prints the commands that exchange them through
// tokengate. tokengate's test suite starts the same server (startIdp below) on port 0 and runs
// the README's example against it (test/interop/oidc-provider-exchange.test.ts).
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import Provider, { errors } from 'oidc-provider';
import { TOKEN_EXCHANGE_DUPES, TOKEN_EXCHANGE_GRANT, TOKEN_EXCHANGE_PARAMETERS, tokenExchangeGrant } from './token-exchange-grant.mjs';

/** Resource servers (audiences) this IdP issues JWT access tokens for. */
export const DEFAULT_RESOURCE_SERVERS = {
  // The callers' own tokens: issued to the gateway (aud "gateway"), which may exchange them.
  'https://gateway.example': { audience: 'gateway', scope: 'orders.read', accessTokenFormat: 'jwt', accessTokenTTL: 3600 },
  // The upstream: what the gateway asks for on the caller's behalf.
  'https://orders.example': { scope: 'orders.read orders.write', accessTokenFormat: 'jwt', accessTokenTTL: 600 },
};

/** The gateway (tokengate) as a confidential client: client_secret_basic, exchange and client_credentials. */
export const GATEWAY_CLIENT = {
  client_id: 'gateway',
  client_secret: 'gateway-secret',
  token_endpoint_auth_method: 'client_secret_basic',
  grant_types: [TOKEN_EXCHANGE_GRANT, 'client_credentials'],
  response_types: [],
  redirect_uris: [],
};

/** The app the callers sign in to; their tokens name it as client_id. */
const WEB_APP_CLIENT = {
  client_id: 'web-app',
  token_endpoint_auth_method: 'none',
  grant_types: ['authorization_code'],
  response_types: ['code'],
  redirect_uris: ['http://127.0.0.1/callback'],
};

/**
 * Starts oidc-provider on loopback.
 * @param {import('./idp.d.mts').IdpOptions} [opts]
 * @returns {Promise<import('./idp.d.mts').Idp>}
 */
export async function startIdp(opts = {}) {
  const accounts = new Set(opts.accounts ?? ['alice', 'bob']);
  const resourceServers = { ...DEFAULT_RESOURCE_SERVERS, ...opts.resourceServers };
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const signingJwk = { ...privateKey.export({ format: 'jwk' }), kid: `idp-${randomBytes(4).toString('hex')}`, alg: 'RS256', use: 'sig' };
  const publicJwk = { kty: signingJwk.kty, n: signingJwk.n, e: signingJwk.e, kid: signingJwk.kid, alg: 'RS256', use: 'sig' };

  // The issuer names the port, so listen first and hand requests to the provider once it exists.
  let handle = (_req, res) => { res.statusCode = 503; res.end(); };
  const server = http.createServer((req, res) => handle(req, res));
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, opts.host ?? '127.0.0.1', () => resolve(undefined));
  });
  const { port } = /** @type {import('node:net').AddressInfo} */ (server.address());
  const issuer = `http://${opts.host ?? '127.0.0.1'}:${port}`;

  const accessTokenTtl = (_ctx, token) => token.resourceServer?.accessTokenTTL ?? 600;
  const resourceServerInfo = async (_ctx, resource) => {
    const info = resourceServers[resource];
    if (!info) throw new errors.InvalidTarget(`unknown resource ${resource}`);
    return info;
  };
  const provider = new Provider(issuer, {
    clients: [GATEWAY_CLIENT, WEB_APP_CLIENT, ...(opts.clients ?? [])],
    jwks: { keys: [signingJwk] },
    cookies: { keys: [randomBytes(16).toString('hex')] },
    findAccount: async (_ctx, sub) => (accounts.has(sub) ? { accountId: sub, claims: async () => ({ sub }) } : undefined),
    // Every access token here names a resource server, which says how long its tokens live.
    ttl: { AccessToken: accessTokenTtl, ClientCredentials: accessTokenTtl },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      resourceIndicators: { enabled: true, getResourceServerInfo: resourceServerInfo, defaultResource: async () => undefined },
    },
  });
  provider.registerGrantType(TOKEN_EXCHANGE_GRANT, tokenExchangeGrant({ publicJwks: { keys: [publicJwk] }, resourceServerInfo }), TOKEN_EXCHANGE_PARAMETERS, TOKEN_EXCHANGE_DUPES);
  // Every token request, after oidc-provider answered it: the grant, the client it authenticated, the outcome.
  provider.use(async (ctx, next) => {
    await next();
    if (ctx.method !== 'POST' || ctx.path !== '/token') return;
    const body = /** @type {{ error?: string } | undefined} */ (ctx.body);
    opts.onTokenRequest?.({
      grantType: ctx.oidc?.params?.grant_type,
      clientId: ctx.oidc?.client?.clientId,
      status: ctx.status,
      ...(body?.error ? { error: body.error } : {}),
    });
  });
  // oidc-provider logs its own server errors through this event; a test wants them visible.
  provider.on('server_error', (_ctx, err) => opts.onServerError?.(err));
  const callback = provider.callback();
  handle = (req, res) => callback(req, res);

  return {
    issuer,
    tokenEndpoint: `${issuer}/token`,
    jwksUri: `${issuer}/jwks`,
    provider,
    accounts,
    async callerToken(sub, tokenOpts = {}) {
      const client = await provider.Client.find(WEB_APP_CLIENT.client_id);
      const resource = 'https://gateway.example';
      const info = tokenOpts.audience ? { ...resourceServers[resource], audience: tokenOpts.audience } : resourceServers[resource];
      const resourceServer = new provider.ResourceServer(resource, info);
      const token = new provider.AccessToken({ accountId: sub, client, scope: 'orders.read', resourceServer, gty: 'authorization_code' });
      if (tokenOpts.expiresIn !== undefined) token.expiresIn = tokenOpts.expiresIn;
      return token.save();
    },
    close() {
      server.closeAllConnections();
      return new Promise((resolve) => server.close(() => resolve(undefined)));
    },
  };
}

async function main() {
  const idp = await startIdp({
    port: Number(process.env.PORT ?? 4000),
    onTokenRequest: (r) => console.log(`token request: grant_type=${r.grantType} client=${r.clientId ?? '-'} → ${r.status}${r.error ? ` ${r.error}` : ''}`),
    onServerError: (err) => console.error('oidc-provider server error:', err),
  });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tokengate-oidc-example-'));
  for (const who of idp.accounts) fs.writeFileSync(path.join(dir, `${who}.jwt`), `${await idp.callerToken(who)}\n`, { mode: 0o600 });
  const here = path.relative(process.cwd(), path.dirname(fileURLToPath(import.meta.url))) || '.';
  console.log(`oidc-provider listening: issuer ${idp.issuer}
callers' tokens (aud "gateway", valid 1 h; removed when this stops): ${dir}/alice.jwt, ${dir}/bob.jwt

exchange alice's token through tokengate (another terminal, after npm run build):
  OIDC_ISSUER=${idp.issuer} node dist/cli.js token orders --config ${here}/tokengate.yaml --subject-token-file ${dir}/alice.jwt
or serve Checks for Envoy:
  OIDC_ISSUER=${idp.issuer} node dist/cli.js serve --config ${here}/tokengate.yaml`);
  const stop = () => void idp.close().then(() => {
    fs.rmSync(dir, { recursive: true, force: true });
    process.exit(0);
  });
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  main().catch((err) => {
    console.error(err);
    process.exit(1);
  });
}
