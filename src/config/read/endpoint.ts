// A token endpoint (`tokenUrl` or `issuer`), how the client authenticates to it (secret,
// private_key_jwt, client_assertion, mTLS or none) and the TLS it is reached over.
import { MAX_LIFETIME_MS, MIN_LIFETIME_MS } from '../lifetime-bounds.js';
import type { Reader } from '../reader.js';
import type { ClientAuthMethod, EndpointTlsConfig, TokenEndpointConfig } from '../types.js';
import { checkEndpointUrl } from './endpoint-url.js';
import { ALGORITHMS } from './signing.js';

const AUTH_METHODS: readonly ClientAuthMethod[] = [
  'client_secret_basic', 'client_secret_post', 'private_key_jwt', 'client_assertion', 'tls_client_auth', 'self_signed_tls_client_auth', 'none',
];

/**
 * RFC 6749 Appendix A: client_id and client_secret are VSCHAR, printable ASCII. A server may
 * refuse anything else in a way that looks like the caller's fault (oidc-provider answers
 * `invalid_request`, which a per-caller exchange answers 403 to every caller), so a stray
 * byte-order mark, tab or control character from a secret file is refused here, unquoted.
 */
const OAUTH_CREDENTIAL_CHARS = {
  pattern: /^[\x20-\x7E]*$/,
  patternHint: 'may hold only printable ASCII (RFC 6749 VSCHAR): is there a byte-order mark, tab or control character in its source?',
} as const;

type EndpointSourceType = 'client_credentials' | 'refresh_token' | 'jwt_bearer' | 'token_exchange';

const TLS_AUTH_METHODS: readonly ClientAuthMethod[] = ['tls_client_auth', 'self_signed_tls_client_auth'];

export function readEndpointTls(r: Reader): EndpointTlsConfig | undefined {
  if (!r.has('tls')) return undefined;
  const t = r.child('tls');
  if (!t) return undefined;
  const caFile = t.str('caFile');
  const pinSha256 = t.str('pinSha256', { pattern: /^[A-Za-z0-9+/]{43}=$/, patternHint: 'expected base64 of a SHA-256 digest (44 characters)' });
  const certFile = t.str('certFile');
  const keyFile = t.str('keyFile');
  if ((certFile === undefined) !== (keyFile === undefined)) t.problem(certFile === undefined ? 'certFile' : 'keyFile', 'certFile and keyFile go together (the client certificate and its key)');
  t.done();
  return { ...(caFile ? { caFile } : {}), ...(pinSha256 ? { pinSha256 } : {}), ...(certFile ? { certFile } : {}), ...(keyFile ? { keyFile } : {}) };
}

export function readEndpoint(r: Reader, type: EndpointSourceType): TokenEndpointConfig | undefined {
  const tokenUrl = r.str('tokenUrl');
  const issuer = r.str('issuer');
  const allowPlainHttp = r.bool('allowPlainHttp', false);
  if (tokenUrl === undefined && issuer === undefined) r.problem('tokenUrl', 'is required (or issuer, to discover the token endpoint)');
  if (tokenUrl !== undefined && issuer !== undefined) r.problem('issuer', 'tokenUrl and issuer are alternatives; set one');
  if (tokenUrl !== undefined) checkEndpointUrl(r, 'tokenUrl', tokenUrl, allowPlainHttp);
  if (issuer !== undefined) {
    // Discovery documents are trusted for where credentials go: https only, unless loopback.
    const url = checkEndpointUrl(r, 'issuer', issuer, false);
    if (url && (url.search || url.hash)) r.problem('issuer', 'must not have a query or fragment (OpenID Connect Discovery)');
  }
  const clientId = r.str('clientId', { required: type === 'client_credentials', ...OAUTH_CREDENTIAL_CHARS });
  const methods = type === 'client_credentials' ? AUTH_METHODS.filter((m) => m !== 'none') : AUTH_METHODS;
  // An STS takes no client authentication: token_exchange defaults to none unless a secret is given.
  const authMethod = r.oneOf('authMethod', methods, type === 'token_exchange' && !r.has('clientSecret') ? 'none' : 'client_secret_basic');
  const clientSecret = r.str('clientSecret', { secret: true, ...OAUTH_CREDENTIAL_CHARS });
  const privateKey = r.str('privateKey', { secret: true });
  const keyId = r.str('keyId');
  const assertionAlgorithm = r.oneOf('assertionAlgorithm', ALGORITHMS, 'RS256');
  const clientAssertionFile = r.str('clientAssertionFile');
  const assertionAudience = r.oneOf('assertionAudience', ['issuer', 'tokenUrl'] as const, 'issuer');
  const tls = readEndpointTls(r);
  if (authMethod === 'private_key_jwt') {
    if (!privateKey && !r.has('privateKey')) r.problem('privateKey', 'is required with authMethod: private_key_jwt');
    if (privateKey && !assertionAlgorithm.startsWith('HS') && !privateKey.includes('-----BEGIN')) {
      r.problem('privateKey', 'expected a PEM private key');
    }
    if (!clientId) r.problem('clientId', 'is required with authMethod: private_key_jwt');
  } else if (authMethod === 'client_assertion') {
    if (!clientAssertionFile) r.problem('clientAssertionFile', 'is required with authMethod: client_assertion');
  } else if (TLS_AUTH_METHODS.includes(authMethod)) {
    if (!tls?.certFile) r.problem('tls', `certFile and keyFile are required with authMethod: ${authMethod}`);
    // RFC 8705 §2: the client identifies itself with client_id; the certificate authenticates it.
    if (!clientId) r.problem('clientId', `is required with authMethod: ${authMethod}`);
  } else if (authMethod !== 'none' && clientId && clientSecret === undefined && type === 'client_credentials' && !r.has('clientSecret')) {
    r.problem('clientSecret', `is required with authMethod: ${authMethod}`);
  }
  if (clientAssertionFile && authMethod !== 'client_assertion') r.problem('clientAssertionFile', 'is used only with authMethod: client_assertion');
  const scope = r.str('scope');
  const audience = r.str('audience');
  const params = r.stringMap('params');
  const defaultTtl = r.duration('defaultTtl', 3_600_000, { min: MIN_LIFETIME_MS, max: MAX_LIFETIME_MS });
  if (tokenUrl === undefined && issuer === undefined) return undefined;
  return {
    authMethod, assertionAlgorithm, assertionAudience, params, defaultTtl, allowPlainHttp,
    ...(tokenUrl !== undefined ? { tokenUrl } : {}),
    ...(issuer !== undefined ? { issuer } : {}),
    ...(clientId ? { clientId } : {}),
    ...(clientSecret !== undefined ? { clientSecret } : {}),
    ...(privateKey ? { privateKey } : {}),
    ...(keyId ? { keyId } : {}),
    ...(clientAssertionFile ? { clientAssertionFile } : {}),
    ...(scope ? { scope } : {}),
    ...(audience ? { audience } : {}),
    ...(tls ? { tls } : {}),
  };
}
