/**
 * The delivery worker: tuxsec-server hands the jobs of push- and ssh-mode agents over itself, with
 * the same job states as pull mode (queued -> sent -> completed | failed | interrupted; expiry and
 * delivered-without-result are the sweep's, as for pull). Each agent is a lane with its own
 * concurrency limit, so a slow or unreachable agent holds at most that many of the overall slots.
 *
 * Woken when a job is queued (JobDispatch.onJobQueued), and by a periodic scan for jobs it missed
 * (an agent switched to push with jobs waiting) and for jobs a previous run handed out without a
 * result (they are sent again: the job id makes the agent answer from its journal, not run twice).
 * An agent that cannot be reached is retried with the one backoff (src/common/backoff.ts), one
 * pause per agent rather than per job; a refusal (401, 403, 409, TLS) becomes the job's failed
 * result at once, never a retry loop.
 */
import { ErrorCodes } from '../../protocol/errors.ts';
import type { JobEnvelope } from '../../protocol/jobs.ts';
import { backoffDelay } from '../../common/backoff.ts';
import { iso } from '../context.ts';
import type { GroupCommit } from '../group-commit.ts';
import type { JobDispatch } from '../job-dispatch.ts';
import { hashSecret } from '../secrets.ts';
import type { AgentRecord, IncomingResult, JobRecord, Storage } from '../storage/storage.ts';
import { DeliveryError, type AgentMode, type Transport } from './transport.ts';

/** Builds the transport of one agent; may throw a DeliveryError (e.g. its CA file is unreadable). */
export type TransportFactory = (agent: AgentRecord) => Transport;

export interface DeliveryLimits {
  /** Most jobs in delivery at once, all agents together. */
  concurrency: number;
  /** Most jobs in delivery to one agent at once. */
  perAgent: number;
  /** The ceiling of the wait between attempts to reach an unreachable agent, ms. */
  retryMaxMs: number;
}

export interface DeliveryLog {
  info(o: object, msg: string): void;
  warn(o: object, msg: string): void;
  error(o: object, msg: string): void;
}

export interface DeliveryDeps {
  storage: Storage;
  group: GroupCommit;
  dispatch: JobDispatch;
  log: DeliveryLog;
  now: () => number;
  /** When this process started: jobs handed out before it, still without a result, are sent again. */
  startedAt: number;
  limits: DeliveryLimits;
  /** How often a job in delivery is looked at on an agent that can tell (push mode), ms. Default 3000. */
  progressPollMs?: number;
  /** last_seen not yet written: an agent that took a delivery counts as seen (it has no check-ins). */
  seen?: Map<string, number>;
  /** Transports by mode; a mode without one leaves its agents' jobs queued (said once in the log). */
  transports: Partial<Record<Exclude<AgentMode, 'pull'>, TransportFactory>>;
}

/** How often every delivery agent is looked at again. */
const SCAN_MS = 5000;
const RETRY_BASE_MS = 1000;

interface Lane {
  agentId: string;
  /** Mode, endpoint and key (hashed): a change builds a new transport. */
  key: string;
  transport: Transport | null;
  inFlight: number;
  /** Jobs handed out that could not be delivered: sent again before new ones are taken. */
  retry: JobRecord[];
  failures: number;
  pausedUntil: number;
  timer: NodeJS.Timeout | null;
  filling: boolean;
  again: boolean;
  /** The last thing said about this lane's setup, so a scan does not repeat it. */
  said: string | null;
}

function laneKey(a: AgentRecord): string {
  return JSON.stringify([a.mode, a.endpoint, a.pushKey === null ? null : hashSecret(a.pushKey)]);
}

function envelopeOf(j: JobRecord): JobEnvelope {
  return { id: j.id, module: j.module, action: j.action, params: j.params, expires_at: iso(j.expiresAt) };
}

export class DeliveryWorker {
  private readonly lanes = new Map<string, Lane>();
  /** Agents held back by the overall limit, in the order they asked. */
  private readonly waiting = new Set<string>();
  private readonly running = new Set<Promise<void>>();
  private readonly stop = new AbortController();
  private inFlight = 0;
  private scanTimer: NodeJS.Timeout | null = null;
  private closed = false;

  constructor(private readonly d: DeliveryDeps) {}

  /** Looks at every delivery agent now and every SCAN_MS. */
  start(): void {
    this.scan();
    this.scanTimer = setInterval(() => this.scan(), SCAN_MS).unref();
  }

  /** A job was queued for this agent (or its mode changed). */
  wake(agentId: string): void {
    if (this.closed) return;
    this.pump(agentId);
  }

  /** The transport of an agent the worker delivers to now (for /health), or null. */
  transportOf(agentId: string): Transport | null {
    return this.lanes.get(agentId)?.transport ?? null;
  }

  get delivering(): number {
    return this.inFlight;
  }

  private scan(): void {
    if (this.closed) return;
    let agents: AgentRecord[];
    try {
      agents = this.d.storage.deliveryAgents();
    } catch (err) {
      this.d.log.error({ err }, 'cannot list agents to deliver to');
      return;
    }
    const ids = new Set(agents.map((a) => a.id));
    for (const id of this.lanes.keys()) if (!ids.has(id)) this.pump(id);
    for (const a of agents) this.pump(a.id);
  }

