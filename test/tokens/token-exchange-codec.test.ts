// The RFC 8693 / Entra OBO codec against a loopback exchange server: the form on the wire, client
// authentication, and the answer checks (issued_token_type, token_type, N_A).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TokenEndpointConfig } from '../../src/config/types.js';
import { TokenError } from '../../src/tokens/errors.js';
import { TokenEndpoint } from '../../src/tokens/http/token-endpoint.js';
import {
  acceptExchanged, exchangeForm, exchangeToken, isSubjectRefusal, JWT_BEARER_GRANT, TOKEN_EXCHANGE_GRANT, TOKEN_TYPES,
} from '../../src/tokens/http/token-exchange.js';
import { ExchangeIdp } from '../support/exchange-idp.js';

const ctx = () => ({ signal: AbortSignal.timeout(5_000), now: Date.now() });

function endpoint(idp: ExchangeIdp, over: Partial<TokenEndpointConfig> = {}): TokenEndpoint {
  return new TokenEndpoint({
    tokenUrl: idp.tokenUrl, clientId: 'gateway', clientSecret: 'gateway-secret', authMethod: 'client_secret_basic',
    assertionAlgorithm: 'RS256', params: {}, defaultTtl: 3_600_000, allowPlainHttp: false, ...over,
  });
}

