/**
 * Group commit: storage work queued during one turn of the event loop runs in one transaction, so
 * many concurrent check-ins, results and submissions share one fsync (synchronous=FULL) instead of
 * queueing behind one fsync each. Each caller's promise settles only after the commit.
 */
import type { Storage } from './storage/storage.ts';

interface Item {
  fn: () => unknown;
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
}

export class GroupCommit {
  private queue: Item[] = [];
  private scheduled = false;

  constructor(private readonly storage: Pick<Storage, 'batch'>) {}

  /** Runs `fn` in the next group transaction; resolves with its value once committed. */
  run<T>(fn: () => T): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ fn, resolve: resolve as (v: unknown) => void, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  /** Runs everything queued now (also used at shutdown). */
  flush(): void {
    this.scheduled = false;
    const items = this.queue;
    this.queue = [];
    if (items.length === 0) return;
    const outcomes: Array<{ ok: true; v: unknown } | { ok: false; e: unknown }> = [];
    try {
      this.storage.batch(() => {
        for (const it of items) {
          try {
            // Each item is itself a transaction, so it nests as a savepoint: a failure rolls back
            // that item alone.
            outcomes.push({ ok: true, v: this.storage.batch(it.fn) });
          } catch (e) {
            outcomes.push({ ok: false, e });
          }
        }
      });
    } catch (e) {
      for (const it of items) it.reject(e);
      return;
    }
    items.forEach((it, i) => {
      const o = outcomes[i]!;
      if (o.ok) it.resolve(o.v);
      else it.reject(o.e);
    });
  }
}
