// Runs a config text through both judges: tokengate's validator (src/config/schema.ts) and
// ajv with the JSON Schema `tokengate schema` prints.
import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js';
import { configJsonSchema } from '../../src/config/json-schema.js';
import { parseYaml } from '../../src/config/load.js';
import type { ReadContext } from '../../src/config/reader.js';
import { readConfig } from '../../src/config/schema.js';
import type { ConfigProblem } from '../../src/config/types.js';

let compiled: ValidateFunction | undefined;

export function schemaValidator(): ValidateFunction {
  // strict: unknown keywords and misplaced constraints are schema bugs. (strictRequired off:
  // if/then may require a key the branch does not redeclare; that is plain JSON Schema.)
  compiled ??= new Ajv2020({ strict: true, strictRequired: false, allowUnionTypes: true, allErrors: true }).compile(configJsonSchema());
  return compiled;
}

export interface Verdicts {
  readonly validator: ConfigProblem[];
  readonly schema: string[];
}

export function judge(yamlText: string, env: Readonly<Record<string, string | undefined>> = {}): Verdicts {
  const raw = parseYaml(yamlText);
  const ctx: ReadContext = { env, baseDir: process.cwd(), problems: [], warnings: [] };
  readConfig(raw, ctx);
  const validate = schemaValidator();
  const ok = validate(raw);
  return {
    validator: ctx.problems,
    schema: ok ? [] : (validate.errors ?? []).map((e) => `${e.instancePath || '/'} ${e.message ?? ''}`),
  };
}