describe('token exchange codec', () => {
  let idp: ExchangeIdp;
  beforeAll(async () => { idp = await new ExchangeIdp().start(); });
  afterAll(async () => idp?.stop());

  it('rfc8693: sends grant, subject, actor, repeated audience/resource, scope and requested type', async () => {
    idp.reset();
    const subject = await idp.subjectToken({ sub: 'alice' });
    const actor = await idp.subjectToken({ sub: 'gateway-svc' });
    const ep = endpoint(idp);
    try {
      const out = await exchangeToken(ep, {
        style: 'rfc8693', subjectToken: subject, actorToken: actor, audience: ['https://a.example', 'https://b.example'],
        resource: 'https://orders.example/api', scope: 'orders.read', requestedTokenType: TOKEN_TYPES.accessToken,
      }, ctx());
      expect(idp.exchanges).toHaveLength(1);
      const r = idp.exchanges[0]!;
      expect(r.client).toBe('gateway');
      expect(r.form).toEqual({
        grant_type: TOKEN_EXCHANGE_GRANT, subject_token: subject, subject_token_type: TOKEN_TYPES.accessToken,
        actor_token: actor, actor_token_type: TOKEN_TYPES.accessToken, audience: ['https://a.example', 'https://b.example'],
        resource: 'https://orders.example/api', scope: 'orders.read', requested_token_type: TOKEN_TYPES.accessToken,
      });
      expect(idp.issued.get(out.accessToken)).toMatchObject({ sub: 'alice', act: 'gateway-svc' });
      expect(out).toMatchObject({ tokenType: 'Bearer', issuedTokenType: TOKEN_TYPES.accessToken, notAccessToken: false, expiresInMs: 3_600_000 });
    } finally {
      ep.close();
    }
  });

  it('entra_obo: jwt-bearer grant with assertion, requested_token_use and scope, client_secret_post', async () => {
    idp.reset();
    const subject = await idp.subjectToken({ sub: 'bob' });
    const ep = endpoint(idp, { authMethod: 'client_secret_post' });
    try {
      const out = await exchangeToken(ep, { style: 'entra_obo', subjectToken: subject, scope: 'api://orders/.default' }, ctx());
      expect(idp.exchanges[0]!.form).toEqual({
        grant_type: JWT_BEARER_GRANT, assertion: subject, requested_token_use: 'on_behalf_of', scope: 'api://orders/.default',
        client_id: 'gateway', client_secret: 'gateway-secret',
      });
      expect(out.issuedTokenType).toBe(TOKEN_TYPES.accessToken);
    } finally {
      ep.close();
    }
  });

  it('entra_obo refuses RFC 8693-only parameters and needs a scope', () => {
    expect(() => exchangeForm({ style: 'entra_obo', subjectToken: 't', audience: 'x', scope: 's' })).toThrow(/entra_obo takes only scope/);
    expect(() => exchangeForm({ style: 'entra_obo', subjectToken: 't' })).toThrow(/needs a scope/);
    expect(() => exchangeForm({ style: 'rfc8693', subjectToken: 't', actorTokenType: TOKEN_TYPES.jwt })).toThrow(/actorTokenType without/);
  });

  it('a refused subject is an ERR_IDP_REJECTED subject refusal carrying the IdP error, and never quotes the token', async () => {
    idp.reset();
    idp.refuse.add('mallory');
    const subject = await idp.subjectToken({ sub: 'mallory' });
    const ep = endpoint(idp);
    try {
      const err = await exchangeToken(ep, { style: 'rfc8693', subjectToken: subject }, ctx()).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(TokenError);
      expect(isSubjectRefusal(err)).toBe(true);
      expect((err as TokenError).oauthError).toBe('invalid_grant');
      expect(JSON.stringify((err as TokenError).toJSON())).not.toContain(subject);
    } finally {
      ep.close();
    }
  });

  it('a wrong client secret is not a subject refusal (the gateway is at fault)', async () => {
    idp.reset();
    const ep = endpoint(idp, { clientSecret: 'nope' });
    try {
      const err = await exchangeToken(ep, { style: 'rfc8693', subjectToken: await idp.subjectToken({ sub: 'a' }) }, ctx()).catch((e: unknown) => e);
      expect((err as TokenError).oauthError).toBe('invalid_client');
      expect(isSubjectRefusal(err)).toBe(false);
    } finally {
      ep.close();
    }
  });

  describe('answer checks (RFC 8693 §2.2.1)', () => {
    const base = { accessToken: 'abc', tokenType: 'Bearer' };
    const req = { style: 'rfc8693' as const, subjectToken: 's' };
    it('requires issued_token_type for rfc8693, not for entra_obo', () => {
      expect(() => acceptExchanged(base, req)).toThrow(/no issued_token_type/);
      expect(acceptExchanged(base, { style: 'entra_obo', subjectToken: 's', scope: 'x' }).issuedTokenType).toBe(TOKEN_TYPES.accessToken);
    });
    it('refuses an issued type other than the requested one', () => {
      expect(() => acceptExchanged({ ...base, issuedTokenType: TOKEN_TYPES.idToken }, { ...req, requestedTokenType: TOKEN_TYPES.accessToken })).toThrow(/not the requested/);
    });
    it('N_A: a token that is not an access token is presented as Bearer and flagged', () => {
      const out = acceptExchanged({ ...base, tokenType: 'N_A', issuedTokenType: TOKEN_TYPES.jwt }, req);
      expect(out).toMatchObject({ tokenType: 'Bearer', notAccessToken: true, issuedTokenType: TOKEN_TYPES.jwt });
      expect(() => acceptExchanged({ ...base, tokenType: 'N_A', issuedTokenType: TOKEN_TYPES.accessToken }, req)).toThrow(/N_A/);
    });
    it('refuses token types it cannot present (DPoP, mac), normalises bearer case', () => {
      expect(() => acceptExchanged({ ...base, tokenType: 'DPoP', issuedTokenType: TOKEN_TYPES.accessToken }, req)).toThrow(/only Bearer/);
      expect(acceptExchanged({ ...base, tokenType: 'bearer', issuedTokenType: TOKEN_TYPES.accessToken }, req).tokenType).toBe('Bearer');
    });
    it('refuses an issued_token_type that is not a URI', () => {
      expect(() => acceptExchanged({ ...base, issuedTokenType: 'access token' }, req)).toThrow(/not a URI/);
    });
  });
});