  private pump(agentId: string): void {
    let lane = this.lanes.get(agentId);
    if (!lane) {
      lane = { agentId, key: '', transport: null, inFlight: 0, retry: [], failures: 0, pausedUntil: 0, timer: null, filling: false, again: false, said: null };
      this.lanes.set(agentId, lane);
    }
    if (lane.filling) {
      lane.again = true;
      return;
    }
    lane.filling = true;
    const l = lane;
    this.fill(l)
      .catch((err: unknown) => this.d.log.error({ err, agent: agentId }, 'cannot hand out jobs'))
      .finally(() => {
        l.filling = false;
        if (l.again && !this.closed) {
          l.again = false;
          this.pump(agentId);
        }
      });
  }

  /** Says something about a lane's setup once (until it changes). */
  private sayOnce(lane: Lane, level: 'info' | 'warn' | 'error', msg: string): void {
    if (lane.said === msg) return;
    lane.said = msg;
    this.d.log[level]({ agent: lane.agentId }, msg);
  }

  /** Brings the lane's transport up to date with the agent; false when nothing can be delivered now. */
  private refresh(lane: Lane, agent: AgentRecord | undefined): boolean {
    if (!agent || agent.status !== 'active' || agent.mode === 'pull') {
      if (lane.inFlight === 0) this.drop(lane);
      return false;
    }
    const key = laneKey(agent);
    if (key !== lane.key) {
      const old = lane.transport;
      lane.transport = null;
      lane.key = key;
      lane.said = null;
      lane.failures = 0;
      lane.pausedUntil = 0;
      // Running deliveries keep their own reference and finish on the old connections.
      if (old) void old.close().catch(() => undefined);
    }
    if (lane.transport) return true;
    const make = this.d.transports[agent.mode];
    if (!make) {
      this.sayOnce(lane, 'warn', `agent "${agent.id}" is in ${agent.mode} mode, which this server cannot deliver to: its jobs stay queued${agent.mode === 'ssh' ? ' (set ssh_identity in server.yaml, the key the server logs in with)' : ''}`);
      return false;
    }
    if (agent.endpoint === null) {
      this.sayOnce(lane, 'error', `cannot deliver to agent "${agent.id}": its ${agent.mode} endpoint is missing or invalid; set it again with "agents set-mode"`);
      return false;
    }
    try {
      lane.transport = make(agent);
    } catch (e) {
      this.sayOnce(lane, 'error', `cannot deliver to agent "${agent.id}": ${(e as Error).message}`);
      return false;
    }
    lane.said = null;
    return true;
  }

  private drop(lane: Lane): void {
    if (lane.timer) clearTimeout(lane.timer);
    if (lane.transport) void lane.transport.close().catch(() => undefined);
    this.lanes.delete(lane.agentId);
    this.waiting.delete(lane.agentId);
  }

  private async fill(lane: Lane): Promise<void> {
    const { storage, group, limits } = this.d;
    while (!this.closed) {
      if (!this.refresh(lane, storage.getAgent(lane.agentId))) return;
      if (this.d.now() < lane.pausedUntil) return;
      const room = Math.min(limits.perAgent - lane.inFlight, limits.concurrency - this.inFlight);
      if (room <= 0) {
        if (lane.inFlight < limits.perAgent) this.waiting.add(lane.agentId);
        return;
      }
      // Reserved before the (asynchronous) take, so other lanes filling meanwhile see the slots used.
      lane.inFlight += room;
      this.inFlight += room;
      let jobs: JobRecord[] = [];
      try {
        const again = lane.retry.splice(0, room);
        const now = this.d.now();
        jobs = await group.run(() => {
          const out = again.map((j) => storage.redeliver(j.id, now)).filter((j): j is JobRecord => j !== undefined);
          if (out.length < room) out.push(...storage.takeJobs(lane.agentId, now, room - out.length, this.d.startedAt));
          return out;
        });
      } finally {
        lane.inFlight -= room - jobs.length;
        this.inFlight -= room - jobs.length;
      }
      if (jobs.length === 0) return;
      this.d.dispatch.jobsChanged(jobs.map((j) => j.id));
      const transport = lane.transport!;
      for (const j of jobs) this.track(this.deliver(lane, transport, j));
    }
  }

  private track(delivery: Promise<void>): void {
    // A delivery whose result cannot be stored (the database failing) is logged; the job stays `sent`.
    const p = delivery.catch((err: unknown) => this.d.log.error({ err }, 'cannot store the result of a delivered job'));
    this.running.add(p);
    void p.finally(() => this.running.delete(p));
  }

