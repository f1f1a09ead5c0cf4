// Validates Envoy YAML/JSON configuration against Envoy's own .proto definitions (the ones that
// ship in @grpc/grpc-js-xds), without an Envoy binary.
//
// Two passes:
//  1. structural — every key is a field of the message at that point (snake_case as in Envoy
//     YAML, or its lowerCamel JSON name), nested messages recurse, `google.protobuf.Any` objects
//     carry an `@type` that resolves among the loaded protos and their body validates the same
//     way, well-known types take their proto3-JSON form (Duration "0.5s", wrappers as bare
//     scalars, Struct any object), enums take their names, maps recurse on their values, at most
//     one member of a oneof is set, deprecated fields are refused, and the protoc-gen-validate
//     rules that matter most for a hand-written bootstrap are checked (required messages and
//     oneofs, non-empty strings, repeated min_items);
//  2. round trip — the value is converted to the object form protobufjs expects, then
//     `fromObject` → `encode` → `decode` → `toObject` must give back exactly what went in
//     (a dropped field means the conversion or the name was wrong). Every Any body is round-
//     tripped on its own before it is packed.
//
// Problems come back as `{ path, problem }`, the path in YAML terms:
// `static_resources.listeners[0].filter_chains[0].filters[0].typed_config.stat_prefix`.
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import protobuf from 'protobufjs';
import type { Enum, Field, MapField, OneOf, Root, Type } from 'protobufjs';
import { PROTO_INCLUDE_DIRS } from '../../src/server/protos.js';

export interface EnvoyConfigProblem {
  path: string;
  problem: string;
}

export const BOOTSTRAP_TYPE = 'envoy.config.bootstrap.v3.Bootstrap';

/** bootstrap.proto plus the extension protos the demo and example configs use via `@type`. */
export const ENVOY_CONFIG_PROTOS: readonly string[] = Object.freeze([
  'envoy/config/bootstrap/v3/bootstrap.proto',
  'envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.proto',
  'envoy/extensions/filters/http/ext_authz/v3/ext_authz.proto',
  'envoy/extensions/filters/http/router/v3/router.proto',
  'envoy/extensions/access_loggers/grpc/v3/als.proto',
  'envoy/extensions/access_loggers/stream/v3/stream.proto',
  'envoy/extensions/upstreams/http/v3/http_protocol_options.proto',
  'envoy/extensions/transport_sockets/tls/v3/tls.proto',
]);

const require = createRequire(import.meta.url);
const PROTOBUFJS_DIR = path.dirname(require.resolve('protobufjs/package.json'));

/** A protobufjs Root (keepCase: Envoy's snake_case names) that resolves imports in Envoy's trees. */
export function loadEnvoyRoot(
  files: readonly string[] = ENVOY_CONFIG_PROTOS,
  includeDirs: readonly string[] = PROTO_INCLUDE_DIRS,
): Root {
  const root = new protobuf.Root();
  root.resolvePath = (_origin: string, target: string): string | null => {
    if (path.isAbsolute(target)) return target;
    for (const dir of includeDirs) {
      const candidate = path.join(dir, target);
      if (fs.existsSync(candidate)) return candidate;
    }
    // descriptor.proto and friends: protobufjs bundles them (any/duration/struct/... are built in).
    if (target.startsWith('google/protobuf/')) {
      const bundled = path.join(PROTOBUFJS_DIR, target);
      if (fs.existsSync(bundled)) return bundled;
    }
    throw new Error(`proto import ${target} not found in ${includeDirs.join(', ')}`);
  };
  root.loadSync([...files], { keepCase: true });
  root.resolveAll();
  return root;
}

// ---------------------------------------------------------------------------------------------

const WRAPPERS = new Set([
  'google.protobuf.DoubleValue',
  'google.protobuf.FloatValue',
  'google.protobuf.Int64Value',
  'google.protobuf.UInt64Value',
  'google.protobuf.Int32Value',
  'google.protobuf.UInt32Value',
  'google.protobuf.BoolValue',
  'google.protobuf.StringValue',
  'google.protobuf.BytesValue',
]);

