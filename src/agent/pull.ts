/**
 * Pull mode: the check-in loop. Long-polls a server that supports it (`wait`), polls every
 * poll_interval (following the server's `sync_interval`) one that answers at once (the original).
 * Results ride in the check-in's `command_results` and leave the outbox only when acknowledged
 * (`acknowledged`, or for the original server the 200 of the check-in that carried them).
 * Failures back off exponentially with full jitter, at least Retry-After.
 */
import { abortableSleep, backoffDelay } from '../common/backoff.ts';
import type { Executor } from './executor.ts';
import type { HttpResponse, PostOptions } from './http.ts';
import { ErrorCodes } from '../protocol/errors.ts';
import { CheckinReply, PULL_PATH, ResultsReply, type CheckinRequest, type ResultEnvelope, type ResultsRequest } from '../protocol/jobs.ts';
import { HttpError, replyBody } from './http.ts';
import type { Outbox } from './outbox.ts';

export const FEATURES = ['long-poll', 'results', 'redelivery'] as const;
/** Most backoff while jobs cannot be journaled or stored (disk full). */
export const STORE_RETRY_MAX_MS = 10_000;

/** The inventory a check-in refreshes. */
export type CheckinInventory = Partial<Pick<CheckinRequest, 'hostname' | 'version' | 'modules' | 'machine_id'>>;

export interface PullOptions {
  agentId: string;
  apiKey: string;
  /** Seconds between polls against a server that does not long-poll. */
  pollInterval: number;
  /** Long-poll `wait`, seconds (0..30). Default 25. */
  waitSeconds?: number;
  backoffBaseMs?: number;
  backoffMaxMs?: number;
  /** Most results per check-in and their approximate JSON size (the server refuses bodies over 1 MiB). */
  batchCount?: number;
  batchBytes?: number;
}

export interface PullDeps {
  http: { post(path: string, body: unknown, opts: PostOptions): Promise<HttpResponse> };
  executor: Executor;
  outbox: Outbox;
  /** Inventory fields added to each check-in. */
  inventory?: () => CheckinInventory;
  log: {
    debug(o: object, m: string): void;
    info(o: object, m: string): void;
    warn(o: object, m: string): void;
    error(o: object, m: string): void;
  };
  random?: () => number;
  now?: () => number;
  sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
}

/** The server says an operator rejected this agent: stop, do not retry. */
export class AgentRejectedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'AgentRejectedError';
  }
}

export class PullLoop {
  private readonly o: Required<PullOptions>;
  private readonly d: PullDeps;
  private readonly now: () => number;
  private readonly sleep: (ms: number, signal: AbortSignal) => Promise<void>;
  private readonly random: () => number;
  /** Learned: the server acknowledges results (and so long-polls). Null until known. */
  extended: boolean | null = null;
  interval: number;
  failures = 0;
  /** Consecutive rounds whose jobs could not be journaled or stored (disk full): backs off apart from check-in failures. */
  storeFailures = 0;
  checkins = 0;

  constructor(opts: PullOptions, deps: PullDeps) {
    this.o = {
      waitSeconds: 25,
      backoffBaseMs: 1000,
      backoffMaxMs: 60_000,
      batchCount: 100,
      batchBytes: 768 * 1024,
      ...opts,
    };
    this.d = deps;
    this.interval = opts.pollInterval;
    this.now = deps.now ?? Date.now;
    this.sleep = deps.sleep ?? abortableSleep;
    this.random = deps.random ?? Math.random;
  }

