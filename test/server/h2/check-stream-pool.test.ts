// The node:http2 Check path keeps each Check's state in a pooled call (call-pool.ts): a call
// must never serve two live Checks, whatever order answers, deadlines and resets come in, and
// nothing of one Check may reach another's stream. Driven on a plain node:http2 server with a
// handler under the test's control (it echoes the request it was given, when the test says).
import { EventEmitter } from 'node:events';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { CallPool } from '../../../src/server/h2/call-pool.js';
import { CheckStreams, type UnaryHandler } from '../../../src/server/h2/check-stream.js';

const PATH = '/test.Svc/Check';

/** A request holder the pooled calls keep (as CheckRequestRead is for Check). */
class Holder {
  text: string | undefined = undefined;
}

interface Held {
  readonly call: { readonly request: Holder };
  readonly text: string;
  readonly callback: (err: null, value?: string) => void;
}

/** What the handler saw and holds. */
const live = new Set<object>();
const held: Held[] = [];
const seen: object[] = [];
let mode: 'answer' | 'hold' | 'twice' = 'answer';
let failures: string[] = [];

const handler: UnaryHandler<Holder, string> = {
  deserialize: (b) => Object.assign(new Holder(), { text: b.toString('utf8') }),
  inPlace: {
    readInto: (buf, start, end, reuse) => {
      const h = reuse ?? new Holder();
      h.text = buf.toString('utf8', start, end);
      return h;
    },
    clear: (h) => {
      h.text = undefined;
    },
  },
  serialize: (v) => Buffer.from(v, 'utf8'),
  handle: (call, callback) => {
    if (live.has(call)) failures.push(`call handed to a second live Check while serving "${held.find((h) => h.call === call)?.text}"`);
    live.add(call);
    seen.push(call);
    const text = call.request.text!;
    const done = (err: null, value?: string): void => {
      // The request must still be this Check's when the handler answers.
      if (call.request.text !== text) failures.push(`request of "${text}" became "${call.request.text}" before its answer`);
      live.delete(call);
      callback(err, value);
    };
    if (mode === 'hold') held.push({ call, text, callback: done });
    else if (mode === 'twice') {
      done(null, `echo:${text}`);
      callback(null, 'second answer');
    } else done(null, `echo:${text}`);
  },
};

function frame(text: string): Buffer {
  const body = Buffer.from(text, 'utf8');
  const out = Buffer.alloc(5 + body.length);
  out.writeUInt32BE(body.length, 1);
  body.copy(out, 5);
  return out;
}

interface Reply {
  status: string | undefined;
  body: string;
  closedWith: number;
}

function call(session: http2.ClientHttp2Session, text: string, opts: { timeout?: string; reset?: 'mid-request' | 'after-send' } = {}): Promise<Reply> {
  return new Promise((resolve) => {
    const req = session.request({ ':method': 'POST', ':path': PATH, 'content-type': 'application/grpc', ...(opts.timeout ? { 'grpc-timeout': opts.timeout } : {}) });
    let headers: http2.IncomingHttpHeaders = {};
    let trailers: http2.IncomingHttpHeaders = {};
    const body: Buffer[] = [];
    req.on('response', (h) => (headers = h));
    req.on('trailers', (t) => (trailers = t));
    req.on('data', (c: Buffer) => body.push(c));
    req.on('error', () => undefined);
    req.on('close', () => {
      const b = Buffer.concat(body);
      resolve({ status: (trailers['grpc-status'] ?? headers['grpc-status']) as string | undefined, body: b.length > 5 ? b.subarray(5).toString('utf8') : '', closedWith: req.rstCode ?? 0 });
    });
    const f = frame(text);
    if (opts.reset === 'mid-request') {
      req.write(f.subarray(0, 7));
      setTimeout(() => req.close(http2.constants.NGHTTP2_CANCEL), 20);
      return;
    }
    req.end(f);
    if (opts.reset === 'after-send') setTimeout(() => req.close(http2.constants.NGHTTP2_CANCEL), 20);
  });
}

const until = async (cond: () => boolean, ms = 2_000): Promise<void> => {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 5));
  }
};

