// A gRPC load generator that speaks HTTP/2 in raw frames on a net.Socket (h2c with prior
// knowledge, as node:http2's client does against the bench's servers), so that driving a
// server at a fixed rate costs the shared 2-core machine almost nothing: node:http2's client
// cost about twice the server's CPU, and its send lag was a third to a half of the limit's p99
// (FINDINGS, "A raw-frame generator"). Per call it patches a stream id into a pre-built
// HEADERS+DATA template and appends it to one socket write per tick; answers are parsed as
// frames and never HPACK-decoded (a call succeeds when DATA came before the END_STREAM
// HEADERS: gRPC's answer-then-trailers; trailers-only answers carry grpc-status ≠ 0 from these
// servers). The server's decoder pays what it pays for node:http2's client and Envoy: the
// first request of a connection inserts its headers into the dynamic table, later ones index
// them. Flow control, SETTINGS, PING, GOAWAY and RST_STREAM are honoured; see raw-h2.d.ts.
import net from 'node:net';
import { H2_HEADERS, framed, kIndex } from './h2-call.js';

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
const DATA = 0x0;
const HEADERS = 0x1;
const RST_STREAM = 0x3;
const SETTINGS = 0x4;
const PING = 0x6;
const GOAWAY = 0x7;
const WINDOW_UPDATE = 0x8;
const CONTINUATION = 0x9;
const END_STREAM = 0x1;
const ACK = 0x1;
const END_HEADERS = 0x4;
const PADDED = 0x8;

/** What every HTTP/2 peer starts with until SETTINGS say otherwise (RFC 9113 §6.5.2). */
const DEFAULT_WINDOW = 65_535;
const DEFAULT_MAX_FRAME = 16_384;
const DEFAULT_TABLE_SIZE = 4_096;
/**
 * Our receive windows, connection and stream: the answers are small, and a server that must
 * wait for a WINDOW_UPDATE before answering would put the generator into the p99.
 */
const LOCAL_WINDOW = 1 << 20;
/** The read buffer: a chunk is parsed before the next read reuses it (what must outlive it is copied). */
const READ_BYTES = 64 * 1024;
/** Output slabs: per call a copy of the template goes here, one socket write per tick takes the run. */
const SLAB_BYTES = 256 * 1024;

/** Errors the caller reports, with stable codes. */
export class RawH2Error extends Error {
  /** @param {'ERR_H2_TRAILERS_ONLY'|'ERR_H2_NO_TRAILERS'|'ERR_H2_RST_STREAM'|'ERR_H2_GOAWAY'|'ERR_H2_CONNECTION'|'ERR_H2_PROTOCOL'|'ERR_H2_CLOSED'} code */
  constructor(code, message, extra = {}) {
    super(message);
    this.name = 'RawH2Error';
    this.code = code;
    Object.assign(this, extra);
  }
}

// ---- HPACK (RFC 7541), encoder side only, no Huffman ------------------------------------------

/** An integer with an N-bit prefix (§5.1), the first byte's other bits being `flags`. */
function hpackInt(out, flags, prefixBits, value) {
  const max = (1 << prefixBits) - 1;
  if (value < max) {
    out.push(flags | value);
    return;
  }
  out.push(flags | max);
  value -= max;
  while (value >= 128) {
    out.push((value & 0x7f) | 0x80);
    value >>>= 7;
  }
  out.push(value);
}
function hpackString(out, s) {
  const b = Buffer.from(s, 'latin1');
  hpackInt(out, 0x00, 7, b.length);
  for (const x of b) out.push(x);
}
/** The few static-table entries (§Appendix A) these requests use: whole fields, then names. */
const STATIC_FIELD = new Map([[':method\0GET', 2], [':method\0POST', 3], [':path\0/', 4], [':scheme\0http', 6], [':scheme\0https', 7]]);
const STATIC_NAME = new Map([[':authority', 1], [':method', 2], [':path', 4], [':scheme', 6], ['accept', 19], ['authorization', 23], ['content-type', 31], ['user-agent', 58]]);

/**
 * The two header blocks of a connection: the first request's, which inserts every field but
 * :path into the dynamic table (literal with incremental indexing), and every later one's,
 * which names them by index. :path is literal without indexing each time, as nghttp2 (node:
 * http2's client) sends it; the whole fields of the static table are indexed.
 * @param {[string, string][]} fields in wire order
 * @param {number} tableSize the server's SETTINGS_HEADER_TABLE_SIZE
 */
