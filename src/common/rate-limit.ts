/**
 * A token bucket per caller: `rate` tokens a second up to `burst`. rootd keys it by uid (every
 * request line takes a token, refused or not: a refusal costs parsing and an audit record as much
 * as a success); tuxsec-server by operator, for the batches it creates.
 */
export class RateLimiter<K = number> {
  private readonly buckets = new Map<K, { tokens: number; at: number; refused: number }>();
  /**
   * Called when a caller gets a token again after `refused` refusals in a row, so that a run
   * of refusals is audited as one record rather than one record per refused line.
   */
  onRefusalsEnded: ((uid: K, refused: number) => void) | null = null;

  constructor(
    private rate: number,
    private burst: number,
  ) {}

  configure(rate: number, burst: number): void {
    this.rate = rate;
    this.burst = burst;
  }

  /** Takes one token for uid; false when the bucket is empty. */
  take(uid: K, now = performance.now()): boolean {
    let b = this.buckets.get(uid);
    if (!b) {
      b = { tokens: this.burst, at: now, refused: 0 };
      this.buckets.set(uid, b);
    }
    b.tokens = Math.min(this.burst, b.tokens + ((now - b.at) / 1000) * this.rate);
    b.at = now;
    if (b.tokens < 1) {
      b.refused++;
      return false;
    }
    b.tokens -= 1;
    if (b.refused > 0) {
      const n = b.refused;
      b.refused = 0;
      this.onRefusalsEnded?.(uid, n);
    }
    return true;
  }

  /** Refusals of uid in the current run (1 for the first one refused). */
  refusedInARow(uid: K): number {
    return this.buckets.get(uid)?.refused ?? 0;
  }

  /** Whole seconds until uid has a token again, as of its last take (0: it has one). */
  retryAfter(uid: K): number {
    const b = this.buckets.get(uid);
    if (!b || b.tokens >= 1) return 0;
    return Math.max(1, Math.ceil((1 - b.tokens) / this.rate));
  }
}