describe('CheckStreams: pooled calls', () => {
  let server: http2.Http2Server;
  let session: http2.ClientHttp2Session;
  let streams: CheckStreams<Holder, string>;

  beforeAll(async () => {
    streams = new CheckStreams(PATH, handler, 4096);
    server = http2.createServer();
    server.on('stream', (stream, headers) => {
      if (!streams.accept(stream, headers)) stream.respond({ ':status': 415 }, { endStream: true });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    session = http2.connect(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
  });

  afterEach(() => {
    mode = 'answer';
    for (const h of held.splice(0)) h.callback(null, 'late');
    expect(failures).toEqual([]);
    failures = [];
    seen.length = 0;
  });

  afterAll(async () => {
    session?.close();
    await new Promise<void>((r) => server.close(() => r()));
  });

  it('serves Check after Check with one call object when they come one at a time', async () => {
    for (let i = 0; i < 20; i++) expect((await call(session, `one-${i}`)).body).toBe(`echo:one-${i}`);
    expect(new Set(seen).size).toBe(1);
    expect(streams.pool.size).toBe(1);
  });

  it('never hands a call to two live Checks: concurrent Checks answered in a shuffled order each get their own answer', async () => {
    mode = 'hold';
    const n = 64;
    const replies = Array.from({ length: n }, (_, i) => call(session, `c-${i}`));
    await until(() => held.length === n);
    expect(new Set(held.map((h) => h.call)).size).toBe(n);
    // Answer in a shuffled order, taking new Checks in between: they reuse calls given back.
    const order = held.splice(0).sort((a, b) => (a.text.length * 7919 + a.text.charCodeAt(a.text.length - 1)) % 13 - (b.text.length * 7919 + b.text.charCodeAt(b.text.length - 1)) % 13);
    const extra: Promise<Reply>[] = [];
    mode = 'answer';
    for (const [k, h] of order.entries()) {
      h.callback(null, `echo:${h.text}`);
      if (k % 4 === 0) extra.push(call(session, `extra-${k}`));
      if (k % 8 === 0) await new Promise((r) => setImmediate(r));
    }
    const got = await Promise.all(replies);
    got.forEach((r, i) => expect(r.body).toBe(`echo:c-${i}`));
    for (const [j, r] of (await Promise.all(extra)).entries()) expect(r.body).toBe(`echo:extra-${j * 4}`);
  });

  it('a deadline that answers while the handler holds the call: the call is not reused until the handler calls back, and its late answer reaches no other stream', async () => {
    mode = 'hold';
    const late = call(session, 'slow', { timeout: '30m' });
    await until(() => held.length === 1);
    expect((await late).status).toBe('4'); // DEADLINE_EXCEEDED, sent by the deadline
    const slow = held.splice(0)[0]!;
    mode = 'answer';
    // Checks served meanwhile never get the call the handler still holds.
    for (let i = 0; i < 10; i++) expect((await call(session, `meanwhile-${i}`)).body).toBe(`echo:meanwhile-${i}`);
    expect(seen.slice(1)).not.toContain(slow.call);
    const poolBefore = streams.pool.size;
    mode = 'hold';
    const next = call(session, 'next-held');
    await until(() => held.length === 1);
    slow.callback(null, 'echo:slow (late)'); // the late answer: written nowhere
    held.splice(0)[0]!.callback(null, 'echo:next-held');
    expect((await next).body).toBe('echo:next-held');
    expect(streams.pool.size).toBeGreaterThanOrEqual(poolBefore);
    mode = 'answer';
    expect((await call(session, 'after')).body).toBe('echo:after');
  });

  it('a Check answered before its deadline leaves no deadline behind on the call it gives back (the next Check on that call is not expired by it)', async () => {
    expect((await call(session, 'quick', { timeout: '60m' })).body).toBe('echo:quick');
    expect(streams.deadlines.size).toBe(0);
    mode = 'hold';
    let settled = false;
    const next = call(session, 'no-deadline').then((r) => ((settled = true), r));
    await until(() => held.length === 1);
    expect(held[0]!.call).toBe(seen[0]); // the same pooled call
    await new Promise((r) => setTimeout(r, 150)); // well past the first Check's 60 ms
    expect(settled).toBe(false);
    held.splice(0)[0]!.callback(null, 'echo:no-deadline');
    expect(await next).toMatchObject({ status: '0', body: 'echo:no-deadline' });
  });

  it('streams reset mid-request and while the handler holds the call leave no call serving two Checks', async () => {
    const resets = Array.from({ length: 8 }, (_, i) => call(session, `reset-${i}`, { reset: 'mid-request', timeout: '50m' }));
    mode = 'hold';
    const cancelled = Array.from({ length: 8 }, (_, i) => call(session, `cancel-${i}`, { reset: 'after-send' }));
    await Promise.all([...resets, ...cancelled]);
    await until(() => held.length === 8);
    mode = 'answer';
    const during = await Promise.all(Array.from({ length: 16 }, (_, i) => call(session, `during-${i}`)));
    during.forEach((r, i) => expect(r.body).toBe(`echo:during-${i}`));
    // The handler answers the cancelled Checks late: nothing is written, the calls come back.
    for (const h of held.splice(0)) h.callback(null, `echo:${h.text}`);
    // The mid-request resets' deadlines pass: those calls end there and come back too.
    await new Promise((r) => setTimeout(r, 80));
    const after = await Promise.all(Array.from({ length: 32 }, (_, i) => call(session, `after-${i}`)));
    after.forEach((r, i) => expect(r.body).toBe(`echo:after-${i}`));
    expect(streams.deadlines.size).toBe(0);
  });

  it('ignores a second callback from the handler: one answer, and the next Check is served', async () => {
    mode = 'twice';
    const r = await call(session, 'twice');
    expect(r.body).toBe('echo:twice');
    mode = 'answer';
    expect((await call(session, 'then')).body).toBe('echo:then');
  });

  it('gives an idle call nothing of its last Check to keep alive', async () => {
    await call(session, 'kept?');
    const idle = (streams.pool as unknown as { idle: { held?: Holder; stream?: unknown; message: object }[] }).idle;
    expect(idle.length).toBeGreaterThan(0);
    for (const c of idle) {
      expect(c.stream).toBeUndefined();
      expect(c.held?.text).toBeUndefined();
      expect((c.message as { payloadBuf?: Buffer }).payloadBuf).toBeUndefined();
    }
  });
});

/** Just enough of a ServerHttp2Stream for CheckStreams, with events the test emits itself. */
class FakeStream extends EventEmitter {
  destroyed = false;
  closed = false;
  headersSent = false;
  readonly written: string[] = [];
  respond(headers: Record<string, unknown>): void {
    this.headersSent = true;
    if (headers['grpc-status'] !== undefined) this.written.push(`status ${String(headers['grpc-status'])}`);
  }
  end(frame?: Buffer): void {
    if (frame) this.written.push(frame.subarray(5).toString('utf8'));
  }
  sendTrailers(): void {}
  close(): void {
    this.closed = true;
  }
}

describe('CheckStreams: events of a stream whose call was given back', () => {
  it('reach no other Check (the call is unlinked from its stream first)', () => {
    const streams = new CheckStreams(PATH, handler, 4096);
    const a = new FakeStream();
    streams.accept(a as unknown as http2.ServerHttp2Stream, { 'content-type': 'application/grpc' });
    a.emit('data', frame('first'));
    a.emit('end');
    expect(a.written).toEqual(['echo:first']);
    expect(streams.pool.size).toBe(1);
    // The next Check takes the same call; its request is still arriving.
    const b = new FakeStream();
    streams.accept(b as unknown as http2.ServerHttp2Stream, { 'content-type': 'application/grpc' });
    const f = frame('second');
    b.emit('data', f.subarray(0, 8));
    // The old stream misbehaves: more DATA and another end. Nothing may reach b's call.
    a.emit('data', Buffer.from('garbage that is not a frame'));
    a.emit('end');
    b.emit('data', f.subarray(8));
    b.emit('end');
    expect(b.written).toEqual(['echo:second']);
    expect(a.written).toEqual(['echo:first']);
    expect(failures).toEqual([]);
  });
});

describe('CallPool', () => {
  it('keeps at most its maximum of idle calls, last in first out', () => {
    const pool = new CallPool<number>(2);
    pool.give(1);
    pool.give(2);
    pool.give(3);
    expect(pool.size).toBe(2);
    expect(pool.take()).toBe(2);
    expect(pool.take()).toBe(1);
    expect(pool.take()).toBeUndefined();
  });
});
