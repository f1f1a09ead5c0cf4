// The RFC 8693 token-exchange codec, and Entra ID's on-behalf-of variant of it: what goes into
// the form, and the checks an exchange answer must pass beyond an ordinary token response.
// Client authentication, the POST, redaction and error classification are TokenEndpoint's; this
// file knows only the grant. Used by per-caller exchanges (a subject token from the request) and
// fixed-subject ones (a subject token from a file, the environment or another provider).
import { TokenError } from '../errors.js';
import type { EndpointRequestContext, TokenEndpoint } from './token-endpoint.js';
import type { TokenResponse } from './token-response.js';

export const TOKEN_EXCHANGE_GRANT = 'urn:ietf:params:oauth:grant-type:token-exchange';
export const JWT_BEARER_GRANT = 'urn:ietf:params:oauth:grant-type:jwt-bearer';

/** RFC 8693 §3 token type identifiers. */
export const TOKEN_TYPES = {
  accessToken: 'urn:ietf:params:oauth:token-type:access_token',
  refreshToken: 'urn:ietf:params:oauth:token-type:refresh_token',
  idToken: 'urn:ietf:params:oauth:token-type:id_token',
  saml1: 'urn:ietf:params:oauth:token-type:saml1',
  saml2: 'urn:ietf:params:oauth:token-type:saml2',
  jwt: 'urn:ietf:params:oauth:token-type:jwt',
} as const;

/**
 * `rfc8693`: the token-exchange grant. `entra_obo`: Entra ID's on-behalf-of flow, a jwt-bearer
 * grant with the caller's token as `assertion` and `requested_token_use=on_behalf_of`.
 */
export type ExchangeStyle = 'rfc8693' | 'entra_obo';

/** One exchange to perform. Values are sent as given; nothing here is logged. */
export interface ExchangeRequest {
  readonly style: ExchangeStyle;
  /** The token that represents the party on whose behalf the request is made. */
  readonly subjectToken: string;
  /** subject_token_type (rfc8693); default access_token. Ignored by entra_obo. */
  readonly subjectTokenType?: string;
  /** Delegation (RFC 8693 §1.1): the acting party's own token. rfc8693 only. */
  readonly actorToken?: string;
  /** actor_token_type; default access_token when an actor token is sent. */
  readonly actorTokenType?: string;
  /** Logical names of the target service(s). rfc8693 only. */
  readonly audience?: string | readonly string[];
  /** Absolute URIs of the target resource(s) (RFC 8707 style). rfc8693 only. */
  readonly resource?: string | readonly string[];
  /** Space-separated scopes; required by entra_obo (e.g. `api://orders/.default`). */
  readonly scope?: string;
  /** requested_token_type (rfc8693); the answer's issued_token_type must match it. */
  readonly requestedTokenType?: string;
}

/** An exchange answer that passed the RFC 8693 checks. */
export interface ExchangedToken extends TokenResponse {
  /** RFC 8693 issued_token_type; for entra_obo (which does not send it), access_token. */
  readonly issuedTokenType: string;
  /**
   * The IdP said token_type `N_A` (§2.2.1): the issued token is not an OAuth access token (an
   * ID token, a SAML assertion). `tokenType` is then `Bearer`, the way such a token is presented.
   */
  readonly notAccessToken: boolean;
}

/** A form parameter with possibly several values (audience and resource may repeat, §2.1). */
export type FormValue = string | readonly string[];

function list(v: string | readonly string[] | undefined): readonly string[] {
  if (v === undefined) return [];
  return typeof v === 'string' ? [v] : v;
}

/**
 * The grant parameters of an exchange, without client authentication (TokenEndpoint adds it).
 * Throws TokenError(ERR_SOURCE_CONFIG) for a request the style cannot express.
 */
