// The raw-frame HTTP/2 load generator (bench/raw-h2.js) against real servers on port 0: a
// node:http2 server answering gRPC-framed unary calls (its own HPACK decoder and flow control
// judge every byte we send), and tokengate's own Check listener. Every call must complete
// exactly once, with the verdict gRPC's framing gives: answer-then-trailers is success;
// trailers-only, RST_STREAM and GOAWAY above the last stream id are errors.
import crypto from 'node:crypto';
import http2 from 'node:http2';
import type { Socket } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { H2_HEADERS, framed, kIndex, type CallContext } from '../../bench/h2-call.js';
import { H2Caller } from '../../bench/h2-caller.js';
import { RawH2Caller, RawH2Error, headerBlocks } from '../../bench/raw-h2.js';
import { staticTokenApp, type TestApp } from '../support/app.js';
import { envoyRequest, injected } from '../support/envoy-request.js';
import { decodeCheckResponse, encodeCheckRequest } from '../security/support/raw-check.js';
import { FlowAudit } from './flow-audit.js';

type Mode = 'answer' | 'trailers-only' | 'rst' | 'hold';

interface Seen {
  headers: http2.IncomingHttpHeaders;
  raw: string[];
  body: Buffer;
}

/** A node:http2 gRPC-ish server: answers sha256(request body) as a gRPC message, then grpc-status 0. */
class TestServer {
  readonly server: http2.Http2Server;
  readonly seen: Seen[] = [];
  readonly sessions = new Set<http2.ServerHttp2Session>();
  readonly sockets = new Set<Socket>();
  mode: Mode = 'answer';
  open = 0;
  maxOpen = 0;
  held: http2.ServerHttp2Stream[] = [];
  onHeld: ((held: http2.ServerHttp2Stream[]) => void) | undefined;
  answerDelayMs = 0;

