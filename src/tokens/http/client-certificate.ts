// The client certificate for mTLS client authentication (RFC 8705). cert-manager and similar
// rotate the files in place, so they are checked at every use and re-read when they changed;
// a pair whose key does not match the certificate is refused (never its content quoted).
import { createPrivateKey, X509Certificate } from 'node:crypto';
import fs from 'node:fs/promises';
import { TokenError } from '../errors.js';

export interface ClientCertificatePair {
  readonly cert: Buffer;
  readonly key: Buffer;
  /** Changes whenever either file does: a transport opens new connections for a new version. */
  readonly version: string;
}

export interface ClientCertificateSource {
  current(): Promise<ClientCertificatePair>;
}

async function stamp(file: string, what: string): Promise<string> {
  try {
    const s = await fs.stat(file);
    return `${s.ino}:${s.size}:${s.mtimeMs}`;
  } catch (err) {
    throw new TokenError('ERR_SOURCE_CONFIG', `cannot read ${what} ${file} (${(err as NodeJS.ErrnoException).code ?? 'error'})`, { cause: err });
  }
}

async function read(file: string, what: string): Promise<Buffer> {
  try {
    const b = await fs.readFile(file);
    if (b.length === 0) throw new TokenError('ERR_SOURCE_CONFIG', `${what} ${file} is empty`);
    return b;
  } catch (err) {
    if (err instanceof TokenError) throw err;
    throw new TokenError('ERR_SOURCE_CONFIG', `cannot read ${what} ${file} (${(err as NodeJS.ErrnoException).code ?? 'error'})`, { cause: err });
  }
}

export class FileClientCertificate implements ClientCertificateSource {
  private cached: ClientCertificatePair | undefined;

  constructor(private readonly certFile: string, private readonly keyFile: string) {}

  async current(): Promise<ClientCertificatePair> {
    const version = `${await stamp(this.certFile, 'tls.certFile')}|${await stamp(this.keyFile, 'tls.keyFile')}`;
    if (this.cached?.version === version) return this.cached;
    const [cert, key] = await Promise.all([read(this.certFile, 'tls.certFile'), read(this.keyFile, 'tls.keyFile')]);
    let matches: boolean;
    try {
      matches = new X509Certificate(cert).checkPrivateKey(createPrivateKey(key));
    } catch (err) {
      throw new TokenError('ERR_SOURCE_CONFIG', `tls.certFile ${this.certFile} / tls.keyFile ${this.keyFile}: not a PEM certificate and private key (${(err as NodeJS.ErrnoException).code ?? 'invalid'})`, { cause: err });
    }
    // A rotation caught half-way (new certificate, old key) is refused; the next fetch looks again.
    if (!matches) throw new TokenError('ERR_SOURCE_CONFIG', `tls.keyFile ${this.keyFile} is not the key of tls.certFile ${this.certFile}`);
    this.cached = { cert, key, version };
    return this.cached;
  }
}
