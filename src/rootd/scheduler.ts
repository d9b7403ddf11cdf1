/**
 * Runs module actions fairly: at most `limit` at once across all callers, taken round-robin
 * by uid, so one caller's pipelined heavy probes cannot make another caller's request wait
 * behind all of them; no uid holds more than half the slots while others wait. Identical
 * concurrent calls of an action that declares its result shared run once.
 */
import { ErrorCodes, TuxsecError } from '../protocol/errors.ts';

interface Task {
  uid: number;
  run: () => Promise<unknown>;
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
}

export interface SchedulerLimits {
  /** Actions running at once, all callers together. */
  maxConcurrent: number;
  /** Actions waiting for a slot, per uid: past it a request is refused at once. */
  maxQueuedPerUid: number;
}

export class FairScheduler {
  private running = 0;
  private readonly runningByUid = new Map<number, number>();
  private readonly queues = new Map<number, Task[]>();
  /** uids with waiting tasks, in the order they get their next slot. */
  private readonly turn: number[] = [];
  private readonly shared = new Map<string, Promise<unknown>>();

  constructor(private readonly limits: () => SchedulerLimits) {}

  /** Tasks waiting, and running, now. */
  get load(): { running: number; waiting: number } {
    let waiting = 0;
    for (const q of this.queues.values()) waiting += q.length;
    return { running: this.running, waiting };
  }

  /**
   * Runs `fn` when a slot is free. With a `sharedKey`, a call identical to one already
   * waiting or running gets that call's result. An abort of `signal` while waiting
   * takes the task out of the queue and rejects with the signal's reason.
   */
  run<T>(uid: number, fn: () => Promise<T>, opts: { signal?: AbortSignal; sharedKey?: string } = {}): Promise<T> {
    const { signal, sharedKey } = opts;
    if (sharedKey !== undefined) {
      const same = this.shared.get(sharedKey);
      if (same) return same as Promise<T>;
    }
    const p = this.enqueue(uid, fn, signal);
    if (sharedKey !== undefined) {
      this.shared.set(sharedKey, p);
      const forget = () => {
        if (this.shared.get(sharedKey) === p) this.shared.delete(sharedKey);
      };
      p.then(forget, forget);
    }
    return p;
  }

  private enqueue<T>(uid: number, fn: () => Promise<T>, signal: AbortSignal | undefined): Promise<T> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    const limits = this.limits();
    const q = this.queues.get(uid) ?? [];
    if (q.length >= limits.maxQueuedPerUid) {
      return Promise.reject(
        new TuxsecError(ErrorCodes.rateLimited, `too many requests waiting from uid ${uid} (max_queued_per_uid ${limits.maxQueuedPerUid}); retry later`),
      );
    }
    return new Promise<T>((resolve, reject) => {
      const task: Task = { uid, run: fn, resolve: resolve as (v: unknown) => void, reject, signal, onAbort: undefined };
      if (signal) {
        task.onAbort = () => {
          const tq = this.queues.get(uid);
          const i = tq ? tq.indexOf(task) : -1;
          if (i === -1) return; // already running: the action sees the signal itself
          tq!.splice(i, 1);
          if (tq!.length === 0) this.dropUid(uid);
          reject(signal.reason);
        };
        signal.addEventListener('abort', task.onAbort, { once: true });
      }
      if (q.length === 0) {
        this.queues.set(uid, q);
        this.turn.push(uid);
      }
      q.push(task);
      this.pump();
    });
  }

  private dropUid(uid: number): void {
    this.queues.delete(uid);
    const i = this.turn.indexOf(uid);
    if (i !== -1) this.turn.splice(i, 1);
  }

  private pump(): void {
    const { maxConcurrent } = this.limits();
    // While others wait, one uid keeps at most half the slots (at least one).
    const perUid = Math.max(1, Math.ceil(maxConcurrent / 2));
    let skipped = 0;
    while (this.running < maxConcurrent && this.turn.length > 0 && skipped < this.turn.length) {
      const uid = this.turn.shift()!;
      const q = this.queues.get(uid)!;
      const mine = this.runningByUid.get(uid) ?? 0;
      if (mine >= perUid && this.turn.length > 0) {
        // Its turn passes to the next uid; it stays in line.
        this.turn.push(uid);
        skipped++;
        continue;
      }
      skipped = 0;
      const task = q.shift()!;
      if (q.length === 0) this.queues.delete(uid);
      else this.turn.push(uid);
      this.start(task);
    }
  }

  private start(task: Task): void {
    if (task.onAbort) task.signal!.removeEventListener('abort', task.onAbort);
    this.running++;
    this.runningByUid.set(task.uid, (this.runningByUid.get(task.uid) ?? 0) + 1);
    let p: Promise<unknown>;
    try {
      p = task.run();
    } catch (e) {
      p = Promise.reject(e);
    }
    p.then(task.resolve, task.reject).finally(() => {
      this.running--;
      const n = (this.runningByUid.get(task.uid) ?? 1) - 1;
      if (n <= 0) this.runningByUid.delete(task.uid);
      else this.runningByUid.set(task.uid, n);
      this.pump();
    });
  }
}
