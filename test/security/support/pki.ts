// A throwaway PKI for the security tests: CAs, server and client certificates made with the
// `openssl` CLI (node:crypto cannot issue X.509), written to a temporary directory.
import { execFileSync } from 'node:child_process';
import { createHash, X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export interface Issued {
  readonly certFile: string;
  readonly keyFile: string;
  readonly cert: Buffer;
  readonly key: Buffer;
}

export interface Ca extends Issued {
  readonly name: string;
}

export type KeyType = 'ec' | 'rsa';

export class TestPki {
  readonly dir: string;

  constructor() {
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tokengate-pki-'));
  }

  private openssl(args: string[]): void {
    execFileSync('openssl', args, { cwd: this.dir, stdio: ['ignore', 'ignore', 'pipe'] });
  }

  private keyArgs(type: KeyType): string[] {
    return type === 'ec' ? ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'] : ['-newkey', 'rsa:2048'];
  }

  private read(name: string): Issued {
    const certFile = path.join(this.dir, `${name}.crt`);
    const keyFile = path.join(this.dir, `${name}.key`);
    return { certFile, keyFile, cert: fs.readFileSync(certFile), key: fs.readFileSync(keyFile) };
  }

  /** A self-signed CA. */
  ca(name: string): Ca {
    this.openssl([
      'req', '-x509', '-new', ...this.keyArgs('ec'), '-nodes', '-keyout', `${name}.key`, '-out', `${name}.crt`,
      '-subj', `/CN=${name}`, '-days', '2',
      '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
    ]);
    return { name, ...this.read(name) };
  }

  /** A leaf signed by `ca`: server certs carry localhost and 127.0.0.1 as SANs. */
  issue(ca: Ca, name: string, use: 'server' | 'client', type: KeyType = 'ec'): Issued {
    const ext = path.join(this.dir, `${name}.ext`);
    fs.writeFileSync(ext, use === 'server'
      ? 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n'
      : 'extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n');
    this.openssl(['req', '-new', ...this.keyArgs(type), '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`]);
    this.openssl([
      'x509', '-req', '-in', `${name}.csr`, '-CA', ca.certFile, '-CAkey', ca.keyFile, '-set_serial', String(Date.now()),
      '-days', '2', '-out', `${name}.crt`, '-extfile', ext,
    ]);
    return this.read(name);
  }

  cleanup(): void {
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

/** base64 SHA-256 of the certificate's SubjectPublicKeyInfo (what `source.tls.pinSha256` holds). */
export function spkiPin(certPem: Buffer | string): string {
  const spki = new X509Certificate(certPem).publicKey.export({ type: 'spki', format: 'der' });
  return createHash('sha256').update(spki).digest('base64');
}

/** The same pin the way an operator computes it, with the openssl CLI. */
export function spkiPinWithOpenssl(certFile: string): string {
  const pub = execFileSync('openssl', ['x509', '-in', certFile, '-pubkey', '-noout']);
  const der = execFileSync('openssl', ['pkey', '-pubin', '-outform', 'der'], { input: pub });
  return createHash('sha256').update(der).digest('base64');
}
