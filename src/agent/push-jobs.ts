/**
 * Push mode: what the agent knows of the jobs it runs as rootd operations, for tuxsec-server's
 * `GET /jobs/<id>` and `POST /jobs/<id>/cancel` (extensions) while it holds the job's `/execute`
 * open. Pull mode sends the same to the server instead (progress.ts).
 */
import type { JobWatcher } from './executor.ts';
import { MAX_PROGRESS, type PushJobState } from '../protocol/jobs.ts';
import type { OperationInfo } from '../protocol/messages.ts';

interface Watched {
  operationId: string;
  phase: string | null;
  fraction: number | null;
  cancelling: boolean;
}

export class PushJobs implements JobWatcher {
  /** Bounded like pull mode's reports: past it a job runs unwatched (its result still comes). */
  private readonly jobs = new Map<string, Watched>();

  constructor(
    private readonly rootd: { operationCancel(id: string): Promise<OperationInfo> },
    private readonly log: { info(o: object, m: string): void; warn(o: object, m: string): void },
  ) {}

  progress(jobId: string, op: OperationInfo): void {
    const fraction = typeof op.fraction === 'number' && op.fraction >= 0 && op.fraction <= 1 ? op.fraction : null;
    const w = this.jobs.get(jobId);
    const phase = op.phase?.slice(0, 200) ?? null;
    if (w) Object.assign(w, { operationId: op.id, phase, fraction });
    else if (this.jobs.size < MAX_PROGRESS) this.jobs.set(jobId, { operationId: op.id, phase, fraction, cancelling: false });
  }

  finished(jobId: string): void {
    this.jobs.delete(jobId);
  }

  /** The job's state; `running` covers a job started but not (or not yet) a rootd operation. */
  state(id: string, running: boolean, done: boolean): PushJobState {
    const w = this.jobs.get(id);
    if (w) return { id, state: 'running', operation_id: w.operationId, phase: w.phase, fraction: w.fraction };
    return { id, state: running ? 'running' : done ? 'done' : 'unknown', operation_id: null, phase: null, fraction: null };
  }

  /** Asks rootd once to cancel the job's operation; true when it was (or had already been) asked. */
  async cancel(id: string): Promise<boolean> {
    const w = this.jobs.get(id);
    if (!w) return false;
    if (w.cancelling) return true;
    w.cancelling = true;
    this.log.info({ command_id: id, operation_id: w.operationId }, 'tuxsec-server cancelled the job: cancelling its operation');
    try {
      await this.rootd.operationCancel(w.operationId);
      return true;
    } catch (e) {
      // The server asks again at its next poll.
      w.cancelling = false;
      this.log.warn({ command_id: id }, `cannot cancel operation "${w.operationId}": ${(e as Error).message}`);
      return false;
    }
  }
}
