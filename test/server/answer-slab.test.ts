// The per-caller answers' slabs: exact copies, never overlapping, a fresh slab when one is full,
// large answers passed through.
import { describe, expect, it } from 'vitest';
import { AnswerSlab, SLAB_BYTES } from '../../src/server/answer-slab.js';

const answer = (n: number, fill: number): Buffer => Buffer.alloc(n, fill);

describe('AnswerSlab', () => {
  it('keeps exact copies that do not share bytes with the encoder\'s buffer or each other', () => {
    const slab = new AnswerSlab();
    const a = answer(150, 1);
    const b = answer(200, 2);
    const ka = slab.keep(a);
    const kb = slab.keep(b);
    expect(Buffer.isBuffer(ka)).toBe(true);
    expect(ka.equals(a)).toBe(true);
    expect(kb.equals(b)).toBe(true);
    a.fill(9);
    b.fill(9);
    expect(ka.equals(answer(150, 1))).toBe(true);
    expect(kb.equals(answer(200, 2))).toBe(true);
    // Packed one after the other in the same slab.
    expect(ka.buffer).toBe(kb.buffer);
    expect(kb.byteOffset).toBe(ka.byteOffset + 150);
  });

  it('starts a new slab when the answer does not fit, leaving the kept ones intact', () => {
    const slab = new AnswerSlab();
    const kept = Array.from({ length: 100 }, (_, i) => slab.keep(answer(1_000, i)));
    kept.forEach((k, i) => expect(k.equals(answer(1_000, i)), `answer ${i}`).toBe(true));
    const slabs = new Set(kept.map((k) => k.buffer));
    expect(slabs.size).toBe(Math.ceil(100 / Math.floor(SLAB_BYTES / 1_000)));
    for (const s of slabs) expect(s.byteLength).toBe(SLAB_BYTES);
  });

  it('passes an answer larger than half a slab through as it is', () => {
    const big = answer(SLAB_BYTES / 2 + 1, 7);
    expect(new AnswerSlab().keep(big)).toBe(big);
  });
});
