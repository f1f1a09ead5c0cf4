// A gRPC client that sends raw bytes as the Check request message (malformed protobuf frames,
// bytes no encoder would produce), and helpers to build such bytes.
import * as grpc from '@grpc/grpc-js';
import { authorizationServiceDefinition } from '../../../src/server/protos.js';
import type { CheckResponse } from '../../support/envoy-request.js';

const CHECK_PATH = '/envoy.service.auth.v3.Authorization/Check';

export function encodeCheckRequest(req: Record<string, unknown>): Buffer {
  return authorizationServiceDefinition().Check!.requestSerialize(req);
}

export function decodeCheckResponse(buf: Buffer): CheckResponse {
  return authorizationServiceDefinition().Check!.responseDeserialize(buf) as CheckResponse;
}

export type RawOutcome = { ok: true; response: CheckResponse } | { ok: false; code: grpc.status; details: string };

export class RawCheckClient {
  private readonly client: grpc.Client;

  constructor(address: string, options: grpc.ChannelOptions = {}) {
    this.client = new grpc.Client(address, grpc.credentials.createInsecure(), options);
  }

  /** Sends `bytes` verbatim as the request message (a pass-through requestSerialize). */
  send(bytes: Buffer, deadlineMs = 20_000): Promise<RawOutcome> {
    return new Promise((resolve) => {
      this.client.makeUnaryRequest<Buffer, Buffer>(
        CHECK_PATH,
        (b) => b,
        (b) => b,
        bytes,
        new grpc.Metadata(),
        { deadline: Date.now() + deadlineMs },
        (err, res) => {
          if (err) resolve({ ok: false, code: err.code, details: err.details });
          else resolve({ ok: true, response: decodeCheckResponse(res!) });
        },
      );
    });
  }

  close(): void {
    this.client.close();
  }
}

/** Replaces every occurrence of `placeholder` (ASCII) with `bytes` of the same length. */
export function patchBytes(buf: Buffer, placeholder: string, bytes: Buffer): Buffer {
  if (bytes.length !== placeholder.length) throw new Error('patchBytes: lengths differ');
  const out = Buffer.from(buf);
  const needle = Buffer.from(placeholder, 'latin1');
  for (let i = out.indexOf(needle); i !== -1; i = out.indexOf(needle, i + needle.length)) bytes.copy(out, i);
  return out;
}

function varint(n: number): number[] {
  const out: number[] = [];
  while (n > 0x7f) {
    out.push((n & 0x7f) | 0x80);
    n >>>= 7;
  }
  out.push(n);
  return out;
}

function field(no: number, payload: Buffer): Buffer {
  return Buffer.concat([Buffer.from([(no << 3) | 2, ...varint(payload.length)]), payload]);
}

/**
 * A CheckRequest whose attributes.metadata_context holds a google.protobuf.Value nested `depth`
 * times (Value.list_value → ListValue.values → Value …): recursion bait for the decoder.
 */
export function deeplyNestedCheckRequest(depth: number): Buffer {
  const prefixes: Buffer[] = [];
  let size = 0; // innermost Value is empty
  for (let i = 0; i < depth; i++) {
    const list = 1 + varint(size).length + size; // ListValue{ values(1): Value }
    prefixes.push(Buffer.from([0x32, ...varint(list), 0x0a, ...varint(size)])); // Value{ list_value(6) }
    size = 1 + varint(list).length + list;
  }
  const value = Buffer.concat(prefixes.reverse());
  const struct = field(1, Buffer.concat([field(1, Buffer.from('a')), field(2, value)])); // Struct.fields entry
  const metadata = field(1, Buffer.concat([field(1, Buffer.from('x')), field(2, struct)])); // Metadata.filter_metadata entry
  return field(1, field(11, metadata)); // CheckRequest.attributes.metadata_context
}
