// A per-caller cache hit splices its answer from a per-provider template (src/server/answer-
// template.ts). When the template refuses itself (its splice differs from the encoder, or the
// runtime lacks Buffer's UTF-8 writer), every hit encodes instead: same answer, no error.
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { AnswerTemplate, TemplateError } from '../../src/server/answer-template.js';
import { envoyRequest, injected, metadata, type CheckResponse } from '../support/envoy-request.js';
import { startTestApp, type TestApp } from '../support/app.js';
import { ExchangeIdp, perCallerSource } from '../support/exchange-idp.js';

const yaml = (idp: ExchangeIdp): string => `
providers:
  orders:
    source: ${perCallerSource(idp, { scheme: 'Bearer', verify: true })}
    cache: { maxEntries: 100, negativeTtl: 30s }
`;

const check = (t: TestApp, token: string): Promise<CheckResponse> =>
  t.client.check(envoyRequest({ contextExtensions: { provider: 'orders' }, headers: { authorization: `Bearer ${token}` } }));

/** The cache hit of one caller, as the fields an upstream sees. */
async function hitOf(idp: ExchangeIdp, t: TestApp): Promise<{ first: CheckResponse; hit: CheckResponse }> {
  const alice = await idp.subjectToken({ sub: 'alice' });
  const first = await check(t, alice);
  const hit = await check(t, alice);
  return { first, hit };
}

describe('per-caller cache hits without a template', () => {
  let idp: ExchangeIdp;
  let t: TestApp | undefined;
  beforeAll(async () => { idp = await new ExchangeIdp().start(); });
  afterAll(async () => idp?.stop());
  afterEach(async () => {
    vi.restoreAllMocks();
    await t?.close();
    t = undefined;
    idp.reset();
  });

  it('a template that refuses itself: every hit is encoded, with the same answer a spliced hit gives', async () => {
    const built = vi.spyOn(AnswerTemplate, 'fromEncoder');
    t = await startTestApp(yaml(idp));
    const spliced = await hitOf(idp, t);
    expect(built).toHaveBeenCalled();
    await t.close();
    idp.reset();
    built.mockImplementation(() => { throw new TemplateError('refused for the test'); });

    t = await startTestApp(yaml(idp));
    const encoded = await hitOf(idp, t);
    for (const { first, hit } of [spliced, encoded]) {
      expect(hit.status?.code ?? 0).toBe(0);
      expect(metadata(hit)).toMatchObject({ provider: 'orders', subject: 'alice', source: 'cache', token_id: metadata(first).token_id });
      expect(injected(hit)?.header?.value).toBe(injected(first)?.header?.value);
    }
    // Apart from the token itself (a new exchange), the two hits are the same answer.
    const shape = (r: CheckResponse) => JSON.stringify(r).replaceAll(injected(r)!.header!.value!, 'TOKEN').replaceAll(String(metadata(r).token_id), 'ID');
    expect(shape(encoded.hit)).toBe(shape(spliced.hit));
  });
});
