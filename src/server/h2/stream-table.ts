// node:http2 keeps a session's open streams in a Map (`session[kState].streams`: set when a
// stream opens, deleted when it closes). A Map that churns like that is rehashed every few
// streams, and V8 links each replaced backing table to its successor (for live iterators) without
// clearing its entries. Once a full GC has promoted one of those tables while it was current,
// the dead table in old space keeps its successor, and the streams in it, alive through every
// scavenge: they are promoted, become the next dead link, and so on until the next full GC, which
// promotes the table current at that moment and starts a new chain. Under load that is every
// stream's object graph (~1.3 KB a Check) promoted, old space growing by megabytes a second and a
// mark-compact every few seconds: a process is in that state from its first full GC under load,
// whatever its young generation (bench/FINDINGS.md, "What the promoted kilobyte was").
//
// A StreamTable holds the same entries in a dictionary object: a replaced hash table is dropped,
// not linked forward, so there is no chain. It offers exactly what node:http2 calls on the Map
// (get, set, delete, size, forEach), so node's code is unchanged.
import { types } from 'node:util';

/** What node:http2 uses of `session[kState].streams`. */
export class StreamTable<V> {
  private entries: Record<number, V> = Object.create(null) as Record<number, V>;
  private count = 0;
  /**
   * When the last open stream closed (Date.now()), for max-connection-idle (idle-accounting.ts):
   * the table sees every stream open and close, so a Check stream needs no listener of its own.
   */
  idleSince = 0;
  /** Called once, the next time the last open stream closes (then cleared). */
  onEmpty: (() => void) | undefined = undefined;

  get size(): number {
    return this.count;
  }

  get(id: number): V | undefined {
    return this.entries[id];
  }

  set(id: number, value: V): this {
    if (!(id in this.entries)) this.count++;
    this.entries[id] = value;
    return this;
  }

  delete(id: number): boolean {
    if (!(id in this.entries)) return false;
    delete this.entries[id];
    if (--this.count === 0) {
      this.idleSince = Date.now();
      const onEmpty = this.onEmpty;
      if (onEmpty !== undefined) {
        this.onEmpty = undefined;
        onEmpty();
      }
    }
    return true;
  }

  /** In ascending id order, which for HTTP/2 stream ids is the order the streams opened. */
  forEach(fn: (value: V, id: number, table: this) => void): void {
    for (const key of Object.keys(this.entries)) {
      const id = Number(key);
      const value = this.entries[id];
      if (value !== undefined) fn(value, id, this);
    }
  }
}

interface SessionState {
  streams: unknown;
}

/**
 * Puts a StreamTable in place of a new session's stream Map and returns it. Returns undefined,
 * leaving the session as it is (correct, only without the fix), when this Node keeps its streams
 * some other way.
 */
// node's SafeMap is a Map whose prototype chain is not Map.prototype: `instanceof Map` is false.
export function installStreamTable(session: object): StreamTable<unknown> | undefined {
  const symbol = Object.getOwnPropertySymbols(session).find((s) => s.description === 'state');
  if (symbol === undefined) return undefined;
  const state = (session as Record<symbol, unknown>)[symbol] as SessionState | undefined;
  if (typeof state !== 'object' || state === null || !types.isMap(state.streams) || (state.streams as Map<unknown, unknown>).size !== 0) return undefined;
  const table = new StreamTable<unknown>();
  state.streams = table;
  return table;
}
