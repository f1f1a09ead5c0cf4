// Per-caller (RFC 8693 token exchange) benchmarks (not part of `npm run bench`; run on its own):
//
//   npm run build && node --expose-gc bench/per-caller.js
//   PER_CALLER_ITER=200000 PER_CALLER_CALLERS=100000 PER_CALLER_GARBAGE=10000 (defaults)
//
// 1. Cache-hit CPU per Check: a per-caller provider against a shared-token provider, the same
//    request bytes (the caller's authorization header present in both), through the real Check
//    handler (request reader, lookup, pre-encoded answer). Target: ratio <= 1.2.
// 2. 100 000 distinct cached callers: extra RSS after populating the cache (target <= 150 MB),
//    and hit-path CPU cycling over them against cycling over 100 callers (target: within 10 %).
// 3. A flood of 10 000 distinct garbage subjects with `verify` on: IdP token requests (target 0),
//    and the CPU each refusal costs.
//
// The IdP is an in-process HTTP server on loopback (token endpoint + JWKS), answering at once.
import http from 'node:http';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { SignJWT, exportJWK, UnsecuredJWT } from 'jose';
import { parseConfig } from '../dist/config/load.js';
import { TokenManager } from '../dist/tokens/manager.js';
import { AuthzService } from '../dist/server/authz-service.js';
import { silentLogger } from '../dist/observability/logger.js';
import { Metrics } from '../dist/observability/metrics.js';
import { systemClock } from '../dist/clock.js';
import { authorizationServiceDefinition } from '../dist/server/protos.js';

const ITER = Number(process.env.PER_CALLER_ITER ?? 200_000);
const CALLERS = Number(process.env.PER_CALLER_CALLERS ?? 100_000);
const GARBAGE = Number(process.env.PER_CALLER_GARBAGE ?? 10_000);
const gc = globalThis.gc ?? (() => undefined);

// --- the IdP -------------------------------------------------------------------------------
const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const jwk = { ...(await exportJWK(publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' };
let tokenRequests = 0;
const server = http.createServer((req, res) => {
  if (req.url === '/jwks') {
    res.writeHead(200, { 'content-type': 'application/json' });
    return res.end(JSON.stringify({ keys: [jwk] }));
  }
  tokenRequests++;
  req.resume();
  req.on('end', () => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ access_token: `ex_${randomBytes(24).toString('base64url')}`, token_type: 'Bearer', expires_in: 3600, issued_token_type: 'urn:ietf:params:oauth:token-type:access_token' }));
  });
});
await new Promise((r) => server.listen(0, '127.0.0.1', r));
const origin = `http://127.0.0.1:${server.address().port}`;

const config = parseConfig(`
tokenEndpoints: { "${origin}": { maxRate: 100000/s, burst: 100000, maxConcurrent: 64 } }
providers:
  shared:
    source: { type: static, token: "service-token-${'x'.repeat(200)}" }
  caller:
    source:
      type: token_exchange
      tokenUrl: ${origin}/token
      clientId: gateway
      clientSecret: s
      audience: https://orders.example
      subjectToken: { request: { header: authorization } }
    cache: { maxEntries: ${Math.max(CALLERS, 100)}, maxBytes: 1073741824 }
    refresh: { waitBudget: 30s }
    resilience: { retries: 0 }
  verified:
    source:
      type: token_exchange
      tokenUrl: ${origin}/token
      clientId: gateway
      clientSecret: s
      audience: https://orders.example
      subjectToken: { request: { header: authorization }, verify: { issuer: ${origin}, jwksUri: ${origin}/jwks, audience: gateway, algorithms: [ES256] } }
    cache: { maxEntries: 1000 }
`, { env: {} });
const metrics = new Metrics();
const manager = new TokenManager(config.providers.values(), { metrics, logger: silentLogger, tokenEndpoints: config.tokenEndpoints });
await manager.warmUp();
const authz = new AuthzService({ manager, clock: systemClock, logger: silentLogger, metrics }, config);
const def = authz.serviceDefinition.Check;
const encodeRequest = authorizationServiceDefinition().Check.requestSerialize;

/** A browser-ish CheckRequest (~1 KB of headers) for `provider`, carrying `authorization`. */
function request(provider, authorization) {
  const headers = {
    ':authority': 'orders.example', ':path': '/v1/orders?page=2', ':method': 'GET', ':scheme': 'https',
    'user-agent': 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36',
    accept: 'application/json', 'accept-language': 'en-GB,en;q=0.9', 'x-request-id': '4f3c2a1e-8d7b-4c6a-9e5f-0a1b2c3d4e5f',
    'x-forwarded-proto': 'https', traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01', authorization,
  };
  return encodeRequest({ attributes: { request: { http: { method: 'GET', path: '/v1/orders?page=2', host: 'orders.example', headers } }, context_extensions: { provider } } });
}

/** One Check through the real handler; resolves with the answer. */
function check(raw) {
  return new Promise((resolve) => authz.check({ request: def.requestDeserialize(raw) }, (_e, v) => resolve(v)));
}

