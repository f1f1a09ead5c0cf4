// The caller's token as it arrives: scheme parsing, syntax, the cache key, unverified claims.
import { UnsecuredJWT } from 'jose';
import { describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { isWellFormed, peekJwt, subjectKey, tokenFromHeader } from '../../../src/tokens/per-caller/subject-token.js';

const bearer = { header: 'authorization', scheme: 'Bearer', maxBytes: 16384 };

describe('subject token', () => {
  it('takes the token after the scheme (case-insensitive, exactly one space), nothing else', () => {
    expect(tokenFromHeader('Bearer abc', bearer)).toBe('abc');
    expect(tokenFromHeader('bEaReR abc', bearer)).toBe('abc');
    for (const v of [undefined, '', 'Bearer', 'Bearer ', 'Bearerabc', 'Basic abc', 'Bearer  abc'.replace('  ', '\t')]) expect(tokenFromHeader(v, bearer), String(v)).toBeUndefined();
    expect(tokenFromHeader('raw-token', { ...bearer, scheme: '' })).toBe('raw-token');
  });

  it('refuses CR/LF, spaces, commas (joined duplicates), NUL and non-ASCII', () => {
    expect(isWellFormed('eyJ.abc-_~+/=')).toBe(true);
    for (const t of ['a\r\nb', 'a b', 'abc,Bearer def', 'a\u0000b', 'tökén', ' abc', '=abc']) expect(isWellFormed(t), JSON.stringify(t)).toBe(false);
  });

  it('keys by the exact bytes: prefixes, suffixes and case differ', () => {
    const k = subjectKey('alicetoken');
    // The 32 digest bytes as a Latin-1 string (the shortest Map key), equal to the SHA-256 of the UTF-8 bytes.
    expect(k).toHaveLength(32);
    expect(Buffer.from(k, 'latin1').equals(createHash('sha256').update('alicetoken', 'utf8').digest())).toBe(true);
    for (const o of ['alicetoke', 'alicetokenX', 'ALICETOKEN', 'alicetoken ']) expect(subjectKey(o)).not.toBe(k);
    // Characters beyond Latin-1 are not truncated into another token's key.
    expect(subjectKey('a\u0161')).not.toBe(subjectKey('a\u0061'));
    expect(subjectKey('\u0141')).not.toBe(subjectKey('A'));
  });

  it('reads exp/nbf/alg of a JWT without trusting it; opaque and broken tokens give nothing', () => {
    const jwt = new UnsecuredJWT({ sub: 'x' }).setExpirationTime(2_000_000_000).setNotBefore(1_000_000_000).encode();
    expect(peekJwt(jwt)).toEqual({ expMs: 2_000_000_000_000, nbfMs: 1_000_000_000_000, alg: 'none' });
    const withIss = new UnsecuredJWT({ sub: 'x' }).setIssuer('https://idp').setAudience(['a', 'b']).encode();
    expect(peekJwt(withIss)).toEqual({ alg: 'none', iss: 'https://idp', aud: ['a', 'b'] });
    for (const t of ['opaque', 'eyJabc', 'eyJ.a.b.c', 'eyJhbGciOiJub25lIn0.!!!.x']) expect(peekJwt(t)).toBeUndefined();
  });
});
