/**
 * tuxsec-server configuration: a YAML file validated with TypeBox. Unknown keys and bad values are
 * refused with a message naming the key. Relative paths are taken relative to the file's folder.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Type, type Static } from '@sinclair/typebox';
import { badKey, ConfigError, parseConfigYaml, readConfigText, validateConfig as validateAgainst } from '../common/config-file.ts';
import { LogLevel, pinoLevel } from '../common/log-level.ts';

const Seconds = (min: number, max: number, def: number, description: string) =>
  Type.Integer({ minimum: min, maximum: max, default: def, description });

export const ServerConfigSchema = Type.Object(
  {
    listen: Type.String({ minLength: 3, maxLength: 300, default: '127.0.0.1:8443', description: 'host:port to listen on' }),
    database: Type.String({ minLength: 1, maxLength: 4096, default: '/var/lib/tuxsec-server/server.db' }),
    tls_cert: Type.String({ minLength: 1, maxLength: 4096 }),
    tls_key: Type.String({ minLength: 1, maxLength: 4096 }),
    client_ca: Type.Optional(Type.String({ minLength: 1, maxLength: 4096, description: 'require client certificates signed by this CA' })),
    admin_token: Type.Optional(Type.String({ minLength: 16, maxLength: 512 })),
    admin_token_file: Type.Optional(Type.String({ minLength: 1, maxLength: 4096 })),
    require_enrollment_token: Type.Boolean({ default: true }),
    long_poll_max: Seconds(1, 300, 30, 'longest a check-in is held'),
    sync_interval: Seconds(1, 86400, 30, 'polling interval told to agents'),
    job_default_ttl: Seconds(1, 30 * 86400, 86400, 'seconds a job waits for its agent'),
    redeliver_after: Seconds(1, 3600, 15, 'seconds before a sent job without result is handed out again'),
    result_timeout: Seconds(1, 30 * 86400, 600, 'seconds after its first delivery a job without result is shown delivered-without-result'),
    max_connections: Type.Integer({ minimum: 1, maximum: 1_000_000, default: 4096, description: 'most open connections at once' }),
    max_connections_per_ip: Type.Integer({ minimum: 1, maximum: 1_000_000, default: 256, description: 'most open connections from one address' }),
    header_timeout: Seconds(1, 300, 10, 'seconds to receive a request\'s headers'),
    request_timeout: Seconds(1, 600, 30, 'seconds to finish the TLS handshake, and to receive a whole request (a held long-poll is not counted)'),
    register_rate_limit: Type.Integer({ minimum: 1, maximum: 1_000_000, default: 30, description: 'registrations a minute from one address' }),
    pending_max_age: Seconds(1, 365 * 86400, 7 * 86400, 'seconds a registration waits for approval before it is deleted'),
    log_level: LogLevel('info'),
    // Push-mode delivery (the server calls agents): its client certificate and limits.
    agent_client_cert: Type.Optional(Type.String({ minLength: 1, maxLength: 4096, description: 'client certificate the server presents to push-mode agents' })),
    agent_client_key: Type.Optional(Type.String({ minLength: 1, maxLength: 4096, description: 'its private key' })),
    delivery_concurrency: Type.Integer({ minimum: 1, maximum: 10_000, default: 64, description: 'most jobs being delivered at once, all push and ssh agents together' }),
    delivery_concurrency_per_agent: Type.Integer({ minimum: 1, maximum: 8, default: 4, description: 'most jobs being delivered to one agent at once (a push agent accepts 8 connections from one client)' }),
    delivery_timeout: Seconds(1, 86400, 300, 'seconds a delivered job may take until its result comes back'),
    delivery_retry_max: Seconds(1, 3600, 60, 'longest wait between attempts to reach an unreachable agent'),
    // SSH-mode delivery (the server logs in to agents with the OpenSSH client).
    ssh_identity: Type.Optional(Type.String({ minLength: 1, maxLength: 4096, description: 'the private key the server logs in to SSH-mode agents with (0600, the server user\'s)' })),
    ssh_keepalive: Seconds(0, 3600, 60, 'seconds an SSH connection to an agent stays open after a job (ControlPersist); 0: one connection per job'),
    // Operators of the operator API and the console (docs/operators.md).
    session_idle_timeout: Seconds(1, 7 * 86400, 1800, 'seconds a login session lasts without a request'),
    session_max_age: Seconds(1, 30 * 86400, 43200, 'seconds a login session lasts at most, used or not'),
    sessions_per_user: Type.Integer({ minimum: 1, maximum: 1000, default: 10, description: 'most sessions of one user at once: a new login ends the oldest' }),
    login_failures_per_user: Type.Integer({ minimum: 1, maximum: 10_000, default: 5, description: 'failed logins of one user name within login_throttle_window before its logins wait' }),
    login_failures_per_address: Type.Integer({ minimum: 1, maximum: 100_000, default: 20, description: 'failed logins from one address (IPv6: one /64) within login_throttle_window before its logins wait' }),
    login_throttle_window: Seconds(1, 86400, 900, 'seconds a failed login counts against its user name and address'),
    login_queue: Type.Integer({ minimum: 1, maximum: 10_000, default: 64, description: 'logins waiting for a password check (2 run at once); more are refused with 429' }),
    audit_max_entries: Type.Integer({ minimum: 1000, maximum: 100_000_000, default: 1_000_000, description: 'audit entries kept; the oldest are deleted beyond' }),
    // The fleet (docs/fleet.md): multi-host jobs and live events.
    batch_max_hosts: Type.Integer({ minimum: 1, maximum: 100_000, default: 5000, description: 'most hosts one batch (a job for a label or a selection) reaches' }),
    batch_max_params_bytes: Type.Integer({ minimum: 2, maximum: 1024 * 1024, default: 65536, description: 'largest params of a batch, as JSON (each host\'s job stores a copy)' }),
    batch_max_total_bytes: Type.Integer({ minimum: 1024, maximum: 1024 * 1024 * 1024, default: 16 * 1024 * 1024, description: 'most bytes of params one batch stores: its hosts times its params as JSON' }),
    batch_rate_per_operator: Type.Integer({ minimum: 1, maximum: 100_000, default: 30, description: 'batches one operator (a user, or the admin token) may create a minute, in bursts of as many; retry-failed counts as one' }),
    templates_max: Type.Integer({ minimum: 1, maximum: 100_000, default: 1000, description: 'most firewall templates stored' }),
    events_max_streams: Type.Integer({ minimum: 1, maximum: 100_000, default: 256, description: 'most live event streams open at once' }),
    events_max_streams_per_operator: Type.Integer({ minimum: 1, maximum: 1000, default: 8, description: 'most live event streams one operator holds at once' }),
    events_buffer_bytes: Type.Integer({ minimum: 4096, maximum: 64 * 1024 * 1024, default: 1024 * 1024, description: 'bytes an event stream\'s reader may fall behind before it is dropped' }),
    // Operator CLI side: how to reach and trust the server.
    server_url: Type.Optional(Type.String({ pattern: '^https://', maxLength: 300 })),
    ca_cert: Type.Optional(Type.String({ minLength: 1, maxLength: 4096 })),
    client_cert: Type.Optional(Type.String({ minLength: 1, maxLength: 4096 })),
    client_key: Type.Optional(Type.String({ minLength: 1, maxLength: 4096 })),
  },
  { additionalProperties: false },
);

export type ServerConfigFile = Static<typeof ServerConfigSchema>;

export interface ServerConfig extends ServerConfigFile {
  host: string;
  port: number;
  /** The admin token, read from admin_token or admin_token_file. */
  adminToken: string;
}

