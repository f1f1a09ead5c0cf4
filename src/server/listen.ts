// Binding the gRPC listener: host:port or unix:/path, plaintext, TLS or mTLS.
import fs from 'node:fs';
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

/** Binds and returns the bound address (the real port when 0 was asked for). */
export async function bind(server: grpc.Server, address: string, creds: grpc.ServerCredentials): Promise<string> {
  if (address.startsWith('unix:')) {
    const path = address.slice('unix:'.length);
    // A stale socket from a crashed run would make bind fail.
    try {
      if (fs.statSync(path).isSocket()) fs.unlinkSync(path);
    } catch { /* absent */ }
    const previous = process.umask(0o177);
    try {
      await new Promise<number>((resolve, reject) => server.bindAsync(address, creds, (err, port) => (err ? reject(err) : resolve(port))));
    } finally {
      process.umask(previous);
    }
    fs.chmodSync(path, 0o600); // owner-only, whatever the umask did
    return address;
  }
  const port = await new Promise<number>((resolve, reject) => server.bindAsync(address, creds, (err, p) => (err ? reject(err) : resolve(p))));
  const host = address.slice(0, address.lastIndexOf(':'));
  return `${host}:${port}`;
}
