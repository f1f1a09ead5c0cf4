// StreamTable in place of node:http2's per-session stream Map (stream-table.ts says why: a churned
// Map chains every stream into old space once a full GC has promoted one of its tables).
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { types } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { installStreamTable, StreamTable } from '../../../src/server/h2/stream-table.js';

function sessionStreams(session: http2.Http2Session): unknown {
  const symbol = Object.getOwnPropertySymbols(session).find((s) => s.description === 'state')!;
  return (session as unknown as Record<symbol, { streams: unknown }>)[symbol]!.streams;
}

describe('StreamTable', () => {
  it('does what node:http2 asks of its Map: set, get, delete, size, forEach in id order', () => {
    const t = new StreamTable<string>();
    t.set(5, 'e').set(1, 'a').set(3, 'c');
    t.set(3, 'C'); // replacing is not adding
    expect(t.size).toBe(3);
    expect(t.get(3)).toBe('C');
    expect(t.get(7)).toBeUndefined();
    expect(t.delete(1)).toBe(true);
    expect(t.delete(1)).toBe(false);
    const seen: Array<[number, string]> = [];
    t.forEach((v, id) => seen.push([id, v]));
    expect(seen).toEqual([[3, 'C'], [5, 'e']]);
    expect(t.size).toBe(2);
  });

  it('notes when its last stream closed and calls onEmpty once then (max connection idle, idle-accounting.ts)', () => {
    const t = new StreamTable<string>();
    let calls = 0;
    t.set(1, 'a').set(3, 'b');
    t.onEmpty = () => calls++;
    const before = Date.now();
    t.delete(1);
    expect([t.idleSince, calls]).toEqual([0, 0]); // one still open
    t.delete(3);
    expect(t.idleSince).toBeGreaterThanOrEqual(before);
    expect(calls).toBe(1);
    t.set(5, 'c');
    t.delete(5);
    expect(calls).toBe(1); // once, then cleared
    expect(t.onEmpty).toBeUndefined();
  });
});

describe('a node:http2 session with a StreamTable (the promoted kilobyte)', () => {
  let server: http2.Http2Server | undefined;
  let client: http2.ClientHttp2Session | undefined;
  afterEach(async () => {
    client?.destroy();
    await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
    server = undefined;
    client = undefined;
  });

  async function start(onStream: (s: http2.ServerHttp2Stream) => void): Promise<{ sessions: http2.ServerHttp2Session[]; installed: boolean[] }> {
    const sessions: http2.ServerHttp2Session[] = [];
    const installed: boolean[] = [];
    server = http2.createServer();
    server.on('session', (s: http2.ServerHttp2Session) => {
      sessions.push(s);
      installed.push(installStreamTable(s) !== undefined);
    });
    server.on('stream', onStream);
    await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
    client = http2.connect(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
    client.on('error', () => undefined);
    return { sessions, installed };
  }

  function request(): Promise<string> {
    return new Promise((resolve, reject) => {
      const req = client!.request({ ':method': 'POST', ':path': '/x' });
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => resolve(body));
      req.on('error', reject);
      req.end('hi');
    });
  }

  it('replaces the Map on this Node, serves streams through it and leaves nothing once they close', async () => {
    const { sessions, installed } = await start((s) => {
      s.on('data', () => undefined);
      s.on('end', () => {
        s.respond({ ':status': 200 });
        s.end('ok');
      });
    });
    const answers = await Promise.all(Array.from({ length: 40 }, () => request()));
    expect(answers.every((a) => a === 'ok')).toBe(true);
    expect(installed).toEqual([true]);
    const streams = sessionStreams(sessions[0]!);
    expect(types.isMap(streams)).toBe(false);
    expect(streams).toBeInstanceOf(StreamTable);
    await new Promise((r) => setImmediate(r));
    expect((streams as StreamTable<unknown>).size).toBe(0);
  });

  it('destroys the open streams through the table when the session is destroyed', async () => {
    const open: http2.ServerHttp2Stream[] = [];
    const { sessions } = await start((s) => open.push(s));
    const pending = new Promise<string>((resolve) => {
      const req = client!.request({ ':method': 'POST', ':path': '/x' });
      req.on('error', () => undefined);
      req.on('close', () => resolve('closed'));
    });
    while (open.length === 0) await new Promise((r) => setImmediate(r));
    expect(sessionStreams(sessions[0]!)).toBeInstanceOf(StreamTable);
    sessions[0]!.destroy();
    expect(await pending).toBe('closed');
    expect(open[0]!.destroyed).toBe(true);
    expect((sessionStreams(sessions[0]!) as StreamTable<unknown>).size).toBe(0);
  });

  it('leaves a session alone when its streams are not an empty Map', () => {
    expect(installStreamTable({})).toBeUndefined();
    const kState = Symbol('state');
    expect(installStreamTable({ [kState]: { streams: new Map([[1, 'open']]) } })).toBeUndefined();
  });
});
