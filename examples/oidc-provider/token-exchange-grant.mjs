// THE EXAMPLE'S OWN RFC 8693 GRANT, not part of oidc-provider and not production code.
//
// oidc-provider 8 (OpenID-certified) ships no token-exchange grant; it lets an application
// register one. This is the smallest grant that is honest about what it checks, so that what
// tokengate meets is oidc-provider's real behaviour around it: client authentication
// (client_secret_basic, client_secret_post, private_key_jwt …), its parameter handling, its
// error responses (invalid_client 401, invalid_grant / invalid_target / invalid_request 400)
// and its JWT access tokens signed with the keys it publishes at jwks_uri.
//
// The subject must be an access token this provider issued (JWT, typ at+jwt) whose audience is
// the authenticated client, for an account findAccount still knows. The issued token is an
// oidc-provider AccessToken for the requested audience/resource, with sub = the subject's.
import { createLocalJWKSet, jwtVerify } from 'jose';
import { errors } from 'oidc-provider';

export const TOKEN_EXCHANGE_GRANT = 'urn:ietf:params:oauth:grant-type:token-exchange';
const ACCESS_TOKEN = 'urn:ietf:params:oauth:token-type:access_token';

/** The parameters oidc-provider passes to the handler (others are stripped before it runs). */
export const TOKEN_EXCHANGE_PARAMETERS = [
  'subject_token', 'subject_token_type', 'actor_token', 'actor_token_type',
  'audience', 'resource', 'scope', 'requested_token_type',
];
/** RFC 8693 §2.1: audience and resource may repeat. */
export const TOKEN_EXCHANGE_DUPES = ['audience', 'resource'];

function one(value, name) {
  if (Array.isArray(value)) {
    if (value.length !== 1) throw new errors.InvalidTarget(`this grant issues a token for exactly one ${name}`);
    return value[0];
  }
  return value;
}

/**
 * @param {{ publicJwks: { keys: object[] }, resourceServerInfo: (ctx: unknown, resource: string, client: unknown) => Promise<object> }} opts
 *   publicJwks: the provider's own signing keys (public parts); resourceServerInfo: the same
 *   function the provider's resourceIndicators feature uses (unknown targets throw invalid_target).
 */
export function tokenExchangeGrant({ publicJwks, resourceServerInfo }) {
  const keys = createLocalJWKSet(publicJwks);
  return async function tokenExchange(ctx, next) {
    const { client, params, provider } = ctx.oidc;
    if (!params.subject_token || !params.subject_token_type) throw new errors.InvalidRequest('subject_token and subject_token_type are required');
    if (params.subject_token_type !== ACCESS_TOKEN) throw new errors.InvalidRequest('only access tokens can be exchanged here');
    if (params.actor_token || params.actor_token_type) throw new errors.InvalidRequest('this grant does not support delegation (actor_token)');
    if (params.requested_token_type && params.requested_token_type !== ACCESS_TOKEN) throw new errors.InvalidRequest('only access tokens are issued here');

    let subject;
    try {
      ({ payload: subject } = await jwtVerify(params.subject_token, keys, { issuer: provider.issuer, audience: client.clientId, typ: 'at+jwt' }));
    } catch {
      throw new errors.InvalidGrant('subject_token is invalid, expired, or not issued to this client');
    }
    const account = typeof subject.sub === 'string' ? await provider.Account.findAccount(ctx, subject.sub) : undefined;
    if (!account) throw new errors.InvalidGrant('the subject is not an active account');

    const target = one(params.resource ?? params.audience, 'audience or resource');
    if (typeof target !== 'string') throw new errors.InvalidTarget('audience or resource is required');
    const resourceServer = new provider.ResourceServer(target, await resourceServerInfo(ctx, target, client));
    const allowed = new Set((resourceServer.scope ?? '').split(' '));
    const scope = (params.scope ?? '').split(' ').filter((s) => s && allowed.has(s)).join(' ') || undefined;

    const token = new provider.AccessToken({ accountId: account.accountId, client, scope, resourceServer, gty: 'token_exchange' });
    ctx.oidc.entity('AccessToken', token);
    const value = await token.save();
    ctx.body = {
      access_token: value,
      issued_token_type: ACCESS_TOKEN,
      token_type: token.tokenType,
      expires_in: token.expiration,
      ...(scope ? { scope } : {}),
    };
    await next();
  };
}
