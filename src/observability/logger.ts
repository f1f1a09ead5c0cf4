// Structured JSON logs, one object per line. Fields pass through `redact` so a token cannot
// reach a log line even when a caller gets it wrong.
import type { LogLevel } from '../config/types.js';
import { redact } from './redact.js';

const ORDER: Readonly<Record<LogLevel, number>> = { debug: 10, info: 20, warn: 30, error: 40 };

export type LogSink = (line: string) => void;

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  enabled(level: LogLevel): boolean;
  /**
   * An audit line (observability/audit.ts): written at level info whatever the threshold is.
   * Optional so that a hand-made Logger still fits; `audit()` falls back to info().
   */
  audit?(msg: string, fields: Record<string, unknown>): void;
  child(fields: Record<string, unknown>): Logger;
  setLevel(level: LogLevel): void;
}

export function createLogger(opts: { level?: LogLevel; sink?: LogSink; base?: Record<string, unknown> } = {}): Logger {
  const state = { level: ORDER[opts.level ?? 'info'] };
  const sink: LogSink = opts.sink ?? stdoutSink();
  const make = (base: Record<string, unknown>): Logger => {
    const write = (level: LogLevel, msg: string, fields?: Record<string, unknown>, always = false) => {
      if (ORDER[level] < state.level && !always) return;
      const record = { time: new Date().toISOString(), level, msg, ...base, ...fields };
      sink(JSON.stringify(redact(record)));
    };
    return {
      debug: (m, f) => write('debug', m, f),
      info: (m, f) => write('info', m, f),
      warn: (m, f) => write('warn', m, f),
      error: (m, f) => write('error', m, f),
      enabled: (level) => ORDER[level] >= state.level,
      audit: (m, f) => write('info', m, f, true),
      child: (fields) => make({ ...base, ...fields }),
      setLevel: (level) => {
        state.level = ORDER[level];
      },
    };
  };
  return make(opts.base ?? {});
}

// A reader that goes away (`tokengate serve | head`, a log shipper restarting) makes stdout
// emit EPIPE; unhandled, that 'error' event would take the whole gateway down for the sake of
// a log line. Logs are best effort; serving tokens is not. Once stdout is gone, lines are
// dropped and the process keeps serving.
let stdoutGuarded = false;
function stdoutSink(): LogSink {
  if (!stdoutGuarded) {
    stdoutGuarded = true;
    process.stdout.on('error', () => undefined);
  }
  return (line) => {
    if (process.stdout.writable) process.stdout.write(`${line}\n`);
  };
}

/** A logger that drops everything (library use without a logger). */
export const silentLogger: Logger = createLogger({ level: 'error', sink: () => undefined });