/** CPU µs per Check over `iterations` hits cycling through `raws` (synchronous callbacks on a hit). */
function hitCpu(raws, iterations) {
  let answered = 0;
  const cb = (_e, v) => { if (Buffer.isBuffer(v)) answered++; };
  for (let i = 0; i < Math.min(iterations, 20_000); i++) authz.check({ request: def.requestDeserialize(raws[i % raws.length]) }, cb); // warm
  answered = 0;
  gc();
  const c0 = process.cpuUsage();
  for (let i = 0; i < iterations; i++) authz.check({ request: def.requestDeserialize(raws[i % raws.length]) }, cb);
  const c = process.cpuUsage(c0);
  return { usPerCheck: Math.round(((c.user + c.system) / iterations) * 1000) / 1000, hits: answered, iterations };
}

async function subjectJwt(sub, key = privateKey, alg = 'ES256') {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({}).setProtectedHeader({ alg, kid: 'k1' }).setIssuer(origin).setSubject(sub).setAudience('gateway').setIssuedAt(now).setExpirationTime(now + 7200).sign(key);
}

const report = {};

// --- 1. per-caller hit vs shared-token hit ---------------------------------------------------
process.stderr.write("1. hit cost\n");
{
  const alice = `Bearer ${await subjectJwt('alice')}`;
  const perCaller = request('caller', alice);
  const shared = request('shared', alice);
  await check(perCaller);
  await check(shared);
  const s = hitCpu([shared], ITER);
  const p = hitCpu([perCaller], ITER);
  report.hitCost = { sharedToken: s, perCaller: p, ratio: Math.round((p.usPerCheck / s.usPerCheck) * 100) / 100, target: '<= 1.2' };
}

// --- 2. 100 000 distinct cached callers ------------------------------------------------------
process.stderr.write("2. many callers\n");
{
  // Opaque caller tokens (JWT-sized): what the cache holds does not depend on how they were signed.
  const token = (i) => `${i.toString(36).padStart(8, '0')}${'a'.repeat(800)}`;
  const few = Array.from({ length: 100 }, (_, i) => request('caller', `Bearer f${token(i)}`));
  for (const r of few) await check(r);
  const fewCpu = hitCpu(few, ITER);
  gc();
  const rss0 = process.memoryUsage().rss;
  const heap0 = process.memoryUsage().heapUsed;
  const t0 = Date.now();
  for (let i = 0; i < CALLERS; i += 200) {
    await Promise.all(Array.from({ length: Math.min(200, CALLERS - i) }, (_, j) => manager.perCaller('caller').acquire(`Bearer ${token(i + j)}`)));
  }
  const populateMs = Date.now() - t0;
  gc();
  const rss1 = process.memoryUsage().rss;
  const heap1 = process.memoryUsage().heapUsed;
  // Requests spread over the whole population (10 000 of them, so the request buffers do not dominate).
  const sample = Array.from({ length: 10_000 }, (_, k) => request('caller', `Bearer ${token(Math.floor((k * CALLERS) / 10_000))}`));
  const manyCpu = hitCpu(sample, ITER);
  const status = manager.perCaller('caller').status();
  report.manyCallers = {
    callers: CALLERS, cached: status.entries, populateMs,
    extraRssMB: Math.round((rss1 - rss0) / 1e5) / 10, extraHeapMB: Math.round((heap1 - heap0) / 1e5) / 10,
    approximateBytesMB: Math.round(status.approximateBytes / 1e5) / 10, targetRssMB: 150,
    hit100: fewCpu, hitMany: manyCpu, cpuRatio: Math.round((manyCpu.usPerCheck / fewCpu.usPerCheck) * 100) / 100, target: '<= 1.10',
  };
}

// --- 3. garbage flood with verify on ---------------------------------------------------------
process.stderr.write("3. garbage flood\n");
{
  const other = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
  const before = tokenRequests;
  const kinds = [
    () => randomBytes(48).toString('base64url'),
    () => subjectJwt(`forged-${randomBytes(4).toString('hex')}`, other),
    () => new UnsecuredJWT({ sub: randomBytes(4).toString('hex'), iss: origin, aud: 'gateway' }).setExpirationTime('1h').encode(),
    () => `eyJhbGciOiJFUzI1NiIsImtpZCI6ImsxIn0.${randomBytes(40).toString('base64url')}.${randomBytes(64).toString('base64url')}`,
  ];
  const garbage = [];
  for (let i = 0; i < GARBAGE; i++) garbage.push(request('verified', `Bearer ${await kinds[i % kinds.length]()}`));
  const c0 = process.cpuUsage();
  const t0 = Date.now();
  const answers = await Promise.all(garbage.map((r) => check(r)));
  const c = process.cpuUsage(c0);
  const byStatus = {};
  for (const a of answers) {
    const k = Buffer.isBuffer(a) ? 'ok' : String(a?.denied_response?.status?.code ?? 'ok');
    byStatus[k] = (byStatus[k] ?? 0) + 1;
  }
  report.garbageFlood = {
    subjects: GARBAGE, idpTokenRequests: tokenRequests - before, target: 0,
    // Every answer should be 401 invalid_subject_token: a Check waits for its verify verdict, not the wait budget.
    answers: byStatus,
    cpuUsPerSubject: Math.round((c.user + c.system) / GARBAGE), wallMs: Date.now() - t0,
  };
}

process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
await manager.close(0);
server.close();
