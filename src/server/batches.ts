/**
 * Batches: one job per host for a label or a selection of agents, each host with its own job and
 * state. A host that is offline keeps its job queued until the job expires (the ordinary pull and
 * delivery paths hand it out when the host returns); "retry failed" queues a new job only for the
 * hosts whose latest job ended badly; cancel ends the queued jobs and asks the running ones to
 * stop through the one cancel path of single jobs. A label target is intersected with the
 * operator's reach, and every host of a selection must be within it.
 *
 * Exported for other route plugins that act on many hosts (templates: preview and apply).
 */
import { randomUUID } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import { ErrorCodes, HttpError } from '../protocol/errors.ts';
import { iso, jobView, limit, type ServerContext } from './context.ts';
import { canReach, requireAgent, type Operator } from './operators.ts';
import { RETRYABLE_STATUSES, type BatchRecord, type BatchTarget } from './storage/fleet-store.ts';
import { FINAL_STATUSES, JOB_STATUSES, type AgentRecord, type JobRecord, type JobStatus } from './storage/storage.ts';

export interface BatchSpec {
  target: BatchTarget;
  module: string;
  action: string;
  params?: Record<string, unknown>;
  /** Seconds each job waits for its host; config job_default_ttl when absent. */
  expiresIn?: number;
}

const describeTarget = (t: BatchTarget): string =>
  t.label ? `label ${Object.entries(t.label).map(([k, v]) => `${k}=${v}`).join(',')}` : `${t.agents?.length ?? 0} selected agent(s)`;

/** The hosts of a target the operator may reach, checked and capped; throws naming what is wrong. */
export function resolveTarget(ctx: ServerContext, req: FastifyRequest, target: BatchTarget): AgentRecord[] {
  const max = limit(ctx.config, 'batch_max_hosts');
  const op = req.operator;
  if ((target.agents === undefined) === (target.label === undefined)) {
    throw HttpError.of(ErrorCodes.invalidRequest, 'cannot create batch: give target.agents or target.label (one of them)');
  }
  if (target.label !== undefined) {
    if (Object.keys(target.label).length === 0) throw HttpError.of(ErrorCodes.invalidRequest, 'cannot create batch: target.label is empty (it would reach every host)');
    const hosts = ctx.storage.fleet.agentsWithLabels(target.label, op.selector, max);
    if (hosts.length > max) throw HttpError.of(ErrorCodes.invalidRequest, `cannot create batch: ${describeTarget(target)} matches more than ${max} hosts (batch_max_hosts)`);
    if (hosts.length === 0) throw HttpError.of(ErrorCodes.notFound, `cannot create batch: no approved agent you can reach has ${describeTarget(target)}`);
    return hosts;
  }
  const ids = [...new Set(target.agents)];
  if (ids.length === 0) throw HttpError.of(ErrorCodes.invalidRequest, 'cannot create batch: target.agents is empty');
  if (ids.length > max) throw HttpError.of(ErrorCodes.invalidRequest, `cannot create batch: ${ids.length} agents, at most ${max} (batch_max_hosts)`);
  return ids.map((id) => {
    const a = requireAgent(req, ctx.storage.getAgent(id), `cannot create batch: agent "${id}"`);
    if (a.status === 'rejected') throw HttpError.of(ErrorCodes.conflict, `cannot create batch: agent "${id}" was rejected`);
    return a;
  });
}

/** A new queued job for one host, waiting `ttl` seconds from `t` for it. */
export function queuedJob(agentId: string, spec: { module: string; action: string; params: Record<string, unknown> }, t: number, ttl: number, batchId: string | null = null): JobRecord {
  return {
    id: randomUUID(),
    agentId,
    module: spec.module,
    action: spec.action,
    params: spec.params,
    status: 'queued',
    createdAt: t,
    sentAt: null,
    lastSentAt: null,
    deliveries: 0,
    finishedAt: null,
    expiresAt: t + ttl * 1000,
    result: null,
    batchId,
  };
}

const hostJob = (b: BatchRecord, agentId: string, t: number): JobRecord => queuedJob(agentId, b, t, b.expiresIn, b.id);

