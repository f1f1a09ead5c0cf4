// What may go into the injected header. Token bytes come from an IdP, a file or the environment:
// untrusted input to a header that Envoy forwards upstream. Every check answers with a problem
// that never quotes the value (it is a credential).

/** The default for `inject.maxTokenBytes`: well above real JWTs (2-8 KB), far below Envoy's 60 KB header limit. */
export const DEFAULT_MAX_TOKEN_BYTES = 16_384;
export const MIN_MAX_TOKEN_BYTES = 64;
export const MAX_MAX_TOKEN_BYTES = 65_536;

/**
 * RFC 9110 §5.5 field-value, restricted to visible ASCII, space and tab: no CR, LF, NUL or other
 * control byte, and no obs-text (bytes ≥ 0x80 are obsolete there and not valid gRPC metadata).
 * No leading or trailing whitespace (a proxy would trim it, changing the credential).
 */
const FIELD_VALUE = /^[\x21-\x7e](?:[\x20-\x7e\t]*[\x21-\x7e])?$/;
/** RFC 6750 §2.1 b64token: what a Bearer (and DPoP, RFC 9449) credential may hold. */
const B64TOKEN = /^[A-Za-z0-9\-._~+/]+=*$/;
/** RFC 9110 §5.6.2 token: an auth-scheme such as a token_type. */
const TCHAR_TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}$/;
/** Token types whose credential is a b64token. */
const BEARER_TYPES = /^(?:bearer|dpop)$/i;
/** A format that puts the token after a Bearer or DPoP scheme, e.g. the default "Bearer {token}". */
const BEARER_FORMAT = /^(?:bearer|dpop) +\{token\}/i;

/** RFC 9110 §5.6.2 token, lower case: a header name as configured (`inject.header`, `subjectToken.request.header`). */
export const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9a-z-]+$/;

export function isFieldValue(s: string): boolean {
  return FIELD_VALUE.test(s);
}

/** Why `tokenType` cannot be used as a token_type, or undefined when it can. */
export function tokenTypeProblem(tokenType: string): string | undefined {
  return TCHAR_TOKEN.test(tokenType) ? undefined : 'token_type is not an HTTP token (RFC 9110 tchar, at most 64)';
}

/**
 * Whether the credential must be a b64token: its token_type is Bearer/DPoP and it came from an
 * OAuth token endpoint (RFC 6750 defines the syntax), or the header presents it as one.
 */
export function isBearerUse(tokenType: string, format: string, fromTokenEndpoint: boolean): boolean {
  if (BEARER_FORMAT.test(format)) return true;
  return BEARER_TYPES.test(tokenType) && (fromTokenEndpoint || format.includes('{token_type}'));
}

export interface TokenCheck {
  readonly tokenType: string;
  /** `inject.format` of the provider. */
  readonly format: string;
  readonly maxBytes: number;
  readonly fromTokenEndpoint: boolean;
}

/** Why `token` cannot be injected, or undefined when it can. Never quotes the token. */
export function tokenProblem(token: string, c: TokenCheck): string | undefined {
  const bytes = Buffer.byteLength(token, 'utf8');
  if (bytes > c.maxBytes) return `the token is ${bytes} bytes, over maxTokenBytes (${c.maxBytes})`;
  if (!isFieldValue(token)) return 'the token is not a valid HTTP header value (control bytes, non-ASCII or surrounding whitespace)';
  if (isBearerUse(c.tokenType, c.format, c.fromTokenEndpoint) && !B64TOKEN.test(token)) {
    return 'the bearer token holds characters outside RFC 6750 b64token ([A-Za-z0-9-._~+/]+=*)';
  }
  return undefined;
}

/** Why an `inject.format` would build an invalid header value, or undefined. Checked with safe stand-ins. */
export function formatProblem(format: string): string | undefined {
  const sample = format.replaceAll('{token_type}', 'Bearer').replaceAll('{token}', 'x');
  return isFieldValue(sample) ? undefined : 'would not build a valid HTTP header value (control bytes, non-ASCII or surrounding whitespace)';
}
