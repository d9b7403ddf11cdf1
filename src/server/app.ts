/**
 * The tuxsec-server HTTP application: pull-mode agent routes (routes/agent.ts) and the operator
 * API under /api/v1/ (routes/operator.ts). Built from its dependencies; `listen()` is the caller's
 * business (main.ts), tests may use inject().
 */
import path from 'node:path';
import type { ServerOptions as HttpsServerOptions } from 'node:https';
import type { Socket } from 'node:net';
import { normalizeIP } from '@fastify/rate-limit';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifyServerOptions } from 'fastify';
import { consoleRoutes, installSecurityHeaders } from './console.ts';
import { limit, stateWindows, type ServerConfigForApp, type ServerContext } from './context.ts';
import { DEFAULT_EVENT_LIMITS, EventHub } from './events.ts';
import { PushTransport } from './delivery/push.ts';
import { SshTransport } from './delivery/ssh.ts';
import { DeliveryWorker } from './delivery/worker.ts';
import { GroupCommit } from './group-commit.ts';
import { JobDispatch } from './job-dispatch.ts';
import { AgentAuth } from './plugins/agent-auth.ts';
import { BODY_LIMIT, installJsonParser } from './plugins/body.ts';
import { clientError, frameworkError, installErrorMapping } from './plugins/errors.ts';
import { RateLimiter } from '../common/rate-limit.ts';
import { makeAudit } from './audit.ts';
import { OperatorAuth } from './operator-auth.ts';
import type { Operator } from './operators.ts';
import { agentRoutes } from './routes/agent.ts';
import { auditRoutes } from './routes/audit.ts';
import { sessionRoutes } from './routes/session.ts';
import { userRoutes } from './routes/users.ts';
import { operatorRoutes } from './routes/operator.ts';
import type { JobRecord, Storage } from './storage/storage.ts';
import type { PushEndpoint, SshEndpoint } from './delivery/transport.ts';

export { BODY_LIMIT, UNAUTHENTICATED_BODY_LIMIT } from './plugins/body.ts';
export type { ServerConfigForApp } from './context.ts';

/** How often last_seen updates are written (batched: one write per check-in would be wasteful). */
const TOUCH_FLUSH_MS = 2000;
const EXPIRY_SWEEP_MS = 1000;

export interface AppDeps {
  config: ServerConfigForApp;
  storage: Storage;
  /** TLS options; absent only for inject() tests (the server itself always listens with TLS). */
  https?: HttpsServerOptions;
  logger?: FastifyBaseLogger;
  clock?: () => number;
  /** The client certificate and key (PEM) presented to push-mode agents (agent_client_cert/_key). */
  agentTls?: { cert: Buffer; key: Buffer };
  /** The built web console (index.html, assets/); dist/console beside the bundle when absent. */
  consoleDir?: string;
}

export interface TuxsecServerApp {
  app: FastifyInstance;
  dispatch: JobDispatch;
  /** Every route as "METHOD /url" (a test checks each operator route demands the admin token). */
  routes: string[];
}

