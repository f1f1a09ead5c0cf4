// Types for raw-h2.js (bench code is plain JS; tests import it from TypeScript).
import type { Done } from './h2-call.js';

export type RawH2ErrorCode = 'ERR_H2_TRAILERS_ONLY' | 'ERR_H2_NO_TRAILERS' | 'ERR_H2_RST_STREAM' | 'ERR_H2_GOAWAY' | 'ERR_H2_CONNECTION' | 'ERR_H2_PROTOCOL' | 'ERR_H2_CLOSED';

export declare class RawH2Error extends Error {
  readonly code: RawH2ErrorCode;
  /** RST_STREAM's or GOAWAY's error code. */
  readonly h2Code?: number;
  /** GOAWAY's last stream id. */
  readonly lastStreamId?: number;
}

export interface RawH2Options {
  /** Request headers (default: H2_HEADERS of h2-call.js); :authority is the address, :scheme http. */
  headers?: Record<string, string>;
  /** Hand each call's DATA payload to `done` as its second argument (tests). */
  keepAnswers?: boolean;
}

export declare class RawH2Caller {
  constructor(address: string, opts?: RawH2Options);
  /** Connected and the server's first SETTINGS applied. */
  ready(): Promise<void>;
  close(): void;
  /** Streams open now (a call waiting under SETTINGS_MAX_CONCURRENT_STREAMS is not one). */
  readonly active: number;
  send(frame: Buffer, done: Done, index: number): void;
}

/** The first and the later HPACK header blocks of a connection (exported for tests). */
export declare function headerBlocks(fields: [string, string][], tableSize: number): { first: Buffer; later: Buffer; indexed: boolean };
