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

/** One run that identical concurrent calls share. */
interface SharedRun {
  promise: Promise<unknown>;
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
  fn: () => Promise<unknown>;
  started: boolean;
  /** uids with a claim in their queue. */
  claimants: Set<number>;
  /** Claims not refused. */
  claims: number;
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
  private readonly shared = new Map<string, SharedRun>();

  constructor(private readonly limits: () => SchedulerLimits) {}

  /** Tasks waiting, and running, now. */
  get load(): { running: number; waiting: number } {
    let waiting = 0;
    for (const q of this.queues.values()) waiting += q.length;
    return { running: this.running, waiting };
  }

  /**
   * Runs `fn` when a slot is free. With a `sharedKey`, a call identical to one waiting or running
   * gets that call's result: every uid that asks for it has a claim in its own queue, and the first
   * claim reached runs it, so joining never puts a caller behind another caller's queue. An abort of
   * `signal` while waiting takes the task out of the queue and rejects with the signal's reason.
   */
  run<T>(uid: number, fn: () => Promise<T>, opts: { signal?: AbortSignal; sharedKey?: string } = {}): Promise<T> {
    const { signal, sharedKey } = opts;
    if (sharedKey === undefined) return this.enqueue(uid, fn, signal);
    let entry = this.shared.get(sharedKey);
    if (!entry) {
      let resolve!: (v: unknown) => void;
      let reject!: (e: unknown) => void;
      const promise = new Promise<unknown>((res, rej) => ((resolve = res), (reject = rej)));
      const created: SharedRun = { promise, resolve, reject, fn, started: false, claimants: new Set(), claims: 0 };
      entry = created;
      this.shared.set(sharedKey, created);
      const forget = () => {
        if (this.shared.get(sharedKey) === created) this.shared.delete(sharedKey);
      };
      promise.then(forget, forget);
    }
    if (!entry.started && !entry.claimants.has(uid)) this.claim(entry, uid);
    return entry.promise as Promise<T>;
  }

  /** Puts a claim on a shared run in `uid`'s queue: reached first, it runs it; later, it is a no-op. */
  private claim(entry: SharedRun, uid: number): void {
    entry.claimants.add(uid);
    entry.claims++;
    const start = (): Promise<unknown> => {
      if (entry.started) return Promise.resolve();
      entry.started = true;
      const p = entry.fn();
      p.then(entry.resolve, entry.reject);
      return p;
    };
    this.enqueue(uid, start, undefined).then(
      () => {},
      (e: unknown) => {
        // A claim refused (the uid's queue is full): the run fails only when no claim is left.
        entry.claims--;
        if (!entry.started && entry.claims === 0) entry.reject(e);
      },
    );
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
