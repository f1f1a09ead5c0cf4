// Upstream-rejection feedback: Envoy's gRPC access log tells tokengate that an upstream refused
// the token it injected; tokengate drops that token once and fetches a new one.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ACCESSLOG_PROTO } from '../../src/server/protos.js';
import { envoyRequest, metadata } from '../support/envoy-request.js';
import { loadEnvoyRoot } from '../support/envoy-validator.js';
import { startWorld, until, type World } from '../support/world.js';
import type { Type } from 'protobufjs';
import { AccessLogSender, accessLogMessages, httpLogEntry } from './helpers.js';

describe('access-log feedback (envoy.service.accesslog.v3.AccessLogService)', () => {
  let w: World;
  let envoy: AccessLogSender;

  beforeAll(async () => {
    w = await startWorld({ yaml: ({ cc }) => `
providers:
  cc:
    source: ${cc()}
  other:
    source: { type: jwt, key: "an-hs256-secret-that-is-long-enough-0123", claims: { iss: x }, ttl: 30m }
    purgeOnUpstreamStatus: [401, 403]
routes:
  - match: { authority: api.example.com }
    provider: cc
` });
    envoy = new AccessLogSender(w.app.grpcAddress);
  });
  afterAll(async () => {
    envoy?.close();
    await w?.close();
  });

  /** The token_id Envoy saw in the ext_authz metadata of a request it proxied. */
  async function currentTokenId(): Promise<string> {
    const res = await w.client.check(envoyRequest({ authority: 'api.example.com' }));
    const id = metadata(res).token_id;
    expect(id).toBeTruthy();
    return id!;
  }

  const rejections = (status = '401') => w.app.metrics.upstreamRejections.get({ provider: 'cc', status });

  beforeEach(async () => {
    // Every test starts from a settled provider holding a token.
    await until(() => w.app.manager.provider('cc')?.status().state === 'valid', 5_000, 'a valid cc token');
  });

  it('a 401 via_upstream for the current token_id causes exactly one new token request; a repeat causes none', async () => {
    const tokenId = await currentTokenId();
    const before = w.idp.tokenRequestCount;
    const counted = rejections();
    // Envoy batches: the same rejected token shows up in several entries of one flush.
    const entry = httpLogEntry({ status: 401, provider: 'cc', tokenId });
    await envoy.send(accessLogMessages([[entry, entry], [entry]]));
    await w.idp.waitForRequests(before + 1);
    await until(() => w.app.manager.provider('cc')?.status().state === 'valid', 5_000, 'the new token');
    const fresh = await currentTokenId();
    expect(fresh).not.toBe(tokenId);
    expect(rejections() - counted).toBe(3);

    // The same old token_id again, later (a slow request that was already in flight).
    await envoy.send(accessLogMessages([[entry]]));
    await new Promise((r) => setTimeout(r, 150));
    expect(w.idp.tokenRequestCount).toBe(before + 1);
    expect(rejections() - counted).toBe(4);
    expect(await currentTokenId()).toBe(fresh);
    expect(w.logs.filter((l) => l.includes('upstream rejected the current token'))).toHaveLength(1);
  });

  it('a 401 that Envoy generated itself (not via_upstream) causes no token request', async () => {
    const tokenId = await currentTokenId();
    const before = w.idp.tokenRequestCount;
    const counted = rejections();
    await envoy.send(accessLogMessages([[
      httpLogEntry({ status: 401, details: 'ext_authz_denied', provider: 'cc', tokenId }),
      httpLogEntry({ status: 401, details: 'upstream_reset_before_response_started{connection_termination}', provider: 'cc', tokenId }),
    ]]));
    await new Promise((r) => setTimeout(r, 150));
    expect(w.idp.tokenRequestCount).toBe(before);
    expect(rejections()).toBe(counted);
    expect(await currentTokenId()).toBe(tokenId);
  });

  it('ignores other statuses, entries without tokengate metadata, unknown providers and TCP logs', async () => {
    const tokenId = await currentTokenId();
    const before = w.idp.tokenRequestCount;
    await envoy.send([
      ...accessLogMessages([[
        httpLogEntry({ status: 200, provider: 'cc', tokenId }),
        httpLogEntry({ status: 403, provider: 'cc', tokenId }), // not in cc's purgeOnUpstreamStatus
        httpLogEntry({ status: 401 }), // a request tokengate put no credential on
        httpLogEntry({ status: 401, provider: 'nope', tokenId }),
        httpLogEntry({ status: 401, provider: 'cc' }), // no token_id
      ]]),
      { tcp_logs: { log_entry: [{ common_properties: { upstream_cluster: 'db' } }] } },
      {},
    ]);
    await new Promise((r) => setTimeout(r, 150));
    expect(w.idp.tokenRequestCount).toBe(before);
    expect(await currentTokenId()).toBe(tokenId);
    expect(w.app.metrics.upstreamRejections.get({ provider: 'cc', status: '403' })).toBe(0);
    expect(w.app.metrics.render()).not.toContain('provider="nope"');
  });

  it('decodes entries encoded straight from Envoy\'s .proto files (Struct string_value → stringValue)', async () => {
    // protobufjs loads als.proto itself and encodes by field number, as Envoy's C++ encoder
    // does; nothing of proto-loader's object conventions is involved on the sending side.
    const root = loadEnvoyRoot([ACCESSLOG_PROTO]);
    const type = root.lookupType('envoy.service.accesslog.v3.StreamAccessLogsMessage');
    const tokenId = await currentTokenId();
    const before = w.idp.tokenRequestCount;
    const bytes = encodeSnake(type, {
      identifier: { node: { id: 'envoy-raw' }, log_name: 'tokengate_feedback' },
      http_logs: {
        log_entry: [{
          common_properties: { metadata: { filter_metadata: { 'envoy.filters.http.ext_authz': { fields: { provider: { string_value: 'cc' }, token_id: { string_value: tokenId } } } } } },
          response: { response_code: { value: 401 }, response_code_details: 'via_upstream' },
        }],
      },
    });
    await envoy.sendRaw([bytes]);
    await w.idp.waitForRequests(before + 1);
    await until(() => w.app.manager.provider('cc')?.status().state === 'valid', 5_000, 'the new token');
    expect(await currentTokenId()).not.toBe(tokenId);
  });

  it('a broken stream is logged and tokengate keeps serving', async () => {
    const sender = new AccessLogSender(w.app.grpcAddress);
    const call = sender.open();
    call.write(accessLogMessages([[httpLogEntry({ status: 200 })]])[0]);
    await new Promise((r) => setTimeout(r, 50));
    call.cancel();
    sender.close();
    await until(() => w.logs.some((l) => l.includes('access-log stream cancelled')), 2_000, 'the cancelled-stream log line');
    expect(await currentTokenId()).toBeTruthy();
    // And a new stream works as before.
    await envoy.send(accessLogMessages([[httpLogEntry({ status: 200 })]]));
  });
});

/** fromObject/encode with Envoy's snake_case names, mapped to whatever protobufjs named each field. */
function encodeSnake(type: Type, value: Record<string, unknown>): Uint8Array {
  const convert = (t: Type, v: Record<string, unknown>): Record<string, unknown> => {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) {
      const field = t.fields[k] ?? t.fields[k.replace(/_([a-z])/g, (_m, c: string) => c.toUpperCase())];
      if (!field) throw new Error(`${t.fullName} has no field ${k}`);
      field.resolve();
      const sub = field.resolvedType && 'fieldsArray' in field.resolvedType ? (field.resolvedType as Type) : undefined;
      if (sub && field.map) out[field.name] = Object.fromEntries(Object.entries(x as Record<string, Record<string, unknown>>).map(([mk, mv]) => [mk, convert(sub, mv)]));
      else if (sub && field.repeated) out[field.name] = (x as Record<string, unknown>[]).map((i) => convert(sub, i));
      else if (sub) out[field.name] = convert(sub, x as Record<string, unknown>);
      else out[field.name] = x;
    }
    return out;
  };
  return type.encode(type.fromObject(convert(type, value))).finish();
}
