/**
 * The operator API under /api/v1/: enrollment tokens, agents (list, approve, reject) and jobs
 * (queue, show with an optional wait for the result, list, cancel). Every route demands the admin token
 * or a user's session, and the role its work needs (operators.ts); a limited operator never learns of a
 * host outside its label selector.
 */
import { randomUUID } from 'node:crypto';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { ErrorCodes, HttpError } from '../../protocol/errors.ts';
import { agentView, iso, jobView, stateWindows, type ServerContext } from '../context.ts';
import { endpointOf, EndpointError } from '../delivery/endpoint.ts';
import { PushTransport } from '../delivery/push.ts';
import { DeliveryError } from '../delivery/transport.ts';
import {
  AgentAddBody,
  AgentAddReply,
  AgentHealthReply,
  AgentLabelsBody,
  AgentModeBody,
  AgentModeReply,
  AgentReply,
  EmptyBody,
  IdParams,
  JobBody,
  JobCreatedReply,
  JobQuery,
  JobReply,
  JobsQuery,
  JobsReply,
  TokenBody,
  TokenReply,
} from '../schemas.ts';
import { queuedJob } from '../batches.ts';
import { eventRoutes } from './events.ts';
import { fleetRoutes } from './fleet.ts';
import { templateRoutes } from './templates.ts';
import { hashSecret, newSecret } from '../secrets.ts';
import { installOperatorAuth, needs } from '../operator-auth.ts';
import { canReach, MAX_LABELS, requireAgent, type Operator } from '../operators.ts';
import { FINAL_STATUSES, type AgentModeChange, type AgentRecord, type JobRecord } from '../storage/storage.ts';

export interface OperatorRoutesOptions {
  ctx: ServerContext;
}

function newJob(ctx: ServerContext, agent: AgentRecord, b: JobBody): JobRecord {
  return queuedJob(agent.id, { module: b.module, action: b.action, params: b.params ?? {} }, ctx.now(), b.expires_in ?? ctx.config.job_default_ttl);
}

/**
 * The stored form of an operator's mode input, every field checked; `newKey` when the server made up
 * the push key (it is shown once). A push agent's key hash is its push key's, so the agent keeps
 * working with the same config if it is set back to pull mode.
 */
function modeChange(b: AgentModeBody, what: string): { change: AgentModeChange; newKey: string | null } {
  let endpoint;
  try {
    if (b.mode !== 'push' && b.api_key !== undefined) throw new EndpointError(`cannot use api-key with mode ${b.mode}`);
    endpoint = endpointOf(b);
  } catch (e) {
    if (e instanceof EndpointError) throw HttpError.of(ErrorCodes.invalidRequest, `cannot ${what}: ${e.message}`);
    throw e;
  }
  if (b.mode !== 'push') return { change: { mode: b.mode, endpoint, pushKey: null, keyHash: null }, newKey: null };
  const key = b.api_key ?? newSecret();
  return { change: { mode: 'push', endpoint, pushKey: key, keyHash: hashSecret(key) }, newKey: b.api_key === undefined ? key : null };
}

/** Whether an operator may see a job: it reaches the job's agent. */
function reachesJobOf(storage: ServerContext['storage']) {
  return (op: Operator, j: JobRecord): boolean => {
    if (op.selector === null) return true;
    const a = storage.getAgent(j.agentId);
    return a !== undefined && canReach(op, a);
  };
}