/** Wakes the hosts' check-ins and deliveries, and tells the live events. */
function queued(ctx: ServerContext, jobs: JobRecord[]): void {
  for (const j of jobs) ctx.dispatch.jobQueued(j.agentId);
  ctx.dispatch.jobsChanged(jobs.map((j) => j.id));
}

/**
 * Takes one of the operator's batch tokens (batch_rate_per_operator a minute, per user or admin
 * token: one operator cannot use up another's); throws rate-limited when none is left. Called once
 * the batch is valid, before anything is stored.
 */
function takeBatchToken(ctx: ServerContext, req: FastifyRequest, what: string): void {
  const op = req.operator;
  if (ctx.batchRate.take(`${op.kind}:${op.name}`, ctx.now())) return;
  const wait = ctx.batchRate.retryAfter(`${op.kind}:${op.name}`);
  const rate = limit(ctx.config, 'batch_rate_per_operator');
  throw HttpError.of(ErrorCodes.rateLimited, `cannot ${what}: ${op.kind} "${op.name}" created more than ${rate} batches a minute (batch_rate_per_operator); retry in ${wait} s`, { retryAfter: wait });
}

/** Creates a batch: one queued job per host of the target. */
export async function createBatch(ctx: ServerContext, req: FastifyRequest, spec: BatchSpec): Promise<BatchRecord> {
  const params = spec.params ?? {};
  const size = Buffer.byteLength(JSON.stringify(params));
  const maxParams = limit(ctx.config, 'batch_max_params_bytes');
  if (size > maxParams) {
    throw HttpError.of(ErrorCodes.messageTooLarge, `cannot create batch: params are ${size} bytes as JSON, at most ${maxParams} (batch_max_params_bytes)`);
  }
  const hosts = resolveTarget(ctx, req, spec.target);
  // Each host's job stores its own copy of the params.
  const total = hosts.length * size;
  const maxTotal = limit(ctx.config, 'batch_max_total_bytes');
  if (total > maxTotal) {
    throw HttpError.of(
      ErrorCodes.messageTooLarge,
      `cannot create batch: ${hosts.length} hosts × ${size} bytes of params = ${total} bytes to store, at most ${maxTotal} (batch_max_total_bytes); target fewer hosts or send smaller params`,
    );
  }
  takeBatchToken(ctx, req, 'create batch');
  const t = ctx.now();
  const b: BatchRecord = {
    id: randomUUID(),
    createdAt: t,
    createdBy: req.operator.name,
    module: spec.module,
    action: spec.action,
    params,
    target: spec.target,
    expiresIn: spec.expiresIn ?? ctx.config.job_default_ttl,
  };
  const jobs = hosts.map((a) => hostJob(b, a.id, t));
  await ctx.group.run(() => ctx.storage.fleet.createBatch(b, jobs));
  req.log.info({ batch: b.id, hosts: jobs.length, module: b.module, action: b.action, operator: req.operator.name }, 'batch queued');
  queued(ctx, jobs);
  return b;
}

export type BatchCounts = Record<JobStatus, number> & { total: number };

/** A host of a batch: its latest job, and its hostname and labels (null when the agent is gone). */
export interface BatchHost {
  job: JobRecord;
  hostname: string | null;
  labels: Record<string, string> | null;
}

/** A batch's hosts the operator reaches, each with its latest job; undefined when it reaches none. */
export function batchHosts(ctx: ServerContext, op: Operator, b: BatchRecord): BatchHost[] | undefined {
  const hosts = ctx.storage.fleet.latestJobs(b.id);
  if (op.selector === null) return hosts;
  const mine = hosts.filter((h) => h.labels !== null && canReach(op, { labels: h.labels }));
  return mine.length === 0 ? undefined : mine;
}

/** Counts by status of the latest jobs of the hosts the operator reaches; undefined when none. */
export function batchCounts(ctx: ServerContext, op: Operator, b: BatchRecord): BatchCounts | undefined {
  const c = ctx.storage.fleet.batchCounts(b.id, op.selector);
  if (c.total === 0 && op.selector !== null) return undefined;
  return { ...(Object.fromEntries(JOB_STATUSES.map((s) => [s, c[s] ?? 0])) as Record<JobStatus, number>), total: c.total };
}

