// A TCP proxy that audits an HTTP/2 client's flow control: every DATA frame the client sends
// must fit the connection window and its stream's window as the server granted them (its
// SETTINGS_INITIAL_WINDOW_SIZE and WINDOW_UPDATEs, counted when they are forwarded to the client,
// so the proxy's view is never behind the client's). node:http2's server enforces stream windows
// but not the connection window, so a client overrunning it would pass unnoticed without this.
import net from 'node:net';

const PREFACE_BYTES = 24;

/** Frames of one direction, across chunk boundaries. */
class FrameReader {
  private carry = Buffer.alloc(0);
  constructor(private skip: number, private readonly onFrame: (type: number, flags: number, sid: number, payload: Buffer) => void) {}
  push(chunk: Buffer): void {
    let buf = this.carry.length ? Buffer.concat([this.carry, chunk]) : chunk;
    if (this.skip > 0) {
      const n = Math.min(this.skip, buf.length);
      this.skip -= n;
      buf = buf.subarray(n);
    }
    let o = 0;
    while (buf.length - o >= 9) {
      const len = buf.readUIntBE(o, 3);
      if (buf.length - o - 9 < len) break;
      this.onFrame(buf[o + 3]!, buf[o + 4]!, buf.readUInt32BE(o + 5) & 0x7fffffff, buf.subarray(o + 9, o + 9 + len));
      o += 9 + len;
    }
    this.carry = Buffer.from(buf.subarray(o));
  }
}

export class FlowAudit {
  readonly violations: string[] = [];
  /** DATA bytes the client sent, and WINDOW_UPDATE frames the server sent (the audit had work to do). */
  dataBytes = 0;
  windowUpdates = 0;
  private readonly server: net.Server;
  private readonly sockets = new Set<net.Socket>();

  constructor(private readonly target: { host: string; port: number }) {
    this.server = net.createServer((client) => this.connection(client));
  }

  listen(): Promise<string> {
    return new Promise((resolve) => this.server.listen(0, '127.0.0.1', () => resolve(`127.0.0.1:${(this.server.address() as net.AddressInfo).port}`)));
  }

  close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  private connection(client: net.Socket): void {
    const upstream = net.connect(this.target);
    this.sockets.add(client).add(upstream);
    let conn = 65_535;
    let initial = 65_535;
    const streams = new Map<number, number>();
    const fromServer = new FrameReader(0, (type, flags, sid, p) => {
      if (type === 0x4 && (flags & 1) === 0) {
        for (let q = 0; q + 6 <= p.length; q += 6) {
          if (p.readUInt16BE(q) !== 0x4) continue;
          const v = p.readUInt32BE(q + 2);
          for (const [id, w] of streams) streams.set(id, w + v - initial);
          initial = v;
        }
      } else if (type === 0x8) {
        this.windowUpdates++;
        const inc = p.readUInt32BE(0) & 0x7fffffff;
        if (sid === 0) conn += inc;
        else if (streams.has(sid)) streams.set(sid, streams.get(sid)! + inc);
      }
    });
    const fromClient = new FrameReader(PREFACE_BYTES, (type, _flags, sid, p) => {
      if (type === 0x1) streams.set(sid, initial);
      if (type !== 0x0) return;
      this.dataBytes += p.length;
      const w = streams.get(sid) ?? initial;
      if (p.length > conn) this.violations.push(`stream ${sid}: ${p.length} DATA bytes with a connection window of ${conn}`);
      if (p.length > w) this.violations.push(`stream ${sid}: ${p.length} DATA bytes with a stream window of ${w}`);
      conn -= p.length;
      streams.set(sid, w - p.length);
    });
    client.on('data', (c: Buffer) => {
      fromClient.push(c);
      upstream.write(c);
    });
    upstream.on('data', (c: Buffer) => {
      // Counted before the client can see it: the proxy's windows are never behind the client's.
      fromServer.push(c);
      client.write(c);
    });
    const end = (): void => {
      client.destroy();
      upstream.destroy();
    };
    client.on('close', end).on('error', end);
    upstream.on('close', end).on('error', end);
  }
}
