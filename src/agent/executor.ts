/**
 * THE executor: every job, whatever transport brought it (pull now; push and SSH next), goes
 * through `Executor.run`: shape check, journal (at most once), policy, rootd call, result
 * envelope, durable hand-off to a sink (the outbox in pull mode), journal finish.
 */
import { abortableSleep, backoffDelay } from '../common/backoff.ts';
import { ErrorCodes, isTuxsecError } from '../protocol/errors.ts';
import { parseJob, type JobEnvelope, type ResultEnvelope } from '../protocol/jobs.ts';
import { findPoisonKey, nestingDepth } from '../protocol/json.ts';
import type { OperationInfo } from '../protocol/messages.ts';
import type { Journal } from './journal.ts';
import { policyAllows, policyRefusal, type Policy } from './policy.ts';

// The policy has its own file so tuxsec-shell checks it without loading the executor.
export { policyAllows, type Policy };

// The outbox and its tests take the result type from the executor that makes it.
export type { ResultEnvelope };

/** What the executor needs of rootd (RootdClient satisfies it); `start` and `waitForOperation` let a watcher follow operations. */
export interface RootdExecutor {
  execute(module: string, action: string, parameters?: Record<string, unknown>, opts?: { timeoutMs?: number }): Promise<unknown>;
  start?(module: string, action: string, parameters?: Record<string, unknown>, opts?: { timeoutMs?: number }): Promise<{ data: unknown } | { operation: OperationInfo }>;
  waitForOperation?(op: OperationInfo, onProgress?: (info: OperationInfo) => void): Promise<unknown>;
}

/** Follows jobs whose action runs as a rootd operation (progress.ts reports them to the server). */
export interface JobWatcher {
  /** The operation's latest status, seen about twice a second while it runs. */
  progress(jobId: string, op: OperationInfo): void;
  /** The job's operation ended (its result follows through the sink). */
  finished(jobId: string): void;
}

export interface ExecutorDeps {
  rootd: RootdExecutor;
  journal: Journal;
  /** Makes the result durable (outbox). Must not return before it is. */
  sink: (r: ResultEnvelope) => void | Promise<void>;
  policy?: Policy;
  now?: () => Date;
  log?: { info(o: object, m: string): void; warn(o: object, m: string): void };
  /** Results whose JSON is larger are replaced by an error (the server refuses bodies over 1 MiB). */
  maxResultBytes?: number;
  /** Per-job rootd timeout in ms. */
  timeoutMs?: number;
  /** How long to retry while rootd's socket refuses connections (restarting). Default 15 s. */
  connectRetryMs?: number;
  /** Aborted at stop: a retry waiting for rootd gives up at once. */
  signal?: AbortSignal;
  /** Told of long-running actions' progress (pull mode). */
  watch?: JobWatcher;
}

export type RunOutcome = { ran: true; result: ResultEnvelope } | { ran: false; reason: 'duplicate' | 'invalid' };

/** A result rides two levels deep in a check-in (body, command_results); servers refuse JSON deeper than 64. */
const MAX_RESULT_DEPTH = 62;

export class Executor {
  private readonly d: ExecutorDeps;
  private readonly now: () => Date;

  constructor(deps: ExecutorDeps) {
    this.d = deps;
    this.now = deps.now ?? (() => new Date());
  }

  /**
   * At start-up: every job the journal shows started but unfinished was cut by a crash. It is
   * reported `interrupted`, never re-run (it may have changed the system already).
   */
  async recover(hasResult: (id: string) => boolean): Promise<number> {
    let n = 0;
    for (const e of this.d.journal.unfinished()) {
      if (!hasResult(e.id)) {
        const t = this.now();
        await this.d.sink({
          command_id: e.id,
          success: false,
          error: `job "${e.id}" (${e.module} ${e.action}) was interrupted: the agent stopped while it ran; it was not run again`,
          status: 'interrupted',
          code: ErrorCodes.interrupted,
          started_at: e.started_at,
          finished_at: t.toISOString(),
          duration_ms: Math.max(0, t.getTime() - Date.parse(e.started_at)),
        });
        n++;
      }
      this.d.journal.finish(e.id);
    }
    return n;
  }