function countsOf(hosts: BatchHost[]): BatchCounts {
  const counts = Object.fromEntries(JOB_STATUSES.map((s) => [s, 0])) as BatchCounts;
  counts.total = hosts.length;
  for (const h of hosts) counts[h.job.status]++;
  return counts;
}

/** The batch as a list shows it: its counts, not its hosts. */
export function batchSummary(b: BatchRecord, counts: BatchCounts) {
  return {
    id: b.id,
    created_at: iso(b.createdAt),
    created_by: b.createdBy,
    module: b.module,
    action: b.action,
    params: b.params,
    target: b.target,
    expires_in: b.expiresIn,
    counts,
  };
}

/** The batch with each host's latest job. */
export function batchView(b: BatchRecord, hosts: BatchHost[]) {
  // A selection names only the hosts shown: a limited operator never learns the ids of the others.
  const shown = new Set(hosts.map((h) => h.job.agentId));
  const target = b.target.agents === undefined ? b.target : { ...b.target, agents: b.target.agents.filter((id) => shown.has(id)) };
  return { ...batchSummary(b, countsOf(hosts)), target, hosts: hosts.map((h) => ({ agent_id: h.job.agentId, hostname: h.hostname, job: jobView(h.job) })) };
}

/** The batch if the operator reaches any of its hosts; else 404 as for an unknown id. */
export function requireBatch(ctx: ServerContext, req: FastifyRequest, id: string, what: string): { batch: BatchRecord; hosts: BatchHost[] } {
  const batch = ctx.storage.fleet.getBatch(id);
  const hosts = batch && batchHosts(ctx, req.operator, batch);
  if (!batch || !hosts) throw HttpError.of(ErrorCodes.notFound, `cannot ${what} batch "${id}": no such batch`);
  return { batch, hosts };
}

/**
 * Queues a new job for each host whose latest job failed, expired, was interrupted, got no result
 * or was cancelled, and which is still there and not rejected. Returns the hosts retried.
 */
export async function retryFailed(ctx: ServerContext, req: FastifyRequest, id: string): Promise<string[]> {
  const { batch, hosts } = requireBatch(ctx, req, id, 'retry');
  const t = ctx.now();
  const jobs = hosts
    .filter((h) => RETRYABLE_STATUSES.has(h.job.status) && h.hostname !== null && ctx.storage.getAgent(h.job.agentId)?.status !== 'rejected')
    .map((h) => hostJob(batch, h.job.agentId, t));
  if (jobs.length > 0) {
    takeBatchToken(ctx, req, `retry batch "${batch.id}"`);
    await ctx.group.run(() => ctx.storage.fleet.addBatchJobs(jobs));
  }
  req.log.info({ batch: batch.id, hosts: jobs.length, operator: req.operator.name }, 'batch: failed hosts queued again');
  queued(ctx, jobs);
  return jobs.map((j) => j.agentId);
}

/**
 * Cancels the batch's unfinished jobs the operator reaches: queued ones end `cancelled` now, sent
 * and running ones are asked to cancel (their agents learn of it as for a single job).
 */
export async function cancelBatch(ctx: ServerContext, req: FastifyRequest, id: string): Promise<{ cancelled: string[]; requested: string[] }> {
  const { hosts } = requireBatch(ctx, req, id, 'cancel');
  const open = hosts.filter((h) => !FINAL_STATUSES.has(h.job.status)).map((h) => h.job.id);
  const now = ctx.now();
  const outcomes = await ctx.group.run(() => open.map((jobId) => ctx.storage.cancelJob(jobId, now)));
  const cancelled: string[] = [];
  const requested: string[] = [];
  for (const o of outcomes) {
    if (o.state === 'cancelled') {
      cancelled.push(o.job.id);
      ctx.dispatch.jobFinished(o.job.id);
    } else if (o.state === 'requested') requested.push(o.job.id);
  }
  ctx.dispatch.jobsChanged(requested);
  req.log.info({ batch: id, cancelled: cancelled.length, requested: requested.length, operator: req.operator.name }, 'batch cancelled');
  return { cancelled, requested };
}
