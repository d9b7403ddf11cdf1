/**
 * The one retry policy: exponential backoff with full jitter (so many agents that failed together
 * do not come back together), never sooner than the server's Retry-After, and a sleep that an
 * AbortSignal cuts short so a stop never waits out a backoff.
 */

export interface BackoffOptions {
  /** The ceiling of the first delay, ms. */
  baseMs: number;
  /** The ceiling of every delay, ms (Retry-After may ask for more). */
  maxMs: number;
  /** Seconds the server asked to wait (Retry-After), or null. */
  retryAfterSec?: number | null;
  random?: () => number;
}

/** The delay before retry number `failures` (1 = after the first failure): uniform in [0, min(max, base * 2^(n-1))], at least Retry-After. */
export function backoffDelay(failures: number, opts: BackoffOptions): number {
  const ceiling = Math.min(opts.maxMs, opts.baseMs * 2 ** Math.min(30, Math.max(0, failures - 1)));
  const d = Math.floor((opts.random ?? Math.random)() * ceiling);
  const after = opts.retryAfterSec;
  return after === null || after === undefined ? d : Math.max(d, Math.ceil(after * 1000));
}

/** Sleeps `ms`, resolving early (not rejecting) when `signal` aborts. */
export function abortableSleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}
