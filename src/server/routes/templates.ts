/**
 * Firewall templates and drift, under /api/v1 (docs/templates.md). A template is a named desired
 * state of zones; preview and apply queue one firewalld `apply_zone_settings` job per host (with
 * `dry_run`, or with an optional `confirm_timeout`), so each host answers for itself and rolls
 * back by itself. Drift compares each agent's firewall hash (`get_state_hash`) with its baseline.
 * Reading needs viewer, preview/apply/check/baseline operator (and every host within the
 * operator's reach), creating, replacing and deleting templates admin. At most `templates_max`
 * templates are stored (each is bounded by ZONE_SETTINGS_LIMITS).
 */
import { randomUUID } from 'node:crypto';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyRequest } from 'fastify';
import { Type, type Static } from '@sinclair/typebox';
import { ZONE_SETTINGS_LIMITS, ZonesSettings, itemCount } from '../../protocol/firewall-template.ts';
import { ErrorCodes, HttpError } from '../../protocol/errors.ts';
import { iso, limit, type ServerContext } from '../context.ts';
import { batchHosts, batchView, createBatch, type BatchSpec } from '../batches.ts';
import { canReach, requireAgent, requireRole } from '../operators.ts';
import { BatchCreatedReply, BatchTargetSchema, IdParams } from '../schemas.ts';
import type { AgentRecord } from '../storage/storage.ts';
import type { FirewallState, TemplateRecord } from '../storage/template-store.ts';

const TemplateBody = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9][A-Za-z0-9 ._-]*$' }),
    description: Type.Optional(Type.String({ maxLength: 1024 })),
    zones: ZonesSettings,
  },
  { additionalProperties: false },
);
type TemplateBody = Static<typeof TemplateBody>;

/** Which hosts: these agents, or those carrying every label pair (the batches' target). */
const Target = BatchTargetSchema;

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

/** Queues a batch (one job per host of the target); answers it with each host's job, as POST /batches does. */
async function batchReply(ctx: ServerContext, req: FastifyRequest, spec: BatchSpec, audit: { action: string; params: Record<string, unknown> }) {
  let batch;
  try {
    batch = await createBatch(ctx, req, spec);
  } catch (e) {
    ctx.audit(req, { action: audit.action, agents: spec.target.agents ?? [], params: audit.params, result: (e as Error).message });
    throw e;
  }
  const hosts = batchHosts(ctx, req.operator, batch) ?? [];
  ctx.audit(req, { action: audit.action, agents: hosts.map((h) => h.job.agentId), params: { ...audit.params, batch: batch.id }, result: 'ok' });
  return { success: true as const, batch: batchView(batch, hosts) };
}

export interface TemplateRoutesOptions {
  ctx: ServerContext;
}

export const templateRoutes: FastifyPluginAsyncTypebox<TemplateRoutesOptions> = async (api, { ctx }) => {
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
    const max = limit(ctx.config, 'templates_max');
    const out = await ctx.group.run(() => store.create(rec, max));
    if (out === 'exists') throw HttpError.of(ErrorCodes.conflict, `${what}: a template of that name exists`);
    if (out === 'full') throw HttpError.of(ErrorCodes.conflict, `${what}: the server already holds ${max} templates (templates_max); delete one or raise templates_max`);
    ctx.audit(req, { action: 'template.create', agents: [], params: { id: rec.id, name: rec.name }, result: 'ok' });
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
    ctx.audit(req, { action: 'template.replace', agents: [], params: { id: out.id, name: out.name }, result: 'ok' });
    return { success: true as const, template: templateView(out) };
  });

  api.delete('/templates/:id', { schema: { params: IdParams, response: { 200: Type.Object({ success: Type.Literal(true) }) } } }, async (req) => {
    requireRole(req, 'admin');
    if (!(await ctx.group.run(() => store.delete(req.params.id)))) throw HttpError.of(ErrorCodes.notFound, `cannot delete template "${req.params.id}": no such template`);
    ctx.audit(req, { action: 'template.delete', agents: [], params: { id: req.params.id }, result: 'ok' });
    return { success: true as const };
  });

  for (const verb of ['preview', 'apply'] as const) {
    const body = verb === 'preview' ? PreviewBody : ApplyBody;
    api.post(`/templates/:id/${verb}`, { schema: { params: IdParams, body, response: BatchCreatedReply } }, async (req, reply) => {
      requireRole(req, 'operator');
      const b = req.body as Static<typeof ApplyBody>;
      const t = mustGet(req.params.id, `cannot ${verb} template "${req.params.id}"`);
      const params: Record<string, unknown> = { zones: t.zones };
      if (b.permanent !== undefined) params.permanent = b.permanent;
      if (verb === 'preview') params.dry_run = true;
      else if (b.confirm_timeout !== undefined) params.confirm_timeout = b.confirm_timeout;
      const out = await batchReply(
        ctx,
        req,
        { target: b.target, module: 'firewalld', action: 'apply_zone_settings', params, expiresIn: b.expires_in },
        { action: `template.${verb}`, params: { template: t.id, name: t.name, target: b.target, permanent: b.permanent, confirm_timeout: b.confirm_timeout } },
      );
      req.log.info({ template: t.id, batch: out.batch.id }, `template ${verb} queued`);
      return reply.code(201).send(out);
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
    ctx.audit(req, { action: 'firewall.baseline', agents: [a.id], params: { hash: s.baseline }, result: 'ok' });
    return { success: true as const, firewall: firewallView(a.id, s) };
  });

  api.get('/firewall/drift', { schema: { response: { 200: Type.Object({ success: Type.Literal(true), drifted: Type.Array(DriftedView) }) } } }, async (req) => {
    requireRole(req, 'viewer');
    return { success: true as const, drifted: store.drifted().filter((d) => canReach(req.operator, d)) };
  });

  api.post('/firewall/check', { schema: { body: CheckBody, response: BatchCreatedReply } }, async (req, reply) => {
    requireRole(req, 'operator');
    const b = req.body;
    let target = b.target;
    if (target === undefined) {
      // Agents that report their modules and lack firewalld are left out; those that report none are asked.
      const hasFirewalld = (a: AgentRecord) => a.modules.length === 0 || a.modules.includes('firewalld');
      const agents = ctx.storage.listAgents().filter((a) => a.status === 'active' && canReach(req.operator, a) && hasFirewalld(a));
      if (agents.length === 0) throw HttpError.of(ErrorCodes.notFound, 'cannot check firewalls: no approved agent with firewalld you can reach');
      target = { agents: agents.map((a) => a.id) };
    }
    const out = await batchReply(ctx, req, { target, module: 'firewalld', action: 'get_state_hash', params: {}, expiresIn: b.expires_in }, { action: 'firewall.check', params: { target: b.target ?? 'all' } });
    return reply.code(201).send(out);
  });
};