  /** Runs a job at most once. A repeated id returns `{ran: false, reason: 'duplicate'}`. */
  async run(raw: unknown): Promise<RunOutcome> {
    const checked = parseJob(raw);
    if (!('job' in checked)) {
      if (checked.id === null) {
        this.d.log?.warn({ error: checked.error }, 'job refused');
        return { ran: false, reason: 'invalid' };
      }
      if (this.d.journal.has(checked.id)) return { ran: false, reason: 'duplicate' };
      const t = this.now();
      const r = this.envelope(checked.id, t, t, { success: false, error: checked.error, code: ErrorCodes.invalidRequest });
      this.d.journal.start(checked.id, '?', '?', t.toISOString());
      await this.d.sink(r);
      this.d.journal.finish(checked.id);
      return { ran: true, result: r };
    }
    const job = checked.job;
    if (this.d.journal.has(job.id)) return { ran: false, reason: 'duplicate' };
    const started = this.now();
    this.d.journal.start(job.id, job.module, job.action, started.toISOString());
    let outcome: { success: true; output: unknown } | { success: false; error: string; code: string };
    if (!policyAllows(this.d.policy, job.module, job.action)) {
      outcome = {
        success: false,
        error: policyRefusal(job.module, job.action),
        code: ErrorCodes.permissionDenied,
      };
    } else {
      try {
        const output = await this.callRootd(job);
        outcome = { success: true, output };
      } catch (e) {
        outcome = {
          success: false,
          error: e instanceof Error ? e.message : String(e),
          code: isTuxsecError(e) ? e.code : ErrorCodes.internal,
        };
      }
    }
    let r = this.envelope(job.id, started, this.now(), outcome);
    const max = this.d.maxResultBytes ?? 512 * 1024;
    // A result the server refuses would stay first in the outbox and fail every check-in after.
    const json = Buffer.from(JSON.stringify(r));
    let refused: { why: string; code: string } | null = null;
    if (json.length > max) refused = { why: `larger than ${max} bytes`, code: ErrorCodes.messageTooLarge };
    else if (nestingDepth(json, MAX_RESULT_DEPTH) > MAX_RESULT_DEPTH) {
      refused = { why: `nested deeper than ${MAX_RESULT_DEPTH} levels`, code: ErrorCodes.invalidRequest };
    } else {
      const poison = findPoisonKey(r.output);
      if (poison) refused = { why: `its output holds the key "${poison}", which servers refuse`, code: ErrorCodes.invalidRequest };
    }
    if (refused) {
      r = this.envelope(job.id, started, new Date(Date.parse(r.finished_at)), {
        success: false,
        error: `cannot report the result of ${job.module} ${job.action}: ${refused.why}`,
        code: refused.code,
      });
    }
    await this.d.sink(r);
    this.d.journal.finish(job.id);
    this.d.log?.info({ command_id: job.id, module: job.module, action: job.action, status: r.status, duration_ms: r.duration_ms }, 'job finished');
    return { ran: true, result: r };
  }

  /**
   * Calls rootd, retrying only while the socket cannot be connected to (rootd restarting): then
   * the request never left, so a retry cannot run the action twice. Anything else is final.
   */
  private async callRootd(job: JobEnvelope): Promise<unknown> {
    const deadline = Date.now() + (this.d.connectRetryMs ?? 15_000);
    for (let failures = 1; ; failures++) {
      try {
        return await this.rootdCall(job);
      } catch (e) {
        const errno = isTuxsecError(e) ? e.details?.errno : undefined;
        const notConnected = isTuxsecError(e) && e.code === ErrorCodes.rootdUnavailable && (errno === 'ENOENT' || errno === 'ECONNREFUSED');
        const delay = backoffDelay(failures, { baseMs: 100, maxMs: 2000 });
        if (!notConnected || Date.now() + delay > deadline || this.d.signal?.aborted) throw e;
        this.d.log?.warn({ command_id: job.id, retry_in_ms: delay }, `cannot reach tuxsec-rootd yet: ${(e as Error).message}`);
        await abortableSleep(delay, this.d.signal);
      }
    }
  }

  /** One rootd call: through start and waitForOperation when a watcher follows operations. */
  private async rootdCall(job: JobEnvelope): Promise<unknown> {
    const { rootd, watch } = this.d;
    const opts = { timeoutMs: this.d.timeoutMs };
    if (!watch || !rootd.start || !rootd.waitForOperation) return rootd.execute(job.module, job.action, job.params, opts);
    const r = await rootd.start(job.module, job.action, job.params, opts);
    if ('data' in r) return r.data;
    try {
      return await rootd.waitForOperation(r.operation, (info) => watch.progress(job.id, info));
    } finally {
      watch.finished(job.id);
    }
  }

  private envelope(
    id: string,
    started: Date,
    finished: Date,
    o: { success: true; output: unknown } | { success: false; error: string; code: string },
  ): ResultEnvelope {
    const base = {
      command_id: id,
      started_at: started.toISOString(),
      finished_at: finished.toISOString(),
      duration_ms: Math.max(0, finished.getTime() - started.getTime()),
    };
    return o.success
      ? { ...base, success: true, output: o.output ?? {}, status: 'completed' }
      : { ...base, success: false, error: o.error, status: o.code === ErrorCodes.interrupted ? 'interrupted' : 'failed', code: o.code };
  }
}