const PATH_KEYS = ['database', 'tls_cert', 'tls_key', 'client_ca', 'admin_token_file', 'ca_cert', 'client_cert', 'client_key', 'agent_client_cert', 'agent_client_key', 'ssh_identity'] as const;

/** Splits "host:port" / "[v6]:port"; throws ConfigError naming `listen`. */
export function parseListen(s: string): { host: string; port: number } {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]\s]+)):(\d{1,5})$/.exec(s);
  const port = m ? Number(m[3]) : NaN;
  if (!m || !(port >= 0 && port <= 65535)) {
    throw new ConfigError(`cannot use listen "${s}": expected host:port`);
  }
  return { host: (m[1] ?? m[2])!, port };
}

const SECRETS = ['admin_token'];

/**
 * Validates an already-parsed config object; `file` names it in messages, and relative paths are
 * taken relative to its folder. The admin token is a secret: never echoed, even when refused.
 */
export function validateConfig(raw: unknown, file: string, readFile: (p: string) => string = (p) => readFileSync(p, 'utf8')): ServerConfig {
  const cfg = validateAgainst(ServerConfigSchema, raw, file, { secrets: SECRETS });
  const baseDir = path.dirname(path.resolve(file));
  for (const k of PATH_KEYS) {
    const v = cfg[k];
    if (typeof v === 'string' && v !== ':memory:') (cfg as Record<string, unknown>)[k] = path.resolve(baseDir, v);
  }
  if ((cfg.admin_token === undefined) === (cfg.admin_token_file === undefined)) {
    throw new ConfigError(`cannot load config ${file}: key "admin_token": set exactly one of admin_token and admin_token_file`);
  }
  let adminToken = cfg.admin_token;
  if (adminToken === undefined) {
    try {
      adminToken = readFile(cfg.admin_token_file!).trim();
    } catch (e) {
      throw badKey(file, 'admin_token_file', cfg.admin_token_file, `cannot be read: ${(e as Error).message}`);
    }
    if (adminToken.length < 16 || adminToken.length > 512 || /\s/.test(adminToken)) {
      throw badKey(file, 'admin_token_file', cfg.admin_token_file, 'is invalid: the token must be 16 to 512 characters without spaces');
    }
  }
  if ((cfg.client_cert === undefined) !== (cfg.client_key === undefined)) {
    throw new ConfigError(`cannot load config ${file}: key "client_cert": client_cert and client_key go together`);
  }
  if ((cfg.agent_client_cert === undefined) !== (cfg.agent_client_key === undefined)) {
    throw new ConfigError(`cannot load config ${file}: key "agent_client_cert": agent_client_cert and agent_client_key go together`);
  }
  if (cfg.header_timeout > cfg.request_timeout) {
    throw badKey(file, 'header_timeout', cfg.header_timeout, `is invalid: longer than request_timeout (${cfg.request_timeout})`);
  }
  let hp: { host: string; port: number };
  try {
    hp = parseListen(cfg.listen);
  } catch {
    throw badKey(file, 'listen', cfg.listen, 'is invalid: expected host:port');
  }
  return { ...cfg, ...hp, adminToken, log_level: pinoLevel(cfg.log_level) };
}

/** Reads and validates a YAML config file. */
export function loadConfig(file: string): ServerConfig {
  return validateConfig(parseConfigYaml(readConfigText(file)!, file), file);
}