/** Well-known types whose proto3-JSON form is not an object of their fields. */
const SPECIAL_JSON = new Set([
  ...WRAPPERS,
  'google.protobuf.Duration',
  'google.protobuf.Timestamp',
  'google.protobuf.FieldMask',
  'google.protobuf.Struct',
  'google.protobuf.Value',
  'google.protobuf.ListValue',
]);

const PGV_REQUIRED = /^\(validate\.rules\)\.(message|duration|any|timestamp)\.required$/;
const DURATION_RE = /^(-)?(\d+)(?:\.(\d{1,9}))?s$/;
const TIMESTAMP_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$/;
const INT_RE = /^-?\d+$/;

const INT32 = new Set(['int32', 'sint32', 'sfixed32']);
const UINT32 = new Set(['uint32', 'fixed32']);
const INT64 = new Set(['int64', 'sint64', 'sfixed64']);
const UINT64 = new Set(['uint64', 'fixed64']);

type Plain = Record<string, unknown>;

function fullName(t: Type | Enum): string {
  return t.fullName.replace(/^\./, '');
}

function isPlainObject(v: unknown): v is Plain {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array);
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'an object';
  return `${typeof v} ${JSON.stringify(v)}`;
}

function camel(name: string): string {
  return name.replace(/_([a-z0-9])/g, (_m, c: string) => c.toUpperCase());
}

function joinKey(base: string, key: string): string {
  if (/^[A-Za-z_@][A-Za-z0-9_]*$/.test(key)) return base ? `${base}.${key}` : key;
  return `${base}[${JSON.stringify(key)}]`;
}

function levenshtein(a: string, b: string): number {
  const prev = Array.from({ length: b.length + 1 }, (_v, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let diag = prev[0]!;
    prev[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const up = prev[j]!;
      prev[j] = Math.min(up + 1, prev[j - 1]! + 1, diag + (a[i - 1] === b[j - 1] ? 0 : 1));
      diag = up;
    }
  }
  return prev[b.length]!;
}

function suggest(word: string, candidates: readonly string[]): string {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const c of candidates) {
    const d = levenshtein(word, c);
    if (d < bestDistance) {
      bestDistance = d;
      best = c;
    }
  }
  return best !== undefined && bestDistance <= Math.max(2, Math.floor(word.length / 4))
    ? ` (did you mean "${best}"?)`
    : '';
}

export interface EnvoyValidatorOptions {
  /** Proto files to load, relative to the include dirs. Default: ENVOY_CONFIG_PROTOS. */
  protos?: readonly string[];
  includeDirs?: readonly string[];
  /** Accept fields marked `deprecated` (Envoy warns, or refuses with fail-on-deprecated). */
  allowDeprecated?: boolean;
}

export class EnvoyConfigValidator {
  readonly root: Root;
  private readonly allowDeprecated: boolean;

  constructor(options: EnvoyValidatorOptions = {}) {
    this.root = loadEnvoyRoot(options.protos ?? ENVOY_CONFIG_PROTOS, options.includeDirs ?? PROTO_INCLUDE_DIRS);
    this.allowDeprecated = options.allowDeprecated ?? false;
  }

  lookupType(name: string): Type {
    return this.root.lookupType(name.replace(/^\./, ''));
  }

  /** Both passes; the round trip only runs on a structurally valid value. */
  validate(typeName: string, value: unknown): EnvoyConfigProblem[] {
    const problems = this.check(typeName, value);
    if (problems.length > 0) return problems;
    return this.roundTrip(typeName, value);
  }

  /** Throws with every problem, one `path: problem` per line. */
  assertValid(typeName: string, value: unknown): void {
    const problems = this.validate(typeName, value);
    if (problems.length > 0) {
      throw new Error(`invalid ${typeName}:\n${problems.map((p) => `  ${p.path || '<root>'}: ${p.problem}`).join('\n')}`);
    }
  }