export function headerBlocks(fields, tableSize) {
  const indexable = fields.filter(([n, v]) => !STATIC_FIELD.has(`${n}\0${v}`) && n !== ':path');
  const need = indexable.reduce((s, [n, v]) => s + n.length + v.length + 32, 0);
  const size = Math.min(tableSize, DEFAULT_TABLE_SIZE);
  const index = need <= size;
  const first = [];
  const later = [];
  // A server that lowered the table below the default expects to be told our size first (§4.2).
  if (tableSize < DEFAULT_TABLE_SIZE) hpackInt(first, 0x20, 5, size);
  let k = 0;
  for (const [name, value] of fields) {
    const whole = STATIC_FIELD.get(`${name}\0${value}`);
    if (whole !== undefined) {
      hpackInt(first, 0x80, 7, whole);
      hpackInt(later, 0x80, 7, whole);
      continue;
    }
    const nameIdx = STATIC_NAME.get(name) ?? 0;
    if (name === ':path' || !index) {
      for (const out of [first, later]) {
        hpackInt(out, 0x00, 4, nameIdx);
        if (nameIdx === 0) hpackString(out, name);
        hpackString(out, value);
      }
      continue;
    }
    hpackInt(first, 0x40, 6, nameIdx);
    if (nameIdx === 0) hpackString(first, name);
    hpackString(first, value);
    // Entries are numbered from 62, the newest first: the k-th of n inserted is 62 + (n - 1 - k).
    hpackInt(later, 0x80, 7, 62 + (indexable.length - 1 - k));
    k++;
  }
  return { first: Buffer.from(first), later: Buffer.from(later), indexed: index };
}

/** The request's fields in the order node:http2's client puts them on the wire. */
function requestFields(headers, authority) {
  const fields = [[':method', headers[':method'] ?? 'POST'], [':path', headers[':path']], [':authority', authority], [':scheme', 'http']];
  for (const [n, v] of Object.entries(headers)) if (!n.startsWith(':')) fields.push([n.toLowerCase(), String(v)]);
  return fields;
}

function frameHeader(buf, o, length, type, flags, sid) {
  buf[o] = length >>> 16;
  buf[o + 1] = (length >>> 8) & 0xff;
  buf[o + 2] = length & 0xff;
  buf[o + 3] = type;
  buf[o + 4] = flags;
  buf.writeUInt32BE(sid, o + 5);
}

function headersFrame(block) {
  const b = Buffer.alloc(9 + block.length);
  frameHeader(b, 0, block.length, HEADERS, END_HEADERS, 0);
  block.copy(b, 9);
  return b;
}

/**
 * One request body's wire bytes for this connection: HEADERS (both variants) and its DATA frames
 * split at the server's SETTINGS_MAX_FRAME_SIZE, the last one ending the stream; `sidAt` are
 * where the stream id goes in `data`.
 */
function template(body, blocks, maxFrame) {
  const frames = Math.max(1, Math.ceil(body.length / maxFrame));
  const data = Buffer.alloc(9 * frames + body.length);
  const sidAt = new Int32Array(frames);
  let o = 0;
  for (let i = 0, from = 0; i < frames; i++) {
    const n = Math.min(maxFrame, body.length - from);
    frameHeader(data, o, n, DATA, i === frames - 1 ? END_STREAM : 0, 0);
    sidAt[i] = o + 5;
    body.copy(data, o + 9, from, from + n);
    o += 9 + n;
    from += n;
  }
  return { body, first: headersFrame(blocks.first), later: headersFrame(blocks.later), data, sidAt };
}

// ---- the caller --------------------------------------------------------------------------------

