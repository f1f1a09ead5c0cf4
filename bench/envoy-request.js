// The Envoy-shaped CheckRequest every bench target receives (mirrors test/support/envoy-request.ts:
// lower-case keys, pseudo-headers inside `headers`, host = :authority, about 15 headers in all;
// `size` adds what a browser's call through Envoy carries: ~25 headers with a cookie, trace
// context, x-forwarded-*, and SPIFFE principals on both peers),
// encoded once with Envoy's own protos so the load generator sends identical bytes to each target.
import crypto from 'node:crypto';
import { authorizationServiceDefinition } from '../dist/server/protos.js';

export { CHECK_METHOD } from './h2-call.js';

/** The request sizes of the size matrix: the bench's own small request, a browser-like one, a heavy one. */
export const REQUEST_SIZES = ['0.4k', '3k', '8k'];

const SPIFFE_SRC = 'spiffe://cluster.local/ns/frontend/sa/web';
const SPIFFE_DST = 'spiffe://cluster.local/ns/edge/sa/envoy-gateway';

/** A cookie of about `bytes` bytes, made of session-ish name=value pairs. */
function cookie(bytes) {
  const parts = [];
  let n = 0;
  for (let i = 0; n < bytes; i++) {
    const p = `c${i}_${'k'.repeat(6)}=${crypto.createHash('sha256').update(String(i)).digest('base64url')}`;
    parts.push(p);
    n += p.length + 2;
  }
  return parts.join('; ');
}

/** What a browser's call through Envoy carries besides the bench's own headers (~25 in all). */
function browserHeaders(size) {
  const big = size === '8k';
  return {
    'user-agent': 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36',
    accept: 'application/json, text/plain, */*',
    'accept-language': 'en-GB,en;q=0.9,de;q=0.8',
    'sec-ch-ua': '"Google Chrome";v="131", "Chromium";v="131", "Not_A Brand";v="24"',
    'sec-ch-ua-mobile': '?0',
    'sec-ch-ua-platform': '"Linux"',
    'sec-fetch-site': 'same-origin',
    'sec-fetch-mode': 'cors',
    'sec-fetch-dest': 'empty',
    origin: 'https://app.example.com',
    referer: `https://app.example.com/dashboard/projects/42/settings?tab=members${big ? `&filter=${'q'.repeat(600)}` : ''}`,
    cookie: cookie(big ? 5300 : 1350),
    traceparent: '00-80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-01',
    tracestate: 'rojo=00f067aa0ba902b7,congo=t61rcWkgMzE',
    'x-forwarded-host': 'app.example.com',
    'x-forwarded-port': '443',
    'x-forwarded-client-cert': `By=${SPIFFE_DST};Hash=${'a'.repeat(64)};Subject="";URI=${SPIFFE_SRC}`,
    'x-envoy-external-address': '203.0.113.7',
    ...(big ? { 'x-client-data': 'x'.repeat(300), 'if-none-match': `W/"${'e'.repeat(64)}"` } : {}),
  };
}

/**
 * @param {{authority?: string, path?: string, method?: string, contextExtensions?: Record<string,string>,
 *          headers?: Record<string,string>, size?: '0.4k'|'3k'|'8k'}} init
 */
export function envoyRequest(init = {}) {
  const authority = init.authority ?? 'api.example.com';
  const path = init.path ?? '/v1/things?x=1';
  const method = init.method ?? 'GET';
  const size = init.size ?? '0.4k';
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
    ...(size === '0.4k' ? {} : browserHeaders(size)),
    ...(init.headers ?? {}),
  };
  const peer = (address, port, principal) => ({
    address: { socket_address: { address, port_value: port } },
    ...(size === '0.4k' ? {} : { principal, service: principal.split('/').pop() }),
  });
  return {
    attributes: {
      source: peer('10.0.0.7', 51234, SPIFFE_SRC),
      destination: peer('10.0.0.8', 10000, SPIFFE_DST),
      request: {
        time: { seconds: '1767225600', nanos: 0 },
        http: { id: '1234567890', method, headers, path, host: authority, scheme: 'https', protocol: size === '0.4k' ? 'HTTP/1.1' : 'HTTP/2' },
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
