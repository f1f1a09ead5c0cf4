// The OTEL_* environment path end to end: `tokengate serve` (the built CLI, a real process)
// with OTEL_EXPORTER_OTLP_ENDPOINT pointing at an OTLP/HTTP receiver on loopback exports the
// spans of a Check that waited, under OTEL_SERVICE_NAME and the caller's trace. Without any
// OTEL_* variable the SDK is never loaded: a loader hook lists every module the process
// resolves, and the same probe sees the SDK when tracing is on.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DemoTokenServer } from '../../demo/token-server.js';
import { tracesExporters } from '../../src/observability/tracing-sdk.js';
import { REPO_ROOT } from '../support/demo-files.js';
import { CheckClient, envoyRequest, injected } from '../support/envoy-request.js';
import { CLI, removeTmpDir, tmpDir } from '../support/replicas.js';

const CALLER_TRACE = '0af7651916cd43dd8448eb211c80319c';
const CALLER_SPAN = 'b7ad6b7169203331';
const HOOK = path.join(REPO_ROOT, 'test', 'support', 'module-log.mjs');

interface OtlpSpan { traceId: string; spanId: string; parentSpanId?: string; name: string; attributes?: { key: string; value: Record<string, unknown> }[] }
interface OtlpExport { resourceSpans?: { resource?: { attributes?: { key: string; value: { stringValue?: string } }[] }; scopeSpans?: { scope?: { name?: string }; spans?: OtlpSpan[] }[] }[] }

/** A minimal OTLP/HTTP trace receiver: takes POST /v1/traces (JSON) and keeps what it got. */
class OtlpReceiver {
  readonly exports: OtlpExport[] = [];
  readonly contentTypes: string[] = [];
  private readonly server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (req.method !== 'POST' || req.url !== '/v1/traces') {
        res.writeHead(404).end();
        return;
      }
      this.contentTypes.push(String(req.headers['content-type']));
      this.exports.push(JSON.parse(Buffer.concat(chunks).toString('utf8')) as OtlpExport);
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });

  async start(): Promise<string> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  stop(): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  spans(): { service: string | undefined; scope: string | undefined; span: OtlpSpan }[] {
    return this.exports.flatMap((e) => (e.resourceSpans ?? []).flatMap((rs) => {
      const service = rs.resource?.attributes?.find((a) => a.key === 'service.name')?.value.stringValue;
      return (rs.scopeSpans ?? []).flatMap((ss) => (ss.spans ?? []).map((span) => ({ service, scope: ss.scope?.name, span })));
    }));
  }
}

/** Runs `tokengate serve` with this environment, sends one Check that has to wait, stops it. */
async function serveOnce(dir: string, name: string, idp: DemoTokenServer, otel: Record<string, string>): Promise<{ logs: Record<string, unknown>[]; modules: string[]; answer: string | undefined }> {
  const config = path.join(dir, `${name}.yaml`);
  fs.writeFileSync(config, `
listen: { grpc: "127.0.0.1:0", admin: "off" }
shutdown: { deadline: 3s, drainDelay: 0s }
providers:
  cc:
    source: { type: client_credentials, tokenUrl: "${idp.tokenUrl}", clientId: demo-client, clientSecret: demo-secret }
    refresh: { waitBudget: 8s }
    resilience: { timeout: 5s, retries: 0 }
routes:
  - match: { authority: api.example.com }
    provider: cc
`);
  const moduleLog = path.join(dir, `${name}.modules`);
  const env: Record<string, string> = { NODE_ENV: 'test', TOKENGATE_MODULE_LOG: moduleLog };
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith('OTEL_')) env[k] = v;
  // Warm-up fails once, so the Check below has to wait for a refresh: its own, or (on a slow
  // machine, more than a second after warm-up) the scheduled retry, held up here for 2 s.
  idp.setBehaviourSequence([{ kind: 'status', status: 500 }, { kind: 'delay', ms: 2_000 }]);
  const proc = spawn(process.execPath, ['--import', HOOK, CLI, 'serve', '--config', config], { env: { ...env, ...otel }, stdio: ['ignore', 'pipe', 'pipe'] });
  const logs: Record<string, unknown>[] = [];
  let stderr = '';
  proc.stderr!.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  let pending = '';
  const ready = new Promise<void>((resolve, reject) => {
    proc.stdout!.on('data', (c: Buffer) => {
      pending += c.toString('utf8');
      let i: number;
      while ((i = pending.indexOf('\n')) >= 0) {
        try {
          const line = JSON.parse(pending.slice(0, i)) as Record<string, unknown>;
          logs.push(line);
          if (line.msg === 'ready') resolve();
        } catch { /* not JSON */ }
        pending = pending.slice(i + 1);
      }
    });
    void exited.then(() => reject(new Error(`tokengate exited early: ${stderr.slice(-2000)}`)));
  });
  await ready;
  const grpc = String(logs.find((l) => l.msg === 'tokengate listening')?.grpc);
  const client = new CheckClient(grpc);
  let answer: string | undefined;
  try {
    const res = await client.check(envoyRequest({ headers: { traceparent: `00-${CALLER_TRACE}-${CALLER_SPAN}-01` } }), 10_000);
    answer = injected(res)?.header?.value;
  } finally {
    client.close();
    proc.kill('SIGTERM');
    await exited;
  }
  const modules = fs.existsSync(moduleLog) ? fs.readFileSync(moduleLog, 'utf8').split('\n').filter(Boolean) : [];
  return { logs, modules, answer };
}

