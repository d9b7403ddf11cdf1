/**
 * In-memory waiters for long-polls: agents holding a check-in until a job is queued for them, and
 * operators holding `GET /api/v1/jobs/:id?wait=` until that job finishes. Nothing here is durable:
 * the database is the truth, a waiter only says "look again now".
 */

export type WakeReason = 'wake' | 'timeout' | 'shutdown' | 'replaced';

interface Waiter {
  resolve: (why: WakeReason) => void;
  timer: NodeJS.Timeout;
}

/** Most check-ins one agent may hold at once; a newer one releases the oldest. */
const MAX_PER_AGENT = 4;

class WaiterSet {
  private readonly byKey = new Map<string, Set<Waiter>>();
  private closed = false;

  constructor(private readonly maxPerKey: number) {}

  /** Resolves on wake(key), after `ms`, on shutdown, or when aborted (then with 'timeout'). */
  wait(key: string, ms: number, signal?: AbortSignal): Promise<WakeReason> {
    if (this.closed) return Promise.resolve('shutdown');
    if (signal?.aborted) return Promise.resolve('timeout');
    return new Promise((resolve) => {
      let set = this.byKey.get(key);
      if (!set) this.byKey.set(key, (set = new Set()));
      if (set.size >= this.maxPerKey) {
        const oldest = set.values().next().value as Waiter;
        this.finish(key, oldest, 'replaced');
      }
      const w: Waiter = {
        resolve,
        timer: setTimeout(() => this.finish(key, w, 'timeout'), ms),
      };
      set.add(w);
      signal?.addEventListener('abort', () => this.finish(key, w, 'timeout'), { once: true });
    });
  }

  private finish(key: string, w: Waiter, why: WakeReason): void {
    const set = this.byKey.get(key);
    if (!set?.delete(w)) return;
    if (set.size === 0) this.byKey.delete(key);
    clearTimeout(w.timer);
    w.resolve(why);
  }

  wake(key: string): number {
    const set = this.byKey.get(key);
    if (!set) return 0;
    const n = set.size;
    for (const w of [...set]) this.finish(key, w, 'wake');
    return n;
  }

  shutdown(): void {
    this.closed = true;
    for (const [key, set] of [...this.byKey]) for (const w of [...set]) this.finish(key, w, 'shutdown');
  }

  get size(): number {
    let n = 0;
    for (const s of this.byKey.values()) n += s.size;
    return n;
  }
}

/** The long-poll hub of one server process. */
export class JobDispatch {
  private readonly agents = new WaiterSet(MAX_PER_AGENT);
  private readonly jobs = new WaiterSet(64);

  /** Holds an agent's check-in until a job is queued for it. */
  waitForJobs(agentId: string, ms: number, signal?: AbortSignal): Promise<WakeReason> {
    return this.agents.wait(agentId, ms, signal);
  }

  private readonly generations = new Map<string, number>();
  private readonly queuedListeners: Array<(agentId: string) => void> = [];

  /** Calls `fn` on every jobQueued() (the delivery worker of push and ssh agents). */
  onJobQueued(fn: (agentId: string) => void): void {
    this.queuedListeners.push(fn);
  }

  /** A job was queued (or approved, or its mode changed) for this agent: answer its held check-ins now. */
  jobQueued(agentId: string): number {
    this.generations.set(agentId, (this.generations.get(agentId) ?? 0) + 1);
    for (const fn of this.queuedListeners) fn(agentId);
    return this.agents.wake(agentId);
  }

  /**
   * Counts jobQueued() calls for the agent: a check-in that read no jobs compares it before and
   * after its (asynchronous) read, so a job queued in between is never left waiting for a timeout.
   */
  generation(agentId: string): number {
    return this.generations.get(agentId) ?? 0;
  }

  /** Holds an operator's request until the job finishes. */
  waitForJob(jobId: string, ms: number, signal?: AbortSignal): Promise<WakeReason> {
    return this.jobs.wait(jobId, ms, signal);
  }

  jobFinished(jobId: string): void {
    this.jobs.wake(jobId);
    this.jobsChanged([jobId]);
  }

  private readonly changedListeners: Array<(jobIds: readonly string[]) => void> = [];
  private readonly agentListeners: Array<(agentId: string) => void> = [];

  /** Calls `fn` whenever jobs change state (the live events of the operator API). */
  onJobsChanged(fn: (jobIds: readonly string[]) => void): void {
    this.changedListeners.push(fn);
  }

  /** Jobs were queued, handed out, reported progress or were asked to cancel (jobFinished says the rest). */
  jobsChanged(jobIds: readonly string[]): void {
    if (jobIds.length === 0) return;
    for (const fn of this.changedListeners) fn(jobIds);
  }

  /** Calls `fn` whenever an agent may have changed state. */
  onAgentChanged(fn: (agentId: string) => void): void {
    this.agentListeners.push(fn);
  }

  /** The agent checked in, was delivered to, approved, rejected or relabelled. */
  agentChanged(agentId: string): void {
    for (const fn of this.agentListeners) fn(agentId);
  }

  /** Answers every held request (server shutting down); later waits resolve at once. */
  shutdown(): void {
    this.agents.shutdown();
    this.jobs.shutdown();
  }

  get heldCheckins(): number {
    return this.agents.size;
  }
}
