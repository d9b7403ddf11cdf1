/**
 * `GET /api/v1/audit`: the audit log, filtered, as JSON, JSON lines or CSV, streamed from the
 * database as the client reads it (an export of 10 000 entries is never held whole).
 */
import { Readable } from 'node:stream';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { ErrorCodes, HttpError } from '../../protocol/errors.ts';
import { auditExport } from '../audit.ts';
import type { ServerContext } from '../context.ts';
import { installOperatorAuth, needs } from '../operator-auth.ts';
import { canReach, type Operator } from '../operators.ts';
import type { AuditRecord } from '../storage/auth-store.ts';

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

/** A limited operator sees no entry about a host it cannot reach (it must not learn it exists). */
function* reachable(ctx: ServerContext, op: Operator, entries: Iterable<AuditRecord>): Generator<AuditRecord> {
  const reaches = (id: string): boolean => {
    const a = ctx.storage.getAgent(id);
    return a !== undefined && canReach(op, a);
  };
  for (const r of entries) if (r.agents.every(reaches)) yield r;
}

export interface AuditRoutesOptions {
  ctx: ServerContext;
}

export const auditRoutes: FastifyPluginAsyncTypebox<AuditRoutesOptions> = async (api, { ctx }) => {
  installOperatorAuth(api, ctx);
  api.get('/audit', { ...needs('viewer'), schema: { querystring: AuditQuery } }, async (req, reply) => {
    const q = req.query;
    const entries = ctx.storage.auth.auditEntries({ actor: q.actor, action: q.action, agent: q.agent, since: time(q.since, 'since'), until: time(q.until, 'until'), limit: q.limit ?? 1000 });
    const op = req.operator;
    const records = op.selector === null ? entries : reachable(ctx, op, entries);
    const format = q.format ?? 'json';
    // Pulled as the socket drains; a client that goes away destroys the stream, which ends the reading.
    const body = Readable.from(auditExport(records, format), { objectMode: false });
    if (format === 'json') return reply.type('application/json; charset=utf-8').send(body);
    if (format === 'jsonl') return reply.type('application/jsonl; charset=utf-8').send(body);
    return reply.type('text/csv; charset=utf-8').header('content-disposition', 'attachment; filename="tuxsec-audit.csv"').send(body);
  });
};
