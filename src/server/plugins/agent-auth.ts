/**
 * Authentication of agent calls. A request with X-API-Key is authenticated from the header alone,
 * before its body is read, so a stranger cannot make the server buffer a megabyte. A request
 * without the header carries its key in the body; such a body may only be small. `authenticate`
 * checks both once the body is in.
 */
import type { Readable } from 'node:stream';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { ErrorCodes, HttpError } from '../../protocol/errors.ts';
import type { ServerConfigForApp } from '../context.ts';
import { hashSecret, NO_MATCH_HASH, secretMatches } from '../secrets.ts';
import type { AgentRecord, Storage } from '../storage/storage.ts';
import { capStream, UNAUTHENTICATED_BODY_LIMIT } from './body.ts';

/** The agent-call hooks of one server (they share which requests came without X-API-Key). */
export class AgentAuth {
  /** Requests whose body may only be as large as UNAUTHENTICATED_BODY_LIMIT. */
  private readonly smallBody = new WeakSet<object>();

  constructor(
    private readonly storage: Storage,
    private readonly config: ServerConfigForApp,
  ) {}

  /** onRequest hook: refuses an unknown X-API-Key at once; marks a request without one. */
  keyFirst = async (req: FastifyRequest, reply: FastifyReply): Promise<void> => {
    const header = req.headers['x-api-key'];
    if (header === undefined || header === '') {
      this.smallBody.add(req.raw);
      return;
    }
    const agent = typeof header === 'string' && header.length <= 256 ? this.storage.agentByKeyHash(hashSecret(header)) : undefined;
    if (!agent) {
      void reply.header('connection', 'close');
      throw HttpError.of(ErrorCodes.unauthorized, 'cannot authenticate agent: unknown agent or wrong api_key');
    }
  };

  /** preParsing hook: cuts short a body that goes over the limit of its request. */
  capBody = async (req: FastifyRequest, _reply: FastifyReply, payload: Readable): Promise<Readable> => {
    if (!this.smallBody.has(req.raw)) return payload;
    return capStream(payload, UNAUTHENTICATED_BODY_LIMIT, Number(req.headers['content-length']));
  };

  /** Finds the agent by id and key (body or X-API-Key); spends the same time on unknown ids. */
  authenticate(req: FastifyRequest, body: { agent_id: string; api_key?: string }): AgentRecord {
    const header = req.headers['x-api-key'];
    const headerKey = typeof header === 'string' ? header : undefined;
    const key = body.api_key ?? headerKey;
    if (!key) throw HttpError.of(ErrorCodes.invalidRequest, 'cannot authenticate agent: missing api_key');
    const agent = this.storage.getAgent(body.agent_id);
    const okKey = secretMatches(key, agent?.keyHash ?? NO_MATCH_HASH);
    const okHeader = headerKey === undefined || headerKey === key;
    if (!agent || !okKey || !okHeader) {
      throw HttpError.of(ErrorCodes.unauthorized, `cannot authenticate agent "${body.agent_id}": unknown agent or wrong api_key`);
    }
    if (agent.status === 'pending') {
      throw HttpError.of(ErrorCodes.pendingApproval, `cannot accept agent "${agent.id}": waiting for an operator to approve it`, { retryAfter: this.config.sync_interval });
    }
    if (agent.status === 'rejected') {
      throw HttpError.of(ErrorCodes.agentRejected, `cannot accept agent "${agent.id}": rejected by an operator`);
    }
    if (agent.mode !== 'pull') {
      // Its jobs are the delivery worker's: a check-in would take them from under it.
      throw HttpError.of(ErrorCodes.conflict, `cannot accept check-in of agent "${agent.id}": it is in ${agent.mode} mode (the server delivers its jobs); an operator can set it to pull mode`);
    }
    return agent;
  }
}
