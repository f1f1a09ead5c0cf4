// Validates manifests against a CustomResourceDefinition's openAPIV3Schema, the way the API
// server does with `kubectl apply --validate=strict`: types, enums, patterns, required fields,
// and unknown fields refused (except where the schema preserves them). CEL rules
// (x-kubernetes-validations) are not evaluated here; tests check the ones they rely on.
import fs from 'node:fs';
import { Ajv, type ValidateFunction } from 'ajv';
import YAML from 'yaml';

type Node = Record<string, any>;

/** Unknown fields are errors: objects with declared properties get additionalProperties: false. */
function strictUnknownFields(node: Node): Node {
  if (!node || typeof node !== 'object') return node;
  if (Array.isArray(node)) return node.map(strictUnknownFields);
  const out: Node = {};
  for (const [k, v] of Object.entries(node)) out[k] = k === 'x-kubernetes-validations' ? v : strictUnknownFields(v as Node);
  if (out.properties && out.additionalProperties === undefined && !out['x-kubernetes-preserve-unknown-fields']) out.additionalProperties = false;
  return out;
}

export class CrdValidator {
  private readonly validators = new Map<string, ValidateFunction>();

  constructor(files: readonly string[]) {
    const ajv = new Ajv({ strict: false, allErrors: true, validateFormats: false });
    for (const file of files) {
      for (const doc of YAML.parseAllDocuments(fs.readFileSync(file, 'utf8'))) {
        const crd = doc.toJS() as Node | null;
        if (crd?.kind !== 'CustomResourceDefinition') continue;
        for (const v of crd.spec.versions as Node[]) {
          const schema = strictUnknownFields(v.schema.openAPIV3Schema as Node);
          // apiVersion, kind and metadata are checked by the API server itself.
          schema.properties = { ...schema.properties, apiVersion: { type: 'string' }, kind: { type: 'string' }, metadata: { type: 'object' } };
          this.validators.set(`${crd.spec.group}/${v.name} ${crd.spec.names.kind}`, ajv.compile(schema));
        }
      }
    }
  }

  has(apiVersion: string, kind: string): boolean {
    return this.validators.has(`${apiVersion} ${kind}`);
  }

  /** Problems as "path message" lines; [] when valid. Throws for a kind no CRD defines. */
  validate(manifest: Node): string[] {
    const key = `${manifest.apiVersion} ${manifest.kind}`;
    const v = this.validators.get(key);
    if (!v) throw new Error(`no CRD for ${key}`);
    return v(manifest) ? [] : (v.errors ?? []).map((e) => `${e.instancePath || '/'} ${e.message ?? ''}${e.params && 'additionalProperty' in e.params ? ` (${String(e.params.additionalProperty)})` : ''}`);
  }
}
