// How the demo token endpoint misbehaves on request (tests and the compose demo's control plane).


export type Behaviour =
  | { kind: 'ok' }
  | { kind: 'status'; status: number; body?: unknown; headers?: Record<string, string>; contentType?: string }
  | { kind: 'hang' }
  | { kind: 'reset' }
  | { kind: 'html' }
  | { kind: 'delay'; ms: number }
  // The grant is carried out (a refresh token rotates) and only then does the answer go wrong:
  // sent after `ms`, replaced by a 200 that is not JSON, or replaced by a reset connection.
  | { kind: 'slow'; ms: number }
  | { kind: 'garbled' }
  | { kind: 'reset_after' }
  // The grant is carried out, and the answer's access_token is no valid header value (CR LF).
  | { kind: 'unsafe_token' }
  | { kind: 'rate_limited'; retryAfter: string }
  | { kind: 'oauth_error'; error: string; description?: string; status?: number }
  | { kind: 'no_access_token' }
  | { kind: 'redirect'; location: string; status?: number };

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isInt = (v: unknown, min: number, max: number): v is number =>
  typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max;

/** Validates untrusted input (the control plane) into a Behaviour; throws with a reason. */
export function parseBehaviour(v: unknown): Behaviour {
  if (!isRecord(v) || typeof v.kind !== 'string') throw new Error('behaviour must be an object with a "kind"');
  const optStatus = (min: number, max: number): number | undefined => {
    if (v.status === undefined) return undefined;
    if (!isInt(v.status, min, max)) throw new Error(`"status" must be an integer ${min}-${max}`);
    return v.status;
  };
  switch (v.kind) {
    case 'ok':
    case 'hang':
    case 'reset':
    case 'html':
    case 'no_access_token':
    case 'garbled':
    case 'reset_after':
    case 'unsafe_token':
      return { kind: v.kind };
    case 'status': {
      const status = optStatus(200, 599);
      if (status === undefined) throw new Error('"status" is required');
      if (v.headers !== undefined && (!isRecord(v.headers) || !Object.values(v.headers).every((h) => typeof h === 'string')))
        throw new Error('"headers" must map names to strings');
      if (v.contentType !== undefined && typeof v.contentType !== 'string') throw new Error('"contentType" must be a string');
      const b: Behaviour = { kind: 'status', status };
      if (v.body !== undefined) b.body = v.body;
      if (v.headers !== undefined) b.headers = v.headers as Record<string, string>;
      if (v.contentType !== undefined) b.contentType = v.contentType;
      return b;
    }
    case 'delay':
    case 'slow':
      if (!isInt(v.ms, 0, 600_000)) throw new Error('"ms" must be an integer 0-600000');
      return { kind: v.kind, ms: v.ms };
    case 'rate_limited':
      if (typeof v.retryAfter !== 'string') throw new Error('"retryAfter" must be a string');
      return { kind: 'rate_limited', retryAfter: v.retryAfter };
    case 'oauth_error': {
      if (typeof v.error !== 'string') throw new Error('"error" must be a string');
      if (v.description !== undefined && typeof v.description !== 'string') throw new Error('"description" must be a string');
      const b: Behaviour = { kind: 'oauth_error', error: v.error };
      if (v.description !== undefined) b.description = v.description;
      const status = optStatus(400, 599);
      if (status !== undefined) b.status = status;
      return b;
    }
    case 'redirect': {
      if (typeof v.location !== 'string') throw new Error('"location" must be a string');
      const b: Behaviour = { kind: 'redirect', location: v.location };
      const status = optStatus(300, 399);
      if (status !== undefined) b.status = status;
      return b;
    }
    default:
      throw new Error(`unknown behaviour kind "${v.kind}"`);
  }
}