export class RawH2Caller {
  /**
   * @param {string} address host:port
   * @param {{headers?: Record<string,string>, keepAnswers?: boolean}} [opts] `keepAnswers`: hand
   *   each call's DATA payload to `done` as its second argument (tests; costs a copy per answer)
   */
  constructor(address, opts = {}) {
    this.address = address;
    this.headers = opts.headers ?? H2_HEADERS;
    this.keepAnswers = opts.keepAnswers === true;
    // What the server allows us (its SETTINGS and WINDOW_UPDATEs).
    this.connWindow = DEFAULT_WINDOW;
    this.initialStreamWindow = DEFAULT_WINDOW;
    this.maxFrame = DEFAULT_MAX_FRAME;
    this.maxStreams = Infinity;
    this.tableSize = DEFAULT_TABLE_SIZE;
    this.blocks = undefined;
    this.templates = new WeakMap();
    this.primed = false;
    // Streams: slots by (id >> 1) & mask, so a call needs no object of its own.
    this.nextStreamId = 1;
    this.active = 0;
    this.resize(256);
    /** Streams whose DATA waits for window, in the order they were opened. */
    this.blocked = [];
    /** Calls waiting for a stream under SETTINGS_MAX_CONCURRENT_STREAMS. */
    this.waiting = [];
    this.waitingHead = 0;
    // Reading.
    this.carry = undefined;
    this.skip = 0;
    this.skipSlot = -1;
    this.contSid = 0;
    this.contEnds = false;
    this.recvUnacked = 0;
    // Writing.
    this.out = Buffer.allocUnsafeSlow(SLAB_BYTES);
    this.outStart = 0;
    this.outEnd = 0;
    this.flushQueued = false;
    this.ctx = { [kIndex]: 0 };
    this.failure = undefined;
    this.closing = false;
    this.goneAway = false;
    this.ended = false;
    this.gotSettings = false;
    const [host, port] = splitAddress(address);
    this.authority = address;
    // Reads land in one buffer of ours (`onread`): no Buffer and no stream machinery per read.
    const readBuf = Buffer.allocUnsafeSlow(READ_BYTES);
    this.socket = net.connect({ host, port, noDelay: true, onread: { buffer: readBuf, callback: (n, buf) => this.onData(buf, n) } });
    this.socket.on('error', (err) => this.fail(new RawH2Error('ERR_H2_CONNECTION', `connection to ${address}: ${err.message}`, { cause: err })));
    this.socket.on('close', () => this.fail(new RawH2Error('ERR_H2_CONNECTION', `connection to ${address} closed`)));
    this.socket.unref();
    this.readyPromise = new Promise((resolve, reject) => {
      this.onReady = resolve;
      this.onNotReady = reject;
    });
    this.readyPromise.catch(() => undefined);
    this.sendPreface();
  }

  ready() {
    return this.readyPromise;
  }

  /** Ends the connection once its calls are answered (GOAWAY, then FIN), as node:http2's `close()` does. */
  close() {
    this.closing = true;
    if (this.active === 0 && this.waitingHead === this.waiting.length) this.end();
  }

  makeUnaryRequest(_method, _ser, _deser, buf, _md, _opts, cb) {
    this.send(framed(buf), cb, 0);
  }

  /**
   * One call of a pre-framed request (`framed()` of h2-call.js: the same object every time, its
   * template is cached by it). `done(err, answer?)` is called exactly once, with `this` an object
   * whose [kIndex] is `index`; `answer` (the DATA payload) only with `keepAnswers`.
   */
  send(frame, done, index) {
    if (this.failure !== undefined || this.goneAway || this.closing) {
      const err = this.failure ?? new RawH2Error(this.goneAway ? 'ERR_H2_GOAWAY' : 'ERR_H2_CLOSED', this.goneAway ? 'the server sent GOAWAY' : 'the caller is closed');
      process.nextTick(callBack, this.ctx, done, index, err);
      return;
    }
    if (this.active >= this.maxStreams || this.waitingHead < this.waiting.length) {
      this.waiting.push(frame, done, index);
      return;
    }
    this.start(frame, done, index);
  }

  // ---- streams ---------------------------------------------------------------------------------

  resize(cap) {
    const old = this.sId;
    const oldCap = old ? old.length : 0;
    const fields = { sId: new Int32Array(cap), sIndex: new Float64Array(cap), sWindow: new Float64Array(cap), sSent: new Float64Array(cap), sRecv: new Float64Array(cap), sGotData: new Uint8Array(cap) };
    const sDone = new Array(cap).fill(undefined);
    const sBody = new Array(cap).fill(undefined);
    const sAnswer = new Array(cap).fill(undefined);
    const mask = cap - 1;
    for (let i = 0; i < oldCap; i++) {
      const id = old[i];
      if (id === 0) continue;
      const j = (id >>> 1) & mask;
      for (const k of Object.keys(fields)) fields[k][j] = this[k][i];
      sDone[j] = this.sDone[i];
      sBody[j] = this.sBody[i];
      sAnswer[j] = this.sAnswer[i];
      if (this.skipSlot === i) this.skipSlot = j;
    }
    Object.assign(this, fields);
    this.sDone = sDone;
    this.sBody = sBody;
    this.sAnswer = sAnswer;
    this.mask = mask;
  }