  /** Pass 1: structure, names, types, oneofs, the main PGV rules. */
  check(typeName: string, value: unknown): EnvoyConfigProblem[] {
    const problems: EnvoyConfigProblem[] = [];
    this.checkMessage(this.lookupType(typeName), value, '', problems);
    return problems;
  }

  /** Pass 2: convert, fromObject, encode, decode, toObject, compare. */
  roundTrip(typeName: string, value: unknown): EnvoyConfigProblem[] {
    const problems: EnvoyConfigProblem[] = [];
    const type = this.lookupType(typeName);
    const converted = this.convertMessage(type, value, '', problems);
    this.roundTripConverted(type, converted, '', problems);
    return problems;
  }

  /**
   * Pass 2 alone, for an object already in protobufjs form (what `toProtobufObject` returns):
   * reports every key that `fromObject`/`encode`/`decode` drops or changes.
   */
  roundTripObject(typeName: string, protobufObject: Record<string, unknown>): EnvoyConfigProblem[] {
    const problems: EnvoyConfigProblem[] = [];
    this.roundTripConverted(this.lookupType(typeName), protobufObject, '', problems);
    return problems;
  }

  /** The protobufjs object form of `value` (Any bodies packed), e.g. for `Type.fromObject`. */
  toProtobufObject(typeName: string, value: unknown): Plain {
    const problems: EnvoyConfigProblem[] = [];
    const converted = this.convertMessage(this.lookupType(typeName), value, '', problems);
    if (problems.length > 0) throw new Error(problems.map((p) => `${p.path}: ${p.problem}`).join('\n'));
    return converted as Plain;
  }

  // --- pass 1 ---------------------------------------------------------------------------------

  private resolveField(type: Type, key: string): Field | undefined {
    const direct = type.fields[key];
    if (direct) return direct;
    return type.fieldsArray.find((f) => camel(f.name) === key || f.options?.['json_name'] === key);
  }

  private checkMessage(type: Type, value: unknown, at: string, problems: EnvoyConfigProblem[]): void {
    const name = fullName(type);
    if (name === 'google.protobuf.Any') return this.checkAny(value, at, problems);
    if (SPECIAL_JSON.has(name)) return this.checkWellKnown(type, value, at, problems);
    if (!isPlainObject(value)) {
      problems.push({ path: at, problem: `expected an object (${name}), got ${describe(value)}` });
      return;
    }
    const seen = new Map<string, string>();
    for (const [key, v] of Object.entries(value)) {
      const here = joinKey(at, key);
      const field = this.resolveField(type, key);
      if (!field) {
        problems.push({
          path: here,
          problem: `unknown field "${key}" in ${name}${suggest(key, type.fieldsArray.map((f) => f.name))}`,
        });
        continue;
      }
      const other = seen.get(field.name);
      if (other !== undefined) {
        problems.push({ path: here, problem: `field ${field.name} is also given as "${other}"` });
        continue;
      }
      seen.set(field.name, key);
      if (field.options?.['deprecated'] === true && !this.allowDeprecated) {
        problems.push({ path: here, problem: `field ${field.name} of ${name} is deprecated` });
      }
      if (v === null || v === undefined) {
        problems.push({ path: here, problem: 'has no value (null); remove it or give a value' });
        continue;
      }
      this.checkField(field, v, here, problems);
    }
    for (const oneof of type.oneofsArray) this.checkOneof(oneof, seen, at, problems);
    for (const field of type.fieldsArray) {
      const key = seen.get(field.name);
      if (key !== undefined) {
        if (field.repeated) this.checkMinItems(field, value[key], joinKey(at, key), problems);
      } else if (!field.partOf) {
        // PGV rules on oneof members only apply when the member is set
        this.checkRequiredAbsent(field, name, at, problems);
      }
    }
  }

  private checkOneof(oneof: OneOf, seen: Map<string, string>, at: string, problems: EnvoyConfigProblem[]): void {
    const set = oneof.fieldsArray.filter((f) => seen.has(f.name)).map((f) => f.name);
    if (set.length > 1) {
      problems.push({ path: at, problem: `oneof ${oneof.name}: only one of ${set.join(', ')} may be set` });
    }
    if (set.length === 0 && oneof.options?.['(validate.required)'] === true) {
      problems.push({
        path: at,
        problem: `oneof ${oneof.name}: one of ${oneof.fieldsArray.map((f) => f.name).join(', ')} is required`,
      });
    }
  }