export function exchangeForm(req: ExchangeRequest): Record<string, FormValue> {
  if (req.subjectToken === '') throw new TokenError('ERR_SOURCE_CONFIG', 'token exchange needs a subject token');
  if (req.style === 'entra_obo') {
    if (req.actorToken !== undefined || list(req.audience).length || list(req.resource).length || req.requestedTokenType) {
      throw new TokenError('ERR_SOURCE_CONFIG', 'style entra_obo takes only scope: actor tokens, audience, resource and requestedTokenType are RFC 8693 parameters');
    }
    if (!req.scope) throw new TokenError('ERR_SOURCE_CONFIG', 'style entra_obo needs a scope (e.g. api://<app-id>/.default)');
    return { grant_type: JWT_BEARER_GRANT, assertion: req.subjectToken, requested_token_use: 'on_behalf_of', scope: req.scope };
  }
  const form: Record<string, FormValue> = {
    grant_type: TOKEN_EXCHANGE_GRANT,
    subject_token: req.subjectToken,
    subject_token_type: req.subjectTokenType ?? TOKEN_TYPES.accessToken,
  };
  if (req.actorToken !== undefined) {
    form.actor_token = req.actorToken;
    form.actor_token_type = req.actorTokenType ?? TOKEN_TYPES.accessToken;
  } else if (req.actorTokenType !== undefined) {
    // §2.1: actor_token_type "MUST NOT be included otherwise".
    throw new TokenError('ERR_SOURCE_CONFIG', 'actorTokenType without an actor token');
  }
  const audience = list(req.audience);
  const resource = list(req.resource);
  if (audience.length) form.audience = audience;
  if (resource.length) form.resource = resource;
  if (req.scope) form.scope = req.scope;
  if (req.requestedTokenType) form.requested_token_type = req.requestedTokenType;
  return form;
}

const URN = /^urn:[A-Za-z0-9][A-Za-z0-9-]{0,31}:\S+$/;

/**
 * Checks an exchange answer (RFC 8693 §2.2.1). Throws TokenError(ERR_IDP_BAD_RESPONSE) when:
 * issued_token_type is missing (rfc8693: REQUIRED) or differs from requested_token_type;
 * token_type is neither Bearer nor N_A (a sender-constrained token we could not present);
 * token_type N_A claims to be an access token.
 */
export function acceptExchanged(res: TokenResponse, req: ExchangeRequest, status = 200): ExchangedToken {
  const issued = res.issuedTokenType;
  let issuedTokenType: string;
  if (req.style === 'entra_obo') {
    issuedTokenType = issued ?? TOKEN_TYPES.accessToken;
  } else {
    if (issued === undefined) throw new TokenError('ERR_IDP_BAD_RESPONSE', 'token exchange answer has no issued_token_type (RFC 8693 §2.2.1 requires it)', { status });
    if (!URN.test(issued) && !/^https?:\/\/\S+$/.test(issued)) throw new TokenError('ERR_IDP_BAD_RESPONSE', 'issued_token_type is not a URI', { status });
    issuedTokenType = issued;
  }
  if (req.requestedTokenType && issuedTokenType !== req.requestedTokenType) {
    throw new TokenError('ERR_IDP_BAD_RESPONSE', `token exchange issued ${issuedTokenType.slice(0, 100)}, not the requested ${req.requestedTokenType}`, { status });
  }
  const type = res.tokenType;
  if (type.toUpperCase() === 'N_A') {
    if (issuedTokenType === TOKEN_TYPES.accessToken) {
      throw new TokenError('ERR_IDP_BAD_RESPONSE', 'token_type N_A is for tokens that are not access tokens, but issued_token_type says access_token', { status });
    }
    return { ...res, tokenType: 'Bearer', issuedTokenType, notAccessToken: true };
  }
  if (type.toLowerCase() !== 'bearer') {
    throw new TokenError('ERR_IDP_BAD_RESPONSE', `token exchange issued token_type ${type.slice(0, 64)}; only Bearer (or N_A) tokens can be presented`, { status });
  }
  return { ...res, tokenType: 'Bearer', issuedTokenType, notAccessToken: false };
}

/**
 * OAuth errors with which the IdP refuses *this subject* (its token, its consent, its target)
 * rather than the gateway: answered 403 to that caller, never retried, never a breaker trip.
 * `interaction_required`/`consent_required`: Entra's OBO answer when the user must consent or
 * do MFA first.
 */
const SUBJECT_REFUSALS = new Set(['invalid_grant', 'invalid_target', 'invalid_request', 'interaction_required', 'consent_required']);

/** Whether `err` is the IdP refusing the subject (see SUBJECT_REFUSALS), not the client. */
export function isSubjectRefusal(err: unknown): boolean {
  return err instanceof TokenError && err.code === 'ERR_IDP_REJECTED' && err.oauthError !== undefined && SUBJECT_REFUSALS.has(err.oauthError);
}

/** Builds the form, posts it with the endpoint's client authentication, checks the answer. */
export async function exchangeToken(endpoint: TokenEndpoint, req: ExchangeRequest, ctx: EndpointRequestContext): Promise<ExchangedToken> {
  const res = await endpoint.request(exchangeForm(req), ctx);
  return acceptExchanged(res, req);
}