/** Fastify's options: TLS and its timeouts, logging with secrets redacted, limits. */
function fastifyOptions(deps: AppDeps): FastifyServerOptions & { https?: HttpsServerOptions } {
  const { config } = deps;
  const requestTimeoutMs = limit(config, 'request_timeout') * 1000;
  const https = deps.https && {
    ...deps.https,
    // A client that never finishes its handshake or its headers holds a connection slot. The
    // handshake gets the longer time: after an outage thousands of agents reconnect at once
    // and handshakes queue behind each other in this process, through no fault of theirs.
    handshakeTimeout: requestTimeoutMs,
    headersTimeout: limit(config, 'header_timeout') * 1000,
    requestTimeout: requestTimeoutMs,
    // Node checks these timeouts on this period (30 s by default, too coarse for 10 s).
    connectionsCheckingInterval: 1000,
  };
  const logging = deps.logger
    ? { loggerInstance: deps.logger }
    : {
        logger: {
          level: config.log_level ?? 'info',
          // Secrets travel in these headers and bodies; they never reach a log.
          redact: ['req.headers.authorization', 'req.headers["x-api-key"]', 'req.body', 'res.body'],
        },
      };
  return {
    ...(https ? { https } : {}),
    ...logging,
    bodyLimit: BODY_LIMIT,
    // Node's requestTimeout covers receiving the request (headers and body), not the time the
    // handler holds it: a long-poll held for long_poll_max is not cut by it.
    requestTimeout: requestTimeoutMs,
    keepAliveTimeout: (config.long_poll_max + 30) * 1000,
    return503OnClosing: true,
    forceCloseConnections: 'idle',
    trustProxy: false,
    ajv: { customOptions: { coerceTypes: 'array', removeAdditional: false, allErrors: false } },
    frameworkErrors: frameworkError,
    clientErrorHandler: clientError,
  };
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

/**
 * The timers of a running server: last_seen written in batches; expired jobs, jobs without a result
 * after result_timeout and stale registrations swept.
 */
function installTimers(app: FastifyInstance, ctx: ServerContext): void {
  const { storage, dispatch, seen } = ctx;
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
  const pendingMaxAgeMs = limit(ctx.config, 'pending_max_age') * 1000;
  const resultTimeoutMs = limit(ctx.config, 'result_timeout') * 1000;
  const noResultReason = (j: JobRecord): string => {
    if (j.progress) {
      return `no result and no progress report from agent "${j.agentId}" within ${resultTimeoutMs / 1000} s of its last report (operation "${j.progress.operationId}"): the agent stopped or lost the job`;
    }
    const head = `no result from agent "${j.agentId}" within ${resultTimeoutMs / 1000} s of delivery (delivered ${j.deliveries} time(s)): `;
    const mode = storage.getAgent(j.agentId)?.mode ?? 'pull';
    return mode === 'pull'
      ? `${head}the agent took the job but does not report results (the original Python agent never does), or lost it`
      : `${head}the server could not reach the ${mode}-mode agent or read its answer (see the server log)`;
  };
  const sweep = (): void => {
    try {
      for (const j of storage.expireJobs(ctx.now())) {
        app.log.info({ job: j.id, agent: j.agentId }, 'job expired');
        dispatch.jobFinished(j.id);
      }
    } catch (err) {
      app.log.error({ err }, 'cannot expire jobs');
    }
    try {
      for (const j of storage.markResultOverdue(ctx.now() - resultTimeoutMs, ctx.now(), noResultReason)) {
        app.log.warn({ job: j.id, agent: j.agentId }, 'job delivered without result');
        dispatch.jobFinished(j.id);
      }
    } catch (err) {
      app.log.error({ err }, 'cannot mark jobs delivered without result');
    }
    try {
      // Registrations nobody approved would otherwise pile up for ever.
      for (const id of storage.prunePending(ctx.now() - pendingMaxAgeMs)) app.log.info({ agent: id }, 'pending agent deleted: never approved');
    } catch (err) {
      app.log.error({ err }, 'cannot delete stale pending agents');
    }
  };
  const timers: NodeJS.Timeout[] = [];
  app.addHook('onReady', async () => {
    sweep();
    ctx.delivery.start();
    timers.push(setInterval(flushSeen, TOUCH_FLUSH_MS).unref(), setInterval(sweep, EXPIRY_SWEEP_MS).unref());
  });
  app.addHook('preClose', async () => {
    dispatch.shutdown();
    // Event streams never end by themselves; the server would wait for them for ever.
    ctx.events.close();
    // Results already in hand are stored; unfinished deliveries stay `sent` for the next start.
    await ctx.delivery.close();
  });
  app.addHook('onClose', async () => {
    for (const t of timers) clearInterval(t);
    ctx.group.flush();
    flushSeen();
    storage.close();
  });
}

/** Builds the application; close it with `app.close()` (answers held long-polls, closes storage). */
/**
 * Where the SSH transport keeps its pinned known_hosts files and connection sockets: beside the
 * database, in a directory only the server enters (the system's temp directory for :memory:).
 */
function sshStateDir(database: string | undefined): string | undefined {
  return database === undefined || database === ':memory:' ? undefined : path.join(path.dirname(database), 'ssh');
}

export function buildApp(deps: AppDeps): TuxsecServerApp {
  const { config, storage } = deps;
  const now = deps.clock ?? Date.now;
  // The options hold `https`, which changes Fastify's server type; this app is typed as the plain one.
  const app = (Fastify(fastifyOptions(deps)) as unknown as FastifyInstance).withTypeProvider<TypeBoxTypeProvider>();
  const group = new GroupCommit(storage);
  const dispatch = new JobDispatch();
  const startedAt = now();
  const perAgent = limit(config, 'delivery_concurrency_per_agent');
  const seen = new Map<string, number>();
  const delivery = new DeliveryWorker({
    storage,
    group,
    dispatch,
    log: app.log.child({ component: 'delivery' }),
    now,
    startedAt,
    seen,
    limits: { concurrency: limit(config, 'delivery_concurrency'), perAgent, retryMaxMs: limit(config, 'delivery_retry_max') * 1000 },
    transports: {
      push: (a) =>
        new PushTransport(a.endpoint as PushEndpoint, a.pushKey ?? '', {
          clientCert: deps.agentTls?.cert,
          clientKey: deps.agentTls?.key,
          timeoutMs: limit(config, 'delivery_timeout') * 1000,
          connections: perAgent,
        }),
      // Without an identity the server cannot log in anywhere: SSH agents' jobs stay queued (logged).
      ...(config.ssh_identity === undefined
        ? {}
        : {
            ssh: (a) =>
              new SshTransport(a.endpoint as SshEndpoint, {
                identityFile: config.ssh_identity!,
                stateDir: sshStateDir(config.database),
                timeoutMs: limit(config, 'delivery_timeout') * 1000,
                keepAliveSeconds: limit(config, 'ssh_keepalive'),
              }),
          }),
    },
  });
  dispatch.onJobQueued((id) => delivery.wake(id));
  const windows = () => stateWindows({ config, now });
  const auth = new OperatorAuth(storage, config, now);
  const events = new EventHub({
    storage,
    windows,
    lastSeen: (id, stored) => seen.get(id) ?? stored,
    // An open stream is not use of its session: it ends when the session ends, idle or not.
    sessionLive: (op) => {
      const s = op.sessionId === undefined ? undefined : storage.auth.getSession(op.sessionId);
      return s !== undefined && auth.live(s.session);
    },
    log: app.log.child({ component: 'events' }),
    limits: {
      ...DEFAULT_EVENT_LIMITS,
      maxStreams: limit(config, 'events_max_streams'),
      maxPerOperator: limit(config, 'events_max_streams_per_operator'),
      bufferBytes: limit(config, 'events_buffer_bytes'),
    },
  });
  dispatch.onJobsChanged((ids) => events.jobs(ids));
  dispatch.onAgentChanged((id) => events.agent(id));
  const ctx: ServerContext = {
    config,
    storage,
    group,
    dispatch,
    delivery,
    now,
    startedAt,
    seen,
    events,
    auth,
    batchRate: new RateLimiter<string>(limit(config, 'batch_rate_per_operator') / 60, limit(config, 'batch_rate_per_operator')),
    audit: makeAudit(storage.auth, group, now),
  };
  app.server.headersTimeout = limit(config, 'header_timeout') * 1000;
  app.server.maxConnections = limit(config, 'max_connections');
  limitConnectionsPerIp(app, limit(config, 'max_connections_per_ip'));

  const routes: string[] = [];
  app.addHook('onRoute', (r) => {
    for (const m of [r.method].flat()) if (m !== 'HEAD') routes.push(`${m} ${r.url}`);
  });
  // Set by the operator API's authentication (operators.ts); declared here so every request has the slot.
  app.decorateRequest('operator', null as unknown as Operator);
  installJsonParser(app);
  installErrorMapping(app);
  installSecurityHeaders(app);
  void app.register(agentRoutes, { ctx, auth: new AgentAuth(storage, config) });
  void app.register(operatorRoutes, { ctx, prefix: '/api/v1' });
  void app.register(sessionRoutes, { ctx, prefix: '/api/v1' });
  void app.register(userRoutes, { ctx, prefix: '/api/v1' });
  void app.register(auditRoutes, { ctx, prefix: '/api/v1' });
  void app.register(consoleRoutes, deps.consoleDir === undefined ? {} : { dir: deps.consoleDir });
  installTimers(app, ctx);
  return { app, dispatch: ctx.dispatch, routes };
}