  private checkRequiredAbsent(field: Field, typeName: string, at: string, problems: EnvoyConfigProblem[]): void {
    const opts = field.options ?? {};
    const missing = (why: string): void => {
      problems.push({ path: joinKey(at, field.name), problem: `missing: ${typeName}.${field.name} is required (${why})` });
    };
    for (const key of Object.keys(opts)) {
      if (PGV_REQUIRED.test(key) && opts[key] === true) return missing(key);
    }
    const minLen = opts['(validate.rules).string.min_len'] ?? opts['(validate.rules).string.min_bytes'];
    if (!field.repeated && typeof minLen === 'number' && minLen > 0) return missing(`min_len ${minLen}`);
    const minItems = opts['(validate.rules).repeated.min_items'];
    if (field.repeated && typeof minItems === 'number' && minItems > 0) return missing(`min_items ${minItems}`);
  }

  private checkMinItems(field: Field, value: unknown, at: string, problems: EnvoyConfigProblem[]): void {
    const minItems = field.options?.['(validate.rules).repeated.min_items'];
    if (Array.isArray(value) && typeof minItems === 'number' && value.length < minItems) {
      problems.push({ path: at, problem: `needs at least ${minItems} item(s), has ${value.length}` });
    }
  }

  private checkField(field: Field, value: unknown, at: string, problems: EnvoyConfigProblem[]): void {
    field.resolve();
    if (field.map) {
      const map = field as unknown as MapField;
      if (!isPlainObject(value)) {
        problems.push({ path: at, problem: `expected a map (object), got ${describe(value)}` });
        return;
      }
      for (const [k, v] of Object.entries(value)) {
        const here = joinKey(at, k);
        if (map.keyType !== 'string' && !(INT_RE.test(k) || map.keyType === 'bool')) {
          problems.push({ path: here, problem: `map key must be ${map.keyType}` });
        }
        this.checkSingle(field, v, here, problems);
      }
      return;
    }
    if (field.repeated) {
      if (!Array.isArray(value)) {
        problems.push({ path: at, problem: `expected a list (repeated ${field.type}), got ${describe(value)}` });
        return;
      }
      value.forEach((item, i) => this.checkSingle(field, item, `${at}[${i}]`, problems));
      return;
    }
    this.checkSingle(field, value, at, problems);
  }

  private checkSingle(field: Field, value: unknown, at: string, problems: EnvoyConfigProblem[]): void {
    const resolved = field.resolvedType;
    if (resolved && 'fieldsArray' in resolved) return this.checkMessage(resolved, value, at, problems);
    if (resolved) return this.checkEnum(resolved, value, at, problems);
    const why = scalarProblem(field.type, value);
    if (why) problems.push({ path: at, problem: why });
  }

  private checkEnum(e: Enum, value: unknown, at: string, problems: EnvoyConfigProblem[]): void {
    const names = Object.keys(e.values);
    if (typeof value === 'string' && value in e.values) return;
    if (typeof value === 'number' && Object.values(e.values).includes(value)) return;
    problems.push({
      path: at,
      problem: `${describe(value)} is not a value of enum ${fullName(e)}${typeof value === 'string' ? suggest(value, names) : ''}; one of ${names.join(', ')}`,
    });
  }

