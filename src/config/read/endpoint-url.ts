// URLs tokengate sends credentials to or fetches keys from: https, or plain http only to loopback
// (or, for a token endpoint, with the explicit `allowPlainHttp` opt-in).
import { isIP } from 'node:net';
import type { Reader } from '../reader.js';

/** Loopback hosts may use plain http; everything else needs https (or an explicit opt-in). */
export function isLoopbackHost(hostname: string): boolean {
  const h = hostname.replace(/^\[|\]$/g, '');
  if (h === 'localhost' || h.endsWith('.localhost')) return true;
  if (isIP(h) === 4) return h.startsWith('127.');
  return h === '::1';
}

/** `value` as a URL; undefined, with `key: is not a valid URL` reported, when it is none. */
export function parseUrl(r: Reader, key: string, value: string): URL | undefined {
  try {
    return new URL(value);
  } catch {
    r.problem(key, 'is not a valid URL');
    return undefined;
  }
}

/** A URL the token layer may send credentials to: https, or plain http to loopback / with the opt-in. */
export function checkEndpointUrl(r: Reader, key: string, value: string, allowPlainHttp: boolean): URL | undefined {
  const url = parseUrl(r, key, value);
  if (!url) return undefined;
  if (url.protocol !== 'https:' && url.protocol !== 'http:') r.problem(key, 'must be an https URL');
  if (url.protocol === 'http:' && !isLoopbackHost(url.hostname)) {
    if (allowPlainHttp) r.warn('allowPlainHttp', 'plain http to a non-loopback host sends client secrets in clear text');
    else r.problem(key, 'must be https (plain http is allowed only to loopback addresses, or with allowPlainHttp: true)');
  }
  if (url.username || url.password) r.problem(key, 'must not carry credentials; use clientId/clientSecret');
  return url;
}

/** A URL keys or discovery documents are fetched from: https, or plain http to loopback. */
export function httpsUrl(r: Reader, key: string, value: string | undefined): void {
  if (value === undefined) return;
  const url = parseUrl(r, key, value);
  if (!url) return;
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && isLoopbackHost(url.hostname))) r.problem(key, 'must be https (plain http only to loopback addresses)');
}
