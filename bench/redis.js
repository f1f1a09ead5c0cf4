// Just enough RESP to read INFO commandstats, list clients and count, with MONITOR, the commands
// a given set of client connections sends. Plain sockets: the bench must not depend on the store
// it is measuring.
import net from 'node:net';

function encode(args) {
  return `*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(String(a))}\r\n${a}\r\n`).join('')}`;
}

/** One command, one bulk/simple reply (enough for INFO and CLIENT LIST). */
export function redisCommand(url, args, timeoutMs = 2_000) {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: u.hostname, port: Number(u.port || 6379) });
    let buf = Buffer.alloc(0);
    const t = setTimeout(() => {
      s.destroy();
      reject(new Error(`redis ${args[0]}: timeout`));
    }, timeoutMs);
    s.on('error', (e) => {
      clearTimeout(t);
      reject(e);
    });
    s.on('connect', () => s.write(encode(args)));
    s.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      const text = buf.toString('utf8');
      let value;
      if (text[0] === '+' || text[0] === '-' || text[0] === ':') {
        const end = text.indexOf('\r\n');
        if (end < 0) return;
        if (text[0] === '-') {
          clearTimeout(t);
          s.destroy();
          return reject(new Error(text.slice(1, end)));
        }
        value = text.slice(1, end);
      } else if (text[0] === '$') {
        const end = text.indexOf('\r\n');
        if (end < 0) return;
        const len = Number(text.slice(1, end));
        if (buf.length < end + 2 + len + 2) return;
        value = buf.subarray(end + 2, end + 2 + len).toString('utf8');
      } else return;
      clearTimeout(t);
      s.destroy();
      resolve(value);
    });
  });
}

export function reachable(url, timeoutMs = 500) {
  return redisCommand(url, ['PING'], timeoutMs).then((v) => v === 'PONG', () => false);
}

/** Total calls per command since the server started. */
export async function commandStats(url) {
  const text = await redisCommand(url, ['INFO', 'commandstats']);
  const out = {};
  for (const line of text.split('\r\n')) {
    const m = /^cmdstat_([^:]+):calls=(\d+)/.exec(line);
    if (m) out[m[1]] = Number(m[2]);
  }
  return out;
}

export function diffStats(before, after, ignore = ['info', 'client|list', 'client', 'ping', 'monitor']) {
  const out = {};
  for (const [k, v] of Object.entries(after)) {
    if (ignore.includes(k)) continue;
    const d = v - (before[k] ?? 0);
    if (d > 0) out[k] = d;
  }
  return out;
}

/** addr → id of every client connection. */
export async function clientAddrs(url) {
  const text = await redisCommand(url, ['CLIENT', 'LIST']);
  const out = new Map();
  for (const line of text.split('\n')) {
    const id = /(?:^| )id=(\d+)/.exec(line)?.[1];
    const addr = / addr=(\S+)/.exec(line)?.[1];
    const name = / name=(\S*)/.exec(line)?.[1] ?? '';
    if (id && addr) out.set(addr, { id, name });
  }
  return out;
}

/** Counts, per command, what the connections in `addrs` send while it runs; `stop()` ends it. */
export function monitor(url, addrs) {
  const u = new URL(url);
  const s = net.connect({ host: u.hostname, port: Number(u.port || 6379) });
  const counts = {};
  let rest = '';
  let total = 0;
  s.on('error', () => undefined);
  s.on('connect', () => s.write(encode(['MONITOR'])));
  s.on('data', (d) => {
    const lines = (rest + d.toString('utf8')).split('\r\n');
    rest = lines.pop() ?? '';
    for (const line of lines) {
      // +1700000000.123456 [0 127.0.0.1:58944] "get" "key"
      const m = /^\+\d+\.\d+ \[\d+ ([^\]]+)\] "([^"]+)"/.exec(line);
      if (!m || !addrs.has(m[1])) continue;
      const cmd = m[2].toLowerCase();
      counts[cmd] = (counts[cmd] ?? 0) + 1;
      total++;
    }
  });
  const ready = new Promise((resolve) => s.once('data', () => resolve()));
  return {
    ready,
    stop: () => {
      s.destroy();
      return { total, counts };
    },
  };
}