  /** The slot of an open stream, or -1 (answered already, failed, or never ours). */
  slotOf(sid) {
    const slot = (sid >>> 1) & this.mask;
    return this.sId[slot] === sid && sid !== 0 ? slot : -1;
  }

  start(frame, done, index) {
    const t = this.templateFor(frame);
    const sid = this.nextStreamId;
    if (sid > 0x7fffffff) {
      process.nextTick(callBack, this.ctx, done, index, new RawH2Error('ERR_H2_CLOSED', 'stream ids exhausted on this connection'));
      return;
    }
    this.nextStreamId += 2;
    let slot = (sid >>> 1) & this.mask;
    // Two open streams a table apart: the table doubles (rare; ids are consecutive).
    while (this.sId[slot] !== 0) {
      this.resize(this.sId.length * 2);
      slot = (sid >>> 1) & this.mask;
    }
    this.sId[slot] = sid;
    this.sIndex[slot] = index;
    this.sDone[slot] = done;
    this.sWindow[slot] = this.initialStreamWindow;
    this.sRecv[slot] = 0;
    this.sGotData[slot] = 0;
    this.active++;
    const headers = this.primed ? t.later : t.first;
    this.primed = true;
    const len = t.body.length;
    if (this.blocked.length === 0 && len <= this.connWindow && len <= this.initialStreamWindow) {
      // The common case: the whole template, stream id patched in every frame.
      const o = this.reserve(headers.length + t.data.length);
      const out = this.out;
      headers.copy(out, o);
      out.writeUInt32BE(sid, o + 5);
      const d = o + headers.length;
      t.data.copy(out, d);
      const sidAt = t.sidAt;
      for (let i = 0; i < sidAt.length; i++) out.writeUInt32BE(sid, d + sidAt[i]);
      this.connWindow -= len;
      this.sWindow[slot] -= len;
      this.sSent[slot] = len;
    } else {
      // HEADERS now (stream ids must open in order and HEADERS are not flow-controlled), DATA
      // as the windows allow.
      const o = this.reserve(headers.length);
      headers.copy(this.out, o);
      this.out.writeUInt32BE(sid, o + 5);
      this.sBody[slot] = t.body;
      this.sSent[slot] = 0;
      this.blocked.push(sid);
      this.pump();
    }
    this.queueFlush();
  }

  templateFor(frame) {
    let t = this.templates.get(frame);
    if (t === undefined) {
      this.blocks ??= headerBlocks(requestFields(this.headers, this.authority), this.tableSize);
      t = template(frame, this.blocks, this.maxFrame);
      this.templates.set(frame, t);
    }
    return t;
  }

  /** Sends what the windows allow of every blocked stream's DATA, oldest first. */
  pump() {
    const blocked = this.blocked;
    let w = 0;
    for (let i = 0; i < blocked.length; i++) {
      const sid = blocked[i];
      const slot = this.slotOf(sid);
      if (slot < 0 || this.sBody[slot] === undefined) continue; // answered or failed meanwhile
      if (!this.pumpStream(slot, sid)) blocked[w++] = sid;
    }
    blocked.length = w;
  }

  /** True when the stream's DATA has all gone out. */
  pumpStream(slot, sid) {
    const body = this.sBody[slot];
    const len = body.length;
    let sent = this.sSent[slot];
    if (len === 0) {
      const o = this.reserve(9);
      frameHeader(this.out, o, 0, DATA, END_STREAM, sid);
      this.sBody[slot] = undefined;
      return true;
    }
    while (sent < len) {
      const n = Math.min(len - sent, this.maxFrame, this.connWindow, this.sWindow[slot]);
      if (n <= 0) break;
      const o = this.reserve(9 + n);
      frameHeader(this.out, o, n, DATA, sent + n === len ? END_STREAM : 0, sid);
      body.copy(this.out, o + 9, sent, sent + n);
      sent += n;
      this.connWindow -= n;
      this.sWindow[slot] -= n;
    }
    this.sSent[slot] = sent;
    if (sent < len) return false;
    this.sBody[slot] = undefined;
    return true;
  }