const SDK_MODULE = /@opentelemetry\/(sdk-|exporter-|resources|context-async-hooks|otlp-)/;

describe('tracing from the OTEL_* environment (tokengate serve)', () => {
  let idp: DemoTokenServer;
  let receiver: OtlpReceiver;
  let endpoint: string;
  const dir = tmpDir('tracing-sdk');

  beforeAll(async () => {
    if (!fs.existsSync(CLI)) throw new Error(`${CLI} is missing: run \`npm run build\` first`);
    idp = new DemoTokenServer();
    await idp.start();
    receiver = new OtlpReceiver();
    endpoint = await receiver.start();
  });

  afterAll(async () => {
    await idp?.stop();
    await receiver?.stop();
    removeTmpDir(dir);
  });

  it('OTEL_EXPORTER_OTLP_ENDPOINT set: the waiting Check, its refresh and fetch reach the OTLP/HTTP receiver', async () => {
    const run = await serveOnce(dir, 'otlp', idp, {
      OTEL_EXPORTER_OTLP_ENDPOINT: endpoint, OTEL_SERVICE_NAME: 'tokengate-e2e', OTEL_BSP_SCHEDULE_DELAY: '100',
    });
    expect(run.answer).toBe(`Bearer ${idp.issuedAccessTokens.at(-1)}`);
    expect(run.logs.find((l) => l.msg === 'tracing on')).toMatchObject({ exporters: ['otlp'], service: 'tokengate-e2e' });
    expect(receiver.contentTypes.every((c) => c.startsWith('application/json'))).toBe(true);
    const spans = receiver.spans();
    expect(spans.every((s) => s.service === 'tokengate-e2e' && s.scope === 'tokengate')).toBe(true);
    const check = spans.find((s) => s.span.name === 'tokengate.check')?.span;
    expect(check).toBeDefined();
    expect(check!.traceId).toBe(CALLER_TRACE);
    expect(check!.parentSpanId).toBe(CALLER_SPAN);
    // The refresh that fetched the token, with its fetch as a child (in the caller's trace when
    // the Check started it; test/ops/tracing.test.ts pins that down in-process).
    const refreshes = spans.filter((s) => s.span.name === 'tokengate.refresh').map((s) => s.span);
    const fetches = spans.filter((s) => s.span.name === 'tokengate.token.fetch').map((s) => s.span);
    expect(refreshes.length).toBeGreaterThanOrEqual(2); // the failed warm-up, and the one that worked
    expect(fetches.length).toBe(refreshes.length);
    for (const f of fetches) expect(refreshes.map((r) => r.spanId)).toContain(f.parentSpanId);
    for (const r of refreshes) expect([undefined, '', check!.spanId]).toContain(r.parentSpanId);
    const everything = JSON.stringify(receiver.exports);
    for (const secret of [...idp.issuedAccessTokens, 'demo-secret']) expect(everything).not.toContain(secret);
    // The probe that the next test relies on sees the SDK when it is loaded.
    expect(run.modules.some((m) => SDK_MODULE.test(m))).toBe(true);
  });

  it('no OTEL_* variable: the SDK is never loaded and nothing is exported', async () => {
    const before = receiver.exports.length;
    const run = await serveOnce(dir, 'off', idp, {});
    expect(run.answer).toMatch(/^Bearer /);
    expect(run.modules.length).toBeGreaterThan(20);
    expect(run.modules.filter((m) => SDK_MODULE.test(m))).toEqual([]);
    expect(run.logs.some((l) => l.msg === 'tracing on')).toBe(false);
    expect(receiver.exports.length).toBe(before);
  });
});

describe('which OTEL_* settings turn tracing on', () => {
  it('follows OTEL_TRACES_EXPORTER, an OTLP endpoint, and OTEL_SDK_DISABLED', () => {
    expect(tracesExporters({})).toEqual([]);
    expect(tracesExporters({ OTEL_SERVICE_NAME: 'x' })).toEqual([]);
    expect(tracesExporters({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318' })).toEqual(['otlp']);
    expect(tracesExporters({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://c:4318/v1/traces' })).toEqual(['otlp']);
    expect(tracesExporters({ OTEL_TRACES_EXPORTER: 'otlp' })).toEqual(['otlp']);
    expect(tracesExporters({ OTEL_TRACES_EXPORTER: 'console, otlp' })).toEqual(['console', 'otlp']);
    expect(tracesExporters({ OTEL_TRACES_EXPORTER: 'none', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318' })).toEqual([]);
    expect(tracesExporters({ OTEL_SDK_DISABLED: 'true', OTEL_TRACES_EXPORTER: 'otlp' })).toEqual([]);
  });
});
