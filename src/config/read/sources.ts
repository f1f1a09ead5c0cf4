// `source:` of a provider: the switch over its `type`, and the sources simple enough to read
// here (refresh_token, jwt, jwt_bearer, static, metadata, gcp_impersonation). Token endpoints
// and token_exchange have files of their own.
import { MAX_LIFETIME_MS, MIN_LIFETIME_MS } from '../lifetime-bounds.js';
import type { Reader } from '../reader.js';
import type { SourceConfig } from '../types.js';
import { readEndpoint, readEndpointTls } from './endpoint.js';
import { checkEndpointUrl, parseUrl } from './endpoint-url.js';
import { readSigning } from './signing.js';
import { readTokenExchange } from './token-exchange.js';

const SOURCE_TYPES = ['client_credentials', 'refresh_token', 'jwt', 'jwt_bearer', 'static', 'metadata', 'gcp_impersonation', 'token_exchange'] as const;
const METADATA_DEFAULT_ENDPOINT = { gcp: 'http://metadata.google.internal', azure: 'http://169.254.169.254' } as const;

export function readSource(r: Reader): SourceConfig | undefined {
  const type = r.oneOf('type', SOURCE_TYPES, undefined, { required: true });
  let out: SourceConfig | undefined;
  switch (type) {
    case 'client_credentials': {
      const e = readEndpoint(r, type);
      if (e) out = { type, ...e };
      break;
    }
    case 'refresh_token': {
      const refreshToken = r.str('refreshToken', { required: true, secret: true });
      const reuseInterval = r.duration('reuseInterval', 0, { min: 0, max: 86_400_000 });
      const e = readEndpoint(r, type);
      if (e && refreshToken) out = { type, refreshToken, reuseInterval, ...e };
      break;
    }
    case 'jwt': {
      const s = readSigning(r, { ttl: 30 * 60_000 });
      // A literal: `{ type, ...s }` keeps a field out of line (one more object a provider). The
      // key order is the spread's: JSON.stringify of this object keys the store (sourceHash).
      if (s) {
        out = s.keyId === undefined
          ? { type, algorithm: s.algorithm, key: s.key, claims: s.claims, ttl: s.ttl }
          : { type, algorithm: s.algorithm, key: s.key, claims: s.claims, ttl: s.ttl, keyId: s.keyId };
      }
      break;
    }
    case 'jwt_bearer': {
      const a = r.child('assertion');
      const assertion = a ? readSigning(a, { ttl: 5 * 60_000 }) : undefined;
      a?.done();
      const e = readEndpoint(r, type);
      if (e && assertion) out = { type, assertion, ...e };
      break;
    }
    case 'static': {
      const token = r.str('token', { secret: true });
      const file = r.str('file');
      const pollInterval = r.duration('pollInterval', 5_000, { min: 100 });
      if ((token === undefined) === (file === undefined) && !r.has('token')) r.problem(undefined, 'needs exactly one of token or file');
      if (token !== undefined && file !== undefined) r.problem(undefined, 'needs exactly one of token or file');
      out = { type, pollInterval, ...(token !== undefined ? { token } : {}), ...(file ? { file } : {}) };
      break;
    }
    case 'metadata': {
      const flavor = r.oneOf('flavor', ['gcp', 'azure'] as const, undefined, { required: true });
      const endpoint = r.str('endpoint') ?? (flavor ? METADATA_DEFAULT_ENDPOINT[flavor] : '');
      // Plain http to the link-local metadata address is the platform's design, so it is
      // allowed here (and only here) without allowPlainHttp.
      const u = r.has('endpoint') ? parseUrl(r, 'endpoint', endpoint) : undefined;
      if (u && u.protocol !== 'http:' && u.protocol !== 'https:') r.problem('endpoint', 'must be an http(s) URL');
      if (u && (u.username || u.password || u.search)) r.problem('endpoint', 'must be a base URL without credentials or query');
      const serviceAccount = r.str('serviceAccount') ?? 'default';
      const scopes = r.stringList('scopes');
      const resource = r.str('resource');
      const clientId = r.str('clientId');
      const defaultTtl = r.duration('defaultTtl', 3_600_000, { min: MIN_LIFETIME_MS, max: MAX_LIFETIME_MS });
      if (flavor === 'azure' && !resource) r.problem('resource', 'is required with flavor: azure (the resource the token is for)');
      if (flavor === 'gcp' && (resource || clientId)) r.problem(resource ? 'resource' : 'clientId', 'is for flavor: azure');
      if (flavor === 'azure' && (r.has('serviceAccount') || scopes.length)) r.problem(r.has('serviceAccount') ? 'serviceAccount' : 'scopes', 'is for flavor: gcp');
      if (flavor) out = { type, flavor, endpoint, serviceAccount, scopes, defaultTtl, ...(resource ? { resource } : {}), ...(clientId ? { clientId } : {}) };
      break;
    }
    case 'gcp_impersonation': {
      const serviceAccount = r.str('serviceAccount', { required: true, pattern: /^[^/\s]+@[^/\s]+$/, patternHint: 'expected a service account email' });
      const scopes = r.stringList('scopes');
      if (!scopes.length && !r.has('scopes')) scopes.push('https://www.googleapis.com/auth/cloud-platform');
      const lifetime = r.duration('lifetime', 3_600_000, { min: MIN_LIFETIME_MS, max: 12 * 3_600_000 });
      const delegates = r.stringList('delegates');
      const via = r.str('via', { required: true });
      const endpoint = r.str('endpoint') ?? 'https://iamcredentials.googleapis.com';
      if (r.has('endpoint')) checkEndpointUrl(r, 'endpoint', endpoint, false);
      const defaultTtl = r.duration('defaultTtl', 3_600_000, { min: MIN_LIFETIME_MS, max: MAX_LIFETIME_MS });
      const tls = readEndpointTls(r);
      if (serviceAccount && via) out = { type, serviceAccount, scopes, lifetime, delegates, via, endpoint, defaultTtl, ...(tls ? { tls } : {}) };
      break;
    }
    case 'token_exchange':
      out = readTokenExchange(r);
      break;
    case undefined:
      break;
  }
  if (type) r.done();
  return out;
}