  /** Runs until `signal` aborts. A job already started is always finished first. */
  async run(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      await this.step(signal);
    }
  }

  /**
   * At shutdown: hands pending results to a server known to have the results endpoint, so they
   * need not wait for the next start. Best effort: what is not acknowledged stays in the outbox.
   */
  async flush(timeoutMs = 5000): Promise<void> {
    const { outbox, log } = this.d;
    if (outbox.size === 0 || !this.extended) return;
    const batch = outbox.batch(this.o.batchCount, this.o.batchBytes);
    try {
      const body: ResultsRequest = { agent_id: this.o.agentId, api_key: this.o.apiKey, command_results: batch };
      const res = await this.d.http.post(PULL_PATH.results, body, { timeoutMs });
      const acked = replyBody(res, ResultsReply, PULL_PATH.results).acknowledged;
      outbox.remove(acked);
      log.info({ sent: batch.length, acknowledged: acked.length }, 'results delivered at shutdown');
    } catch (e) {
      log.warn({ pending: outbox.size }, `cannot deliver results at shutdown: ${(e as Error).message}; kept for the next start`);
    }
  }

  /** A check-in that failed: rejected for good (throws), or waited out with backoff (or as long as the server asks). */
  private async checkinFailed(err: HttpError, signal: AbortSignal): Promise<void> {
    if (err.status === 403 && err.body?.code === ErrorCodes.agentRejected) {
      throw new AgentRejectedError(`cannot check in: an operator rejected this agent (${String(err.body.error ?? ErrorCodes.agentRejected).slice(0, 300)})`);
    }
    this.failures++;
    // Waiting for an operator is not a fault: ask again when told (Retry-After), no growth.
    const pending = err.status === 403 && err.body?.code === ErrorCodes.pendingApproval;
    const delay = pending
      ? Math.ceil((err.retryAfter ?? this.interval) * 1000)
      : backoffDelay(this.failures, { retryAfterSec: err.retryAfter, baseMs: this.o.backoffBaseMs, maxMs: this.o.backoffMaxMs, random: this.random });
    const hint =
      err.status === 401
        ? ' (the api_key was refused: run "tuxsec-agent register" again)'
        : err.body?.code === ErrorCodes.pendingApproval
          ? ' (waiting for an operator to approve this agent)'
          : '';
    this.d.log.warn({ failures: this.failures, retry_in_ms: delay, status: err.status ?? 0 }, `cannot check in: ${err.message}${hint}`);
    await this.sleep(delay, signal);
  }

  /** One check-in and the jobs it brought. Exposed for tests. */
  async step(signal: AbortSignal): Promise<void> {
    const { outbox, executor, log } = this.d;
    const unsaved = outbox.persistPending();
    if (unsaved > 0) log.warn({ unsaved }, 'cannot write results to the outbox yet (see above); they are sent from memory');
    const batch: ResultEnvelope[] = outbox.batch(this.o.batchCount, this.o.batchBytes);
    // Results pending or no room: ask for an answer at once, so acknowledgments come back now.
    const wait = batch.length > 0 || !outbox.hasRoom ? 0 : this.o.waitSeconds;
    const body: CheckinRequest = {
      agent_id: this.o.agentId,
      api_key: this.o.apiKey,
      status: 'online',
      command_results: batch,
      wait,
      features: [...FEATURES],
      ...this.d.inventory?.(),
    };
    const t0 = this.now();
    let res: HttpResponse;
    let b: CheckinReply;
    try {
      res = await this.d.http.post(PULL_PATH.checkin, body, { timeoutMs: wait * 1000 + 15_000, signal });
      if (res.body.success === false) throw new HttpError(`server refused check-in: ${String(res.body.error ?? 'success: false')}`, res.status);
      b = replyBody(res, CheckinReply, PULL_PATH.checkin);
    } catch (e) {
      if (signal.aborted) return;
      await this.checkinFailed(e as HttpError, signal);
      return;
    }
    this.checkins++;
    if (this.failures > 0) log.info({ after_failures: this.failures }, 'check-in succeeded again');
    this.failures = 0;
    const ackField = b.acknowledged ?? null;
    if (ackField !== null) this.extended = true;
    // The original server has no acknowledgment: its 200 for the check-in that carried them counts.
    const acked = ackField ?? batch.map((r) => r.command_id);
    let stalled = false;
    if (batch.length > 0) {
      const n = outbox.remove(acked);
      log.debug({ sent: batch.length, acknowledged: n }, 'results delivered');
      // A server that keeps acknowledging none of them must not be hammered.
      stalled = n === 0;
    }
    const si = b.sync_interval;
    if (typeof si === 'number' && Number.isInteger(si) && si >= 1 && si <= 86400 && si !== this.interval) {
      log.info({ from: this.interval, to: si }, 'following the server sync_interval');
      this.interval = si;
    }
    const commands = b.commands ?? [];
    let ran = 0;
    let storeFailed = false;
    for (const cmd of commands) {
      if (!outbox.hasRoom) {
        // Never drop a result: take no job whose result might not fit. A server with
        // redelivery hands it out again; it is logged so an operator sees it otherwise.
        log.error(
          { command_id: (cmd as { id?: unknown })?.id, outbox_entries: outbox.size, outbox_bytes: outbox.totalBytes },
          'cannot take job: the outbox is full (results not yet acknowledged); not run',
        );
        continue;
      }
      let out;
      try {
        out = await executor.run(cmd);
      } catch (e) {
        // The state_dir cannot be written (disk full): a job whose start cannot be journaled
        // is not run. The rest wait too; a server with redelivery hands them out again.
        storeFailed = true;
        log.error({ command_id: (cmd as { id?: unknown })?.id }, `cannot run job: ${(e as Error).message}`);
        break;
      }
      if (out.ran) {
        ran++;
        this.storeFailures = 0;
      } else if (out.reason === 'duplicate') log.info({ command_id: (cmd as { id?: unknown }).id }, 'job already in the journal: not run again');
    }
    if (signal.aborted) return;
    if (storeFailed) {
      this.storeFailures++;
      // A local fault: checked again often enough that work resumes soon after space returns.
      const delay = backoffDelay(this.storeFailures, { baseMs: this.o.backoffBaseMs, maxMs: Math.min(this.o.backoffMaxMs, STORE_RETRY_MAX_MS), random: this.random });
      await this.sleep(delay, signal);
      return;
    }
    if (stalled && ran === 0) {
      this.failures++;
      const delay = backoffDelay(this.failures, { retryAfterSec: res.retryAfter, baseMs: this.o.backoffBaseMs, maxMs: this.o.backoffMaxMs, random: this.random });
      log.warn({ pending: batch.length, retry_in_ms: delay }, 'server acknowledged none of the results sent');
      await this.sleep(delay, signal);
      return;
    }
    if (ran > 0 || outbox.size > 0) return;
    const elapsed = this.now() - t0;
    // A long-polling server held the request: ask again at once. One that let go early with
    // nothing (e.g. shutting down for a restart) is asked again after 1-2 s, not a whole interval,
    // so dispatch resumes quickly and many agents do not come back in the same instant.
    if (this.extended && wait > 0) {
      if (elapsed >= (wait * 1000) / 2) return;
      await this.sleep(Math.min(this.interval * 1000, 1000 + Math.floor(this.random() * 1000)), signal);
      return;
    }
    // One that answered at once (the original) is polled every interval.
    if (wait === 0 && batch.length > 0) return;
    await this.sleep(this.interval * 1000, signal);
  }
}