  private checkAny(value: unknown, at: string, problems: EnvoyConfigProblem[]): void {
    if (!isPlainObject(value)) {
      problems.push({ path: at, problem: `expected an object with "@type" (google.protobuf.Any), got ${describe(value)}` });
      return;
    }
    const typeUrl = value['@type'];
    const here = joinKey(at, '@type');
    if (typeof typeUrl !== 'string' || !typeUrl.includes('/')) {
      problems.push({ path: here, problem: `missing or malformed "@type" (want type.googleapis.com/<full message name>)` });
      return;
    }
    const inner = this.typeFromUrl(typeUrl);
    if (!inner) {
      problems.push({ path: here, problem: `unknown type "${typeUrl}": misspelt, or its .proto is not among the loaded protos` });
      return;
    }
    const body = { ...value };
    delete body['@type'];
    if (SPECIAL_JSON.has(fullName(inner)) || fullName(inner) === 'google.protobuf.Any') {
      const keys = Object.keys(body);
      if (keys.length !== 1 || keys[0] !== 'value') {
        problems.push({ path: at, problem: `an Any holding ${fullName(inner)} takes exactly one key "value" besides "@type"` });
        return;
      }
      this.checkMessage(inner, body['value'], joinKey(at, 'value'), problems);
      return;
    }
    this.checkMessage(inner, body, at, problems);
  }

  private typeFromUrl(typeUrl: string): Type | undefined {
    const name = typeUrl.slice(typeUrl.lastIndexOf('/') + 1);
    if (!name) return undefined;
    const found = this.root.lookup(name);
    return found && 'fieldsArray' in found ? (found as Type) : undefined;
  }

  private checkWellKnown(type: Type, value: unknown, at: string, problems: EnvoyConfigProblem[]): void {
    const name = fullName(type);
    const fail = (problem: string): void => {
      problems.push({ path: at, problem });
    };
    if (WRAPPERS.has(name)) {
      const valueField = type.fields['value']!;
      const why = scalarProblem(valueField.type, value);
      if (why) fail(`${name} takes a bare ${valueField.type} (not {value: …}): ${why}`);
      return;
    }
    switch (name) {
      case 'google.protobuf.Duration':
        if (typeof value !== 'string' || !DURATION_RE.test(value)) {
          fail(`a Duration is a string like "0.5s" or "30s", got ${describe(value)}`);
        }
        return;
      case 'google.protobuf.Timestamp':
        if (typeof value !== 'string' || !TIMESTAMP_RE.test(value)) fail(`a Timestamp is an RFC 3339 string, got ${describe(value)}`);
        return;
      case 'google.protobuf.FieldMask':
        if (typeof value !== 'string') fail(`a FieldMask is a string, got ${describe(value)}`);
        return;
      case 'google.protobuf.Struct':
        if (!isPlainObject(value)) fail(`a Struct is an object, got ${describe(value)}`);
        return;
      case 'google.protobuf.ListValue':
        if (!Array.isArray(value)) fail(`a ListValue is a list, got ${describe(value)}`);
        return;
      case 'google.protobuf.Value':
        return;
    }
  }

  // --- pass 2 ---------------------------------------------------------------------------------

  /** Name of a field as the loaded Type spells it (protobufjs's bundled WKTs are camelCase). */
  private static fieldName(type: Type, snake: string): string {
    if (type.fields[snake]) return snake;
    const c = camel(snake);
    if (type.fields[c]) return c;
    throw new Error(`${type.fullName} has no field ${snake}`);
  }

  private convertMessage(type: Type, value: unknown, at: string, problems: EnvoyConfigProblem[]): unknown {
    const name = fullName(type);
    if (name === 'google.protobuf.Any') return this.convertAny(value as Plain, at, problems);
    if (WRAPPERS.has(name)) return { value: convertScalar(type.fields['value']!.type, value) };
    switch (name) {
      case 'google.protobuf.Duration':
      case 'google.protobuf.Timestamp': {
        const seconds = name.endsWith('Duration') ? durationParts(value as string) : timestampParts(value as string);
        return seconds;
      }
      case 'google.protobuf.FieldMask':
        return { paths: (value as string).split(',').filter(Boolean) };
      case 'google.protobuf.Struct':
        return this.convertStruct(type, value as Plain);
      case 'google.protobuf.Value':
        return this.convertValue(type, value);
      case 'google.protobuf.ListValue':
        return { [EnvoyConfigValidator.fieldName(type, 'values')]: (value as unknown[]).map((v) => this.convertValue(this.lookupType('google.protobuf.Value'), v)) };
    }
    const out: Plain = {};
    for (const [key, v] of Object.entries(value as Plain)) {
      const field = this.resolveField(type, key)!;
      const here = joinKey(at, key);
      field.resolve();
      if (field.map) {
        const m: Plain = {};
        for (const [k, item] of Object.entries(v as Plain)) m[k] = this.convertSingle(field, item, joinKey(here, k), problems);
        out[field.name] = m;
      } else if (field.repeated) {
        out[field.name] = (v as unknown[]).map((item, i) => this.convertSingle(field, item, `${here}[${i}]`, problems));
      } else {
        out[field.name] = this.convertSingle(field, v, here, problems);
      }
    }
    return out;
  }

