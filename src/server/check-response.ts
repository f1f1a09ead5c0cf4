// The one translation table from tokengate outcomes to Envoy CheckResponses.
// Shapes follow docs/contract.md: OK + header with both `append: false` and
// `append_action: OVERWRITE_IF_EXISTS_OR_ADD` (every Envoy version overwrites), and a
// DeniedHttpResponse with a JSON body for every refusal.
import type { InjectConfig } from '../config/types.js';
import type { InjectedToken, TokenServeSource } from '../tokens/cached-token.js';
import type { TokenError } from '../tokens/errors.js';

/** google.rpc.Code values. */
const RPC_OK = 0;
const RPC_PERMISSION_DENIED = 7;
const RPC_INTERNAL = 13;
const RPC_UNAVAILABLE = 14;
const RPC_UNAUTHENTICATED = 16;

/** A CheckResponse as proto-loader encodes it (keepCase; Struct values camelCase). */
export type CheckResponseObject = Record<string, unknown>;

function stringValue(v: string): { stringValue: string } {
  return { stringValue: v };
}

/**
 * `subject`: a per-caller token's verified `sub`, added to dynamic_metadata. `alsoRemove`: headers
 * to strip besides `inject.removeHeaders` (a per-caller subject header the injection does not overwrite).
 */
export function okWithToken(provider: string, entry: InjectedToken, source: TokenServeSource, inject: InjectConfig, subject?: string, alsoRemove: readonly string[] = []): CheckResponseObject {
  const remove = alsoRemove.length ? [...new Set([...inject.removeHeaders, ...alsoRemove])] : inject.removeHeaders;
  return {
    status: { code: RPC_OK },
    ok_response: {
      headers: [{
        header: { key: inject.header, value: entry.headerValue },
        append: { value: false },
        append_action: 'OVERWRITE_IF_EXISTS_OR_ADD',
      }],
      ...(remove.length ? { headers_to_remove: [...remove] } : {}),
    },
    // Top-level fields: Envoy files them under envoy.filters.http.ext_authz itself.
    dynamic_metadata: {
      fields: {
        provider: stringValue(provider),
        token_id: stringValue(entry.tokenId),
        source: stringValue(source),
        ...(subject !== undefined ? { subject: stringValue(subject) } : {}),
      },
    },
  };
}

/** OK without a credential: unmatched routes with `unmatched: allow`, or `onTokenUnavailable: allow`. */
export function okWithoutToken(provider?: string): CheckResponseObject {
  return {
    status: { code: RPC_OK },
    ok_response: {},
    ...(provider ? { dynamic_metadata: { fields: { provider: stringValue(provider), source: stringValue('none') } } } : {}),
  };
}

function denied(rpcCode: number, httpStatus: number, body: Record<string, unknown>, extraHeaders: [string, string][] = []): CheckResponseObject {
  const headers: [string, string][] = [['content-type', 'application/json'], ['cache-control', 'no-store'], ...extraHeaders];
  return {
    status: { code: rpcCode, message: String(body.error) },
    denied_response: {
      status: { code: httpStatus },
      headers: headers.map(([key, value]) => ({ header: { key, value }, append: { value: false }, append_action: 'OVERWRITE_IF_EXISTS_OR_ADD' })),
      body: JSON.stringify(body),
    },
  };
}

/** A provider name no config declares: a configuration fault, said loudly (HTTP 500). */
export function deniedUnknownProvider(provider: string): CheckResponseObject {
  return denied(RPC_INTERNAL, 500, { error: 'unknown_provider', provider: provider.slice(0, 128) });
}

export function deniedNoRoute(): CheckResponseObject {
  return denied(RPC_PERMISSION_DENIED, 403, { error: 'no_route' });
}

/** The ladder ran out: 503 with Retry-After so clients back off instead of hammering. */
export function deniedTokenUnavailable(provider: string, error: TokenError, retryAfterSeconds: number): CheckResponseObject {
  return denied(RPC_UNAVAILABLE, 503, { error: 'token_unavailable', provider, code: error.code }, [['retry-after', String(Math.max(1, Math.ceil(retryAfterSeconds)))]]);
}

/** Something inside tokengate broke: still an answer, never a hung call. */
export function deniedInternal(): CheckResponseObject {
  return denied(RPC_INTERNAL, 500, { error: 'internal_error' });
}

/** A per-caller provider's subject token is missing, malformed, expired or failed verify: no IdP call was made. */
export function deniedInvalidSubject(provider: string): CheckResponseObject {
  return denied(RPC_UNAUTHENTICATED, 401, { error: 'invalid_subject_token', provider }, [['www-authenticate', 'Bearer error="invalid_token"']]);
}

/** The IdP refused to exchange this caller's token (`idpError`: its OAuth error, e.g. invalid_grant). */
export function deniedExchangeRejected(provider: string, idpError: string): CheckResponseObject {
  return denied(RPC_PERMISSION_DENIED, 403, { error: 'exchange_rejected', provider, idp_error: idpError });
}
