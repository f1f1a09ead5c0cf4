import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { EchoUpstream } from '../../demo/echo-upstream.js';
import { startEchoUpstream } from '../../demo/echo-upstream-main.js';

const servers: EchoUpstream[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.stop()));
});
async function serve(): Promise<EchoUpstream> {
  const s = new EchoUpstream();
  servers.push(s);
  await s.start();
  return s;
}
const control = (s: EchoUpstream, body: string): Promise<Response> => fetch(`${s.url}/control/reject`, { method: 'POST', body });

describe('EchoUpstream', () => {
  it('echoes method, path with query, and every header', async () => {
    const s = await serve();
    const res = await fetch(`${s.url}/v1/models?x=1`, { method: 'POST', body: 'hi', headers: { authorization: 'Bearer t1', 'x-custom': 'v' } });
    expect(res.status).toBe(200);
    const body = await res.json();
    expect(body).toMatchObject({ method: 'POST', path: '/v1/models?x=1', headers: { authorization: 'Bearer t1', 'x-custom': 'v' } });
    expect(body.rawHeaders).toContainEqual(['authorization', 'Bearer t1']);
    expect(s.requests).toEqual([expect.objectContaining({ method: 'POST', path: '/v1/models?x=1', status: 200 })]);
  });

  it('shows duplicate headers in rawHeaders (Node keeps only the first authorization)', async () => {
    const s = await serve();
    // fetch and http.request merge duplicates, so speak HTTP/1.1 by hand.
    const { port } = new URL(s.url);
    const raw = await new Promise<string>((resolve, reject) => {
      const sock = net.connect(Number(port), '127.0.0.1', () =>
        sock.end('GET /dup HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer a\r\nAuthorization: Bearer b\r\nConnection: close\r\n\r\n'),
      );
      let text = '';
      sock.on('data', (c: Buffer) => (text += c.toString()));
      sock.on('end', () => resolve(text));
      sock.on('error', reject);
    });
    const body = JSON.parse(raw.slice(raw.indexOf('\r\n\r\n') + 4));
    expect(body.headers.authorization).toBe('Bearer a');
    expect(body.rawHeaders.filter(([n]: [string]) => n.toLowerCase() === 'authorization')).toEqual([['Authorization', 'Bearer a'], ['Authorization', 'Bearer b']]);
  });

  it('POST /control/reject {"count":N} rejects the next N non-control requests with 401 invalid_token', async () => {
    const s = await serve();
    const ctl = await control(s, '{"count":2}');
    expect(await ctl.json()).toEqual({ ok: true, pendingRejects: 2 });
    const statuses: number[] = [];
    for (let i = 0; i < 3; i++) {
      const r = await fetch(`${s.url}/api`);
      statuses.push(r.status);
      if (r.status === 401) {
        expect(await r.json()).toEqual({ error: 'invalid_token' });
        expect(r.headers.get('www-authenticate')).toBe('Bearer error="invalid_token"');
      } else await r.body?.cancel();
    }
    expect(statuses).toEqual([401, 401, 200]);
    expect(s.requests.map((r) => r.status)).toEqual([401, 401, 200]);
  });

  it('rejectTokens rejects listed bearer tokens until reset', async () => {
    const s = await serve();
    s.rejectTokens(['old']);
    const call = (token: string): Promise<number> => fetch(`${s.url}/`, { headers: { authorization: `Bearer ${token}` } }).then((r) => r.status);
    expect(await call('old')).toBe(401);
    expect(await call('new')).toBe(200);
    expect((await fetch(`${s.url}/`)).status).toBe(200);
    expect((await fetch(`${s.url}/control/reset`, { method: 'POST' })).status).toBe(200);
    expect(await call('old')).toBe(200);
    expect(s.requests).toHaveLength(1);
  });

  it('refuses malformed control bodies without crashing', async () => {
    const s = await serve();
    for (const body of ['{oops', '{"count":-1}', '{"count":1.5}', '5', 'null', '{}']) expect((await control(s, body)).status, body).toBe(400);
    expect((await control(s, 'x'.repeat(70 * 1024))).status).toBe(413);
    expect((await fetch(`${s.url}/control/other`)).status).toBe(404);
    expect(s.pendingRejects).toBe(0);
    expect((await fetch(`${s.url}/still-up`)).status).toBe(200);
    expect(() => s.rejectNext(-1)).toThrow();
  });

  it('stop() closes kept-alive and in-flight connections', async () => {
    const s = await serve();
    await (await fetch(`${s.url}/warm`)).text(); // leaves a keep-alive socket in fetch's pool
    const t0 = performance.now();
    await s.stop();
    expect(performance.now() - t0).toBeLessThan(1000);
    await expect(fetch(`${s.url}/after`)).rejects.toThrow();
  });
});

describe('echo-upstream-main', () => {
  it('starts from env and prints one JSON line', async () => {
    const lines: string[] = [];
    const s = await startEchoUpstream({ PORT: '0', HOST: '127.0.0.1' }, (l) => lines.push(l));
    servers.push(s);
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0]!)).toEqual({ msg: expect.stringMatching(/DEMO.*not for production/), url: s.url });
    expect((await fetch(s.url)).status).toBe(200);
  });
});
