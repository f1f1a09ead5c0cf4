// Binding the gRPC listener: host:port or unix:/path, plaintext, TLS or mTLS.
import fs from 'node:fs';
import net from 'node:net';
import * as grpc from '@grpc/grpc-js';
import type { Config } from '../config/types.js';

export function serverCredentials(tls: Config['listen']['tls']): grpc.ServerCredentials {
  if (!tls) return grpc.ServerCredentials.createInsecure();
  const read = (file: string, what: string) => {
    try {
      return fs.readFileSync(file);
    } catch (err) {
      throw new Error(`cannot read listen.tls.${what} ${file} (${(err as NodeJS.ErrnoException).code ?? 'error'})`, { cause: err });
    }
  };
  const cert = read(tls.certFile, 'certFile');
  const key = read(tls.keyFile, 'keyFile');
  const ca = tls.clientCaFile ? read(tls.clientCaFile, 'clientCaFile') : null;
  // With a client CA, a client without a certificate it signed is refused at the handshake.
  return grpc.ServerCredentials.createSsl(ca, [{ cert_chain: cert, private_key: key }], ca !== null);
}

/** A bound gRPC listener: its address (the real port when 0 was asked for). */
export interface GrpcListener {
  readonly address: string;
  /** Stops accepting connections; the grpc-js server drains the ones it has. */
  close(): Promise<void>;
}

/**
 * Binds host:port or unix:/path. We own the socket (grpc-js's connection injector serves what
 * we accept) because grpc-js has no connection limit: `maxConnections` closes a connection over
 * the limit on accept, before it can hold any HTTP/2 session memory.
 */
export async function bind(server: grpc.Server, address: string, creds: grpc.ServerCredentials, maxConnections: number): Promise<GrpcListener> {
  const injector = server.createConnectionInjector(creds);
  const listener = net.createServer({ noDelay: true }, (socket) => injector.injectConnection(socket));
  listener.maxConnections = maxConnections;
  const listen = (...args: [string] | [number, string]) => new Promise<void>((resolve, reject) => {
    listener.once('error', reject);
    const done = () => {
      listener.off('error', reject);
      resolve();
    };
    if (args.length === 1) listener.listen(args[0], done);
    else listener.listen(args[0], args[1], done);
  });
  const close = () => new Promise<void>((resolve) => listener.close(() => resolve()));
  try {
    if (address.startsWith('unix:')) {
      const path = address.slice('unix:'.length);
      // A stale socket from a crashed run would make bind fail.
      try {
        if (fs.statSync(path).isSocket()) fs.unlinkSync(path);
      } catch { /* absent */ }
      const previous = process.umask(0o177);
      try {
        await listen(path);
      } finally {
        process.umask(previous);
      }
      fs.chmodSync(path, 0o600); // owner-only, whatever the umask did
      return { address, close };
    }
    const i = address.lastIndexOf(':');
    const host = address.slice(0, i);
    await listen(Number(address.slice(i + 1)), host.replace(/^\[|\]$/g, ''));
    const bound = listener.address();
    const port = typeof bound === 'object' && bound ? bound.port : Number(address.slice(i + 1));
    return { address: `${host}:${port}`, close };
  } catch (err) {
    injector.destroy();
    throw err;
  }
}
