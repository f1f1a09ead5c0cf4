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
  const m = TIMEOUT.exec(Array.isArray(header) ? header[0] ?? '' : header);
  if (m === null) return null;
  return (Number(m[1]) * UNIT_MS[m[2]!]!) | 0;
}
