/**
 * The tuxsec-server HTTP application: pull-mode agent endpoints (INTEROP section 2 plus the
 * extensions of docs/pull-protocol.md) and the operator API under /api/v1/. Built in one function
 * from its dependencies; `listen()` is the caller's business (main.ts), tests may use inject().
 */
import { randomUUID } from 'node:crypto';
import { STATUS_CODES } from 'node:http';
import type { ServerOptions as HttpsServerOptions } from 'node:https';
import type { Socket } from 'node:net';
import { Transform, type Readable } from 'node:stream';
import rateLimit, { normalizeIP } from '@fastify/rate-limit';
import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { ErrorCodes, type ErrorCode } from '../protocol/errors.ts';
import { findPoisonKey, nestingDepth } from '../protocol/json.ts';
import { ServerConfigSchema, type ServerConfig } from './config.ts';
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
/**
 * Largest body read before the sender is known: a registration (os_info is at most 64 KiB) or an
 * agent call without X-API-Key, whose key is in the body (the original Python agent sent both).
 */
export const UNAUTHENTICATED_BODY_LIMIT = 128 * 1024;
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

/** Limits with the defaults of the config schema when a caller (a test) leaves them out. */
type LimitKeys = 'max_connections' | 'max_connections_per_ip' | 'header_timeout' | 'request_timeout' | 'register_rate_limit' | 'pending_max_age';

export type ServerConfigForApp = Pick<
  ServerConfig,
  'adminToken' | 'require_enrollment_token' | 'long_poll_max' | 'sync_interval' | 'job_default_ttl' | 'redeliver_after'
> & { log_level?: ServerConfig['log_level'] } & Partial<Pick<ServerConfig, LimitKeys>>;

function limit(config: ServerConfigForApp, key: LimitKeys): number {
  return config[key] ?? (ServerConfigSchema.properties[key].default as number);
}

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

/** A client value in a message: JSON-quoted and cut short. */
function quote(v: string): string {
  return JSON.stringify(v.length > 100 ? `${v.slice(0, 100)}...` : v);
}

/** Passes a body through while it stays within `max` bytes; errors with 413 past it. */
function capStream(payload: Readable, max: number, declared: number): Readable {
  const tooLarge = (): HttpError => new HttpError(413, ErrorCodes.messageTooLarge, `cannot accept request: body larger than ${max} bytes without X-API-Key`);
  if (declared > max) throw tooLarge();
  let n = 0;
  const capped = new Transform({
    transform(chunk: Buffer, _enc, next) {
      n += chunk.length;
      next(n > max ? tooLarge() : null, n > max ? undefined : chunk);
    },
  });
  payload.on('error', (err) => capped.destroy(err));
  return payload.pipe(capped);
}

/** Errors Node raises on a connection before Fastify sees a request (timeouts, bad HTTP). */
function clientError(err: Error & { code?: string }, socket: Socket): void {
  if (err.code === 'ECONNRESET' || socket.destroyed) return;
  let status = 400;
  let body: { success: false; error: string; code: ErrorCode } = { success: false, error: 'cannot read request: malformed HTTP', code: ErrorCodes.invalidRequest };
  if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
    status = 408;
    body = { success: false, error: 'cannot read request: not received in time', code: ErrorCodes.timeout };
  } else if (err.code === 'HPE_HEADER_OVERFLOW') {
    status = 431;
    body = { success: false, error: 'cannot read request: headers too large', code: ErrorCodes.messageTooLarge };
  }
  const text = JSON.stringify(body);
  if (socket.writable) {
    socket.write(`HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Length: ${Buffer.byteLength(text)}\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n${text}`);
  }
  socket.destroy();
}

/**
 * Refuses a connection from an address (an IPv6 /64) that already holds `max`: one client must not
 * take every slot of max_connections. Counted at accept time, before the TLS handshake.
 */
