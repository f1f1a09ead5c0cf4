// The one way a test waits for something that happens on its own (a background refresh, a log
// line, a reconnect): poll a condition, and fail with what was awaited when it does not come.
// Polling a real condition instead of sleeping keeps tests fast when things are quick and
// tolerant when the two shared cores are busy.

export type Condition = () => boolean | Promise<boolean>;

const POLL_MS = 10;

/**
 * Resolves once `cond` is true; rejects after `timeoutMs` with "timed out after N ms waiting
 * for WHAT" (WHAT defaults to the condition's own source text, so a bare arrow still reads well).
 */
export async function until(cond: Condition, timeoutMs = 5_000, what?: string): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    if (await cond()) return;
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what ?? describe(cond)}`);
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}

function describe(cond: Condition): string {
  const text = cond.toString().replace(/\s+/g, ' ').replace(/^\(\) => /, '');
  return text.length > 160 ? `${text.slice(0, 157)}...` : text;
}
