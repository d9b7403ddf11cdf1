/**
 * The agent-facing routes (INTEROP section 2 plus the extensions of docs/pull-protocol.md):
 * registration, check-in (long-polled when the agent asks) and results.
 */
import { randomUUID } from 'node:crypto';
import rateLimit from '@fastify/rate-limit';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { ErrorCodes, HttpError } from '../../protocol/errors.ts';
import { iso, limit, type ServerContext } from '../context.ts';
import type { AgentAuth } from '../plugins/agent-auth.ts';
import { UNAUTHENTICATED_BODY_LIMIT } from '../plugins/body.ts';
import { CheckinRequest, ProgressRequest, PULL_PATH, RegisterRequest, ResultsRequest, type CommandResult } from '../../protocol/jobs.ts';
import { CheckinReply, ProgressReply, RegisterReply, ResultsReply } from '../schemas.ts';
import { hashSecret, newSecret } from '../secrets.ts';
import { incomingResult, type AgentRecord, type Inventory } from '../storage/storage.ts';

const MAX_COMMANDS_PER_CHECKIN = 100;
const MAX_OS_INFO_BYTES = 64 * 1024;

export interface AgentRoutesOptions {
  ctx: ServerContext;
  auth: AgentAuth;
}

async function storeResults(ctx: ServerContext, req: FastifyRequest, agent: AgentRecord, results: CommandResult[] | undefined): Promise<string[]> {
  if (!results || results.length === 0) return [];
  const incoming = results.map(incomingResult);
  const out = await ctx.group.run(() => ctx.storage.storeResults(agent.id, incoming, ctx.now()));
  for (const j of out.finished) ctx.dispatch.jobFinished(j.id);
  for (const i of out.ignored) req.log.warn({ agent: agent.id, command: i.commandId }, `result acknowledged but not stored: ${i.why}`);
  return out.acknowledged;
}

async function refreshInventory(ctx: ServerContext, req: FastifyRequest, agent: AgentRecord, body: CheckinRequest): Promise<void> {
  const inv: Inventory = {};
  if (body.hostname !== undefined && body.hostname !== agent.hostname) inv.hostname = body.hostname;
  const newIp = body.ip_address ?? req.ip;
  if (newIp && newIp !== agent.ip) inv.ip = newIp;
  if (body.version !== undefined && body.version !== agent.version) inv.version = body.version;
  if (body.modules !== undefined && JSON.stringify(body.modules) !== JSON.stringify(agent.modules)) inv.modules = body.modules;
  const features = body.features ?? [];
  if (JSON.stringify(features) !== JSON.stringify(agent.features)) inv.features = features;
  const claim = body.machine_id !== undefined && agent.machineId === null ? body.machine_id : undefined;
  if (Object.keys(inv).length === 0 && claim === undefined) return;
  await ctx.group.run(() => {
    // A machine_id learnt at check-in must not sidestep the duplicate check of registration.
    if (claim !== undefined) {
      if (ctx.storage.agentsByMachineId(claim).length === 0) inv.machineId = claim;
      else req.log.warn({ agent: agent.id, machine_id: claim }, 'machine_id ignored: already enrolled under another agent');
    }
    ctx.storage.updateInventory(agent.id, inv);
  });
}

async function commandsFor(ctx: ServerContext, agentId: string, redelivery: boolean) {
  const jobs = await ctx.group.run(() => {
    const t = ctx.now();
    // Sent jobs without a result go out again if this process has not handed them out lately.
    const before = redelivery ? Math.max(ctx.startedAt, t - ctx.config.redeliver_after * 1000) : null;
    return ctx.storage.takeJobs(agentId, t, MAX_COMMANDS_PER_CHECKIN, before);
  });
  ctx.dispatch.jobsChanged(jobs.map((j) => j.id));
  return jobs.map((j) => ({ id: j.id, module: j.module, action: j.action, params: j.params, expires_at: iso(j.expiresAt) }));
}

/**
 * The commands of a check-in: at once when there are some (or results were just acknowledged),
 * else held up to `wait` seconds until a job is queued for the agent.
 */
async function checkinCommands(ctx: ServerContext, call: { req: FastifyRequest; reply: FastifyReply; agentId: string; body: CheckinRequest; hold: boolean }) {
  const { dispatch } = ctx;
  const { req, reply, agentId, body, hold } = call;
  const redelivery = (body.features ?? []).includes('redelivery');
  let gen = dispatch.generation(agentId);
  let commands = await commandsFor(ctx, agentId, redelivery);
  // A job queued while we read (the read is asynchronous): read again rather than sleep on it.
  // The check and the wait below run without an await in between, so no wake-up is lost.
  while (hold && commands.length === 0 && dispatch.generation(agentId) !== gen) {
    gen = dispatch.generation(agentId);
    commands = await commandsFor(ctx, agentId, redelivery);
  }
  if (!hold || commands.length > 0) return commands;
  const gone = new AbortController();
  const onClose = (): void => gone.abort();
  reply.raw.once('close', onClose);
  // The agent may have hung up during the reads above, before the listener was there.
  if (reply.raw.destroyed || req.raw.socket?.destroyed) gone.abort();
  const wait = Math.min(body.wait ?? 0, ctx.config.long_poll_max);
  const why = await dispatch.waitForJobs(agentId, wait * 1000, gone.signal);
  reply.raw.off('close', onClose);
  if (why === 'shutdown') void reply.header('connection', 'close');
  // A job must never be marked sent towards a client that has gone away.
  else if (!gone.signal.aborted) commands = await commandsFor(ctx, agentId, redelivery);
  ctx.seen.set(agentId, ctx.now());
  return commands;
}

