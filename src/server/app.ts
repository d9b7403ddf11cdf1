/**
 * The tuxsec-server HTTP application: pull-mode agent endpoints (INTEROP section 2 plus the
 * extensions of docs/pull-protocol.md) and the operator API under /api/v1/. Built in one function
 * from its dependencies; `listen()` is the caller's business (main.ts), tests may use inject().
 */
import { randomUUID } from 'node:crypto';
import type { ServerOptions as HttpsServerOptions } from 'node:https';
import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifyRequest } from 'fastify';
import { ErrorCodes, type ErrorCode } from '../protocol/errors.ts';
import { findPoisonKey, nestingDepth } from '../protocol/json.ts';
import type { ServerConfig } from './config.ts';
import { Dispatch } from './dispatch.ts';
import { GroupCommit } from './group-commit.ts';
import {
  CheckinBody,
  EmptyBody,
  IdParams,
  JobBody,
  JobQuery,
  JobsQuery,
  RegisterBody,
  ResultsBody,
  TokenBody,
  type CommandResult,
} from './schemas.ts';
import { hashSecret, newSecret, NO_MATCH_HASH, secretMatches } from './secrets.ts';
import {
  FINAL_STATUSES,
  type AgentRecord,
  type IncomingResult,
  type Inventory,
  type JobRecord,
  type Storage,
} from './storage/storage.ts';

export const BODY_LIMIT = 1024 * 1024;
const MAX_JSON_DEPTH = 64;
const MAX_COMMANDS_PER_CHECKIN = 100;
const MAX_OS_INFO_BYTES = 64 * 1024;
/** How often last_seen updates are written (batched: one write per check-in would be wasteful). */
const TOUCH_FLUSH_MS = 2000;
const EXPIRY_SWEEP_MS = 1000;

/** An error answered as `{success: false, error, code}` with an HTTP status. */
export class HttpError extends Error {
  constructor(
    readonly statusCode: number,
    readonly code: ErrorCode,
    message: string,
    readonly retryAfter?: number,
  ) {
    super(message);
  }
}

export type ServerConfigForApp = Pick<
  ServerConfig,
  'adminToken' | 'require_enrollment_token' | 'long_poll_max' | 'sync_interval' | 'job_default_ttl' | 'redeliver_after'
> & { log_level?: ServerConfig['log_level'] };

export interface AppDeps {
  config: ServerConfigForApp;
  storage: Storage;
  /** TLS options; absent only for inject() tests (the server itself always listens with TLS). */
  https?: HttpsServerOptions;
  logger?: FastifyBaseLogger;
  clock?: () => number;
}

export interface TuxsecServerApp {
  app: FastifyInstance;
  dispatch: Dispatch;
  /** Every route as "METHOD /url" (a test checks each operator route demands the admin token). */
  routes: string[];
}

const iso = (t: number | null): string | null => (t === null ? null : new Date(t).toISOString());

/** The operator's view of an agent (never the key hash). */
export function agentView(a: AgentRecord, lastSeen: number | null = a.lastSeen) {
  return {
    id: a.id,
    status: a.status,
    machine_id: a.machineId,
    hostname: a.hostname,
    ip: a.ip,
    os_info: a.osInfo,
    modules: a.modules,
    version: a.version,
    features: a.features,
    created_at: iso(a.createdAt),
    last_seen: iso(lastSeen),
  };
}

export function jobView(j: JobRecord) {
  return {
    id: j.id,
    agent_id: j.agentId,
    module: j.module,
    action: j.action,
    params: j.params,
    status: j.status,
    created_at: iso(j.createdAt),
    sent_at: iso(j.sentAt),
    finished_at: iso(j.finishedAt),
    expires_at: iso(j.expiresAt),
    deliveries: j.deliveries,
    result: j.result,
  };
}

function toIncoming(r: CommandResult): IncomingResult {
  const status = r.status ?? (r.success === true ? 'completed' : 'failed');
  const out: IncomingResult = { commandId: r.command_id, success: r.success ?? status === 'completed', status };
  if (r.output !== undefined) out.output = r.output;
  if (typeof r.error === 'string') out.error = r.error;
  if (r.code !== undefined) out.code = r.code;
  if (r.started_at !== undefined) out.started_at = r.started_at;
  if (r.finished_at !== undefined) out.finished_at = r.finished_at;
  if (r.duration_ms !== undefined) out.duration_ms = r.duration_ms;
  return out;
}

