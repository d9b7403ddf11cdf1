/**
 * Pull mode: tells tuxsec-server how jobs running as rootd operations are getting on
 * (`PULL_PATH.progress`, an extension) and carries an operator's cancel back to rootd. The check-in
 * loop waits for the job it runs, so this has its own requests: one when a job's operation starts,
 * then when its phase or fraction changed (at most every `minIntervalMs`), and at least every
 * `maxIntervalMs`, so a cancel reaches an operation that reports nothing new. A server without the
 * path (the original) answers 404: reporting then stops for good.
 */
import type { HttpResponse, PostOptions } from './http.ts';
import { HttpError, replyBody } from './http.ts';
import type { JobWatcher } from './executor.ts';
import { MAX_PROGRESS, PULL_PATH, ProgressReply, type JobProgress, type ProgressRequest } from '../protocol/jobs.ts';
import type { OperationInfo } from '../protocol/messages.ts';

export interface ProgressOptions {
  agentId: string;
  apiKey: string;
  /** Least time between two reports of a job's changes. Default 5 s. */
  minIntervalMs?: number;
  /** Most time between two reports of a running job, changed or not (how soon a cancel arrives). Default 15 s. */
  maxIntervalMs?: number;
}

export interface ProgressDeps {
  http: { post(path: string, body: unknown, opts: PostOptions): Promise<HttpResponse> };
  rootd: { operationCancel(id: string): Promise<OperationInfo> };
  log: { info(o: object, m: string): void; warn(o: object, m: string): void };
  now?: () => number;
}

interface Watched {
  report: JobProgress;
  /** The report as last sent (JSON), to send only changes. */
  sent: string | null;
  sentAt: number;
  cancelling: boolean;
}

export class ProgressReporter implements JobWatcher {
  private readonly o: Required<ProgressOptions>;
  private readonly d: ProgressDeps;
  private readonly now: () => number;
  private readonly jobs = new Map<string, Watched>();
  private timer: NodeJS.Timeout | null = null;
  private posting = false;
  /** The server has no progress path: nothing more is sent. */
  unsupported = false;

  constructor(opts: ProgressOptions, deps: ProgressDeps) {
    this.o = { minIntervalMs: 5000, maxIntervalMs: 15_000, ...opts };
    this.d = deps;
    this.now = deps.now ?? Date.now;
  }

  progress(jobId: string, op: OperationInfo): void {
    if (this.unsupported) return;
    const fraction = typeof op.fraction === 'number' && op.fraction >= 0 && op.fraction <= 1 ? op.fraction : null;
    const report: JobProgress = { command_id: jobId, operation_id: op.id, phase: op.phase?.slice(0, 200) ?? null, fraction };
    const w = this.jobs.get(jobId);
    if (w) w.report = report;
    else if (this.jobs.size < MAX_PROGRESS) this.jobs.set(jobId, { report, sent: null, sentAt: 0, cancelling: false });
    // Never what keeps the agent alive at shutdown: finished() or stop() clears it.
    this.timer ??= setInterval(() => void this.tick(), Math.min(1000, this.o.minIntervalMs)).unref();
    // The first report at once: the server shows the job running from its start.
    if (!w) void this.tick();
  }

  finished(jobId: string): void {
    this.jobs.delete(jobId);
    if (this.jobs.size === 0) this.stop();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** Sends the reports that are due; acts on the cancels in the reply. Exposed for tests. */
  async tick(): Promise<void> {
    if (this.posting || this.unsupported) return;
    const t = this.now();
    const due = [...this.jobs.values()].filter((w) => {
      const since = t - w.sentAt;
      return since >= this.o.maxIntervalMs || (JSON.stringify(w.report) !== w.sent && since >= this.o.minIntervalMs) || w.sentAt === 0;
    });
    if (due.length === 0) return;
    this.posting = true;
    try {
      const body: ProgressRequest = { agent_id: this.o.agentId, api_key: this.o.apiKey, progress: due.map((w) => w.report) };
      const res = await this.d.http.post(PULL_PATH.progress, body, { timeoutMs: 15_000 });
      for (const w of due) {
        w.sent = JSON.stringify(w.report);
        w.sentAt = t;
      }
      for (const id of replyBody(res, ProgressReply, PULL_PATH.progress).cancel) await this.cancel(id);
    } catch (e) {
      if (e instanceof HttpError && e.status === 404) {
        this.unsupported = true;
        this.jobs.clear();
        this.stop();
        this.d.log.info({}, 'the server does not take progress reports: not sent');
      } else {
        // Tried again at the next tick; the job's result does not depend on it.
        for (const w of due) w.sentAt = t;
        this.d.log.warn({ jobs: due.length }, `cannot report job progress: ${(e as Error).message}`);
      }
    } finally {
      this.posting = false;
    }
  }

  private async cancel(jobId: string): Promise<void> {
    const w = this.jobs.get(jobId);
    if (!w || w.cancelling) return;
    w.cancelling = true;
    this.d.log.info({ command_id: jobId, operation_id: w.report.operation_id }, 'an operator cancelled the job: cancelling its operation');
    try {
      await this.d.rootd.operationCancel(w.report.operation_id);
    } catch (e) {
      // Asked again when the server repeats the cancel in a later reply.
      w.cancelling = false;
      this.d.log.warn({ command_id: jobId }, `cannot cancel operation "${w.report.operation_id}": ${(e as Error).message}`);
    }
  }
}