  private convertSingle(field: Field, value: unknown, at: string, problems: EnvoyConfigProblem[]): unknown {
    const resolved = field.resolvedType;
    if (resolved && 'fieldsArray' in resolved) return this.convertMessage(resolved, value, at, problems);
    if (resolved) {
      // enums: always by name, which is what toObject({enums: String}) gives back
      if (typeof value === 'number') return (resolved as Enum).valuesById[value];
      return value;
    }
    return convertScalar(field.type, value);
  }

  private convertStruct(type: Type, value: Plain): Plain {
    const valueType = this.lookupType('google.protobuf.Value');
    const fields: Plain = {};
    for (const [k, v] of Object.entries(value)) fields[k] = this.convertValue(valueType, v);
    return { [EnvoyConfigValidator.fieldName(type, 'fields')]: fields };
  }

  private convertValue(type: Type, value: unknown): Plain {
    const f = (snake: string): string => EnvoyConfigValidator.fieldName(type, snake);
    if (value === null || value === undefined) return { [f('null_value')]: 'NULL_VALUE' };
    if (typeof value === 'number') return { [f('number_value')]: value };
    if (typeof value === 'string') return { [f('string_value')]: value };
    if (typeof value === 'boolean') return { [f('bool_value')]: value };
    if (Array.isArray(value)) {
      const listType = this.lookupType('google.protobuf.ListValue');
      return { [f('list_value')]: { [EnvoyConfigValidator.fieldName(listType, 'values')]: value.map((v) => this.convertValue(type, v)) } };
    }
    return { [f('struct_value')]: this.convertStruct(this.lookupType('google.protobuf.Struct'), value as Plain) };
  }

  private convertAny(value: Plain, at: string, problems: EnvoyConfigProblem[]): Plain {
    const typeUrl = value['@type'] as string;
    const inner = this.typeFromUrl(typeUrl)!;
    const body = { ...value };
    delete body['@type'];
    const special = SPECIAL_JSON.has(fullName(inner)) || fullName(inner) === 'google.protobuf.Any';
    const converted = this.convertMessage(inner, special ? body['value'] : body, at, problems);
    this.roundTripConverted(inner, converted, at, problems);
    const bytes = inner.encode(inner.fromObject(converted as Plain)).finish();
    return { type_url: typeUrl, value: Buffer.from(bytes).toString('base64') };
  }

  private roundTripConverted(type: Type, converted: unknown, at: string, problems: EnvoyConfigProblem[]): void {
    const name = fullName(type);
    const message = type.fromObject(converted as Plain);
    const verifyError = type.verify(message);
    if (verifyError) {
      problems.push({ path: at, problem: `protobufjs rejects the converted ${name}: ${verifyError}` });
      return;
    }
    const decoded = type.decode(type.encode(message).finish());
    const back = type.toObject(decoded, { longs: Number, enums: String, bytes: String });
    diff(converted, back, at, name, problems);
  }
}