async function register(ctx: ServerContext, req: FastifyRequest, b: RegisterRequest) {
  const { config, storage } = ctx;
  const token = b.enrollment_token;
  if (token === undefined && config.require_enrollment_token) {
    throw HttpError.of(ErrorCodes.invalidToken, 'cannot register agent: an enrollment token is required');
  }
  const osInfo = b.os_info === undefined ? null : b.os_info;
  if (JSON.stringify(osInfo).length > MAX_OS_INFO_BYTES) {
    throw HttpError.of(ErrorCodes.invalidRequest, `cannot register agent: os_info larger than ${MAX_OS_INFO_BYTES} bytes`);
  }
  const t = ctx.now();
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
    mode: 'pull',
    endpoint: null,
    pushKey: null,
    labels: {},
  };
  const tokenHash = token === undefined ? null : hashSecret(token);
  const check = await ctx.group.run(() => {
    // Decided inside the transaction, so two registrations of one machine cannot both be active.
    if (agent.machineId !== null && storage.agentsByMachineId(agent.machineId).length > 0) agent.status = 'pending';
    return storage.enroll(tokenHash, agent, t);
  });
  if (check !== 'ok') {
    const why = { unknown: 'unknown token', expired: 'token expired', 'used-up': 'token already used up' }[check];
    req.log.warn({ hostname: b.hostname, ip: req.ip }, `registration refused: ${why}`);
    throw HttpError.of(ErrorCodes.invalidToken, `cannot register agent "${b.hostname}": ${why}`);
  }
  return { agent, apiKey };
}

/** Registers the agent routes, with the registration rate limit, in a scope of their own. */
export const agentRoutes: FastifyPluginAsyncTypebox<AgentRoutesOptions> = async (app, { ctx, auth }) => {
  const { config } = ctx;
  app.addHook('preParsing', auth.capBody);
  await app.register(rateLimit, {
    global: false,
    // An address that registers over and over (tokens off, or guessing tokens) is refused.
    cache: 10_000,
    errorResponseBuilder: (_req, rl) =>
      HttpError.of(ErrorCodes.rateLimited, `cannot register agent: more than ${rl.max} registrations a minute from this address; retry later`, {
        retryAfter: Math.ceil(rl.ttl / 1000),
      }),
  });

  const registerOptions = {
    schema: { body: RegisterRequest, response: RegisterReply },
    bodyLimit: UNAUTHENTICATED_BODY_LIMIT,
    config: { rateLimit: { max: limit(config, 'register_rate_limit'), timeWindow: 60_000 } },
  };
  app.post(`/${PULL_PATH.register}`, registerOptions, async (req, reply) => {
    const { agent, apiKey } = await register(ctx, req, req.body);
    ctx.dispatch.agentChanged(agent.id);
    const creds = { agent_id: agent.id, api_key: apiKey, checkin_interval: config.sync_interval };
    if (agent.status === 'pending') {
      req.log.warn({ agent: agent.id, machine_id: agent.machineId }, 'agent held for approval: machine_id already enrolled');
      const error = `cannot enroll machine "${agent.machineId}" again without an operator: held as pending`;
      return reply.code(202).send({ success: false, code: ErrorCodes.pendingApproval, error, ...creds });
    }
    req.log.info({ agent: agent.id, hostname: agent.hostname }, 'agent registered');
    return reply.code(200).send({ success: true, ...creds });
  });

  app.post(`/${PULL_PATH.checkin}`, { schema: { body: CheckinRequest, response: CheckinReply }, onRequest: auth.keyFirst }, async (req, reply) => {
    const body = req.body;
    const agent = auth.authenticate(req, body);
    const acknowledged = await storeResults(ctx, req, agent, body.command_results);
    await refreshInventory(ctx, req, agent, body);
    ctx.seen.set(agent.id, ctx.now());
    ctx.dispatch.agentChanged(agent.id);
    // Results just stored: answer now so the agent learns of the acknowledgement at once.
    const hold = Math.min(body.wait ?? 0, config.long_poll_max) > 0 && acknowledged.length === 0;
    const commands = await checkinCommands(ctx, { req, reply, agentId: agent.id, body, hold });
    return { success: true as const, commands, sync_interval: config.sync_interval, server_time: new Date(ctx.now()).toISOString(), acknowledged };
  });

  app.post(`/${PULL_PATH.results}`, { schema: { body: ResultsRequest, response: ResultsReply }, onRequest: auth.keyFirst }, async (req) => {
    const agent = auth.authenticate(req, req.body);
    ctx.seen.set(agent.id, ctx.now());
    return { success: true as const, acknowledged: await storeResults(ctx, req, agent, req.body.command_results) };
  });

  app.post(`/${PULL_PATH.progress}`, { schema: { body: ProgressRequest, response: ProgressReply }, onRequest: auth.keyFirst }, async (req) => {
    const agent = auth.authenticate(req, req.body);
    ctx.seen.set(agent.id, ctx.now());
    const { changed, cancel } = await ctx.group.run(() => ctx.storage.storeProgress(agent.id, req.body.progress, ctx.now()));
    // Only jobs of this agent that took the report: other ids name nothing this agent may touch.
    ctx.dispatch.jobsChanged(changed);
    return { success: true as const, cancel };
  });
};
