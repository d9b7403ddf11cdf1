/**
 * tuxsec-server configuration: a YAML file validated with TypeBox. Unknown keys and bad values are
 * refused with a message naming the key. Relative paths are taken relative to the file's folder.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Type, type Static } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { parse as parseYaml } from 'yaml';

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
    log_level: Type.Union(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map((l) => Type.Literal(l)), { default: 'info' }),
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

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

const PATH_KEYS = ['database', 'tls_cert', 'tls_key', 'client_ca', 'admin_token_file', 'ca_cert', 'client_cert', 'client_key'] as const;

/** Splits "host:port" / "[v6]:port"; throws ConfigError naming `listen`. */
export function parseListen(s: string): { host: string; port: number } {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]\s]+)):(\d{1,5})$/.exec(s);
  const port = m ? Number(m[3]) : NaN;
  if (!m || !(port >= 0 && port <= 65535)) {
    throw new ConfigError(`cannot use listen "${s}": expected host:port`);
  }
  return { host: (m[1] ?? m[2])!, port };
}

/** Validates an already-parsed config object. `baseDir` resolves relative paths. */
export function validateConfig(raw: unknown, baseDir: string, readFile: (p: string) => string = (p) => readFileSync(p, 'utf8')): ServerConfig {
  if (raw === null || raw === undefined) raw = {};
  if (typeof raw !== 'object' || Array.isArray(raw)) throw new ConfigError('cannot read config: expected a mapping of keys');
  const obj = raw as Record<string, unknown>;
  for (const key of Object.keys(obj)) {
    if (!(key in ServerConfigSchema.properties)) throw new ConfigError(`cannot use config key "${key}": unknown key`);
  }
  const withDefaults = Value.Default(ServerConfigSchema, structuredClone(obj)) as Record<string, unknown>;
  const first = Value.Errors(ServerConfigSchema, withDefaults).First();
  if (first) {
    const key = first.path.replace(/^\//, '').replace(/\//g, '.') || '(root)';
    const top = key.split('.')[0]!;
    // The admin token is a secret: never echoed, even when it is refused.
    const value = top === 'admin_token' ? undefined : (withDefaults as Record<string, unknown>)[top];
    throw new ConfigError(`cannot use config key "${key}"${value === undefined ? '' : ` = ${JSON.stringify(value)}`}: ${first.message.toLowerCase()}`);
  }
  const cfg = withDefaults as ServerConfigFile;
  for (const k of PATH_KEYS) {
    const v = cfg[k];
    if (typeof v === 'string' && v !== ':memory:') (cfg as Record<string, unknown>)[k] = path.resolve(baseDir, v);
  }
  if ((cfg.admin_token === undefined) === (cfg.admin_token_file === undefined)) {
    throw new ConfigError('cannot use config key "admin_token": set exactly one of admin_token and admin_token_file');
  }
  let adminToken = cfg.admin_token;
  if (adminToken === undefined) {
    try {
      adminToken = readFile(cfg.admin_token_file!).trim();
    } catch (e) {
      throw new ConfigError(`cannot use config key "admin_token_file" = "${cfg.admin_token_file}": ${(e as Error).message}`);
    }
    if (adminToken.length < 16 || adminToken.length > 512 || /\s/.test(adminToken)) {
      throw new ConfigError(`cannot use config key "admin_token_file" = "${cfg.admin_token_file}": the token must be 16 to 512 characters without spaces`);
    }
  }
  if ((cfg.client_cert === undefined) !== (cfg.client_key === undefined)) {
    throw new ConfigError('cannot use config key "client_cert": client_cert and client_key go together');
  }
  if (cfg.header_timeout > cfg.request_timeout) {
    throw new ConfigError(`cannot use config key "header_timeout" = ${cfg.header_timeout}: longer than request_timeout (${cfg.request_timeout})`);
  }
  let hp: { host: string; port: number };
  try {
    hp = parseListen(cfg.listen);
  } catch (e) {
    throw new ConfigError(`cannot use config key "listen" = "${cfg.listen}": expected host:port (${(e as Error).message})`);
  }
  return { ...cfg, ...hp, adminToken };
}

/** Reads and validates a YAML config file. */
export function loadConfig(file: string): ServerConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new ConfigError(`cannot read config "${file}": ${(e as Error).message}`);
  }
  let raw: unknown;
  try {
    raw = parseYaml(text, { maxAliasCount: 100 });
  } catch (e) {
    throw new ConfigError(`cannot parse config "${file}": ${(e as Error).message}`);
  }
  return validateConfig(raw, path.dirname(path.resolve(file)));
}
