/**
 * `GET /api/v1/audit`: the audit log, filtered, as JSON, JSON lines or CSV.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { ErrorCodes, HttpError } from '../../protocol/errors.ts';
import { auditCsv, auditJsonl, auditView } from '../audit.ts';
import type { ServerContext } from '../context.ts';
import { installOperatorAuth, needs } from '../operator-auth.ts';
import { canReach } from '../operators.ts';

export const AUDIT_MAX_LIMIT = 10_000;

const AuditQuery = Type.Object(
  {
    actor: Type.Optional(Type.String({ maxLength: 200 })),
    action: Type.Optional(Type.String({ maxLength: 200 })),
    agent: Type.Optional(Type.String({ maxLength: 100 })),
    since: Type.Optional(Type.String({ maxLength: 40 })),
    until: Type.Optional(Type.String({ maxLength: 40 })),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: AUDIT_MAX_LIMIT })),
    format: Type.Optional(Type.Union([Type.Literal('json'), Type.Literal('jsonl'), Type.Literal('csv')])),
  },
  { additionalProperties: false },
);

function time(v: string | undefined, key: string): number | undefined {
  if (v === undefined) return undefined;
  const t = /^\d{4}-\d{2}-\d{2}/.test(v) ? Date.parse(v) : NaN;
  if (Number.isNaN(t)) throw HttpError.of(ErrorCodes.invalidRequest, `cannot list audit entries: ${key} ${JSON.stringify(v)} is not an ISO 8601 date`);
  return t;
}

export interface AuditRoutesOptions {
  ctx: ServerContext;
}

export const auditRoutes: FastifyPluginAsyncTypebox<AuditRoutesOptions> = async (api, { ctx }) => {
  installOperatorAuth(api, ctx);
  api.get('/audit', { ...needs('viewer'), schema: { querystring: AuditQuery } }, async (req, reply) => {
    const q = req.query;
    const all = ctx.storage.auth.listAudit({ actor: q.actor, action: q.action, agent: q.agent, since: time(q.since, 'since'), until: time(q.until, 'until'), limit: q.limit ?? 1000 });
    // A limited operator sees no entry about a host it cannot reach (it must not learn it exists).
    const op = req.operator;
    const records = op.selector === null ? all : all.filter((r) => r.agents.every((id) => { const a = ctx.storage.getAgent(id); return a !== undefined && canReach(op, a); }));
    const format = q.format ?? 'json';
    if (format === 'json') return { success: true, entries: records.map(auditView) };
    if (format === 'jsonl') return reply.type('application/jsonl; charset=utf-8').send(auditJsonl(records));
    return reply.type('text/csv; charset=utf-8').header('content-disposition', 'attachment; filename="tuxsec-audit.csv"').send(auditCsv(records));
  });
};