function limitConnectionsPerIp(app: FastifyInstance, max: number): void {
  const open = new Map<string, number>();
  let refused = 0;
  let lastWarn = 0;
  app.server.prependListener('connection', (socket: Socket) => {
    const ip = normalizeIP(socket.remoteAddress ?? '', 64);
    const n = (open.get(ip) ?? 0) + 1;
    if (n > max) {
      socket.destroy();
      refused++;
      // One line per 10 s at most: the refused client decides how often this happens.
      if (Date.now() - lastWarn > 10_000) {
        lastWarn = Date.now();
        app.log.warn({ ip, refused }, `connection refused: more than ${max} connections from one address`);
        refused = 0;
      }
      return;
    }
    open.set(ip, n);
    socket.once('close', () => {
      const left = (open.get(ip) ?? 1) - 1;
      if (left <= 0) open.delete(ip);
      else open.set(ip, left);
    });
  });
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

  const headerTimeoutMs = limit(config, 'header_timeout') * 1000;
  const requestTimeoutMs = limit(config, 'request_timeout') * 1000;
  const app = Fastify({
    ...(deps.https
      ? {
          https: {
            ...deps.https,
            // A client that never finishes its handshake or its headers holds a connection slot. The
            // handshake gets the longer time: after an outage thousands of agents reconnect at once
            // and handshakes queue behind each other in this process, through no fault of theirs.
            handshakeTimeout: requestTimeoutMs,
            headersTimeout: headerTimeoutMs,
            requestTimeout: requestTimeoutMs,
            // Node checks these timeouts on this period (30 s by default, too coarse for 10 s).
            connectionsCheckingInterval: 1000,
          },
        }
      : {}),
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
    // Node's requestTimeout covers receiving the request (headers and body), not the time the
    // handler holds it: a long-poll held for long_poll_max is not cut by it.
    requestTimeout: requestTimeoutMs,
    keepAliveTimeout: (config.long_poll_max + 30) * 1000,
    return503OnClosing: true,
    forceCloseConnections: 'idle',
    trustProxy: false,
    ajv: { customOptions: { coerceTypes: 'array', removeAdditional: false, allErrors: false } },
    // Errors raised before routing (a URL that does not decode) get the project's shape too.
    frameworkErrors: (err, req, res) => {
      const reply = res as unknown as FastifyReply;
      const badUrl = err.code === 'FST_ERR_BAD_URL';
      void reply
        .code(400)
        .send({ success: false, error: badUrl ? `cannot read request: malformed URL ${quote(req.url)}` : `cannot route request: ${err.message}`, code: ErrorCodes.invalidRequest });
    },
    clientErrorHandler: (err: Error & { code?: string }, socket: Socket) => clientError(err, socket),
  }) as unknown as FastifyInstance;
  app.server.headersTimeout = headerTimeoutMs;
  app.server.maxConnections = limit(config, 'max_connections');
  limitConnectionsPerIp(app, limit(config, 'max_connections_per_ip'));

  const routes: string[] = [];
  app.addHook('onRoute', (r) => {
    for (const m of [r.method].flat()) if (m !== 'HEAD') routes.push(`${m} ${r.url}`);
  });
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('application/json', { parseAs: 'buffer', bodyLimit: BODY_LIMIT }, parseJsonBody);
  // Cut short a body that goes over the limit of its request (see agentKeyFirst).
  app.addHook('preParsing', async (req, _reply, payload) => {
    const max = smallBody.has(req.raw) ? UNAUTHENTICATED_BODY_LIMIT : null;
    return max === null ? payload : capStream(payload, max, Number(req.headers['content-length']));
  });

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
    } else if (err.statusCode === 413 || err.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
      status = 413;
      code = ErrorCodes.messageTooLarge;
      message = `cannot accept request: body larger than ${req.routeOptions.bodyLimit ?? BODY_LIMIT} bytes`;
    } else if (err.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') {
      status = 415;
      code = ErrorCodes.invalidRequest;
      message = `cannot read request: content type ${quote(req.headers['content-type'] ?? '')} is not application/json`;
    } else if (err.code === 'FST_ERR_CTP_INVALID_CONTENT_LENGTH') {
      status = 400;
      code = ErrorCodes.invalidRequest;
      message = 'cannot read request: body length differs from content-length';
    } else if (err.statusCode !== undefined && err.statusCode >= 400 && err.statusCode < 500) {
      status = err.statusCode;
      code = ErrorCodes.invalidRequest;
      message = `cannot accept request: ${err.message.slice(0, 200)}`;
    } else {
      req.log.error({ err }, 'request failed');
    }
    if (status === 503) void reply.header('retry-after', '5');
    // Refused before the whole body came in: close rather than read (and discard) the rest.
    if (!req.raw.complete) void reply.header('connection', 'close');
    void reply.code(status).send({ success: false, error: message, code });
  });
  app.setNotFoundHandler((req, reply) => {
    void reply.code(404).send({ success: false, error: `cannot find ${quote(`${req.method} ${req.url.split('?')[0]}`)}`, code: ErrorCodes.notFound });
  });

  // ---- limits before the body ----------------------------------------------------------------

  /** Requests whose body may only be as large as UNAUTHENTICATED_BODY_LIMIT. */
  const smallBody = new WeakSet<object>();

  /**
   * Agent calls: a request with X-API-Key is authenticated from the header alone, before its body
   * is read, so a stranger cannot make the server buffer a megabyte. A request without the header
   * carries its key in the body; such a body may only be small. authAgent checks both afterwards.
   */
  async function agentKeyFirst(req: FastifyRequest, reply: FastifyReply): Promise<void> {
    const header = req.headers['x-api-key'];
    if (header === undefined || header === '') {
      smallBody.add(req.raw);
      return;
    }
    const agent = typeof header === 'string' && header.length <= 256 ? storage.agentByKeyHash(hashSecret(header)) : undefined;
    if (!agent) {
      void reply.header('connection', 'close');
      throw new HttpError(401, ErrorCodes.unauthorized, 'cannot authenticate agent: unknown agent or wrong api_key');
    }
  }

  void app.register(rateLimit, {
    global: false,
    // An address that registers over and over (tokens off, or guessing tokens) is refused.
    cache: 10_000,
    errorResponseBuilder: (_req, ctx) =>
      new HttpError(429, ErrorCodes.rateLimited, `cannot register agent: more than ${ctx.max} registrations a minute from this address; retry later`, Math.ceil(ctx.ttl / 1000)),
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

  // In a plugin of its own so that the rate-limit plugin, registered above, sees the route.
  void app.register(async (scope) => {
    scope.post<{ Body: RegisterBody }>(
      '/agents/api/register/',
      {
        schema: { body: RegisterBody },
        bodyLimit: UNAUTHENTICATED_BODY_LIMIT,
        config: { rateLimit: { max: limit(config, 'register_rate_limit'), timeWindow: 60_000 } },
      },
      async (req, reply) => {
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
      },
    );
  });

  app.post<{ Body: CheckinBody }>('/agents/api/checkin/', { schema: { body: CheckinBody }, onRequest: agentKeyFirst }, async (req, reply) => {
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

  app.post<{ Body: ResultsBody }>('/agents/api/results/', { schema: { body: ResultsBody }, onRequest: agentKeyFirst }, async (req) => {
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
  const pendingMaxAgeMs = limit(config, 'pending_max_age') * 1000;
  const sweep = (): void => {
    try {
      for (const j of storage.expireJobs(now())) {
        app.log.info({ job: j.id, agent: j.agentId }, 'job expired');
        dispatch.jobFinished(j.id);
      }
    } catch (err) {
      app.log.error({ err }, 'cannot expire jobs');
    }
    try {
      // Registrations nobody approved would otherwise pile up for ever.
      for (const id of storage.prunePending(now() - pendingMaxAgeMs)) app.log.info({ agent: id }, 'pending agent deleted: never approved');
    } catch (err) {
      app.log.error({ err }, 'cannot delete stale pending agents');
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
