// The field numbers and wire types the Check request reader walks, derived at startup from the
// descriptors of Envoy's own protos (the ones proto-loader loaded for the full decode), so a
// number can never be typed wrong by hand. A field missing from the protos is a startup error.
import type { MessageTypeDefinition, PackageDefinition } from '@grpc/proto-loader';
import { envoyPackageDefinition } from './protos.js';

/** Protobuf wire types (https://protobuf.dev/programming-guides/encoding/#structure). */
export const WIRE = { VARINT: 0, I64: 1, LEN: 2, SGROUP: 3, EGROUP: 4, I32: 5 } as const;

/**
 * One message on the reader's path: the numbers of the fields it reads, and the wire type of
 * every field the message declares (a declared field on the wire with another wire type is
 * malformed and rejected; undeclared fields are skipped by their wire type).
 */
export interface MessageWire<F extends string> {
  readonly name: string;
  readonly field: Readonly<Record<F, number>>;
  /** field number → allowed wire types as a bit set (1 << wireType); absent: undeclared. */
  readonly wireTypes: ReadonlyMap<number, number>;
  /** The same for field numbers below 64, as an array (0: undeclared): the fast lookup. */
  readonly wireTypesByField: Uint8Array;
}

export interface CheckRequestWire {
  readonly checkRequest: MessageWire<'attributes'>;
  readonly attributeContext: MessageWire<'request' | 'context_extensions'>;
  readonly stringMapEntry: MessageWire<'key' | 'value'>;
  readonly request: MessageWire<'http'>;
  readonly httpRequest: MessageWire<'method' | 'headers' | 'path' | 'host' | 'header_map'>;
  readonly headersEntry: MessageWire<'key' | 'value'>;
  readonly headerMap: MessageWire<'headers'>;
  readonly headerValue: MessageWire<'key' | 'value' | 'raw_value'>;
}

interface FieldDescriptor {
  readonly name: string;
  readonly number: number;
  readonly type: string;
  readonly label: string;
  readonly typeName: string;
  readonly options?: { readonly packed?: boolean } | null;
}
interface Descriptor {
  readonly name: string;
  readonly field: readonly FieldDescriptor[];
  readonly nestedType: readonly Descriptor[];
  readonly options?: { readonly mapEntry?: boolean } | null;
}

function wireTypeOf(type: string): number {
  switch (type) {
    case 'TYPE_MESSAGE': case 'TYPE_STRING': case 'TYPE_BYTES': return WIRE.LEN;
    case 'TYPE_DOUBLE': case 'TYPE_FIXED64': case 'TYPE_SFIXED64': return WIRE.I64;
    case 'TYPE_FLOAT': case 'TYPE_FIXED32': case 'TYPE_SFIXED32': return WIRE.I32;
    case 'TYPE_GROUP': return WIRE.SGROUP;
    default: return WIRE.VARINT; // (u)int32/64, sint32/64, bool, enum
  }
}

function messageWire<F extends string>(d: Descriptor, fullName: string, fields: readonly F[]): MessageWire<F> {
  const wireTypes = new Map<number, number>();
  for (const f of d.field) {
    const wt = wireTypeOf(f.type);
    // A repeated scalar may arrive packed (LEN) or not, whatever the proto says.
    const packable = f.label === 'LABEL_REPEATED' && wt !== WIRE.LEN && wt !== WIRE.SGROUP;
    wireTypes.set(f.number, (1 << wt) | (packable ? 1 << WIRE.LEN : 0));
  }
  const field = {} as Record<F, number>;
  for (const name of fields) {
    const f = d.field.find((x) => x.name === name);
    if (f === undefined) throw new Error(`${fullName}.${name} not found in Envoy's protos`);
    field[name] = f.number;
  }
  const wireTypesByField = new Uint8Array(64);
  for (const [n, bits] of wireTypes) if (n < 64) wireTypesByField[n] = bits;
  return { name: fullName, field, wireTypes, wireTypesByField };
}

function descriptor(pkg: PackageDefinition, fullName: string): Descriptor {
  const def = pkg[fullName] as MessageTypeDefinition<unknown, unknown> | undefined;
  if (def?.type === undefined) throw new Error(`${fullName} not found in Envoy's protos`);
  return def.type as unknown as Descriptor;
}

function nested(d: Descriptor, parent: string, name: string): Descriptor {
  const n = d.nestedType.find((x) => x.name === name);
  if (n === undefined) throw new Error(`${parent}.${name} not found in Envoy's protos`);
  return n;
}

/** The nested map-entry type proto-loader generated for a map field (e.g. `Context_extensions`). */
function mapEntry(d: Descriptor, parent: string, field: string): Descriptor {
  const f = d.field.find((x) => x.name === field);
  const entry = f && d.nestedType.find((x) => x.name === f.typeName.split('.').pop());
  if (!entry?.options?.mapEntry) throw new Error(`${parent}.${field} is not a map in Envoy's protos`);
  return entry;
}

let cached: CheckRequestWire | undefined;

/** The reader's schema, from `envoy.service.auth.v3.CheckRequest` and the types it refers to. */
export function checkRequestWire(pkg: PackageDefinition = envoyPackageDefinition()): CheckRequestWire {
  if (cached !== undefined && pkg === envoyPackageDefinition()) return cached;
  const CR = 'envoy.service.auth.v3.CheckRequest';
  const AC = 'envoy.service.auth.v3.AttributeContext';
  const ac = descriptor(pkg, AC);
  const req = nested(ac, AC, 'Request');
  const http = nested(ac, AC, 'HttpRequest');
  const wire: CheckRequestWire = {
    checkRequest: messageWire(descriptor(pkg, CR), CR, ['attributes']),
    attributeContext: messageWire(ac, AC, ['request', 'context_extensions']),
    stringMapEntry: messageWire(mapEntry(ac, AC, 'context_extensions'), `${AC}.context_extensions entry`, ['key', 'value']),
    request: messageWire(req, `${AC}.Request`, ['http']),
    httpRequest: messageWire(http, `${AC}.HttpRequest`, ['method', 'headers', 'path', 'host', 'header_map']),
    headersEntry: messageWire(mapEntry(http, `${AC}.HttpRequest`, 'headers'), `${AC}.HttpRequest.headers entry`, ['key', 'value']),
    headerMap: messageWire(descriptor(pkg, 'envoy.config.core.v3.HeaderMap'), 'envoy.config.core.v3.HeaderMap', ['headers']),
    headerValue: messageWire(descriptor(pkg, 'envoy.config.core.v3.HeaderValue'), 'envoy.config.core.v3.HeaderValue', ['key', 'value', 'raw_value']),
  };
  if (pkg === envoyPackageDefinition()) cached = wire;
  return wire;
}
