// The Check path of a per-caller provider (token_exchange with the caller's subject token):
// the caller's header is read from the raw CheckRequest, the provider's cache answers a hit
// synchronously with an answer encoded once per caller token, and the slow path turns every
// outcome into the contract's CheckResponse (401 / 403 / 503).
import type { ProviderConfig } from '../config/types.js';
import type { Metrics } from '../observability/metrics.js';
import type { CounterCell } from '../observability/prometheus.js';
import type { CallerEntry } from '../tokens/per-caller/caller-cache.js';
import type { CallerAnswer, PerCallerProvider } from '../tokens/per-caller/per-caller-provider.js';
import type { InjectedToken, TokenServeSource } from '../tokens/cached-token.js';
import {
  deniedExchangeRejected, deniedInvalidSubject, deniedTokenUnavailable, okWithToken, type CheckResponseObject,
} from './check-response.js';
import { CheckRequestReader } from './check-request-reader.js';
import { frameMessage, type FramedAnswer } from './framed-answer.js';
import { AnswerTemplate, SENTINELS, TemplateError, type SlotValues } from './answer-template.js';
import { headerValueFor } from '../tokens/cached-token.js';

/**
 * Values a template must splice exactly as the encoder writes them before it is used: short and
 * long (length prefixes of one, two and three bytes), ASCII and not (the subject is any `sub` claim).
 */
const TEMPLATE_SAMPLES: readonly SlotValues[] = [
  ['t', 'Bearer', 'a', 's'],
  ['x'.repeat(300), 'DPoP', 'id-123456789', 'ü'.repeat(70)],
  ['y'.repeat(20_000), 'N_A', 'z'.repeat(200), 'subject-\u{1F600}'.repeat(40)],
];

export class CallerLane {
  private readonly reader: CheckRequestReader;
  private readonly header: string;
  /** The caller's header when the injection does not overwrite it: it never goes upstream. */
  private readonly alsoRemove: readonly string[];
  private readonly hitCell: CounterCell;
  /** The cache-hit answer's templates, built on first use (undefined) or refused by their self-check (null). */
  private plainTemplate: AnswerTemplate | null | undefined;
  private subjectTemplate: AnswerTemplate | null | undefined;

  constructor(readonly provider: PerCallerProvider, private readonly metrics: Metrics, private readonly encode: (v: CheckResponseObject) => Buffer) {
    this.header = provider.header;
    this.reader = new CheckRequestReader('provider', [this.header]);
    this.alsoRemove = provider.config.inject.header === this.header ? [] : [this.header];
    this.hitCell = metrics.checks.cell(provider.name, 'ok', 'cache');
  }

  get config(): ProviderConfig {
    return this.provider.config;
  }

  /** The caller's header value in this request (undefined when absent). */
  subjectHeader(raw: Buffer): string | undefined {
    return this.reader.readHttp(raw)?.headers?.[this.header];
  }

  /** A cache hit's encoded answer, or undefined for the slow path. */
  hit(headerValue: string | undefined, now: number): FramedAnswer | undefined {
    const e = this.provider.lookup(headerValue, now);
    if (e === undefined || e.stale) return undefined;
    this.hitCell.value++;
    return this.cached(e);
  }

  /**
   * A cache hit's framed answer, spliced from the provider's template and the entry's strings into
   * a short-lived buffer (answer-template.ts says why nothing is kept per caller).
   */
  private cached(e: CallerEntry): FramedAnswer {
    const t = e.subject === undefined ? (this.plainTemplate ??= this.template(false)) : (this.subjectTemplate ??= this.template(true));
    if (t === null) return frameMessage(this.encode(okWithToken(this.provider.name, injected(e, this.config.inject.format), 'cache', this.config.inject, e.subject, this.alsoRemove))) as FramedAnswer;
    return t.splice(e.accessToken, e.tokenType, e.tokenId, e.subject ?? '') as FramedAnswer;
  }

  /** This provider's cache-hit answer as a template, or null when the splice would not match the encoder (then every hit encodes). */
  private template(withSubject: boolean): AnswerTemplate | null {
    const inject = this.config.inject;
    const encodeWith = (v: SlotValues): Buffer => this.encode(okWithToken(
      this.provider.name, { headerValue: headerValueFor(inject.format, v[1], v[0]), tokenId: v[2] }, 'cache', inject, withSubject ? v[3] : undefined, this.alsoRemove,
    ));
    try {
      return AnswerTemplate.fromEncoder(encodeWith(SENTINELS), encodeWith, TEMPLATE_SAMPLES);
    } catch (err) {
      if (err instanceof TemplateError) return null;
      throw err;
    }
  }

  /** Every outcome of the slow path as the contract's answer. */
  answer(a: CallerAnswer, retryAfterSeconds: (err: CallerAnswer & { kind: 'unavailable' }) => number): CheckResponseObject | FramedAnswer {
    const name = this.provider.name;
    switch (a.kind) {
      case 'token':
        return this.ok(a.entry, a.source);
      case 'invalid_subject':
        this.metrics.checks.cell(name, 'denied_invalid_subject', 'none').value++;
        return deniedInvalidSubject(name);
      case 'rejected':
        this.metrics.checks.cell(name, 'denied_exchange_rejected', 'none').value++;
        return deniedExchangeRejected(name, a.idpError);
      case 'unavailable':
        this.metrics.checks.cell(name, 'denied', 'none').value++;
        return deniedTokenUnavailable(name, a.error, retryAfterSeconds(a));
    }
  }

  private ok(e: CallerEntry, source: TokenServeSource): CheckResponseObject | FramedAnswer {
    this.metrics.checks.cell(this.provider.name, 'ok', source).value++;
    if (source === 'cache') return this.cached(e);
    return okWithToken(this.provider.name, injected(e, this.config.inject.format), source, this.config.inject, e.subject, this.alsoRemove);
  }
}

/** The header value and token id an answer injects; the header string is not kept on the entry. */
function injected(e: CallerEntry, format: string): InjectedToken {
  return { headerValue: e.headerValue(format), tokenId: e.tokenId };
}
