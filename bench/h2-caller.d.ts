// Types for h2-caller.js (bench code is plain JS; tests import it from TypeScript).
import type { Done } from './h2-call.js';

export declare class H2Caller {
  constructor(address: string);
  ready(): Promise<void>;
  close(): void;
  send(frame: Buffer, done: Done, index: number): void;
}
