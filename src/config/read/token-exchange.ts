// `type: token_exchange` (RFC 8693, and Entra on-behalf-of): a fixed subject the operator
// supplies, or the caller's own token from the request (a per-caller provider, with its
// subject verification and its `cache:`).
import { DAY_MS } from '../duration.js';
import { HEADER_NAME } from '../header-value.js';
import type { Reader } from '../reader.js';
import type { FixedTokenRef, PerCallerCacheConfig, SourceConfig, SubjectTokenConfig } from '../types.js';
import { readEndpoint } from './endpoint.js';
import { httpsUrl } from './endpoint-url.js';

const TOKEN_TYPE = /^urn:[A-Za-z0-9:._-]+$/;
const ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token';
const TOKEN_TYPE_URI = /^(urn:[A-Za-z0-9][A-Za-z0-9-]{0,31}:\S+|https?:\/\/\S+)$/;
/** Asymmetric JWS algorithms a subject token may be signed with (HS* would need a shared secret; `none` never). */
const VERIFY_ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'];

/** Per-caller when `subjectToken.request` is set, otherwise a fixed subject (file, env or provider). */
export function readTokenExchange(r: Reader): SourceConfig | undefined {
  // The caller's own token (`subjectToken.request`): a per-caller provider.
  if (r.child('subjectToken')?.has('request')) return readPerCallerExchange(r);
  return readFixedExchange(r);
}

function readFixedExchange(r: Reader): SourceConfig | undefined {
  const style = r.oneOf('style', ['rfc8693'] as const, 'rfc8693');
  if (r.child('subjectToken')?.has('verify')) r.problem('subjectToken', 'verify is for per-caller tokens (subjectToken.request); a fixed subject is the operator\'s own');
  const subjectToken = readTokenRef(r, 'subjectToken', true);
  const actorToken = r.has('actorToken') ? readTokenRef(r, 'actorToken', false) : undefined;
  const requestedTokenType = r.str('requestedTokenType', { pattern: TOKEN_TYPE, patternHint: 'expected a token type URI (urn:…)' });
  const resource = r.str('resource');
  const e = readEndpoint(r, 'token_exchange');
  if (!e || !subjectToken) return undefined;
  return { type: 'token_exchange', style, subjectToken, ...(actorToken ? { actorToken } : {}), ...(requestedTokenType ? { requestedTokenType } : {}), ...(resource ? { resource } : {}), ...e };
}

/** `{ file | env | provider, type }`: where a fixed subject or actor token comes from. */
function readTokenRef(parent: Reader, key: string, required: boolean): FixedTokenRef | undefined {
  if (!parent.has(key)) {
    if (required) parent.problem(key, 'is required ({ file | env | provider, type })');
    parent.value(key);
    return undefined;
  }
  const r = parent.child(key);
  if (!r) return undefined;
  const file = r.str('file');
  const env = r.str('env', { pattern: /^[A-Za-z_][A-Za-z0-9_]*$/, patternHint: 'expected an environment variable name' });
  const provider = r.str('provider');
  const type = r.str('type', { required: true, pattern: TOKEN_TYPE, patternHint: 'expected a token type URI, e.g. urn:ietf:params:oauth:token-type:jwt' });
  const set = [file, env, provider].filter((x) => x !== undefined).length;
  if (set !== 1) r.problem(undefined, 'needs exactly one of file, env or provider');
  let value: string | undefined;
  if (env !== undefined) {
    value = r.ctx.env[env];
    if (!value) r.problem('env', `environment variable ${env} is not set`);
  }
  r.done();
  if (set !== 1 || !type) return undefined;
  return { type, ...(file ? { file } : {}), ...(env ? { env } : {}), ...(value ? { value } : {}), ...(provider ? { provider } : {}) };
}

