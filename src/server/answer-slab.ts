// Where the encoded answers of a per-caller provider's cache hits are kept. An answer lives as
// long as its caller's cache entry (up to the token's lifetime), so it is copied into slabs of
// its own instead of staying where the encoder put it: a small Buffer from Node's shared 8 KB
// pool, whose chunk it would pin together with the short-lived bytes of requests that were in
// flight beside it. With 100 000 cached callers that roughly halves the answers' memory outside
// the JS heap (bench/FINDINGS.md, "Per-caller credentials").

/** One slab: Node's own pool size, so a slab pinned by one live answer holds no more than a pool chunk would. */
export const SLAB_BYTES = 8 * 1024;

export class AnswerSlab {
  private slab: Buffer | undefined;
  private used = 0;

  /**
   * A copy of `encoded` in the current slab (a new slab when it is full). An answer larger than
   * half a slab is returned as is: the encoder allocated it on its own, not in a shared pool.
   */
  keep(encoded: Buffer): Buffer {
    const n = encoded.length;
    if (n > SLAB_BYTES / 2) return encoded;
    if (this.slab === undefined || this.used + n > SLAB_BYTES) {
      this.slab = Buffer.allocUnsafeSlow(SLAB_BYTES);
      this.used = 0;
    }
    const out = this.slab.subarray(this.used, this.used + n);
    encoded.copy(out);
    this.used += n;
    return out;
  }
}