function diff(expected: unknown, actual: unknown, at: string, typeName: string, problems: EnvoyConfigProblem[]): void {
  if (Array.isArray(expected)) {
    if (!Array.isArray(actual) || actual.length !== expected.length) {
      problems.push({ path: at, problem: `round trip through ${typeName} changed a list: ${JSON.stringify(actual)}` });
      return;
    }
    expected.forEach((e, i) => diff(e, actual[i], `${at}[${i}]`, typeName, problems));
    return;
  }
  if (isPlainObject(expected)) {
    if (!isPlainObject(actual)) {
      problems.push({ path: at, problem: `round trip through ${typeName} lost a message` });
      return;
    }
    for (const [k, e] of Object.entries(expected)) {
      if (!(k in actual)) {
        problems.push({ path: joinKey(at, k), problem: `dropped by the round trip through ${typeName} (fromObject/encode/decode)` });
        continue;
      }
      diff(e, actual[k], joinKey(at, k), typeName, problems);
    }
    for (const k of Object.keys(actual)) {
      if (!(k in expected)) problems.push({ path: joinKey(at, k), problem: `appeared in the round trip through ${typeName}` });
    }
    return;
  }
  if (!Object.is(expected, actual) && !(Number.isNaN(expected) && Number.isNaN(actual))) {
    problems.push({ path: at, problem: `round trip through ${typeName} changed ${JSON.stringify(expected)} to ${JSON.stringify(actual)}` });
  }
}

/** Why `value` is not a valid proto3-JSON `type` scalar, or undefined if it is. */
function scalarProblem(type: string, value: unknown): string | undefined {
  const integral = (min: number | bigint, max: number | bigint): string | undefined => {
    let n: bigint;
    if (typeof value === 'number' && Number.isInteger(value)) n = BigInt(value);
    else if (typeof value === 'string' && INT_RE.test(value)) n = BigInt(value);
    else return `expected an integer (${type}), got ${describe(value)}`;
    if (n < BigInt(min) || n > BigInt(max)) return `${n} is out of range for ${type}`;
    return undefined;
  };
  if (INT32.has(type)) return integral(-(2 ** 31), 2 ** 31 - 1);
  if (UINT32.has(type)) return integral(0, 2 ** 32 - 1);
  if (INT64.has(type)) return integral(-(2n ** 63n), 2n ** 63n - 1n);
  if (UINT64.has(type)) return integral(0, 2n ** 64n - 1n);
  switch (type) {
    case 'double':
    case 'float':
      if (typeof value === 'number') return undefined;
      if (typeof value === 'string' && (/^(NaN|-?Infinity)$/.test(value) || (value.trim() !== '' && !Number.isNaN(Number(value))))) return undefined;
      return `expected a number (${type}), got ${describe(value)}`;
    case 'bool':
      return typeof value === 'boolean' ? undefined : `expected true or false, got ${describe(value)}`;
    case 'string':
      return typeof value === 'string' ? undefined : `expected a string, got ${describe(value)} (quote it)`;
    case 'bytes':
      return typeof value === 'string' && /^[A-Za-z0-9+/_-]*={0,2}$/.test(value)
        ? undefined
        : `expected base64 bytes, got ${describe(value)}`;
  }
  return `unsupported scalar type ${type}`;
}

function convertScalar(type: string, value: unknown): unknown {
  if (INT32.has(type) || UINT32.has(type) || INT64.has(type) || UINT64.has(type)) return Number(value);
  if (type === 'float') return Math.fround(Number(value));
  if (type === 'double') return Number(value);
  return value;
}

function durationParts(text: string): Plain {
  const m = DURATION_RE.exec(text)!;
  const sign = m[1] ? -1 : 1;
  const seconds = Number(m[2]);
  const nanos = m[3] ? Number(m[3].padEnd(9, '0')) : 0;
  const out: Plain = {};
  if (seconds !== 0) out['seconds'] = sign * seconds;
  if (nanos !== 0) out['nanos'] = sign * nanos;
  return out;
}

function timestampParts(text: string): Plain {
  const ms = Date.parse(text);
  const frac = /\.(\d{1,9})/.exec(text)?.[1];
  const out: Plain = {};
  const seconds = Math.floor(ms / 1000);
  const nanos = frac ? Number(frac.padEnd(9, '0')) : 0;
  if (seconds !== 0) out['seconds'] = seconds;
  if (nanos !== 0) out['nanos'] = nanos;
  return out;
}
