/**
 * `GET /api/v1/events`: the live events of the operator API as server-sent events (events.ts).
 * The reply is taken over from Fastify (hijacked): the stream stays open until the client goes,
 * falls behind, logs out, or the server closes.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { ServerContext } from '../context.ts';
import { requireRole } from '../operators.ts';

export interface EventRoutesOptions {
  ctx: ServerContext;
}

export const eventRoutes: FastifyPluginAsyncTypebox<EventRoutesOptions> = async (api, { ctx }) => {
  api.get('/events', async (req, reply) => {
    requireRole(req, 'viewer');
    // Refused before the reply is taken over, so a refusal is an ordinary JSON error.
    ctx.events.checkRoom(req.operator);
    reply.hijack();
    ctx.events.open(req.operator, reply.raw);
    req.log.info({ operator: req.operator.name }, 'events stream opened');
  });
};
