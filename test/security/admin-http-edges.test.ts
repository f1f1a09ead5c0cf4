// Issue #12, finding 8: the admin HTTP surface's edges. A malformed percent-escape is the
// client's fault (400, not 500 and an error log line), the admin token is compared exactly (no
// trimming of spaces around it), and a request body that never ends cannot hold a connection
// past the body deadline. Each was reproduced against the old code first.
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { createLogger } from '../../src/observability/logger.js';
import { Metrics } from '../../src/observability/metrics.js';
import { AdminApi } from '../../src/server/admin-api.js';
import { AdminHttpServer } from '../../src/server/admin-http.js';
import { MemoryStore } from '../../src/store/memory-store.js';
import { TokenManager } from '../../src/tokens/manager.js';
import { AdminClient } from '../support/admin-client.js';

const ADMIN_TOKEN = 'edge-admin-token-0123456789abcdef';

describe('admin HTTP edges', () => {
  const logs: string[] = [];
  const manager = new TokenManager([], { store: new MemoryStore() });
  const server = new AdminHttpServer({
    api: new AdminApi({ manager, adminToken: () => ADMIN_TOKEN, reload: async () => ({ ok: true }) }),
    metrics: new Metrics(),
    logger: createLogger({ level: 'debug', sink: (l) => logs.push(l) }),
    live: () => true,
    ready: () => true,
    bodyTimeoutMs: 300,
  });
  let address = '';

  beforeAll(async () => {
    address = await server.listen('127.0.0.1:0');
  });
  afterAll(async () => {
    await server.close(100);
    await manager.close(0);
  });

  const post = (path: string, authorization: string) => new AdminClient({ http: address }).http('POST', path, { authorization });

  it('a malformed percent-escape in an admin path answers 500 and logs an error', async () => {
    const res = await post('/v1/tokens/%E0%A4%A/refresh', `Bearer ${ADMIN_TOKEN}`);
    expect(res.status).toBe(400);
    expect(res.json()).toMatchObject({ error: 'invalid' });
    expect(logs.filter((l) => l.includes('"level":"error"'))).toEqual([]);
  });

  it('the admin token is accepted with surrounding spaces', async () => {
    // Node trims the field value's own leading/trailing whitespace; these spaces sit inside it.
    for (const authorization of [`Bearer  ${ADMIN_TOKEN}`, `Bearer ${ADMIN_TOKEN} x`, `Bearer \t${ADMIN_TOKEN}`]) {
      const res = await post('/v1/reload', authorization);
      expect(res.status, JSON.stringify(authorization)).toBe(401);
    }
    expect((await post('/v1/reload', `Bearer ${ADMIN_TOKEN}`)).status).toBe(200);
  });

  it('an admin.token that could never match (spaces, control characters) is a config error that does not quote it', () => {
    expect(() => parseConfig('admin: { token: "spaced admin token 0123456789" }', { env: {} })).toThrow(/admin\.token: must be visible ASCII/);
    try {
      parseConfig('admin: { token: "spaced admin token 0123456789" }', { env: {} });
    } catch (err) {
      expect(String(err)).not.toContain('spaced admin');
    }
  });

  it('a chunked admin body that never ends holds its connection past the deadline', async () => {
    const socket = net.connect(Number(address.split(':')[1]), '127.0.0.1');
    const closed = new Promise<string>((resolve) => {
      let text = '';
      socket.on('data', (d) => { text += d.toString('latin1'); });
      socket.on('close', () => resolve(text));
      socket.on('error', () => undefined);
    });
    socket.write(`POST /v1/reload HTTP/1.1\r\nhost: admin\r\nauthorization: Bearer ${ADMIN_TOKEN}\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n`);
    // One more chunk now and then, never the last one: the connection must still be cut.
    const drip = setInterval(() => socket.write('1\r\nx\r\n'), 50);
    const timeout = new Promise<string>((resolve) => setTimeout(() => resolve('still open after 5 s'), 5_000));
    const outcome = await Promise.race([closed, timeout]);
    clearInterval(drip);
    socket.destroy();
    expect(outcome).toMatch(/^HTTP\/1\.1 408 /);
  });
});