  /** Answers the call on `slot` (exactly once: the slot is freed first). */
  finish(slot, err) {
    const done = this.sDone[slot];
    const index = this.sIndex[slot];
    const answer = this.sAnswer[slot];
    this.sId[slot] = 0;
    this.sDone[slot] = undefined;
    this.sBody[slot] = undefined;
    this.sAnswer[slot] = undefined;
    if (this.skipSlot === slot) this.skipSlot = -1;
    this.active--;
    this.startWaiting();
    callBack(this.ctx, done, index, err, answer === undefined ? undefined : Buffer.concat(answer));
    if (this.closing && this.active === 0 && this.waitingHead === this.waiting.length) this.end();
  }

  startWaiting() {
    const q = this.waiting;
    while (this.waitingHead < q.length && this.active < this.maxStreams && this.failure === undefined && !this.goneAway) {
      const h = this.waitingHead;
      const frame = q[h];
      const done = q[h + 1];
      const index = q[h + 2];
      q[h] = q[h + 1] = q[h + 2] = undefined;
      this.waitingHead += 3;
      this.start(frame, done, index);
    }
    if (this.waitingHead === q.length) {
      q.length = 0;
      this.waitingHead = 0;
    }
  }

  /** Every open and waiting call fails with `err`; later sends fail at once. */
  fail(err) {
    if (this.failure === undefined) this.failure = err;
    this.onNotReady?.(err);
    this.failStreamsAbove(0, err);
    this.failWaiting(err);
  }

  failStreamsAbove(last, err) {
    for (let slot = 0; slot < this.sId.length; slot++) if (this.sId[slot] > last) this.finish(slot, err);
  }

  failWaiting(err) {
    const q = this.waiting;
    while (this.waitingHead < q.length) {
      const h = this.waitingHead;
      const done = q[h + 1];
      const index = q[h + 2];
      q[h] = q[h + 1] = q[h + 2] = undefined;
      this.waitingHead += 3;
      callBack(this.ctx, done, index, err);
    }
    q.length = 0;
    this.waitingHead = 0;
  }

  end() {
    if (this.socket.destroyed || this.ended) return;
    this.ended = true;
    const o = this.reserve(17);
    frameHeader(this.out, o, 8, GOAWAY, 0, 0);
    this.out.writeUInt32BE(0, o + 9);
    this.out.writeUInt32BE(0, o + 13);
    this.flush();
    this.socket.end();
  }

  // ---- writing ---------------------------------------------------------------------------------

  sendPreface() {
    // SETTINGS: ENABLE_PUSH 0, INITIAL_WINDOW_SIZE 1 MiB; then the connection window to 1 MiB.
    const b = Buffer.alloc(PREFACE.length + 9 + 12 + 13);
    PREFACE.copy(b, 0);
    let o = PREFACE.length;
    frameHeader(b, o, 12, SETTINGS, 0, 0);
    b.writeUInt16BE(0x2, o + 9);
    b.writeUInt32BE(0, o + 11);
    b.writeUInt16BE(0x4, o + 15);
    b.writeUInt32BE(LOCAL_WINDOW, o + 17);
    o += 21;
    frameHeader(b, o, 4, WINDOW_UPDATE, 0, 0);
    b.writeUInt32BE(LOCAL_WINDOW - DEFAULT_WINDOW, o + 9);
    this.socket.write(b);
  }

  /** `n` bytes at the end of the pending output; returns their offset in `this.out`. */
  reserve(n) {
    if (this.outEnd + n > this.out.length) {
      // A new slab: the old one may still be referenced by a write the kernel has not taken.
      const pending = this.outEnd - this.outStart;
      const slab = Buffer.allocUnsafeSlow(Math.max(SLAB_BYTES, pending + n));
      this.out.copy(slab, 0, this.outStart, this.outEnd);
      this.out = slab;
      this.outStart = 0;
      this.outEnd = pending;
    }
    const o = this.outEnd;
    this.outEnd += n;
    return o;
  }

  queueFlush() {
    if (this.flushQueued) return;
    this.flushQueued = true;
    process.nextTick(flushTick, this);
  }

  /** One socket write for everything appended since the last. */
  flush() {
    this.flushQueued = false;
    if (this.outEnd === this.outStart || this.socket.destroyed) return;
    this.socket.write(this.out.subarray(this.outStart, this.outEnd));
    // Written through to the kernel at once (the usual case on loopback): the slab is ours again.
    if (this.socket.writableLength === 0) this.outStart = this.outEnd = 0;
    else this.outStart = this.outEnd;
  }

