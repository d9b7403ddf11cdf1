/**
 * What the route plugins of tuxsec-server share: the config, storage and the in-process state of
 * one server (long-poll waiters, the write batcher, last_seen not yet written). buildApp makes one.
 */
import type { FastifyRequest } from 'fastify';
import type { RateLimiter } from '../common/rate-limit.ts';
import type { AuditEntry } from './audit.ts';
export type { AuditEntry } from './audit.ts';
import type { OperatorAuth } from './operator-auth.ts';
import { ServerConfigSchema, type ServerConfig } from './config.ts';
import type { DeliveryWorker } from './delivery/worker.ts';
import type { EventHub } from './events.ts';
import type { GroupCommit } from './group-commit.ts';
import type { JobDispatch } from './job-dispatch.ts';
import { agentState, type StateWindows } from './storage/fleet-store.ts';
import type { AgentRecord, JobRecord, Storage } from './storage/storage.ts';

/** Keys a caller (a test) may leave out: the config schema's default applies. */
export type LimitKeys =
  | 'max_connections'
  | 'max_connections_per_ip'
  | 'header_timeout'
  | 'request_timeout'
  | 'register_rate_limit'
  | 'pending_max_age'
  | 'result_timeout'
  | 'delivery_concurrency'
  | 'delivery_concurrency_per_agent'
  | 'delivery_timeout'
  | 'delivery_retry_max'
  | 'ssh_keepalive'
  | 'session_idle_timeout'
  | 'session_max_age'
  | 'sessions_per_user'
  | 'login_failures_per_user'
  | 'login_failures_per_address'
  | 'login_throttle_window'
  | 'audit_max_entries'
  | 'login_queue'
  | 'batch_max_hosts'
  | 'batch_max_params_bytes'
  | 'batch_max_total_bytes'
  | 'batch_rate_per_operator'
  | 'templates_max'
  | 'events_max_streams'
  | 'events_max_streams_per_operator'
  | 'events_buffer_bytes';

export type ServerConfigForApp = Pick<
  ServerConfig,
  'adminToken' | 'require_enrollment_token' | 'long_poll_max' | 'sync_interval' | 'job_default_ttl' | 'redeliver_after'
> & { log_level?: ServerConfig['log_level'] } & Partial<Pick<ServerConfig, LimitKeys | 'ssh_identity' | 'database'>>;

export function limit(config: ServerConfigForApp, key: LimitKeys): number {
  return config[key] ?? (ServerConfigSchema.properties[key].default as number);
}

/** One server's shared state, handed to each route plugin. */
export interface ServerContext {
  config: ServerConfigForApp;
  storage: Storage;
  group: GroupCommit;
  dispatch: JobDispatch;
  /** Hands the jobs of push- and ssh-mode agents over. */
  delivery: DeliveryWorker;
  now: () => number;
  /** When this process started: jobs it handed out itself are not redelivered early. */
  startedAt: number;
  /** last_seen of agents, written to storage in batches (one write per check-in would be wasteful). */
  seen: Map<string, number>;
  /** Live events to operators' consoles (GET /api/v1/events). */
  events: EventHub;
  /** Operators' logins, sessions and password hashing (operator-auth.ts). */
  auth: OperatorAuth;
  /** Batches each operator may create (batch_rate_per_operator a minute), keyed `kind:name`. */
  batchRate: RateLimiter<string>;
  /** Records a change made through the operator API (who, what, which hosts, params redacted, result). */
  audit: (req: FastifyRequest, entry: AuditEntry) => void;
}

/**
 * When an agent counts as online (seen within 2 x sync_interval + long_poll_max: a pull agent
 * holding long-polls checks in at least that often) and as stale (within 10 x sync_interval +
 * long_poll_max); before that it is offline.
 */
export function stateWindows(ctx: Pick<ServerContext, 'config' | 'now'>): StateWindows {
  const { sync_interval: sync, long_poll_max: poll } = ctx.config;
  const t = ctx.now();
  return { onlineSince: t - (2 * sync + poll) * 1000, staleSince: t - (10 * sync + poll) * 1000 };
}

export const iso = (t: number | null): string | null => (t === null ? null : new Date(t).toISOString());

/** The operator's view of an agent (never the key hash). */
export function agentView(a: AgentRecord, lastSeen: number | null, windows: StateWindows) {
  return {
    id: a.id,
    status: a.status,
    state: agentState(a.status, lastSeen, windows),
    machine_id: a.machineId,
    hostname: a.hostname,
    ip: a.ip,
    os_info: a.osInfo,
    modules: a.modules,
    version: a.version,
    features: a.features,
    created_at: iso(a.createdAt),
    last_seen: iso(lastSeen),
    mode: a.mode,
    endpoint: endpointView(a),
    labels: a.labels,
  };
}

/** Where the server delivers to, as the operator sees it (never the push key). */
function endpointView(a: AgentRecord): Record<string, unknown> | null {
  const e = a.endpoint;
  if (e === null) return null;
  if ('url' in e) return { url: e.url, ca_file: e.caFile };
  return { host: e.host, port: e.port, user: e.user, known_host: e.knownHost };
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
    progress: j.progress ? { operation_id: j.progress.operationId, phase: j.progress.phase, fraction: j.progress.fraction, updated_at: iso(j.progress.at) } : null,
    cancel_requested_at: iso(j.cancelRequestedAt ?? null),
    batch_id: j.batchId ?? null,
  };
}