  private async deliver(lane: Lane, transport: Transport, job: JobRecord): Promise<void> {
    let result: IncomingResult | null = null;
    const stopWatching = this.watchJob(lane.agentId, transport, job.id);
    try {
      result = await transport.execute(envelopeOf(job), this.stop.signal);
      lane.failures = 0;
      this.d.seen?.set(lane.agentId, this.d.now());
      this.d.dispatch.agentChanged(lane.agentId);
    } catch (e) {
      // Shutting down: the job stays `sent` and the next start sends it again.
      if (!this.closed) {
        if (e instanceof DeliveryError && e.retryable) this.retryLater(lane, job, e.message);
        else result = this.failed(lane.agentId, job, e);
      }
    } finally {
      stopWatching();
      lane.inFlight--;
      this.inFlight--;
    }
    try {
      if (result !== null) await this.store(lane.agentId, result);
    } finally {
      this.freed(lane);
    }
  }

  /**
   * While a job's delivery waits for its result, asks the agent (when its transport can tell) how
   * the job is getting on: stored as pull mode's progress reports are, so the job shows `running`
   * with its phase; an operator's cancel is passed on once. An agent that cannot tell (404) is not
   * asked again for this job. Returns the function that stops it.
   */
  private watchJob(agentId: string, transport: Transport, jobId: string): () => void {
    const look = transport.jobState?.bind(transport);
    const cancel = transport.cancelJob?.bind(transport);
    if (!look || !cancel) return () => undefined;
    let busy = false;
    let cancelSent = false;
    const timer = setInterval(() => {
      if (busy) return;
      busy = true;
      void (async () => {
        const st = await look(jobId, this.stop.signal);
        if (st === null) return clearInterval(timer);
        if (st.state !== 'running' || st.operation_id === null) return;
        const report = { command_id: jobId, operation_id: st.operation_id, phase: st.phase, fraction: st.fraction };
        const { changed, cancel: cancels } = await this.d.group.run(() => this.d.storage.storeProgress(agentId, [report], this.d.now()));
        this.d.dispatch.jobsChanged(changed);
        if (cancels.includes(jobId) && !cancelSent) {
          cancelSent = await cancel(jobId, this.stop.signal);
          if (cancelSent) this.d.log.info({ agent: agentId, job: jobId }, 'an operator cancelled the job: the agent cancels its operation');
        }
      })()
        // The job's result does not depend on it: the next look tries again.
        .catch((e: unknown) => this.d.log.warn({ agent: agentId, job: jobId }, `cannot look at a job in delivery: ${(e as Error).message}`))
        .finally(() => (busy = false));
    }, this.d.progressPollMs ?? 3000);
    timer.unref();
    return () => clearInterval(timer);
  }

  private retryLater(lane: Lane, job: JobRecord, why: string): void {
    const now = this.d.now();
    // Deliveries that fail together (the agent is down) count as one failure.
    if (now >= lane.pausedUntil) {
      lane.failures++;
      lane.pausedUntil = now + backoffDelay(lane.failures, { baseMs: RETRY_BASE_MS, maxMs: this.d.limits.retryMaxMs });
    }
    lane.retry.push(job);
    const wait = lane.pausedUntil - now;
    this.d.log.warn({ agent: lane.agentId, job: job.id, retry_in_ms: wait, attempt: job.deliveries }, `job not delivered, trying again: ${why}`);
    if (lane.timer) clearTimeout(lane.timer);
    lane.timer = setTimeout(() => {
      lane.timer = null;
      this.wake(lane.agentId);
    }, wait).unref();
  }

  /** The failed result of a job the agent refused or whose answer could not be read. */
  private failed(agentId: string, job: JobRecord, e: unknown): IncomingResult {
    const code = (e instanceof DeliveryError ? e.code : undefined) ?? ErrorCodes.deliveryFailed;
    const error = e instanceof DeliveryError ? e.message : `cannot deliver job: ${(e as Error).message}`;
    this.d.log.error({ agent: agentId, job: job.id, code }, error);
    return { commandId: job.id, success: false, status: 'failed', error, code };
  }

  private async store(agentId: string, result: IncomingResult): Promise<void> {
    const out = await this.d.group.run(() => this.d.storage.storeResults(agentId, [result], this.d.now()));
    for (const j of out.finished) {
      this.d.log.info({ agent: agentId, job: j.id, status: j.status }, 'job delivered');
      this.d.dispatch.jobFinished(j.id);
    }
    for (const i of out.ignored) this.d.log.warn({ agent: agentId, job: i.commandId }, `result not stored: ${i.why}`);
  }

  /** A slot came free: this lane may take more, and so may lanes held back by the overall limit. */
  private freed(lane: Lane): void {
    if (this.closed) return;
    this.pump(lane.agentId);
    for (const id of [...this.waiting]) {
      if (this.inFlight >= this.d.limits.concurrency) break;
      this.waiting.delete(id);
      this.pump(id);
    }
  }

  /** Stops: aborts deliveries (their jobs stay `sent` for the next start) and closes connections. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.scanTimer) clearInterval(this.scanTimer);
    this.stop.abort();
    await Promise.allSettled([...this.running]);
    await Promise.allSettled([...this.lanes.values()].map((l) => {
      if (l.timer) clearTimeout(l.timer);
      return l.transport?.close();
    }));
    this.lanes.clear();
  }
}
