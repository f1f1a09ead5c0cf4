// A lean gRPC-over-HTTP/2 caller on node:http2's client (same framing, same bytes on the wire
// as a grpc-js client, none of its call machinery): status from the trailers, answers not
// decoded. raw-h2.js speaks the same calls in raw frames at a fraction of its CPU.
import http2 from 'node:http2';
import { H2_HEADERS, framed, kIndex } from './h2-call.js';

export class H2Caller {
  constructor(address) {
    this.session = http2.connect(`http://${address}`);
    this.session.on('error', () => undefined);
    this.session.unref();
  }
  ready() {
    return new Promise((resolve, reject) => {
      if (this.session.connecting === false) return resolve();
      this.session.once('connect', () => resolve());
      this.session.once('error', reject);
    });
  }
  close() {
    this.session.close();
  }
  makeUnaryRequest(_method, _ser, _deser, buf, _md, _opts, cb) {
    this.send(framed(buf), cb, 0);
  }
  /** One call of a pre-framed request; `done` is called with the stream as `this` (its index in `kIndex`). */
  send(frame, done, index) {
    const req = this.session.request(H2_HEADERS);
    req[kDone] = done;
    req[kIndex] = index;
    req.on('response', onResponse);
    req.on('trailers', onTrailers);
    req.on('error', onError);
    req.on('end', onEnd);
    req.resume();
    req.end(frame);
  }
}
// The callbacks are shared functions reading their state from the stream (`this`), not closures
// per call: the generator's own garbage is scavenged in the middle of some target's window, and
// its pause is then that target's tail (FINDINGS, "the generator's own stalls").
const kDone = Symbol('done');
const kStatus = Symbol('status');
function onResponse(h) {
  if (h['grpc-status'] !== undefined) this[kStatus] = h['grpc-status'];
}
function onTrailers(t) {
  this[kStatus] = t['grpc-status'];
}
function onError(err) {
  const cb = this[kDone];
  this[kDone] = undefined;
  cb?.call(this, err);
}
function onEnd() {
  const cb = this[kDone];
  this[kDone] = undefined;
  const status = this[kStatus];
  cb?.call(this, status === '0' ? null : new Error(`grpc-status ${status}`));
}
