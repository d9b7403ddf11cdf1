/**
 * Firewall templates and drift, under /api/v1 (docs/templates.md). A template is a named desired
 * state of zones; preview and apply queue one firewalld `apply_zone_settings` job per host (with
 * `dry_run`, or with an optional `confirm_timeout`), so each host answers for itself and rolls
 * back by itself. Drift compares each agent's firewall hash (`get_state_hash`) with its baseline.
 * Reading needs viewer, preview/apply/check/baseline operator (and every host within the
 * operator's reach), creating, replacing and deleting templates admin.
 */
import { randomUUID } from 'node:crypto';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type, type Static } from '@sinclair/typebox';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { ZONE_SETTINGS_LIMITS, ZonesSettings, itemCount } from '../../protocol/firewall-template.ts';
import { ErrorCodes, HttpError } from '../../protocol/errors.ts';
import { Id } from '../../protocol/jobs.ts';
import { iso, type ServerContext } from '../context.ts';
import { canReach, matchesSelector, requireAgent, requireRole } from '../operators.ts';
import { IdParams, Labels } from '../schemas.ts';
import type { AgentRecord } from '../storage/storage.ts';
import type { FirewallState, TemplateRecord } from '../storage/template-store.ts';
import { newJob, operatorHooks } from './operator.ts';

/** Most hosts one preview, apply or check names by id. */
const MAX_TARGET_AGENTS = 1000;

const TemplateBody = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9][A-Za-z0-9 ._-]*$' }),
    description: Type.Optional(Type.String({ maxLength: 1024 })),
    zones: ZonesSettings,
  },
  { additionalProperties: false },
);
type TemplateBody = Static<typeof TemplateBody>;

/** Which hosts: these agents, or those carrying every label pair; both: the agents that carry them. */
const Target = Type.Object(
  {
    agents: Type.Optional(Type.Array(Id, { minItems: 1, maxItems: MAX_TARGET_AGENTS, uniqueItems: true })),
    label: Type.Optional(Labels),
  },
  { additionalProperties: false },
);
type Target = Static<typeof Target>;

const ExpiresIn = Type.Optional(Type.Integer({ minimum: 1, maximum: 30 * 86400, description: 'seconds each job waits for its host' }));
const Permanent = Type.Optional(Type.Boolean({ description: 'the permanent configuration instead of the runtime' }));

const PreviewBody = Type.Object({ target: Target, permanent: Permanent, expires_in: ExpiresIn }, { additionalProperties: false });
const ApplyBody = Type.Object(
  {
    target: Target,
    permanent: Permanent,
    expires_in: ExpiresIn,
    confirm_timeout: Type.Optional(Type.Integer({ minimum: 5, maximum: 3600, description: 'seconds: each host rolls the whole template back unless confirmed' })),
  },
  { additionalProperties: false },
);
const CheckBody = Type.Object({ target: Type.Optional(Target), expires_in: ExpiresIn }, { additionalProperties: false });

const TemplateView = Type.Object({
  id: Type.String(),
  name: Type.String(),
  description: Type.String(),
  zones: Type.Unknown(),
  created_at: Type.String(),
  updated_at: Type.String(),
});
const HostJob = Type.Object({ agent_id: Type.String(), hostname: Type.String(), job_id: Type.String() });
const JobsReply = Type.Object({ success: Type.Literal(true), jobs: Type.Array(HostJob) });
const FirewallView = Type.Object({
  agent_id: Type.String(),
  baseline: Type.Union([Type.String(), Type.Null()]),
  baseline_at: Type.Union([Type.String(), Type.Null()]),
  current: Type.Union([Type.String(), Type.Null()]),
  checked_at: Type.Union([Type.String(), Type.Null()]),
  drifted: Type.Boolean(),
  baseline_refresh_pending: Type.Boolean(),
});
const DriftedView = Type.Object({ agent_id: Type.String(), hostname: Type.String(), baseline: Type.String(), current: Type.String(), checked_at: Type.String() });

function templateView(t: TemplateRecord) {
  return { id: t.id, name: t.name, description: t.description, zones: t.zones, created_at: iso(t.createdAt)!, updated_at: iso(t.updatedAt)! };
}

function firewallView(agentId: string, s: FirewallState | undefined) {
  return {
    agent_id: agentId,
    baseline: s?.baseline ?? null,
    baseline_at: iso(s?.baselineAt ?? null),
    current: s?.current ?? null,
    checked_at: iso(s?.checkedAt ?? null),
    drifted: s?.baseline != null && s.current != null && s.baseline !== s.current,
    baseline_refresh_pending: s?.refresh ?? false,
  };
}

/** Refuses a template of more items than one host's call may carry, naming the count. */
function checkSize(b: TemplateBody, what: string): void {
  const n = itemCount(b.zones);
  if (n > ZONE_SETTINGS_LIMITS.items) {
    throw HttpError.of(ErrorCodes.invalidRequest, `${what}: ${n} services, ports and rich rules; at most ${ZONE_SETTINGS_LIMITS.items} in all`);
  }
}

