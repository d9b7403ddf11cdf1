/**
 * The fleet routes of the operator API (issue 11, docs/fleet.md): the agent list searched, filtered
 * and paged; the dashboard; enrollment tokens listed and revoked; batches (one job per host for a
 * label or a selection) with retry-failed and cancel. Mounted under /api/v1 behind the operator
 * check that sets req.operator; every list is cut to the hosts the operator reaches.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { ErrorCodes, HttpError } from '../../protocol/errors.ts';
import { batchCounts, batchHosts, batchSummary, batchView, cancelBatch, createBatch, requireBatch, retryFailed } from '../batches.ts';
import { agentView, iso, jobView, stateWindows, type ServerContext } from '../context.ts';
import { canReach, requireRole } from '../operators.ts';
import {
  AgentsQuery,
  AgentsReply,
  BatchBody,
  BatchCancelReply,
  BatchCreatedReply,
  BatchesQuery,
  BatchesReply,
  BatchReply,
  BatchRetryReply,
  DashboardReply,
  EmptyBody,
  IdParams,
  TokenDeletedReply,
  TokensReply,
} from '../schemas.ts';
import type { AgentRecord } from '../storage/storage.ts';

export interface FleetRoutesOptions {
  ctx: ServerContext;
}

/** How many recent jobs and failures the dashboard shows. */
const DASHBOARD_JOBS = 10;

/** `KEY=VALUE` words (already checked by the schema) as a selector. */
function labelFilter(words: readonly string[] | undefined): Record<string, string> | undefined {
  if (!words || words.length === 0) return undefined;
  const out: Record<string, string> = {};
  for (const w of words) {
    const i = w.indexOf('=');
    out[w.slice(0, i)] = w.slice(i + 1);
  }
  return out;
}

export const fleetRoutes: FastifyPluginAsyncTypebox<FleetRoutesOptions> = async (api, { ctx }) => {
  const { storage } = ctx;
  const view = (a: AgentRecord, w = stateWindows(ctx)) => agentView(a, ctx.seen.get(a.id) ?? a.lastSeen, w);

  api.get('/agents', { schema: { querystring: AgentsQuery, response: AgentsReply } }, async (req) => {
    requireRole(req, 'viewer');
    const q = req.query;
    const w = stateWindows(ctx);
    const { agents, total } = storage.fleet.listAgents(
      {
        q: q.q,
        labels: labelFilter(q.label),
        state: q.state,
        mode: q.mode,
        os: q.os,
        selector: req.operator.selector,
        limit: q.limit ?? 100,
        offset: q.offset ?? 0,
      },
      w,
    );
    return { success: true as const, agents: agents.map((a) => view(a, w)), total };
  });

  api.get('/dashboard', { schema: { response: DashboardReply } }, async (req) => {
    requireRole(req, 'viewer');
    const op = req.operator;
    // Each drifted host carries its labels: filtered by the operator's reach without a lookup per host.
    const drifted = storage.templates.drifted().filter((d) => canReach(op, d));
    return {
      success: true as const,
      agents: storage.fleet.agentCounts(op.selector, stateWindows(ctx)),
      recent_jobs: storage.fleet.recentJobs(op.selector, false, DASHBOARD_JOBS).map(jobView),
      recent_failures: storage.fleet.recentJobs(op.selector, true, DASHBOARD_JOBS).map(jobView),
      drifted,
    };
  });

  api.get('/tokens', { schema: { response: TokensReply } }, async (req) => {
    requireRole(req, 'admin');
    const now = ctx.now();
    return {
      success: true as const,
      tokens: storage.fleet.listTokens().map((t) => ({
        id: t.id,
        name: t.name,
        labels: t.labels,
        uses: t.maxUses,
        uses_left: t.usesLeft,
        created_at: iso(t.createdAt),
        expires_at: iso(t.expiresAt),
        expired: t.expiresAt <= now,
      })),
    };
  });

  api.delete('/tokens/:id', { schema: { params: IdParams, response: TokenDeletedReply } }, async (req) => {
    requireRole(req, 'admin');
    const id = req.params.id;
    const gone = await ctx.group.run(() => storage.fleet.deleteToken(id));
    ctx.audit(req, { action: 'token.revoke', agents: [], params: { id }, result: gone ? 'ok' : 'no such token' });
    if (!gone) throw HttpError.of(ErrorCodes.notFound, `cannot revoke token "${id}": no such token`);
    req.log.info({ token_id: id }, 'enrollment token revoked');
    return { success: true as const, id };
  });

  api.post('/batches', { schema: { body: BatchBody, response: BatchCreatedReply } }, async (req, reply) => {
    requireRole(req, 'operator');
    const b = req.body;
    const params = { target: b.target, module: b.module, action: b.action, params: b.params ?? {} };
    let batch;
    try {
      batch = await createBatch(ctx, req, { target: b.target, module: b.module, action: b.action, params: b.params, expiresIn: b.expires_in });
    } catch (e) {
      ctx.audit(req, { action: 'batch.create', agents: b.target.agents ?? [], params, result: (e as Error).message });
      throw e;
    }
    const hosts = batchHosts(ctx, req.operator, batch) ?? [];
    ctx.audit(req, { action: 'batch.create', agents: hosts.map((h) => h.job.agentId), params: { ...params, batch: batch.id }, result: 'ok' });
    return reply.code(201).send({ success: true, batch: batchView(batch, hosts) });
  });

  api.get('/batches', { schema: { querystring: BatchesQuery, response: BatchesReply } }, async (req) => {
    requireRole(req, 'viewer');
    const list = storage.fleet.listBatches(req.query.limit ?? 20, req.query.offset ?? 0);
    const batches = [];
    const op = req.operator;
    for (const b of list) {
      const counts = batchCounts(ctx, op, b);
      // A selection of thousands of hosts is in the batch itself, not in every list.
      // Counted among the hosts the operator reaches: a limited one never learns how many others there are.
      const target = b.target.agents === undefined ? b.target : { agents_count: op.selector === null ? b.target.agents.length : counts?.total ?? 0 };
      if (counts) batches.push({ ...batchSummary(b, counts), target });
    }
    return { success: true as const, batches };
  });

  api.get('/batches/:id', { schema: { params: IdParams, response: BatchReply } }, async (req) => {
    requireRole(req, 'viewer');
    const { batch, hosts } = requireBatch(ctx, req, req.params.id, 'find');
    return { success: true as const, batch: batchView(batch, hosts) };
  });

  api.post('/batches/:id/retry-failed', { schema: { params: IdParams, body: EmptyBody, response: BatchRetryReply } }, async (req) => {
    requireRole(req, 'operator');
    const retried = await retryFailed(ctx, req, req.params.id);
    const { batch, hosts } = requireBatch(ctx, req, req.params.id, 'find');
    ctx.audit(req, { action: 'batch.retry-failed', agents: retried, params: { batch: batch.id }, result: 'ok' });
    return { success: true as const, batch: batchView(batch, hosts), retried };
  });

  api.post('/batches/:id/cancel', { schema: { params: IdParams, body: EmptyBody, response: BatchCancelReply } }, async (req) => {
    requireRole(req, 'operator');
    const out = await cancelBatch(ctx, req, req.params.id);
    const { batch, hosts } = requireBatch(ctx, req, req.params.id, 'find');
    ctx.audit(req, { action: 'batch.cancel', agents: hosts.map((h) => h.job.agentId), params: { batch: batch.id }, result: 'ok' });
    return { success: true as const, batch: batchView(batch, hosts), cancelled: out.cancelled, cancel_requested: out.requested };
  });
};
