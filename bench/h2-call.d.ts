// Types for h2-call.js (bench code is plain JS; tests import it from TypeScript).
export declare const CHECK_METHOD: string;
export declare const H2_HEADERS: Readonly<Record<string, string>>;
export declare const kIndex: unique symbol;
/** What `done` sees as `this`: the call's index. */
export interface CallContext {
  [kIndex]: number;
}
export type Done = (this: CallContext, err: Error | null, answer?: Buffer) => void;
export declare function framed(buf: Buffer): Buffer;
