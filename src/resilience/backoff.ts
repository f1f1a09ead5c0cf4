/**
 * Exponential backoff with full jitter (a random wait in [0, min(max, base·2^attempt)]), so
 * replicas that failed together do not retry together.
 */
export function fullJitterDelay(attempt: number, baseMs: number, maxMs: number, random: () => number = Math.random): number {
  const ceiling = Math.min(maxMs, baseMs * 2 ** Math.min(attempt, 30));
  return Math.floor(random() * ceiling);
}
