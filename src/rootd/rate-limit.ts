/**
 * Token bucket per uid: `rate` tokens a second up to `burst`.
 */
export class RateLimiter {
  private readonly buckets = new Map<number, { tokens: number; at: number }>();

  constructor(
    private rate: number,
    private burst: number,
  ) {}

  configure(rate: number, burst: number): void {
    this.rate = rate;
    this.burst = burst;
  }

  /** Takes one token for uid; false when the bucket is empty. */
  take(uid: number, now = performance.now()): boolean {
    let b = this.buckets.get(uid);
    if (!b) {
      b = { tokens: this.burst, at: now };
      this.buckets.set(uid, b);
    }
    b.tokens = Math.min(this.burst, b.tokens + ((now - b.at) / 1000) * this.rate);
    b.at = now;
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }
}
