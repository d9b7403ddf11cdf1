/**
 * rootd.yaml: schema, defaults and loading.
 */
import { Type, type Static } from '@sinclair/typebox';
import { DEFAULT_MAX_MESSAGE_BYTES, DEFAULT_SOCKET, MODULE_NAME_PATTERN } from '../protocol/messages.ts';
import { loadConfigFile } from '../common/config-file.ts';
import { LogLevel } from '../common/log-level.ts';
import type { ModuleConfig } from './registry.ts';
import { OPERATION_DEFAULTS } from './operations.ts';

export const DEFAULT_CONFIG_FILE = '/etc/tuxsec/rootd.yaml';

const Name = Type.String({ pattern: '^[a-z_][a-z0-9_.-]{0,31}$|^[0-9]{1,10}$', description: 'a user name or uid' });

const ModuleEntry = Type.Object(
  {
    enabled: Type.Optional(Type.Boolean({ description: 'default true' })),
    allow_dangerous: Type.Optional(Type.Boolean({ description: 'allow actions of the dangerous class (default false)' })),
    settings: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
    operation_timeout: Type.Optional(
      Type.Number({ exclusiveMinimum: 0, maximum: 7 * 24 * 3600, description: 'seconds a long-running action of this module may run (default: what the action declares)' }),
    ),
  },
  { additionalProperties: false },
);

export const RootdConfigSchema = Type.Object(
  {
    socket: Type.String({ default: DEFAULT_SOCKET, pattern: '^/', maxLength: 107, description: 'an absolute path of at most 107 bytes' }),
    socket_group: Type.String({ default: 'tuxsec', pattern: '^[a-z_][a-z0-9_-]{0,31}$|^[0-9]{1,10}$' }),
    allowed_users: Type.Array(Name, { default: ['tuxsec'], maxItems: 256 }),
    read_only_users: Type.Array(Name, { default: [], maxItems: 256, description: 'users served for read actions only' }),
    modules: Type.Record(Type.String({ pattern: MODULE_NAME_PATTERN }), ModuleEntry, { default: {} }),
    plugins_dir: Type.Union([Type.String({ pattern: '^/' }), Type.Null()], { default: null }),
    log_file: Type.Union([Type.String({ pattern: '^/' }), Type.Null()], { default: null, description: 'null logs to stderr (journald)' }),
    log_level: LogLevel('info'),
    audit_log: Type.Union([Type.String({ pattern: '^/' }), Type.Null()], {
      default: '/var/log/tuxsec-rootd/audit.log',
      description: 'in a directory only root can write',
    }),
    request_timeout: Type.Number({ default: 60, exclusiveMinimum: 0, maximum: 3600, description: 'seconds' }),
    max_message_bytes: Type.Integer({ default: DEFAULT_MAX_MESSAGE_BYTES, minimum: 1024, maximum: 64 * 1024 * 1024 }),
    max_connections: Type.Integer({ default: 128, minimum: 1, maximum: 65536 }),
    max_connections_per_uid: Type.Integer({
      default: 32,
      minimum: 1,
      maximum: 65536,
      description: 'connections one user may hold at once (root is not limited)',
    }),
    reserved_connections: Type.Integer({
      default: 8,
      minimum: 0,
      maximum: 65536,
      description: 'of max_connections, how many only root and allowed_users may use (at most max_connections - 1)',
    }),
    idle_timeout: Type.Number({
      default: 120,
      minimum: 0,
      maximum: 86400,
      description: 'seconds; a connection with no request in flight and no input for this long is closed (0: never)',
    }),
    max_inflight_per_connection: Type.Integer({ default: 64, minimum: 1, maximum: 4096 }),
    max_concurrent_actions: Type.Integer({
      default: 8,
      minimum: 1,
      maximum: 1024,
      description: 'module actions running at once, all callers together; taken round-robin by uid',
    }),
    max_queued_per_uid: Type.Integer({
      default: 1024,
      minimum: 1,
      maximum: 1_000_000,
      description: 'module actions one user may have waiting for a slot; past it requests are refused as rate-limited',
    }),
    max_operations: Type.Integer({
      default: OPERATION_DEFAULTS.maxRunning,
      minimum: 1,
      maximum: 1024,
      description: 'long-running operations running at once, all callers but root together; past it new ones are refused as rate-limited',
    }),
    max_operations_per_uid: Type.Integer({
      default: OPERATION_DEFAULTS.maxRunningPerUid,
      minimum: 1,
      maximum: 1024,
      description: 'long-running operations one user may have running at once (root is not limited)',
    }),
    operation_result_ttl: Type.Number({
      default: OPERATION_DEFAULTS.resultTtlSeconds,
      minimum: 1,
      maximum: 30 * 24 * 3600,
      description: 'seconds a finished operation and its result are kept',
    }),
    operation_result_max_bytes: Type.Integer({
      default: OPERATION_DEFAULTS.resultMaxBytesPerUid,
      minimum: 1024,
      maximum: 4 * 1024 * 1024 * 1024,
      description: "bytes (as JSON) of the results one user's finished operations keep at most; the oldest results are dropped first, never another user's",
    }),
    operations_file: Type.Union([Type.String({ pattern: '^/' }), Type.Null()], {
      default: '/var/lib/tuxsec-rootd/operations.json',
      description: 'where operations are recorded, so a restarted rootd reports the ones it lost as interrupted (null: not recorded)',
    }),
    max_json_depth: Type.Integer({ default: 32, minimum: 2, maximum: 256 }),
    rate_limit: Type.Object(
      {
        requests_per_second: Type.Number({ default: 2000, exclusiveMinimum: 0 }),
        burst: Type.Integer({ default: 4000, minimum: 1 }),
      },
      { additionalProperties: false, default: {} },
    ),
  },
  { additionalProperties: false },
);

export type RootdConfig = Static<typeof RootdConfigSchema>;

/** Reads rootd.yaml; a missing file is the defaults unless the file was named (`required`). */
export function loadRootdConfig(file: string, required: boolean): RootdConfig {
  return loadConfigFile(RootdConfigSchema, file, { optional: !required });
}

export function moduleConfig(cfg: RootdConfig, name: string): ModuleConfig {
  const m = cfg.modules[name];
  return {
    enabled: m?.enabled ?? true,
    allow_dangerous: m?.allow_dangerous ?? false,
    settings: m?.settings ?? {},
    ...(m?.operation_timeout !== undefined ? { operation_timeout: m.operation_timeout } : {}),
  };
}