/**
 * The hosts of a target within the operator's reach: named agents must each exist, be reachable
 * (else 404, as for an unknown id) and be active; a label matches the active agents carrying it,
 * intersected with the operator's selector. An empty result is refused.
 */
export function targetAgents(ctx: ServerContext, req: FastifyRequest, target: Target, what: string): AgentRecord[] {
  let agents: AgentRecord[];
  if (target.agents !== undefined) {
    agents = target.agents.map((id) => {
      const a = requireAgent(req, ctx.storage.getAgent(id), `${what} on agent "${id}"`);
      if (a.status !== 'active') throw HttpError.of(ErrorCodes.conflict, `${what} on agent "${id}": the agent is ${a.status}`);
      return a;
    });
    if (target.label !== undefined) agents = agents.filter((a) => matchesSelector(a.labels, target.label!));
  } else if (target.label !== undefined) {
    agents = ctx.storage.listAgents().filter((a) => a.status === 'active' && matchesSelector(a.labels, target.label!) && canReach(req.operator, a));
  } else {
    throw HttpError.of(ErrorCodes.invalidRequest, `${what}: the target names no agents and no label`);
  }
  if (agents.length === 0) throw HttpError.of(ErrorCodes.invalidRequest, `${what}: no active agent within reach matches the target`);
  return agents;
}

/** Queues one job per host; gives which job went to which host. */
async function queuePerHost(ctx: ServerContext, agents: AgentRecord[], module: string, action: string, params: Record<string, unknown>, expiresIn: number | undefined) {
  const jobs = agents.map((a) => ({ agent: a, job: newJob(ctx, a, { agent_id: a.id, module, action, params, expires_in: expiresIn }) }));
  await ctx.group.run(() => ctx.storage.batch(() => jobs.forEach(({ job }) => ctx.storage.createJob(job))));
  for (const { agent } of jobs) ctx.dispatch.jobQueued(agent.id);
  return jobs.map(({ agent, job }) => ({ agent_id: agent.id, hostname: agent.hostname, job_id: job.id }));
}

export interface TemplateRoutesOptions {
  ctx: ServerContext;
}

