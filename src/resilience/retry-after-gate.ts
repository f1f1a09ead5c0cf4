// Retry-After is a promise we made to the token endpoint, not to one caller: every provider
// and every attempt that talks to the same endpoint waits until the gate opens.

export class RetryAfterGate {
  private readonly until = new Map<string, number>();

  /** Records "no request to endpoint before at". Never shortens an existing wait. */
  block(endpoint: string, at: number): void {
    const current = this.until.get(endpoint) ?? 0;
    if (at > current) this.until.set(endpoint, at);
  }

  /** Milliseconds still to wait before calling endpoint (0 = go). */
  remaining(endpoint: string, now: number): number {
    const at = this.until.get(endpoint);
    if (at === undefined) return 0;
    if (at <= now) {
      this.until.delete(endpoint);
      return 0;
    }
    return at - now;
  }
}