  // ---- reading ---------------------------------------------------------------------------------

  /** `n` bytes read into `chunk` (reused by the next read). */
  onData(chunk, n) {
    let buf = chunk;
    let end = n;
    let o = 0;
    if (this.carry !== undefined) {
      buf = Buffer.concat([this.carry, chunk.subarray(0, n)]);
      end = buf.length;
      this.carry = undefined;
    }
    if (this.skip > 0) {
      // The rest of a DATA payload begun in an earlier chunk.
      const k = Math.min(this.skip, end);
      if (this.keepAnswers && this.skipSlot >= 0) this.sAnswer[this.skipSlot]?.push(Buffer.from(buf.subarray(0, k)));
      this.skip -= k;
      o = k;
    }
    while (end - o >= 9 && this.failure === undefined) {
      const len = (buf[o] << 16) | (buf[o + 1] << 8) | buf[o + 2];
      const type = buf[o + 3];
      const flags = buf[o + 4];
      const sid = buf.readUInt32BE(o + 5) & 0x7fffffff;
      if (len > DEFAULT_MAX_FRAME) {
        // We never raise SETTINGS_MAX_FRAME_SIZE: a larger frame is the server's protocol error.
        this.protocolError(`a ${len}-byte frame of type ${type} (our SETTINGS_MAX_FRAME_SIZE is ${DEFAULT_MAX_FRAME})`);
        return;
      }
      const avail = end - o - 9;
      if (type === DATA && (flags & PADDED) === 0) {
        // DATA needs only its header: the payload is counted, kept with `keepAnswers`, skipped.
        const slot = this.onDataHeader(sid, len, len);
        const k = Math.min(avail, len);
        if (this.keepAnswers && slot >= 0 && len > 0) (this.sAnswer[slot] ??= []).push(Buffer.from(buf.subarray(o + 9, o + 9 + k)));
        if (k < len) {
          this.skip = len - k;
          this.skipSlot = slot;
          o = end;
          if (flags & END_STREAM) this.onDataEnd(slot);
          break;
        }
        o += 9 + len;
        if (flags & END_STREAM) this.onDataEnd(slot);
        continue;
      }
      if (avail < len) break;
      this.onFrame(type, flags, sid, buf, o + 9, len);
      o += 9 + len;
    }
    if (o < end && this.failure === undefined) this.carry = Buffer.from(buf.subarray(o, end));
    this.flush();
  }

  /** Counts a DATA frame of `len` bytes against our windows; `payload` of them are the answer's. */
  onDataHeader(sid, len, payload) {
    this.recvUnacked += len;
    if (this.recvUnacked >= LOCAL_WINDOW / 2) {
      this.windowUpdate(0, this.recvUnacked);
      this.recvUnacked = 0;
    }
    const slot = this.slotOf(sid);
    if (slot < 0) return -1;
    if (payload > 0) this.sGotData[slot] = 1;
    this.sRecv[slot] += len;
    if (this.sRecv[slot] >= LOCAL_WINDOW / 2) {
      this.windowUpdate(sid, this.sRecv[slot]);
      this.sRecv[slot] = 0;
    }
    return slot;
  }

  /** DATA that ends the stream: gRPC answers always end with trailers, so no status came. */
  onDataEnd(slot) {
    if (slot >= 0 && this.sId[slot] !== 0) this.finish(slot, new RawH2Error('ERR_H2_NO_TRAILERS', `stream ${this.sId[slot]} ended without trailers`));
  }

