/**
 * THE executor: every job, whatever transport brought it (pull, push), goes through
 * `Executor.run`: shape check, journal (at most once), policy, rootd call, result envelope,
 * durable hand-off to a sink (the outbox in pull mode) or the journal's finish record (push).
 */
import crypto from 'node:crypto';
import { abortableSleep, backoffDelay } from '../common/backoff.ts';
import { ErrorCodes, isTuxsecError } from '../protocol/errors.ts';
import { parseJob, type JobEnvelope, type ResultEnvelope } from '../protocol/jobs.ts';
import { findPoisonKey, nestingDepth } from '../protocol/json.ts';
import type { ModuleInfo, OperationInfo } from '../protocol/messages.ts';
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
  /**
   * Where results go: a function making each durable (pull mode's outbox; must not return
   * before it is), or `'journal'` (push mode: the finish record carries it, see Journal).
   */
  sink: ((r: ResultEnvelope) => void | Promise<void>) | 'journal';
  /**
   * The access class of an action (rootd's module_info), when known. A `read` job's start
   * record is not fdatasync'd before it runs (see Journal): only a power cut can lose it, and
   * running a read twice changes nothing. Anything else, or unknown, is made durable first.
   */
  accessOf?: (module: string, action: string) => Promise<string | undefined>;
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

/**
 * ExecutorDeps.accessOf from rootd's module_info, asked once per module and forgotten after
 * `ttlMs` (a rootd upgrade may change a class). A module rootd cannot describe is unknown.
 */
export function accessClasses(rootd: { moduleInfo(module: string): Promise<ModuleInfo> }, ttlMs = 60_000): (module: string, action: string) => Promise<string | undefined> {
  const cache = new Map<string, { at: number; classes: Promise<Map<string, string>> }>();
  return async (module, action) => {
    let c = cache.get(module);
    if (!c || Date.now() - c.at > ttlMs) {
      const classes = rootd.moduleInfo(module).then((info) => new Map(info.capabilities.map((cap) => [cap.name, cap.access ?? 'unknown'])));
      c = { at: Date.now(), classes };
      cache.set(module, c);
      // A failure is not remembered: the next job asks again.
      classes.catch(() => cache.delete(module));
      // Module names come from the network: keep the cache to modules rootd knows.
      if (cache.size > 256) cache.delete(cache.keys().next().value!);
    }
    return (await c.classes).get(action);
  };
}

/** A result rides two levels deep in a check-in (body, command_results); servers refuse JSON deeper than 64. */
const MAX_RESULT_DEPTH = 62;

/** JSON with object keys sorted, so the same value hashes the same whichever order its keys came in. */
function canonicalJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  if (v !== null && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    return `{${Object.keys(o)
      .sort()
      .filter((k) => o[k] !== undefined)
      .map((k) => `${JSON.stringify(k)}:${canonicalJson(o[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(v) ?? 'null';
}

/**
 * What a job asks for (module, action, params) as a short hash, kept with its journal entry: a
 * job id sent again with a different request is refused, not answered with the old result.
 */
export function envelopeHash(job: { module?: unknown; action?: unknown; params?: unknown }): string {
  const text = canonicalJson([job.module ?? null, job.action ?? null, job.params ?? {}]);
  return crypto.createHash('sha256').update(text).digest('hex').slice(0, 32);
}

/** A refusal of a repeated job id, in the shape of a result (nothing ran). */
function repeatRefused(id: string, code: string, why: string): ResultEnvelope {
  const now = new Date().toISOString();
  return { command_id: id, success: false, error: `cannot run job "${id.slice(0, 200)}": ${why}`, status: 'failed', code, started_at: now, finished_at: now, duration_ms: 0 };
}

/** The answer to a job id sent again for another module, action or params (409 in push mode). */
export function idReused(id: string): ResultEnvelope {
  return repeatRefused(id, ErrorCodes.jobIdReused, 'this id was already used for another module, action or params; give each job its own id');
}

/**
 * The answer to a job id the journal has seen and that is not running now: its kept result, or a
 * refusal when the id asked for another module, action or params the first time (job-id-reused) or
 * its result is no longer kept (conflict); null for an id never seen. Push mode and SSH mode's job
 * form answer a repeated id with it, so a job id runs once whichever way it comes.
 */
export function answerForRepeat(journal: Journal, id: string, job: { module?: unknown; action?: unknown; params?: unknown }): ResultEnvelope | null {
  const seen = journal.get(id);
  if (!seen) return null;
  // A journal from before the hash was kept: module and action are all it can compare.
  const same = seen.hash !== undefined ? seen.hash === envelopeHash(job) : seen.module === job.module && seen.action === job.action;
  if (!same) return idReused(id);
  return seen.result ?? repeatRefused(id, ErrorCodes.conflict, 'it already ran and its result is no longer kept; it was not run again');
}

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
        await this.complete(e.id, {
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
      } else {
        this.d.journal.finish(e.id);
      }
    }
    return n;
  }

  /** Hands the result to the sink and records the job finished. */
  private async complete(id: string, r: ResultEnvelope): Promise<void> {
    if (this.d.sink === 'journal') {
      this.d.journal.finish(id, r);
      return;
    }
    await this.d.sink(r);
    this.d.journal.finish(id);
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
      // Nothing runs: the record need not reach the disk first.
      this.d.journal.start(checked.id, '?', '?', t.toISOString(), { hash: envelopeHash(raw as Record<string, unknown>), durable: false });
      await this.complete(checked.id, r);
      return { ran: true, result: r };
    }
    const job = checked.job;
    const allowed = policyAllows(this.d.policy, job.module, job.action);
    // Asked before the duplicate check: nothing may come between that check and the start record.
    const access = allowed && this.d.accessOf ? await this.d.accessOf(job.module, job.action).catch(() => undefined) : undefined;
    if (this.d.journal.has(job.id)) return { ran: false, reason: 'duplicate' };
    const started = this.now();
    this.d.journal.start(job.id, job.module, job.action, started.toISOString(), {
      hash: envelopeHash(job),
      // A refused job runs nothing; a read changes nothing if a power cut makes it run again.
      durable: allowed && access !== 'read',
    });
    let outcome: { success: true; output: unknown } | { success: false; error: string; code: string };
    if (!allowed) {
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
    await this.complete(job.id, r);
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