/** Registers the operator routes behind the admin-token check; mounted under /api/v1. */
export const operatorRoutes: FastifyPluginAsyncTypebox<OperatorRoutesOptions> = async (api, { ctx }) => {
  const { storage, group, dispatch } = ctx;
  const reachesJob = reachesJobOf(storage);
  const view = (a: AgentRecord) => agentView(a, ctx.seen.get(a.id) ?? a.lastSeen, stateWindows(ctx));

  // The admin token or a user's session (req.operator); every change audited.
  installOperatorAuth(api, ctx);

  // A POST without a body (curl -X POST) means "no options".
  api.addHook('preValidation', async (req) => {
    if (req.method === 'POST' && req.body === undefined) req.body = {};
  });

  // Registered inside this scope so the operator check above covers them (issue 11: the fleet).
  void api.register(fleetRoutes, { ctx });
  void api.register(eventRoutes, { ctx });
  void api.register(templateRoutes, { ctx });

  api.post('/tokens', { ...needs('admin'), schema: { body: TokenBody, response: TokenReply } }, async (req, reply) => {
    const token = newSecret();
    const t = ctx.now();
    const uses = req.body.uses ?? 1;
    const labels = req.body.labels ?? {};
    const name = req.body.name ?? null;
    const rec = { id: randomUUID(), hash: hashSecret(token), createdAt: t, expiresAt: t + (req.body.ttl ?? 86400) * 1000, maxUses: uses, usesLeft: uses, labels, name };
    await group.run(() => storage.createToken(rec));
    req.log.info({ token_id: rec.id, uses }, 'enrollment token created');
    ctx.audit(req, { action: 'token.create', agents: [], params: { uses, ttl: req.body.ttl, labels, name }, result: 'ok' });
    return reply.code(201).send({ success: true, id: rec.id, token, uses, expires_at: iso(rec.expiresAt), labels, name });
  });

  api.post('/agents', { ...needs('admin'), schema: { body: AgentAddBody, response: AgentAddReply } }, async (req, reply) => {
    const b = req.body;
    if (b.mode === 'pull') throw HttpError.of(ErrorCodes.invalidRequest, `cannot add agent "${b.name}": a pull-mode agent registers itself with an enrollment token`);
    const { change, newKey } = modeChange(b, `add agent "${b.name}"`);
    const t = ctx.now();
    const agent: AgentRecord = {
      id: randomUUID(),
      // An ssh agent has no key: this hash of a key nobody knows matches nothing.
      keyHash: change.keyHash ?? hashSecret(newSecret()),
      status: 'active',
      machineId: null,
      hostname: b.name,
      ip: null,
      osInfo: null,
      modules: [],
      version: null,
      features: [],
      createdAt: t,
      lastSeen: null,
      tokenId: null,
      mode: change.mode,
      endpoint: change.endpoint,
      pushKey: change.pushKey,
      labels: {},
    };
    await group.run(() => storage.enroll(null, agent, t));
    req.log.info({ agent: agent.id, mode: agent.mode }, 'agent added');
    ctx.audit(req, { action: 'agent.add', agents: [agent.id], params: b, result: 'ok' });
    dispatch.jobQueued(agent.id);
    return reply.code(201).send({ success: true, agent: view(agent), ...(newKey === null ? {} : { api_key: newKey }) });
  });

  api.post('/agents/:id/mode', { ...needs('admin'), schema: { params: IdParams, body: AgentModeBody, response: AgentModeReply } }, async (req) => {
    const { change, newKey } = modeChange(req.body, `set mode of agent "${req.params.id}"`);
    const agent = await group.run(() => storage.setAgentMode(req.params.id, change));
    if (!agent) throw HttpError.of(ErrorCodes.notFound, `cannot set mode of agent "${req.params.id}": no such agent`);
    req.log.info({ agent: agent.id, mode: agent.mode }, 'agent mode set');
    dispatch.jobQueued(agent.id);
    return { success: true as const, agent: view(agent), ...(newKey === null ? {} : { api_key: newKey }) };
  });

  // Operator, not viewer: the answer is read from the agent, so each call makes the server connect
  // to the agent's endpoint (TLS, up to 10 s); a viewer reads the stored state and last_seen only.
  api.get('/agents/:id/health', { ...needs('operator'), schema: { params: IdParams, response: AgentHealthReply } }, async (req) => {
    const agent = requireAgent(req, storage.getAgent(req.params.id), `cannot get health of agent "${req.params.id}"`);
    const transport = ctx.delivery.transportOf(agent.id);
    if (agent.mode !== 'push' || !(transport instanceof PushTransport)) {
      throw HttpError.of(ErrorCodes.conflict, `cannot get health of agent "${agent.id}": only a push-mode agent the server delivers to answers /health (mode ${agent.mode}, status ${agent.status})`);
    }
    try {
      const health = await transport.health(AbortSignal.timeout(10_000));
      // A push agent that answers counts as seen (it has no check-ins).
      ctx.seen.set(agent.id, ctx.now());
      dispatch.agentChanged(agent.id);
      return { success: true as const, health };
    } catch (e) {
      if (e instanceof DeliveryError) throw HttpError.of(ErrorCodes.deliveryFailed, `cannot get health of agent "${agent.id}": ${e.message}`);
      throw e;
    }
  });

  api.post('/agents/:id/labels', { ...needs('admin'), schema: { params: IdParams, body: AgentLabelsBody, response: AgentReply } }, async (req) => {
    const { set = {}, remove = [] } = req.body;
    const what = `cannot label agent "${req.params.id}"`;
    requireAgent(req, storage.getAgent(req.params.id), what);
    let tooMany = false;
    const agent = await group.run(() =>
      storage.setAgentLabels(req.params.id, (cur) => {
        const next = { ...cur, ...set };
        for (const k of remove) delete next[k];
        // Over the limit: the labels stay as they were.
        if (Object.keys(next).length > MAX_LABELS) {
          tooMany = true;
          return cur;
        }
        return next;
      }),
    );
    requireAgent(req, agent, what);
    if (tooMany) throw HttpError.of(ErrorCodes.invalidRequest, `${what}: more than ${MAX_LABELS} labels`);
    req.log.info({ agent: agent!.id }, 'agent labels set');
    dispatch.agentChanged(agent!.id);
    ctx.audit(req, { action: 'agent.label', agents: [agent!.id], params: { set, remove }, result: 'ok' });
    return { success: true as const, agent: view(agent!) };
  });

  for (const verb of ['approve', 'reject'] as const) {
    api.post(`/agents/:id/${verb}`, { ...needs('admin'), schema: { params: IdParams, body: EmptyBody, response: AgentReply } }, async (req) => {
      const agent = await group.run(() => storage.setAgentStatus(req.params.id, verb === 'approve' ? 'active' : 'rejected'));
      if (!agent) throw HttpError.of(ErrorCodes.notFound, `cannot ${verb} agent "${req.params.id}": no such agent`);
      req.log.info({ agent: agent.id }, `agent ${verb === 'approve' ? 'approved' : 'rejected'}`);
      if (verb === 'approve') dispatch.jobQueued(agent.id);
      dispatch.agentChanged(agent.id);
      return { success: true as const, agent: view(agent) };
    });
  }

  api.post('/jobs', { ...needs('operator'), schema: { body: JobBody, response: JobCreatedReply } }, async (req, reply) => {
    const b = req.body;
    const agent = requireAgent(req, storage.getAgent(b.agent_id), `cannot queue job for agent "${b.agent_id}"`);
    if (agent.status === 'rejected') throw HttpError.of(ErrorCodes.conflict, `cannot queue job for agent "${b.agent_id}": the agent was rejected`);
    const job = newJob(ctx, agent, b);
    await group.run(() => storage.createJob(job));
    dispatch.jobQueued(agent.id);
    dispatch.jobsChanged([job.id]);
    req.log.info({ job: job.id, agent: agent.id, module: job.module, action: job.action }, 'job queued');
    ctx.audit(req, { action: 'job.create', agents: [agent.id], params: { job: job.id, module: job.module, action: job.action, params: job.params }, result: 'ok' });
    return reply.code(201).send({ success: true, job: jobView(job) });
  });

  api.get('/jobs/:id', { ...needs('viewer'), schema: { params: IdParams, querystring: JobQuery, response: JobReply } }, async (req, reply) => {
    let job = storage.getJob(req.params.id);
    if (!job || !reachesJob(req.operator, job)) throw HttpError.of(ErrorCodes.notFound, `cannot find job "${req.params.id}"`);
    const wait = req.query.wait ?? 0;
    if (wait > 0 && !FINAL_STATUSES.has(job.status)) {
      const gone = new AbortController();
      const onClose = (): void => gone.abort();
      reply.raw.once('close', onClose);
      const why = await dispatch.waitForJob(job.id, wait * 1000, gone.signal);
      reply.raw.off('close', onClose);
      if (why !== 'shutdown') job = storage.getJob(req.params.id) ?? job;
    }
    return { success: true as const, job: jobView(job) };
  });

  api.post('/jobs/:id/cancel', { ...needs('operator'), schema: { params: IdParams, body: EmptyBody, response: JobReply } }, async (req) => {
    const before = storage.getJob(req.params.id);
    if (!before || !reachesJob(req.operator, before)) throw HttpError.of(ErrorCodes.notFound, `cannot cancel job "${req.params.id}": no such job`);
    const out = await group.run(() => storage.cancelJob(req.params.id, ctx.now()));
    if (out.state === 'unknown') throw HttpError.of(ErrorCodes.notFound, `cannot cancel job "${req.params.id}": no such job`);
    if (out.state === 'final') throw HttpError.of(ErrorCodes.conflict, `cannot cancel job "${out.job.id}": it already ended ${out.job.status}`);
    // A queued job ends here; a running one ends with the result its agent reports.
    if (out.state === 'cancelled') dispatch.jobFinished(out.job.id);
    else if (out.state === 'requested') dispatch.jobsChanged([out.job.id]);
    req.log.info({ job: out.job.id, agent: out.job.agentId, status: out.job.status }, out.state === 'cancelled' ? 'job cancelled' : 'job cancel requested');
    ctx.audit(req, { action: 'job.cancel', agents: [out.job.agentId], params: { job: out.job.id }, result: 'ok' });
    return { success: true as const, job: jobView(out.job) };
  });

  api.get('/jobs', { ...needs('viewer'), schema: { querystring: JobsQuery, response: JobsReply } }, async (req) => {
    const q = req.query;
    const op = req.operator;
    if (op.selector === null) return { success: true as const, jobs: storage.listJobs({ agentId: q.agent_id, status: q.status, limit: q.limit }).map(jobView) };
    // A limited operator: the newest jobs of the hosts it reaches (read wider, then filtered).
    const jobs = storage.listJobs({ agentId: q.agent_id, status: q.status, limit: 1000 }).filter((j) => reachesJob(op, j));
    return { success: true as const, jobs: jobs.slice(0, q.limit ?? 100).map(jobView) };
  });
};
