// The one place that decides what may leave the process in a log line, an error summary or an
// admin response. Everything structured that is logged passes through `redact`.

/** Keys whose values are credentials, wherever they appear. */
const SECRET_KEYS = /^(authorization|proxy-authorization|cookie|set-cookie|access_?token|refresh_?token|id_?token|client_?secret|client_?assertion|assertion|password|secret|token|key|private_?key|emergency_?token|encryption_?key|x-api-key|api_?key)$/i;

/** Things that look like credentials inside free text. */
const TEXT_PATTERNS: readonly RegExp[] = [
  /\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]{8,}/gi,
  /\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*/g, // JWTs
  /\b(access_token|refresh_token|client_secret|client_assertion|assertion|password)=[^&\s"]+/gi,
];

export const REDACTED = '[redacted]';

/** A credential field quoted as JSON inside text (an error that quotes a token response body). */
const JSON_FIELD = /("(?:access_token|refresh_token|id_token|client_secret|client_assertion|assertion|password)"\s*:\s*)"(?:[^"\\]|\\.)*"/gi;

export function redactText(text: string): string {
  let out = text;
  for (const re of TEXT_PATTERNS) out = out.replace(re, (m, p1?: string) => (typeof p1 === 'string' && !m.startsWith('eyJ') ? `${p1}${m.includes('=') ? '=' : ' '}${REDACTED}` : REDACTED));
  return out.replace(JSON_FIELD, (_m, key: string) => `${key}"${REDACTED}"`);
}

function redactError(err: Error, depth: number): Record<string, unknown> {
  const o: Record<string, unknown> = { name: err.name, message: redactText(err.message) };
  const extra = err as unknown as Record<string, unknown>;
  for (const k of ['code', 'status', 'oauthError', 'oauthErrorDescription', 'provider']) {
    if (extra[k] !== undefined) o[k] = redact(extra[k], depth + 1);
  }
  if (err.cause !== undefined && depth < 3) o.cause = redact(err.cause, depth + 1);
  return o;
}

/** A copy safe to log: secret-named keys masked, free text scrubbed, errors summarised. */
export function redact(value: unknown, depth = 0): unknown {
  if (depth > 6) return '[depth]';
  if (typeof value === 'string') return redactText(value);
  if (value instanceof Error) return redactError(value, depth);
  if (Array.isArray(value)) return value.map((v) => redact(v, depth + 1));
  if (value && typeof value === 'object') {
    if (Buffer.isBuffer(value)) return `[${value.length} bytes]`;
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = SECRET_KEYS.test(k) && v !== undefined && v !== null ? REDACTED : redact(v, depth + 1);
    return out;
  }
  return value;
}
