// The per-caller cache hit's answer is spliced from a per-provider template (src/server/
// answer-template.ts): it must be byte for byte what the real encoder writes, for any lengths
// of token, token id and subject (length prefixes of one, two and three bytes), with or without
// a subject, for every shape of inject config.
import { describe, expect, it } from 'vitest';
import { AnswerTemplate, SENTINELS, TemplateError, type SlotValues } from '../../src/server/answer-template.js';
import { okWithToken, type CheckResponseObject } from '../../src/server/check-response.js';
import { authorizationServiceDefinition } from '../../src/server/protos.js';
import { headerValueFor } from '../../src/tokens/cached-token.js';
import type { InjectConfig } from '../../src/config/types.js';

const encode = authorizationServiceDefinition().Check!.responseSerialize as (v: CheckResponseObject) => Buffer;

interface Shape {
  readonly inject: InjectConfig;
  readonly alsoRemove: readonly string[];
  readonly withSubject: boolean;
}

function encoderFor(s: Shape): (v: SlotValues) => Buffer {
  return (v) => encode(okWithToken('orders', { headerValue: headerValueFor(s.inject.format, v[1], v[0]), tokenId: v[2] }, 'cache', s.inject, s.withSubject ? v[3] : undefined, s.alsoRemove));
}

const SAMPLES: SlotValues[] = [['t', 'Bearer', 'a', 's'], ['x'.repeat(300), 'DPoP', 'id', 'ü'.repeat(70)]];

const shapes: Shape[] = [];
for (const format of ['Bearer {token}', '{token_type} {token}', '{token}', 'X-{token};{token_type};{token}'])
  for (const removeHeaders of [[], ['x-api-key', 'cookie']])
    for (const alsoRemove of [[], ['authorization']])
      for (const withSubject of [false, true]) shapes.push({ inject: { header: 'x-upstream-auth', format, removeHeaders, maxTokenBytes: 65_536 }, alsoRemove, withSubject });

/** Lengths around each varint boundary of every enclosing length prefix. */
const LENGTHS = [1, 2, 40, 60, 100, 110, 120, 127, 128, 129, 200, 600, 1_024, 4_000, 16_200, 16_383, 16_384, 16_500, 70_000];

describe('AnswerTemplate', () => {
  it.each(shapes.map((s, i) => [i, s] as const))('splices what the encoder writes, shape %i', (_i, shape) => {
    const enc = encoderFor(shape);
    const t = AnswerTemplate.fromEncoder(enc(SENTINELS), enc, SAMPLES);
    let compared = 0;
    for (const tokenLen of LENGTHS) {
      for (const [idLen, subject] of [[12, 'alice'], [1, ''], [130, 'Zoë 😀'.repeat(30)], [200, 'ü'.repeat(8_200)]] as const) {
        const v: SlotValues = [`tok${'A'.repeat(tokenLen)}`, tokenLen % 2 ? 'Bearer' : 'N_A', 'i'.repeat(idLen), subject];
        const want = enc(v);
        const got = t.splice(v[0], v[1], v[2], v[3]);
        expect(got[0]).toBe(0);
        expect(got.readUInt32BE(1)).toBe(want.length);
        expect(got.subarray(5).equals(want)).toBe(true);
        compared++;
      }
    }
    expect(compared).toBe(LENGTHS.length * 4);
  });

  it('refuses a template whose splice differs from the encoder on a sample', () => {
    const shape = shapes[0]!;
    const enc = encoderFor(shape);
    // An "encoder" that writes something else for long tokens: the self-check must catch it.
    const lying = (v: SlotValues): Buffer => (v[0].length > 100 ? Buffer.concat([enc(v), Buffer.from([0x08, 0x01])]) : enc(v));
    expect(() => AnswerTemplate.fromEncoder(enc(SENTINELS), lying, SAMPLES)).toThrow(TemplateError);
  });

  it('refuses an encoding whose sentinel is not where a CheckResponse string would be', () => {
    // The sentinel as a top-level string field: nested too shallow to be an answer's value.
    const sentinel = Buffer.from(SENTINELS[0], 'utf8');
    const shallow = Buffer.concat([Buffer.from([0x0a, sentinel.length]), sentinel]);
    expect(() => AnswerTemplate.fromEncoder(shallow, () => shallow, [])).toThrow(TemplateError);
  });
});
