import { generateKeyPairSync, type KeyObject } from 'node:crypto';

export interface PemPair {
  readonly privatePem: string;
  readonly publicKey: KeyObject;
}

export function rsaPair(): PemPair {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { privatePem: privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(), publicKey };
}

export function ecPair(): PemPair {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return { privatePem: privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(), publicKey };
}

export function edPair(): PemPair {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  return { privatePem: privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(), publicKey };
}

/** YAML block scalar for a PEM, indented for `key: |` at the given depth. */
export function pemBlock(pem: string, indent: number): string {
  const pad = ' '.repeat(indent);
  return `|\n${pem.trim().split('\n').map((l) => pad + l).join('\n')}`;
}