export const templateRoutes: FastifyPluginAsyncTypebox<TemplateRoutesOptions> = async (api, { ctx }) => {
  operatorHooks(api as unknown as FastifyInstance, ctx);
  const store = ctx.storage.templates;
  const mustGet = (id: string, what: string): TemplateRecord => {
    const t = store.get(id);
    if (!t) throw HttpError.of(ErrorCodes.notFound, `${what}: no such template`);
    return t;
  };

  api.get('/templates', { schema: { response: { 200: Type.Object({ success: Type.Literal(true), templates: Type.Array(TemplateView) }) } } }, async (req) => {
    requireRole(req, 'viewer');
    return { success: true as const, templates: store.list().map(templateView) };
  });

  api.get('/templates/:id', { schema: { params: IdParams, response: { 200: Type.Object({ success: Type.Literal(true), template: TemplateView }) } } }, async (req) => {
    requireRole(req, 'viewer');
    return { success: true as const, template: templateView(mustGet(req.params.id, `cannot find template "${req.params.id}"`)) };
  });

  api.post('/templates', { schema: { body: TemplateBody, response: { 201: Type.Object({ success: Type.Literal(true), template: TemplateView }) } } }, async (req, reply) => {
    requireRole(req, 'admin');
    const b = req.body;
    const what = `cannot create template "${b.name}"`;
    checkSize(b, what);
    const t = ctx.now();
    const rec: TemplateRecord = { id: randomUUID(), name: b.name, description: b.description ?? '', zones: b.zones, createdAt: t, updatedAt: t };
    if ((await ctx.group.run(() => store.create(rec))) === 'exists') throw HttpError.of(ErrorCodes.conflict, `${what}: a template of that name exists`);
    ctx.audit?.(req, { action: 'template.create', agents: [], params: { id: rec.id, name: rec.name }, result: 'ok' });
    return reply.code(201).send({ success: true, template: templateView(rec) });
  });

  api.put('/templates/:id', { schema: { params: IdParams, body: TemplateBody, response: { 200: Type.Object({ success: Type.Literal(true), template: TemplateView }) } } }, async (req) => {
    requireRole(req, 'admin');
    const b = req.body;
    const what = `cannot replace template "${req.params.id}"`;
    checkSize(b, what);
    const out = await ctx.group.run(() => store.replace(req.params.id, { name: b.name, description: b.description ?? '', zones: b.zones }, ctx.now()));
    if (out === undefined) throw HttpError.of(ErrorCodes.notFound, `${what}: no such template`);
    if (out === 'exists') throw HttpError.of(ErrorCodes.conflict, `${what}: another template is named "${b.name}"`);
    ctx.audit?.(req, { action: 'template.replace', agents: [], params: { id: out.id, name: out.name }, result: 'ok' });
    return { success: true as const, template: templateView(out) };
  });

  api.delete('/templates/:id', { schema: { params: IdParams, response: { 200: Type.Object({ success: Type.Literal(true) }) } } }, async (req) => {
    requireRole(req, 'admin');
    if (!(await ctx.group.run(() => store.delete(req.params.id)))) throw HttpError.of(ErrorCodes.notFound, `cannot delete template "${req.params.id}": no such template`);
    ctx.audit?.(req, { action: 'template.delete', agents: [], params: { id: req.params.id }, result: 'ok' });
    return { success: true as const };
  });

  for (const verb of ['preview', 'apply'] as const) {
    const body = verb === 'preview' ? PreviewBody : ApplyBody;
    api.post(`/templates/:id/${verb}`, { schema: { params: IdParams, body, response: { 201: JobsReply } } }, async (req, reply) => {
      requireRole(req, 'operator');
      const b = req.body as Static<typeof ApplyBody>;
      const what = `cannot ${verb} template "${req.params.id}"`;
      const t = mustGet(req.params.id, what);
      const agents = targetAgents(ctx, req, b.target, what);
      const params: Record<string, unknown> = { zones: t.zones };
      if (b.permanent !== undefined) params.permanent = b.permanent;
      if (verb === 'preview') params.dry_run = true;
      else if (b.confirm_timeout !== undefined) params.confirm_timeout = b.confirm_timeout;
      const jobs = await queuePerHost(ctx, agents, 'firewalld', 'apply_zone_settings', params, b.expires_in);
      req.log.info({ template: t.id, hosts: jobs.length }, `template ${verb} queued`);
      ctx.audit?.(req, {
        action: `template.${verb}`,
        agents: agents.map((a) => a.id),
        params: { id: t.id, name: t.name, target: b.target, permanent: b.permanent, confirm_timeout: b.confirm_timeout },
        result: 'ok',
      });
      return reply.code(201).send({ success: true, jobs });
    });
  }

  api.get('/agents/:id/firewall', { schema: { params: IdParams, response: { 200: Type.Object({ success: Type.Literal(true), firewall: FirewallView }) } } }, async (req) => {
    requireRole(req, 'viewer');
    const a = requireAgent(req, ctx.storage.getAgent(req.params.id), `cannot show firewall of agent "${req.params.id}"`);
    return { success: true as const, firewall: firewallView(a.id, store.firewall(a.id)) };
  });

  api.post('/agents/:id/firewall/baseline', { schema: { params: IdParams, response: { 200: Type.Object({ success: Type.Literal(true), firewall: FirewallView }) } } }, async (req) => {
    requireRole(req, 'operator');
    const what = `cannot accept the firewall of agent "${req.params.id}" as its baseline`;
    const a = requireAgent(req, ctx.storage.getAgent(req.params.id), what);
    const s = await ctx.group.run(() => store.acceptBaseline(a.id, ctx.now()));
    if (!s) throw HttpError.of(ErrorCodes.conflict, `${what}: no firewall hash from it yet (POST /api/v1/firewall/check asks for one)`);
    ctx.audit?.(req, { action: 'firewall.baseline', agents: [a.id], params: { hash: s.baseline }, result: 'ok' });
    return { success: true as const, firewall: firewallView(a.id, s) };
  });

  api.get('/firewall/drift', { schema: { response: { 200: Type.Object({ success: Type.Literal(true), drifted: Type.Array(DriftedView) }) } } }, async (req) => {
    requireRole(req, 'viewer');
    return { success: true as const, drifted: store.drifted().filter((d) => canReach(req.operator, d)) };
  });

  api.post('/firewall/check', { schema: { body: CheckBody, response: { 201: JobsReply } } }, async (req, reply) => {
    requireRole(req, 'operator');
    const what = 'cannot check firewalls';
    const b = req.body;
    // Agents that report their modules and lack firewalld are left out; those that report none are asked.
    const hasFirewalld = (a: AgentRecord) => a.modules.length === 0 || a.modules.includes('firewalld');
    const agents = (b.target ? targetAgents(ctx, req, b.target, what) : ctx.storage.listAgents().filter((a) => a.status === 'active' && canReach(req.operator, a))).filter(hasFirewalld);
    if (agents.length === 0) throw HttpError.of(ErrorCodes.invalidRequest, `${what}: no active agent with firewalld within reach`);
    const jobs = await queuePerHost(ctx, agents, 'firewalld', 'get_state_hash', {}, b.expires_in);
    ctx.audit?.(req, { action: 'firewall.check', agents: agents.map((a) => a.id), params: { target: b.target }, result: 'ok' });
    return reply.code(201).send({ success: true, jobs });
  });
};