function parseJsonBody(_req: FastifyRequest, body: Buffer, done: (err: Error | null, body?: unknown) => void): void {
  if (body.length === 0) return done(new HttpError(400, ErrorCodes.invalidJson, 'cannot read request: empty body'));
  if (nestingDepth(body, MAX_JSON_DEPTH) > MAX_JSON_DEPTH) {
    return done(new HttpError(400, ErrorCodes.invalidRequest, `cannot read request: JSON nested deeper than ${MAX_JSON_DEPTH}`));
  }
  let value: unknown;
  try {
    value = JSON.parse(body.toString('utf8'));
  } catch {
    return done(new HttpError(400, ErrorCodes.invalidJson, 'cannot read request: invalid JSON'));
  }
  const poison = findPoisonKey(value);
  if (poison !== null) return done(new HttpError(400, ErrorCodes.invalidRequest, `cannot read request: forbidden key "${poison}"`));
  done(null, value);
}

/** Builds the application; close it with `app.close()` (answers held long-polls, closes storage). */
export function buildApp(deps: AppDeps): TuxsecServerApp {
  const { config, storage } = deps;
  const now = deps.clock ?? Date.now;
  const dispatch = new Dispatch();
  const group = new GroupCommit(storage);
  const startedAt = now();
  const adminHash = hashSecret(config.adminToken);
  /** last_seen of agents, written to storage in batches. */
  const seen = new Map<string, number>();
  const lastSeenOf = (a: AgentRecord): number | null => seen.get(a.id) ?? a.lastSeen;

  const app = Fastify({
    ...(deps.https ? { https: deps.https } : {}),
    ...(deps.logger
      ? { loggerInstance: deps.logger }
      : {
          logger: {
            level: config.log_level ?? 'info',
            // Secrets travel in these headers and bodies; they never reach a log.
            redact: ['req.headers.authorization', 'req.headers["x-api-key"]', 'req.body', 'res.body'],
          },
        }),
    bodyLimit: BODY_LIMIT,
    // Long-polls are held up to long_poll_max; give them room, but not forever.
    requestTimeout: (config.long_poll_max + 60) * 1000,
    keepAliveTimeout: (config.long_poll_max + 30) * 1000,
    return503OnClosing: true,
    forceCloseConnections: 'idle',
    trustProxy: false,
    ajv: { customOptions: { coerceTypes: 'array', removeAdditional: false, allErrors: false } },
  }) as unknown as FastifyInstance;

  const routes: string[] = [];
  app.addHook('onRoute', (r) => {
    for (const m of [r.method].flat()) if (m !== 'HEAD') routes.push(`${m} ${r.url}`);
  });
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('application/json', { parseAs: 'buffer', bodyLimit: BODY_LIMIT }, parseJsonBody);

  app.setErrorHandler((err: Error & { statusCode?: number; validation?: unknown; code?: string }, req, reply) => {
    let status = 500;
    let code: ErrorCode = ErrorCodes.internal;
    let message = 'cannot handle request: internal error';
    if (err instanceof HttpError) {
      status = err.statusCode;
      code = err.code;
      message = err.message;
      if (err.retryAfter !== undefined) void reply.header('retry-after', String(err.retryAfter));
    } else if (err.validation) {
      status = 400;
      code = ErrorCodes.invalidRequest;
      message = `cannot accept request: ${err.message}`;
    } else if (err.statusCode === 413) {
      status = 413;
      code = ErrorCodes.messageTooLarge;
      message = `cannot accept request: body larger than ${BODY_LIMIT} bytes`;
    } else if (err.statusCode !== undefined && err.statusCode >= 400 && err.statusCode < 500) {
      status = err.statusCode;
      code = ErrorCodes.invalidRequest;
      message = `cannot accept request: ${err.message}`;
    } else {
      req.log.error({ err }, 'request failed');
    }
    if (status === 503) void reply.header('retry-after', '5');
    void reply.code(status).send({ success: false, error: message, code });
  });
  app.setNotFoundHandler((req, reply) => {
    void reply.code(404).send({ success: false, error: `cannot find "${req.method} ${req.url.split('?')[0]}"`, code: ErrorCodes.notFound });
  });

  // ---- agents ------------------------------------------------------------------------------

  /** Finds the agent by id and key (body or X-API-Key); spends the same time on unknown ids. */
  function authAgent(req: FastifyRequest, body: { agent_id: string; api_key?: string }): AgentRecord {
    const header = req.headers['x-api-key'];
    const headerKey = typeof header === 'string' ? header : undefined;
    const key = body.api_key ?? headerKey;
    if (!key) throw new HttpError(400, ErrorCodes.invalidRequest, 'cannot authenticate agent: missing api_key');
    const agent = storage.getAgent(body.agent_id);
    const okKey = secretMatches(key, agent?.keyHash ?? NO_MATCH_HASH);
    const okHeader = headerKey === undefined || headerKey === key;
    if (!agent || !okKey || !okHeader) {
      throw new HttpError(401, ErrorCodes.unauthorized, `cannot authenticate agent "${body.agent_id}": unknown agent or wrong api_key`);
    }
    if (agent.status === 'pending') {
      throw new HttpError(403, ErrorCodes.pendingApproval, `cannot accept agent "${agent.id}": waiting for an operator to approve it`, config.sync_interval);
    }
    if (agent.status === 'rejected') {
      throw new HttpError(403, ErrorCodes.agentRejected, `cannot accept agent "${agent.id}": rejected by an operator`);
    }
    return agent;
  }

  async function storeResults(req: FastifyRequest, agent: AgentRecord, results: CommandResult[] | undefined): Promise<string[]> {
    if (!results || results.length === 0) return [];
    const incoming = results.map(toIncoming);
    const out = await group.run(() => storage.storeResults(agent.id, incoming, now()));
    for (const j of out.finished) dispatch.jobFinished(j.id);
    for (const i of out.ignored) req.log.warn({ agent: agent.id, command: i.commandId }, `result acknowledged but not stored: ${i.why}`);
    return out.acknowledged;
  }

  async function refreshInventory(req: FastifyRequest, agent: AgentRecord, body: CheckinBody): Promise<void> {
    const ip = req.ip;
    const inv: Inventory = {};
    if (body.hostname !== undefined && body.hostname !== agent.hostname) inv.hostname = body.hostname;
    const newIp = body.ip_address ?? ip;
    if (newIp && newIp !== agent.ip) inv.ip = newIp;
    if (body.version !== undefined && body.version !== agent.version) inv.version = body.version;
    if (body.modules !== undefined && JSON.stringify(body.modules) !== JSON.stringify(agent.modules)) inv.modules = body.modules;
    const features = body.features ?? [];
    if (JSON.stringify(features) !== JSON.stringify(agent.features)) inv.features = features;
    const claim = body.machine_id !== undefined && agent.machineId === null ? body.machine_id : undefined;
    if (Object.keys(inv).length === 0 && claim === undefined) return;
    await group.run(() => {
      // A machine_id learnt at check-in must not sidestep the duplicate check of registration.
      if (claim !== undefined) {
        if (storage.agentsByMachineId(claim).length === 0) inv.machineId = claim;
        else req.log.warn({ agent: agent.id, machine_id: claim }, 'machine_id ignored: already enrolled under another agent');
      }
      storage.updateInventory(agent.id, inv);
    });
  }

  async function commandsFor(agentId: string, redelivery: boolean) {
    const jobs = await group.run(() => {
      const t = now();
      // Sent jobs without a result go out again if this process has not handed them out lately.
      const before = redelivery ? Math.max(startedAt, t - config.redeliver_after * 1000) : null;
      return storage.takeJobs(agentId, t, MAX_COMMANDS_PER_CHECKIN, before);
    });
    return jobs.map((j) => ({
      id: j.id,
      module: j.module,
      action: j.action,
      params: j.params,
      expires_at: iso(j.expiresAt),
    }));
  }

  app.post<{ Body: RegisterBody }>('/agents/api/register/', { schema: { body: RegisterBody } }, async (req, reply) => {
    const b = req.body;
    const token = b.enrollment_token;
    if (token === undefined && config.require_enrollment_token) {
      throw new HttpError(401, ErrorCodes.invalidToken, 'cannot register agent: an enrollment token is required');
    }
    const osInfo = b.os_info === undefined ? null : b.os_info;
    if (JSON.stringify(osInfo).length > MAX_OS_INFO_BYTES) {
      throw new HttpError(400, ErrorCodes.invalidRequest, `cannot register agent: os_info larger than ${MAX_OS_INFO_BYTES} bytes`);
    }
    const t = now();
    const apiKey = newSecret();
    const agent: AgentRecord = {
      id: randomUUID(),
      keyHash: hashSecret(apiKey),
      status: 'active',
      machineId: b.machine_id ?? null,
      hostname: b.hostname,
      ip: b.ip_address ?? req.ip,
      osInfo,
      modules: b.modules ?? [],
      version: b.version ?? null,
      features: [],
      createdAt: t,
      lastSeen: t,
      tokenId: null,
    };
    const tokenHash = token === undefined ? null : hashSecret(token);
    const check = await group.run(() => {
      // Decided inside the transaction, so two registrations of one machine cannot both be active.
      if (agent.machineId !== null && storage.agentsByMachineId(agent.machineId).length > 0) agent.status = 'pending';
      return storage.enroll(tokenHash, agent, t);
    });
    const held = agent.status === 'pending';
    if (check !== 'ok') {
      const why = { unknown: 'unknown token', expired: 'token expired', 'used-up': 'token already used up' }[check];
      req.log.warn({ hostname: b.hostname, ip: req.ip }, `registration refused: ${why}`);
      throw new HttpError(401, ErrorCodes.invalidToken, `cannot register agent "${b.hostname}": ${why}`);
    }
    const creds = { agent_id: agent.id, api_key: apiKey, checkin_interval: config.sync_interval };
    if (held) {
      req.log.warn({ agent: agent.id, machine_id: agent.machineId }, 'agent held for approval: machine_id already enrolled');
      return reply.code(202).send({
        success: false,
        code: ErrorCodes.pendingApproval,
        error: `cannot enroll machine "${agent.machineId}" again without an operator: held as pending`,
        ...creds,
      });
    }
    req.log.info({ agent: agent.id, hostname: agent.hostname }, 'agent registered');
    return { success: true, ...creds };
  });

  app.post<{ Body: CheckinBody }>('/agents/api/checkin/', { schema: { body: CheckinBody } }, async (req, reply) => {
    const body = req.body;
    const agent = authAgent(req, body);
    const acknowledged = await storeResults(req, agent, body.command_results);
    await refreshInventory(req, agent, body);
    seen.set(agent.id, now());
    const redelivery = (body.features ?? []).includes('redelivery');
    const wait = Math.min(body.wait ?? 0, config.long_poll_max);
    // Results just stored: answer now so the agent learns of the acknowledgement at once.
    const hold = wait > 0 && acknowledged.length === 0;
    let gen = dispatch.generation(agent.id);
    let commands = await commandsFor(agent.id, redelivery);
    // A job queued while we read (the read is asynchronous): read again rather than sleep on it.
    // The check and the wait below run without an await in between, so no wake-up is lost.
    while (hold && commands.length === 0 && dispatch.generation(agent.id) !== gen) {
      gen = dispatch.generation(agent.id);
      commands = await commandsFor(agent.id, redelivery);
    }
    if (hold && commands.length === 0) {
      const gone = new AbortController();
      const onClose = (): void => gone.abort();
      reply.raw.once('close', onClose);
      // The agent may have hung up during the reads above, before the listener was there.
      if (reply.raw.destroyed || req.raw.socket?.destroyed) gone.abort();
      const why = await dispatch.waitForJobs(agent.id, wait * 1000, gone.signal);
      reply.raw.off('close', onClose);
      if (why === 'shutdown') void reply.header('connection', 'close');
      // A job must never be marked sent towards a client that has gone away.
      else if (!gone.signal.aborted) commands = await commandsFor(agent.id, redelivery);
      seen.set(agent.id, now());
    }
    return {
      success: true,
      commands,
      sync_interval: config.sync_interval,
      server_time: new Date(now()).toISOString(),
      acknowledged,
    };
  });

  app.post<{ Body: ResultsBody }>('/agents/api/results/', { schema: { body: ResultsBody } }, async (req) => {
    const agent = authAgent(req, req.body);
    seen.set(agent.id, now());
    return { success: true, acknowledged: await storeResults(req, agent, req.body.command_results) };
  });

  // ---- operator API --------------------------------------------------------------------------

  app.register(
    async (api) => {
      api.addHook('onRequest', async (req) => {
        const h = req.headers.authorization;
        const m = typeof h === 'string' ? /^Bearer (\S{1,512})$/.exec(h) : null;
        if (!m || !secretMatches(m[1]!, adminHash)) {
          throw new HttpError(401, ErrorCodes.unauthorized, 'cannot authorize operator: missing or wrong admin token');
        }
      });

      // A POST without a body (curl -X POST) means "no options".
      api.addHook('preValidation', async (req) => {
        if (req.method === 'POST' && req.body === undefined) req.body = {};
      });

      api.post<{ Body: TokenBody }>('/tokens', { schema: { body: TokenBody } }, async (req, reply) => {
        const token = newSecret();
        const t = now();
        const uses = req.body?.uses ?? 1;
        const rec = { id: randomUUID(), hash: hashSecret(token), createdAt: t, expiresAt: t + (req.body?.ttl ?? 86400) * 1000, maxUses: uses, usesLeft: uses };
        await group.run(() => storage.createToken(rec));
        req.log.info({ token_id: rec.id, uses }, 'enrollment token created');
        return reply.code(201).send({ success: true, id: rec.id, token, uses, expires_at: iso(rec.expiresAt) });
      });

      api.get('/agents', async () => ({
        success: true,
        agents: storage.listAgents().map((a) => agentView(a, lastSeenOf(a))),
      }));

      for (const verb of ['approve', 'reject'] as const) {
        api.post<{ Params: IdParams }>(`/agents/:id/${verb}`, { schema: { params: IdParams, body: EmptyBody } }, async (req) => {
          const agent = await group.run(() => storage.setAgentStatus(req.params.id, verb === 'approve' ? 'active' : 'rejected'));
          if (!agent) throw new HttpError(404, ErrorCodes.notFound, `cannot ${verb} agent "${req.params.id}": no such agent`);
          req.log.info({ agent: agent.id }, `agent ${verb === 'approve' ? 'approved' : 'rejected'}`);
          if (verb === 'approve') dispatch.jobQueued(agent.id);
          return { success: true, agent: agentView(agent, lastSeenOf(agent)) };
        });
      }

      api.post<{ Body: JobBody }>('/jobs', { schema: { body: JobBody } }, async (req, reply) => {
        const b = req.body;
        const agent = storage.getAgent(b.agent_id);
        if (!agent) throw new HttpError(404, ErrorCodes.notFound, `cannot queue job for agent "${b.agent_id}": no such agent`);
        if (agent.status === 'rejected') {
          throw new HttpError(409, ErrorCodes.conflict, `cannot queue job for agent "${b.agent_id}": the agent was rejected`);
        }
        const t = now();
        const job: JobRecord = {
          id: randomUUID(),
          agentId: agent.id,
          module: b.module,
          action: b.action,
          params: b.params ?? {},
          status: 'queued',
          createdAt: t,
          sentAt: null,
          lastSentAt: null,
          deliveries: 0,
          finishedAt: null,
          expiresAt: t + (b.expires_in ?? config.job_default_ttl) * 1000,
          result: null,
        };
        await group.run(() => storage.createJob(job));
        dispatch.jobQueued(agent.id);
        req.log.info({ job: job.id, agent: agent.id, module: job.module, action: job.action }, 'job queued');
        return reply.code(201).send({ success: true, job: jobView(job) });
      });

      api.get<{ Params: IdParams; Querystring: JobQuery }>(
        '/jobs/:id',
        { schema: { params: IdParams, querystring: JobQuery } },
        async (req, reply) => {
          let job = storage.getJob(req.params.id);
          if (!job) throw new HttpError(404, ErrorCodes.notFound, `cannot find job "${req.params.id}"`);
          const wait = req.query.wait ?? 0;
          if (wait > 0 && !FINAL_STATUSES.has(job.status)) {
            const gone = new AbortController();
            const onClose = (): void => gone.abort();
            reply.raw.once('close', onClose);
            const why = await dispatch.waitForJob(job.id, wait * 1000, gone.signal);
            reply.raw.off('close', onClose);
            if (why !== 'shutdown') job = storage.getJob(req.params.id) ?? job;
          }
          return { success: true, job: jobView(job) };
        },
      );

      api.get<{ Querystring: JobsQuery }>('/jobs', { schema: { querystring: JobsQuery } }, async (req) => {
        const q = req.query;
        return { success: true, jobs: storage.listJobs({ agentId: q.agent_id, status: q.status, limit: q.limit }).map(jobView) };
      });
    },
    { prefix: '/api/v1' },
  );

  // ---- lifecycle ----------------------------------------------------------------------------

  const flushSeen = (): void => {
    if (seen.size === 0) return;
    const batch = new Map(seen);
    seen.clear();
    try {
      storage.touchAgents(batch);
    } catch (err) {
      app.log.error({ err }, 'cannot record last_seen');
    }
  };
  const sweep = (): void => {
    try {
      for (const j of storage.expireJobs(now())) {
        app.log.info({ job: j.id, agent: j.agentId }, 'job expired');
        dispatch.jobFinished(j.id);
      }
    } catch (err) {
      app.log.error({ err }, 'cannot expire jobs');
    }
  };
  const timers: NodeJS.Timeout[] = [];
  app.addHook('onReady', async () => {
    sweep();
    timers.push(setInterval(flushSeen, TOUCH_FLUSH_MS).unref(), setInterval(sweep, EXPIRY_SWEEP_MS).unref());
  });
  app.addHook('preClose', async () => {
    dispatch.shutdown();
  });
  app.addHook('onClose', async () => {
    for (const t of timers) clearInterval(t);
    group.flush();
    flushSeen();
    storage.close();
  });

  return { app, dispatch, routes };
}