  constructor(settings: http2.Settings) {
    this.server = http2.createServer({ settings });
    this.server.on('connection', (sock: Socket) => this.sockets.add(sock));
    this.server.on('session', (s) => {
      this.sessions.add(s);
      s.on('close', () => this.sessions.delete(s));
    });
    this.server.on('stream', (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, _flags: number, raw: string[]) => {
      this.open++;
      this.maxOpen = Math.max(this.maxOpen, this.open);
      stream.on('error', () => undefined);
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        const body = Buffer.concat(chunks);
        this.seen.push({ headers, raw, body });
        if (this.mode === 'hold') {
          this.held.push(stream);
          this.onHeld?.(this.held);
        } else if (this.answerDelayMs > 0) setTimeout(() => this.reply(stream, body), this.answerDelayMs);
        else this.reply(stream, body);
      });
    });
  }

  reply(stream: http2.ServerHttp2Stream, body: Buffer): void {
    if (stream.destroyed) return;
    if (this.mode === 'trailers-only') {
      this.open--;
      stream.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': '5', 'grpc-message': 'not found' }, { endStream: true });
      return;
    }
    if (this.mode === 'rst') {
      this.open--;
      stream.close(http2.constants.NGHTTP2_CANCEL);
      return;
    }
    stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
    stream.on('wantTrailers', () => {
      // Our side of the stream ends here: from now on the client may open another under the limit.
      this.open--;
      stream.sendTrailers({ 'grpc-status': '0' });
    });
    stream.end(grpcFrame(sha(body)));
  }

  listen(): Promise<string> {
    return new Promise((resolve) => this.server.listen(0, '127.0.0.1', () => resolve(`127.0.0.1:${(this.server.address() as { port: number }).port}`)));
  }

  close(): Promise<void> {
    for (const s of this.sessions) s.destroy();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

const sha = (b: Buffer): Buffer => crypto.createHash('sha256').update(b).digest();
function grpcFrame(message: Buffer): Buffer {
  const f = Buffer.alloc(5 + message.length);
  f.writeUInt32BE(message.length, 1);
  message.copy(f, 5);
  return f;
}

interface Outcome {
  times: number;
  err: Error | null;
  answer: Buffer | undefined;
}

/** Sends every frame (call i = frames[i]) through one shared callback; resolves when all are answered. */
function callAll(caller: RawH2Caller | H2Caller, frames: Buffer[]): Promise<Outcome[]> {
  const out: Outcome[] = frames.map(() => ({ times: 0, err: null, answer: undefined }));
  let settled = 0;
  return new Promise((resolve) => {
    const done = function (this: CallContext, err: Error | null, answer?: Buffer): void {
      const o = out[this[kIndex]]!;
      o.times++;
      o.err = err;
      o.answer = answer;
      if (++settled === frames.length) setTimeout(() => resolve(out), 20); // late duplicates would show
    };
    frames.forEach((f, i) => caller.send(f, done, i));
  });
}

const codeOf = (err: Error | null): string | undefined => (err instanceof RawH2Error ? err.code : undefined);

describe('RawH2Caller against node:http2', () => {
  let server: TestServer;
  let audit: FlowAudit | undefined;
  /** The caller's address: the flow-control audit in front of the server. */
  let address: string;
  let caller: RawH2Caller | undefined;

  afterEach(async () => {
    caller?.close();
    caller = undefined;
    const violations = audit?.violations ?? [];
    await audit?.close();
    audit = undefined;
    await server?.close();
    // Every DATA frame of every test fitted both windows.
    expect(violations.slice(0, 5)).toEqual([]);
  });

  async function start(settings: http2.Settings = {}): Promise<void> {
    server = new TestServer(settings);
    const [host, port] = (await server.listen()).split(':');
    audit = new FlowAudit({ host: host!, port: Number(port) });
    address = await audit.listen();
    caller = new RawH2Caller(address, { keepAnswers: true });
    await caller.ready();
  }

  it('sends what node:http2\'s client sends: the first request fills the dynamic table, later ones index it', () => {
    const fields: [string, string][] = [[':method', 'POST'], [':path', '/p'], [':authority', 'h:1'], [':scheme', 'http'], ['content-type', 'application/grpc'], ['te', 'trailers'], ['grpc-timeout', '10S']];
    const { first, later, indexed } = headerBlocks(fields, 4096);
    expect(indexed).toBe(true);
    // :method POST and :scheme http from the static table; :path literal without indexing (nghttp2's choice).
    expect(later.toString('hex')).toBe(`8304022f70${'c1'}86${'c0bfbe'}`);
    expect(first.subarray(0, 5).toString('hex')).toBe('8304022f70');
    expect(first[5]).toBe(0x41); // :authority, literal with incremental indexing, static name 1
    expect(first.includes(Buffer.from('grpc-timeout'))).toBe(true);
    // A server that shrinks the table below what the fields need gets no inserts, and is told the size first.
    const small = headerBlocks(fields, 64);
    expect(small.indexed).toBe(false);
    expect(small.first[0]).toBe(0x3f); // dynamic table size update, 64 = 31 + 33
    expect(small.later.includes(0xc1)).toBe(false);
  });

  it('completes 2,000 concurrent calls of 0.4 KB, 8 KB and 200 KB exactly once, through a 16 KB stream window', async () => {
    await start({ initialWindowSize: 16 * 1024 });
    const bodies = [400, 8 * 1024, 200 * 1024].flatMap((n) => [0, 1, 2].map((v) => grpcFrame(crypto.randomBytes(n - 5 + v))));
    // Every 20th call is a 200 KB one (20 MB in all): many WINDOW_UPDATEs on every stream and the connection.
    const frames = Array.from({ length: 2000 }, (_, i) => (i % 20 === 19 ? bodies[6 + (i % 3)]! : bodies[(i % 6)]!));
    const out = await callAll(caller!, frames);
    expect(out.filter((o) => o.times !== 1)).toEqual([]);
    expect(out.filter((o) => o.err !== null).map((o) => o.err?.message)).toEqual([]);
    // Each call got the answer to its own request (the server echoes a hash of the bytes it read).
    out.forEach((o, i) => expect(o.answer!.equals(grpcFrame(sha(frames[i]!))), `call ${i}`).toBe(true));
    // The server saw the exact request bytes, as many times as they were sent.
    const sent = new Map<string, number>();
    for (const f of frames) sent.set(sha(f).toString('hex'), (sent.get(sha(f).toString('hex')) ?? 0) + 1);
    const got = new Map<string, number>();
    for (const s of server.seen) got.set(sha(s.body).toString('hex'), (got.get(sha(s.body).toString('hex')) ?? 0) + 1);
    expect(got).toEqual(sent);
    // And the same headers, in node:http2's client's order, on the first request and every later one.
    const expected = [':method', 'POST', ':path', H2_HEADERS[':path'], ':authority', address, ':scheme', 'http', 'content-type', 'application/grpc', 'te', 'trailers', 'grpc-timeout', '10S'];
    expect(server.seen.filter((s) => JSON.stringify(s.raw) !== JSON.stringify(expected))).toEqual([]);
    expect(server.seen).toHaveLength(2000);
    expect(audit!.windowUpdates).toBeGreaterThan(100);
  }, 60_000);

  it('keeps to the connection window when every call fits its stream window (300 × 8 KB at once, 64 KB connection window)', async () => {
    await start();
    const frames = Array.from({ length: 300 }, (_, i) => grpcFrame(crypto.randomBytes(8 * 1024 - 5 + (i % 7))));
    const out = await callAll(caller!, frames);
    expect(out.filter((o) => o.times !== 1 || o.err !== null).map((o) => o.err?.message)).toEqual([]);
    out.forEach((o, i) => expect(o.answer!.equals(grpcFrame(sha(frames[i]!))), `call ${i}`).toBe(true));
    expect(audit!.dataBytes).toBeGreaterThan(300 * 8 * 1024);
  });

  it('sends an empty message, one over its stream window and one over the whole connection window', async () => {
    await start({ initialWindowSize: 1024 });
    const frames = [grpcFrame(Buffer.alloc(0)), grpcFrame(crypto.randomBytes(8 * 1024)), grpcFrame(crypto.randomBytes(300 * 1024)), grpcFrame(Buffer.from('x'))];
    const out = await callAll(caller!, frames);
    expect(out.map((o) => [o.times, o.err])).toEqual([[1, null], [1, null], [1, null], [1, null]]);
    expect(server.seen.map((s) => s.body.length).sort((a, b) => a - b)).toEqual([5, 6, 8 * 1024 + 5, 300 * 1024 + 5]);
  });

  it('counts a trailers-only answer as an error', async () => {
    await start();
    server.mode = 'trailers-only';
    const out = await callAll(caller!, [grpcFrame(Buffer.from('a')), grpcFrame(Buffer.from('b'))]);
    expect(out.map((o) => [o.times, codeOf(o.err)])).toEqual([[1, 'ERR_H2_TRAILERS_ONLY'], [1, 'ERR_H2_TRAILERS_ONLY']]);
    // The connection goes on: the next answer with a message succeeds.
    server.mode = 'answer';
    const next = await callAll(caller!, [grpcFrame(Buffer.from('c'))]);
    expect(next[0]!.err).toBeNull();
  });

  it('counts RST_STREAM as an error of that stream only', async () => {
    await start();
    server.mode = 'rst';
    const out = await callAll(caller!, [grpcFrame(Buffer.from('a'))]);
    expect(codeOf(out[0]!.err)).toBe('ERR_H2_RST_STREAM');
    expect((out[0]!.err as RawH2Error).h2Code).toBe(http2.constants.NGHTTP2_CANCEL);
    server.mode = 'answer';
    expect((await callAll(caller!, [grpcFrame(Buffer.from('b'))]))[0]!.err).toBeNull();
  });

  it('fails the streams above GOAWAY\'s last stream id, answers the rest, and refuses new calls', async () => {
    await start();
    server.mode = 'hold';
    // Six streams (ids 1…11) reach the server; it goes away at stream 5 and then answers 1, 3, 5.
    server.onHeld = (held) => {
      if (held.length !== 6) return;
      const session = held[0]!.session!;
      session.goaway(http2.constants.NGHTTP2_NO_ERROR, 5);
      server.mode = 'answer';
      setTimeout(() => {
        for (const s of held) if ((s.id ?? 0) <= 5) server.reply(s, Buffer.from('held'));
      }, 20);
    };
    const out = await callAll(caller!, Array.from({ length: 6 }, (_, i) => grpcFrame(Buffer.from(`call ${i}`))));
    expect(out.map((o) => o.times)).toEqual([1, 1, 1, 1, 1, 1]);
    expect(out.map((o) => codeOf(o.err) ?? 'ok')).toEqual(['ok', 'ok', 'ok', 'ERR_H2_GOAWAY', 'ERR_H2_GOAWAY', 'ERR_H2_GOAWAY']);
    expect((out[3]!.err as RawH2Error).lastStreamId).toBe(5);
    const after = await callAll(caller!, [grpcFrame(Buffer.from('late'))]);
    expect(codeOf(after[0]!.err)).toBe('ERR_H2_GOAWAY');
  });

  it('keeps to SETTINGS_MAX_CONCURRENT_STREAMS = 4, queueing the rest', async () => {
    await start({ maxConcurrentStreams: 4 });
    server.answerDelayMs = 3;
    const out = await callAll(caller!, Array.from({ length: 60 }, (_, i) => grpcFrame(Buffer.from(`call ${i}`))));
    // A fifth stream would be refused by the server (RST_STREAM REFUSED_STREAM): every call succeeds.
    expect(out.filter((o) => o.times !== 1 || o.err !== null)).toEqual([]);
    expect(server.maxOpen).toBe(4);
    expect(server.seen).toHaveLength(60);
  });

  it('fails every open call once when the connection drops', async () => {
    await start();
    server.mode = 'hold';
    server.onHeld = (held) => {
      // The TCP connection itself, not the session (which would reset each stream first).
      if (held.length === 3) for (const sock of server.sockets) sock.destroy();
    };
    const out = await callAll(caller!, [0, 1, 2].map((i) => grpcFrame(Buffer.from(`c${i}`))));
    expect(out.map((o) => [o.times, codeOf(o.err)])).toEqual([[1, 'ERR_H2_CONNECTION'], [1, 'ERR_H2_CONNECTION'], [1, 'ERR_H2_CONNECTION']]);
  });
});

// Both serving paths: node:http2 (the default) and grpc-js (the bench's opt-in rows are driven by this caller too).
describe.each(['http2', 'grpc-js'])('RawH2Caller against tokengate\'s Check listener (checkServer: %s)', (checkServer) => {
  const TOKEN = 'static-token-for-the-raw-generator';
  let t: TestApp;
  beforeAll(async () => {
    t = await staticTokenApp(TOKEN, `checkServer: ${checkServer}`);
  });
  afterAll(async () => {
    await t?.close();
  });

  it('gets the same OK answers as H2Caller (node:http2\'s client), and the same error for an unknown method', async () => {
    const frame = framed(encodeCheckRequest(envoyRequest({ authority: 'api.example.com' })));
    const raw = new RawH2Caller(t.app.grpcAddress, { keepAnswers: true });
    const h2 = new H2Caller(t.app.grpcAddress);
    await Promise.all([raw.ready(), h2.ready()]);
    const frames = Array.from({ length: 200 }, () => frame);
    const [rawOut, h2Out] = await Promise.all([callAll(raw, frames), callAll(h2, frames)]);
    expect(rawOut.filter((o) => o.times !== 1 || o.err !== null)).toEqual([]);
    expect(h2Out.filter((o) => o.times !== 1 || o.err !== null)).toEqual([]);
    const answer = rawOut[0]!.answer!;
    expect(answer.readUInt32BE(1)).toBe(answer.length - 5);
    const res = decodeCheckResponse(answer.subarray(5));
    expect(res.status?.code ?? 0).toBe(0);
    expect(injected(res)?.header?.value).toBe(`Bearer ${TOKEN}`);
    // Byte for byte what node:http2's client reads for the same request.
    const viaH2 = await new Promise<Buffer>((resolve, reject) => {
      const session = http2.connect(`http://${t.app.grpcAddress}`);
      const req = session.request(H2_HEADERS);
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('error', reject);
      req.on('close', () => {
        session.close();
        resolve(Buffer.concat(chunks));
      });
      req.end(frame);
    });
    expect(rawOut.every((o) => o.answer!.equals(viaH2))).toBe(true);

    // An unknown method: grpc-js answers trailers-only with UNIMPLEMENTED; both callers fail it.
    const nope = { ...H2_HEADERS, ':path': '/envoy.service.auth.v3.Authorization/Nope' };
    const rawNope = new RawH2Caller(t.app.grpcAddress, { headers: nope });
    await rawNope.ready();
    const [rawErr] = await callAll(rawNope, [frame]);
    expect(codeOf(rawErr!.err)).toBe('ERR_H2_TRAILERS_ONLY');
    raw.close();
    rawNope.close();
    h2.close();
  });
});