  onFrame(type, flags, sid, buf, p, len) {
    switch (type) {
      case HEADERS:
        if ((flags & END_STREAM) === 0) {
          // The answer's headers (or a padded/prioritised block): only a trailer block ends a call.
          this.contSid = flags & END_HEADERS ? 0 : sid;
          this.contEnds = false;
        } else if (flags & END_HEADERS) {
          this.onTrailers(sid);
        } else {
          this.contSid = sid;
          this.contEnds = true;
        }
        break;
      case CONTINUATION:
        if (sid !== this.contSid) {
          this.protocolError(`CONTINUATION on stream ${sid} while ${this.contSid} was open`);
          return;
        }
        if (flags & END_HEADERS) {
          this.contSid = 0;
          if (this.contEnds) this.onTrailers(sid);
        }
        break;
      case DATA: {
        // Padded DATA (whole frame at hand): the payload is what follows the pad length byte.
        const payload = len > 0 ? len - 1 - buf[p] : 0;
        const slot = this.onDataHeader(sid, len, payload);
        if (slot >= 0 && payload > 0 && this.keepAnswers) (this.sAnswer[slot] ??= []).push(Buffer.from(buf.subarray(p + 1, p + 1 + payload)));
        if (flags & END_STREAM) this.onDataEnd(slot);
        break;
      }
      case RST_STREAM: {
        const slot = this.slotOf(sid);
        const code = len >= 4 ? buf.readUInt32BE(p) : -1;
        if (slot >= 0) this.finish(slot, new RawH2Error('ERR_H2_RST_STREAM', `stream ${sid} reset by the server (code ${code})`, { h2Code: code }));
        break;
      }
      case SETTINGS:
        if (flags & ACK) break;
        this.onSettings(buf, p, len);
        break;
      case PING:
        if ((flags & ACK) === 0 && len === 8) {
          const o = this.reserve(17);
          frameHeader(this.out, o, 8, PING, ACK, 0);
          buf.copy(this.out, o + 9, p, p + 8);
        }
        break;
      case GOAWAY: {
        const last = buf.readUInt32BE(p) & 0x7fffffff;
        const code = buf.readUInt32BE(p + 4);
        this.goneAway = true;
        const err = new RawH2Error('ERR_H2_GOAWAY', `the server sent GOAWAY (last stream ${last}, code ${code})`, { h2Code: code, lastStreamId: last });
        this.failStreamsAbove(last, err);
        this.failWaiting(err);
        break;
      }
      case WINDOW_UPDATE: {
        const inc = buf.readUInt32BE(p) & 0x7fffffff;
        if (sid === 0) this.connWindow += inc;
        else {
          const slot = this.slotOf(sid);
          if (slot >= 0) this.sWindow[slot] += inc;
        }
        if (this.blocked.length) this.pump();
        break;
      }
      default:
      // PRIORITY, PUSH_PROMISE (refused by ENABLE_PUSH 0), unknown types: nothing to do.
    }
  }

  onTrailers(sid) {
    const slot = this.slotOf(sid);
    if (slot < 0) return;
    if (this.sGotData[slot]) this.finish(slot, null);
    else this.finish(slot, new RawH2Error('ERR_H2_TRAILERS_ONLY', `stream ${sid} answered trailers-only (an error status from these servers)`));
  }

  onSettings(buf, p, len) {
    for (let q = p; q + 6 <= p + len; q += 6) {
      const id = buf.readUInt16BE(q);
      const v = buf.readUInt32BE(q + 2);
      if (id === 0x1) {
        // The table this connection's first request fills: templates are built after this.
        if (!this.primed && v !== this.tableSize) {
          this.tableSize = v;
          this.blocks = undefined;
          this.templates = new WeakMap();
        }
      } else if (id === 0x3) {
        this.maxStreams = v;
      } else if (id === 0x4) {
        const delta = v - this.initialStreamWindow;
        this.initialStreamWindow = v;
        for (let s = 0; s < this.sId.length; s++) if (this.sId[s] !== 0) this.sWindow[s] += delta;
      } else if (id === 0x5) {
        if (v !== this.maxFrame) {
          this.maxFrame = v;
          this.templates = new WeakMap();
        }
      }
    }
    const o = this.reserve(9);
    frameHeader(this.out, o, 0, SETTINGS, ACK, 0);
    if (this.blocked.length) this.pump();
    this.startWaiting();
    if (!this.gotSettings) {
      this.gotSettings = true;
      this.onReady();
    }
  }

  windowUpdate(sid, inc) {
    const o = this.reserve(13);
    frameHeader(this.out, o, 4, WINDOW_UPDATE, 0, sid);
    this.out.writeUInt32BE(inc, o + 9);
  }

  protocolError(what) {
    this.fail(new RawH2Error('ERR_H2_PROTOCOL', `HTTP/2 protocol error from ${this.address}: ${what}`));
    this.socket.destroy();
  }
}

function callBack(ctx, done, index, err, answer) {
  ctx[kIndex] = index;
  done.call(ctx, err, answer);
}

function flushTick(caller) {
  caller.flush();
}

function splitAddress(address) {
  const i = address.lastIndexOf(':');
  return [address.slice(0, i).replace(/^\[|\]$/g, ''), Number(address.slice(i + 1))];
}
