// The `grpc-timeout` request header as a number of milliseconds.

const UNIT_MS: Readonly<Record<string, number>> = { H: 3_600_000, M: 60_000, S: 1_000, m: 1, u: 0.001, n: 0.000_001 };
/** The same pattern grpc-js applies, so both serving paths accept and refuse the same values. */
const TIMEOUT = /(\d{1,8})\s*([HMSmun])/;

/**
 * Milliseconds (whole, like grpc-js), `undefined` when the header is absent, or `null` when it
 * is present but malformed (the call then ends with INTERNAL, as grpc-js ends it).
 */
export function grpcTimeoutMs(header: string | string[] | undefined): number | undefined | null {
  if (header === undefined) return undefined;
  const value = Array.isArray(header) ? header[0] ?? '' : header;
  // Envoy sends its configured timeout, the same text on every call: the last one read is kept,
  // so a Check does not pay a regex match and its match array.
  if (value === last.value) return last.ms;
  const m = TIMEOUT.exec(value);
  const ms = m === null ? null : (Number(m[1]) * UNIT_MS[m[2]!]!) | 0;
  last.value = value;
  last.ms = ms;
  return ms;
}

const last: { value: string | undefined; ms: number | null } = { value: undefined, ms: null };