function readSubjectToken(r: Reader, style: 'rfc8693' | 'entra_obo'): SubjectTokenConfig | undefined {
  for (const k of ['file', 'env', 'provider']) if (r.has(k)) r.problem(k, 'is for a fixed subject; a per-caller subject comes from the request');
  const rq = r.has('request') ? r.child('request') : undefined;
  let request: SubjectTokenConfig['request'];
  if (rq) {
    const header = (rq.str('header') ?? 'authorization').toLowerCase();
    if (!HEADER_NAME.test(header) || header.startsWith(':')) rq.problem('header', 'expected an HTTP header name');
    const scheme = rq.str('scheme') ?? (header === 'authorization' ? 'Bearer' : '');
    if (scheme !== '' && !/^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,32}$/.test(scheme)) rq.problem('scheme', 'expected an auth scheme such as Bearer, or "" for a bare token');
    const maxBytes = rq.num('maxBytes', 16_384, { min: 64, max: 65_536, integer: true });
    rq.done();
    request = { header, scheme, maxBytes };
  } else {
    r.problem('request', 'is required: the subject token comes from the caller\'s request (file, env and provider subjects are another source form)');
  }
  const type = r.str('type') ?? ACCESS_TOKEN_TYPE;
  if (!TOKEN_TYPE_URI.test(type)) r.problem('type', 'expected a token type URI such as urn:ietf:params:oauth:token-type:access_token');
  if (style === 'entra_obo' && r.has('type')) r.problem('type', 'is an RFC 8693 parameter; style entra_obo sends the caller\'s token as an assertion');
  let verify: SubjectTokenConfig['verify'];
  const v = r.has('verify') ? r.child('verify') : undefined;
  if (v) {
    const issuer = v.str('issuer', { required: true });
    const audience = v.stringList('audience', { orOne: true });
    const jwksUri = v.str('jwksUri');
    httpsUrl(v, 'jwksUri', jwksUri);
    if (!jwksUri) httpsUrl(v, 'issuer', issuer);
    const algorithms = v.stringList('algorithms', { orOne: true });
    for (const a of algorithms) if (!VERIFY_ALGORITHMS.includes(a)) v.problem('algorithms', `${a} is not allowed (one of ${VERIFY_ALGORITHMS.join(', ')})`);
    const leeway = v.duration('leeway', 0, { min: 0, max: 300_000 });
    v.done();
    if (issuer) {
      verify = {
        issuer, leeway, algorithms: algorithms.length ? algorithms : ['RS256', 'PS256', 'ES256', 'EdDSA'],
        ...(audience.length ? { audience } : {}), ...(jwksUri ? { jwksUri } : {}),
      };
    }
  }
  r.done();
  if (!request) return undefined;
  return { request, type, ...(verify ? { verify } : {}) };
}

function readPerCallerExchange(r: Reader): SourceConfig | undefined {
  const style = r.oneOf('style', ['rfc8693', 'entra_obo'] as const, 'rfc8693');
  const sr = r.child('subjectToken');
  if (!r.has('subjectToken')) r.problem('subjectToken', 'is required');
  const subjectToken = sr ? readSubjectToken(sr, style) : undefined;
  let actorToken: { provider: string; type: string } | undefined;
  const ar = r.has('actorToken') ? r.child('actorToken') : undefined;
  if (ar) {
    for (const k of ['file', 'env']) if (ar.has(k)) ar.problem(k, 'per-caller providers take their actor token from a provider');
    const provider = ar.str('provider', { required: true });
    const type = ar.str('type') ?? ACCESS_TOKEN_TYPE;
    if (!TOKEN_TYPE_URI.test(type)) ar.problem('type', 'expected a token type URI');
    ar.done();
    if (style === 'entra_obo') r.problem('actorToken', 'is an RFC 8693 parameter; style entra_obo has no actor token');
    if (provider) actorToken = { provider, type };
  }
  const resource = r.stringList('resource', { orOne: true });
  for (const res of resource) if (!/^[a-z][a-z0-9+.-]*:/i.test(res) || res.includes('#')) r.problem('resource', 'expected absolute URIs without a fragment (RFC 8707)');
  const requestedTokenType = r.str('requestedTokenType');
  if (requestedTokenType !== undefined && !TOKEN_TYPE_URI.test(requestedTokenType)) r.problem('requestedTokenType', 'expected a token type URI');
  if (style === 'entra_obo') {
    if (resource.length) r.problem('resource', 'is an RFC 8693 parameter; style entra_obo takes scope only');
    if (requestedTokenType !== undefined) r.problem('requestedTokenType', 'is an RFC 8693 parameter; style entra_obo takes scope only');
    if (r.has('audience')) r.problem('audience', 'is an RFC 8693 parameter; style entra_obo takes scope only');
    if (!r.has('scope')) r.problem('scope', 'is required with style entra_obo (e.g. api://<app-id>/.default)');
  }
  const e = readEndpoint(r, 'token_exchange');
  if (!e || !subjectToken) return undefined;
  return {
    type: 'token_exchange', style, subjectToken, ...e,
    ...(actorToken ? { actorToken } : {}),
    ...(resource.length ? { resource } : {}),
    ...(requestedTokenType ? { requestedTokenType } : {}),
  };
}

/** `cache:` of a per-caller token_exchange provider. */
export function readPerCallerCache(r: Reader | undefined): PerCallerCacheConfig {
  const out: PerCallerCacheConfig = {
    maxEntries: r?.num('maxEntries', 10_000, { min: 1, max: 10_000_000, integer: true }) ?? 10_000,
    maxBytes: r?.num('maxBytes', 64 * 1024 * 1024, { min: 64 * 1024, max: 16 * 1024 * 1024 * 1024, integer: true }) ?? 64 * 1024 * 1024,
    negativeTtl: r?.duration('negativeTtl', 30_000, { min: 0, max: DAY_MS }) ?? 30_000,
    shared: r?.bool('shared', false) ?? false,
  };
  r?.done();
  return out;
}
