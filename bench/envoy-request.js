// The Envoy-shaped CheckRequest every bench target receives (mirrors test/support/envoy-request.ts:
// lower-case keys, pseudo-headers inside `headers`, host = :authority, about 15 headers in all),
// encoded once with Envoy's own protos so the load generator sends identical bytes to each target.
import { authorizationServiceDefinition } from '../dist/server/protos.js';

export const CHECK_METHOD = '/envoy.service.auth.v3.Authorization/Check';

/** @param {{authority?: string, path?: string, method?: string, contextExtensions?: Record<string,string>}} init */
export function envoyRequest(init = {}) {
  const authority = init.authority ?? 'api.example.com';
  const path = init.path ?? '/v1/things?x=1';
  const method = init.method ?? 'GET';
  const headers = {
    ':authority': authority,
    ':path': path,
    ':method': method,
    ':scheme': 'https',
    'user-agent': 'curl/8.5.0',
    accept: '*/*',
    'accept-encoding': 'gzip, deflate, br',
    'content-type': 'application/json',
    'x-request-id': '4f3c2a1e-8d7b-4c6a-9e5f-0a1b2c3d4e5f',
    'x-forwarded-proto': 'https',
    'x-forwarded-for': '203.0.113.7',
    'x-envoy-expected-rq-timeout-ms': '15000',
    'x-b3-traceid': '80f198ee56343ba864fe8b2a57d3eff7',
    'x-b3-spanid': 'e457b5a2e4d86bd1',
    'x-b3-sampled': '1',
  };
  return {
    attributes: {
      source: { address: { socket_address: { address: '10.0.0.7', port_value: 51234 } } },
      destination: { address: { socket_address: { address: '10.0.0.8', port_value: 10000 } } },
      request: {
        time: { seconds: '1767225600', nanos: 0 },
        http: { id: '1234567890', method, headers, path, host: authority, scheme: 'https', protocol: 'HTTP/1.1' },
      },
      ...(init.contextExtensions ? { context_extensions: init.contextExtensions } : {}),
    },
  };
}

let codec;
/** The request serialiser and response deserialiser grpc-js uses for Check (same loader options as the server). */
export function checkCodec() {
  if (!codec) {
    const def = authorizationServiceDefinition().Check;
    codec = { encode: def.requestSerialize, decodeRequest: def.requestDeserialize, encodeResponse: def.responseSerialize, decodeResponse: def.responseDeserialize };
  }
  return codec;
}

/** @returns {Buffer} */
export function encodedRequest(init = {}) {
  return checkCodec().encode(envoyRequest(init));
}
