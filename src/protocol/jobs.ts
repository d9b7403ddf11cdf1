/**
 * The job envelope and every agent-server message, once (docs/pull-protocol.md, INTEROP sections 2
 * and 3): TypeBox schemas, their types, the URL paths, and the checkers both ends use. tuxsec-server
 * validates requests and serializes replies with these schemas; the agent checks every reply
 * against them instead of casting it. Objects an original peer sends allow unknown fields
 * (compatibility); the push `/execute` body, which no original server extends, does not.
 */
import { randomUUID } from 'node:crypto';
import { Kind, Type, TypeRegistry, type Static, type TSchema } from '@sinclair/typebox';
import { compiled } from './compiled.ts';
import { ErrorCodes, TuxsecError } from './errors.ts';
import { findPoisonKey, isPlainObject } from './json.ts';

// ---- paths -------------------------------------------------------------------------------------

/** Pull mode paths, relative to the agent's server_url (tuxsec-server mounts them at its root). */
export const PULL_PATH = {
  register: 'agents/api/register/',
  checkin: 'agents/api/checkin/',
  /** Extension: results without a check-in (at shutdown). */
  results: 'agents/api/results/',
  /** Extension: progress of jobs running as rootd operations; the reply names jobs an operator cancelled. */
  progress: 'agents/api/progress/',
} as const;

/** Push mode paths on the agent's listener. */
export const PUSH_PATH = {
  execute: '/execute',
  health: '/health',
  /** Extension: `GET` a job's state while the server holds its `/execute` open (PushJobState). */
  job: (id: string) => `/jobs/${encodeURIComponent(id)}`,
  /** Extension: `POST` asks rootd to cancel the job's operation (PushCancelReply). */
  cancel: (id: string) => `/jobs/${encodeURIComponent(id)}/cancel`,
} as const;

// ---- building blocks ---------------------------------------------------------------------------

/** Most commands one check-in reply may carry (tuxsec-server hands out at most 100). */
export const MAX_COMMANDS = 1000;
/** Most results one request may carry. */
export const MAX_RESULTS = 1000;

/**
 * What a module or action name in a job may be. Looser than rootd's own patterns (messages.ts) on
 * purpose: the agent hands such a name to rootd, whose answer (`module-not-found`) says more.
 */
export const JOB_NAME_PATTERN = '^[A-Za-z0-9_.-]{1,64}$';

// One JSON Schema type list, so the server's serializer writes it without trying alternatives;
// registered so the agent's checker knows it too.
TypeRegistry.Set('StringOrNull', (s: { maxLength?: number }, v) => v === null || (typeof v === 'string' && v.length <= (s.maxLength ?? Infinity)));
/** A string (at most `maxLength`) or null. */
export const StringOrNull = (maxLength?: number) =>
  Type.Unsafe<string | null>({ [Kind]: 'StringOrNull', type: ['string', 'null'], ...(maxLength === undefined ? {} : { maxLength }) });

/** An agent id or a job id. */
export const Id = Type.String({ minLength: 1, maxLength: 128 });
const Text = (max: number) => Type.String({ maxLength: max });
const Hostname = Type.String({ minLength: 1, maxLength: 253 });
const MachineId = Type.String({ minLength: 1, maxLength: 128 });
const Modules = Type.Array(Type.String({ minLength: 1, maxLength: 64 }), { maxItems: 256 });
const Features = Type.Array(Type.String({ minLength: 1, maxLength: 32 }), { maxItems: 32 });
const JobName = Type.String({ pattern: JOB_NAME_PATTERN });
/** A job's parameters: any JSON object (rootd checks them against the action's schema). */
export const Params = Type.Record(Type.String(), Type.Unknown());

// ---- the job envelope --------------------------------------------------------------------------

/** A job as tuxsec-server hands it out (check-in `commands`) and pushes it (`/execute`). */
export const JobEnvelope = Type.Object({
  id: Id,
  module: JobName,
  action: JobName,
  params: Params,
  /** Extension: when the server stops waiting for a result. */
  expires_at: Type.Optional(StringOrNull(64)),
});
export type JobEnvelope = Static<typeof JobEnvelope>;

/**
 * A job as a compatible server may send it: a numeric id (an original server's primary key),
 * `params` missing, null or called `parameters`.
 */
const JobOnWire = {
  id: Type.Union([Id, Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER })]),
  module: JobName,
  action: JobName,
  params: Type.Optional(Type.Union([Params, Type.Null()])),
  parameters: Type.Optional(Type.Union([Params, Type.Null()])),
  expires_at: Type.Optional(StringOrNull(64)),
};
const WireJob = Type.Object(JobOnWire);

export type ResultStatus = 'completed' | 'failed' | 'interrupted';
export const ResultStatus = Type.Union([Type.Literal('completed'), Type.Literal('failed'), Type.Literal('interrupted')]);

/**
 * The result of one job as our agent reports it: INTEROP's `{command_id, success, output | error}`
 * plus the pull-protocol extensions (status, code, times).
 */
export const ResultEnvelope = Type.Object({
  command_id: Id,
  success: Type.Boolean(),
  output: Type.Optional(Type.Unknown()),
  error: Type.Optional(Text(65536)),
  status: ResultStatus,
  code: Type.Optional(Text(64)),
  started_at: Text(64),
  finished_at: Text(64),
  duration_ms: Type.Number({ minimum: 0 }),
});
export type ResultEnvelope = Static<typeof ResultEnvelope>;

/** A `command_results` entry as tuxsec-server accepts it: an original agent sends only some fields. */
export const CommandResult = Type.Object({
  ...Type.Partial(ResultEnvelope).properties,
  command_id: Id,
  error: Type.Optional(Type.Union([Text(65536), Type.Null()])),
});
export type CommandResult = Static<typeof CommandResult>;

// ---- pull mode messages ------------------------------------------------------------------------

export const RegisterRequest = Type.Object({
  hostname: Hostname,
  ip_address: Type.Optional(Type.Union([Text(64), Type.Null()])),
  os_info: Type.Optional(Type.Unknown()),
  enrollment_token: Type.Optional(Type.String({ minLength: 1, maxLength: 256 })),
  machine_id: Type.Optional(MachineId),
  version: Type.Optional(Text(64)),
  modules: Type.Optional(Modules),
});
export type RegisterRequest = Static<typeof RegisterRequest>;

// Properties of replies in the order the server builds them: its serializer writes schema order.
const Enrolled = {
  agent_id: Id,
  api_key: Type.String({ minLength: 1, maxLength: 1024, pattern: '^\\S+$' }),
  checkin_interval: Type.Number(),
};
export const RegisterResponse = Type.Object({ success: Type.Literal(true), ...Enrolled });
/** 202: held for an operator; the credentials work once the agent is approved. */
export const RegisterPending = Type.Object({ success: Type.Literal(false), code: Type.Literal(ErrorCodes.pendingApproval), error: Text(1024), ...Enrolled });
export type RegisterReply = Static<typeof RegisterResponse> | Static<typeof RegisterPending>;
/** The schema a register reply is checked against: the 202 form says `success: false`. */
export function registerReplySchema(body: unknown): typeof RegisterResponse | typeof RegisterPending {
  return isPlainObject(body) && body.success === false ? RegisterPending : RegisterResponse;
}

const Credentials = {
  agent_id: Id,
  api_key: Type.Optional(Type.String({ maxLength: 256 })),
};

export const CheckinRequest = Type.Object({
  ...Credentials,
  status: Type.Optional(Text(32)),
  command_results: Type.Optional(Type.Array(CommandResult, { maxItems: MAX_RESULTS })),
  /** Extension: long-poll up to this many seconds. */
  wait: Type.Optional(Type.Number({ minimum: 0, maximum: 3600 })),
  features: Type.Optional(Features),
  hostname: Type.Optional(Hostname),
  ip_address: Type.Optional(Type.Union([Text(64), Type.Null()])),
  version: Type.Optional(Text(64)),
  modules: Type.Optional(Modules),
  machine_id: Type.Optional(MachineId),
});
export type CheckinRequest = Static<typeof CheckinRequest>;

const Acknowledged = Type.Array(Id, { maxItems: MAX_RESULTS });

export const CheckinResponse = Type.Object({
  success: Type.Literal(true),
  commands: Type.Array(JobEnvelope, { maxItems: MAX_COMMANDS }),
  sync_interval: Type.Number(),
  server_time: Text(64),
  /** Extension: the results of this request now stored durably. */
  acknowledged: Type.Optional(Acknowledged),
});
export type CheckinResponse = Static<typeof CheckinResponse>;

/**
 * A check-in reply as the agent accepts it: an original server may leave fields out, and each
 * command is checked on its own (parseJob), so one bad command is reported, not the whole reply lost.
 */
export const CheckinReply = Type.Object({
  ...Type.Partial(CheckinResponse).properties,
  success: Type.Literal(true),
  commands: Type.Optional(Type.Array(Type.Unknown(), { maxItems: MAX_COMMANDS })),
});
export type CheckinReply = Static<typeof CheckinReply>;

export const ResultsRequest = Type.Object({
  ...Credentials,
  command_results: Type.Array(CommandResult, { maxItems: MAX_RESULTS }),
});
export type ResultsRequest = Static<typeof ResultsRequest>;

export const ResultsReply = Type.Object({ success: Type.Literal(true), acknowledged: Acknowledged });
export type ResultsReply = Static<typeof ResultsReply>;

/** Most progress reports one request may carry (a pull agent runs one job at a time). */
export const MAX_PROGRESS = 100;

/** Where a running job is: its rootd operation, as the operation last reported itself. */
export const JobProgress = Type.Object({
  command_id: Id,
  operation_id: Type.String({ minLength: 1, maxLength: 64 }),
  phase: Type.Optional(StringOrNull(200)),
  fraction: Type.Optional(Type.Union([Type.Number({ minimum: 0, maximum: 1 }), Type.Null()])),
});
export type JobProgress = Static<typeof JobProgress>;

/** Extension (`PULL_PATH.progress`): an agent's jobs still running, sent while they run. */
export const ProgressRequest = Type.Object({
  ...Credentials,
  progress: Type.Array(JobProgress, { minItems: 1, maxItems: MAX_PROGRESS }),
});
export type ProgressRequest = Static<typeof ProgressRequest>;

/** `cancel`: the reported jobs an operator asked to cancel. */
export const ProgressReply = Type.Object({ success: Type.Literal(true), cancel: Type.Array(Id, { maxItems: MAX_PROGRESS }) });
export type ProgressReply = Static<typeof ProgressReply>;

// ---- push mode messages (INTEROP section 3) ----------------------------------------------------

/** A pushed job: the original server sends no id (each call is then a new job); ours does. */
const PushedJob = Type.Object({ ...JobOnWire, id: Type.Optional(JobOnWire.id) }, { additionalProperties: false });

const WrappedJob = Type.Object({ job: PushedJob }, { additionalProperties: false });
/** `POST /execute` body: the job itself, or wrapped as `{"job": {...}}` (what the Python agent expected). */
export const ExecuteBody = Type.Union([PushedJob, WrappedJob]);
export type ExecuteBody = Static<typeof ExecuteBody>;

/** `POST /execute` reply: INTEROP's `{success, result, error}` plus the result envelope's extensions. */
export const ExecuteReply = Type.Object({
  success: Type.Boolean(),
  result: Type.Unknown(),
  error: StringOrNull(65536),
  id: Type.Optional(Id),
  status: Type.Optional(ResultStatus),
  code: Type.Optional(Text(64)),
  started_at: Type.Optional(Text(64)),
  finished_at: Type.Optional(Text(64)),
  duration_ms: Type.Optional(Type.Number({ minimum: 0 })),
});
export type ExecuteReply = Static<typeof ExecuteReply>;

/** `GET /health` reply. */
export const HealthReply = Type.Object({
  status: Type.Union([Type.Literal('healthy'), Type.Literal('unhealthy')]),
  rootd_connected: Type.Boolean(),
  version: Text(64),
  modules: Modules,
});
export type HealthReply = Static<typeof HealthReply>;

/**
 * Extension (`PUSH_PATH.job`): `running` while the agent runs it (`operation_id` null until its
 * rootd operation started, or when the action is not long-running), `done` once its result is
 * kept in the journal, `unknown` for an id the agent never saw.
 */
export const PushJobState = Type.Object({
  id: Id,
  state: Type.Union([Type.Literal('running'), Type.Literal('done'), Type.Literal('unknown')]),
  operation_id: Type.Union([Type.String({ minLength: 1, maxLength: 64 }), Type.Null()]),
  phase: StringOrNull(200),
  fraction: Type.Union([Type.Number({ minimum: 0, maximum: 1 }), Type.Null()]),
});
export type PushJobState = Static<typeof PushJobState>;

/** Extension (`PUSH_PATH.cancel`): whether the job's operation was (or had already been) asked to stop. */
export const PushCancelReply = Type.Object({ cancelled: Type.Boolean() });
export type PushCancelReply = Static<typeof PushCancelReply>;

// ---- checkers ----------------------------------------------------------------------------------


/** A wire value for a message, cut short: it may be hostile and may go back to the server. */
export function quote(v: unknown): string {
  let s: string;
  try {
    s = JSON.stringify(v) ?? String(v);
  } catch {
    s = `(${typeof v})`;
  }
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
}

/** Why `value` does not match `schema`, naming the place and the value; null when it matches. */
export function schemaError(schema: TSchema, value: unknown): string | null {
  const c = compiled(schema);
  if (c.Check(value)) {
    const poison = findPoisonKey(value);
    return poison === null ? null : `forbidden key "${poison}"`;
  }
  const e = c.Errors(value).First();
  if (!e) return 'invalid';
  const where = e.path === '' ? '' : `"${e.path.slice(1)}": `;
  if (e.value === undefined) return `${where}missing`;
  // TypeBox says only "expected union value": name the alternatives instead.
  const anyOf = (e.schema as { anyOf?: Array<{ type?: unknown; const?: unknown }> }).anyOf;
  const why = anyOf
    ? `expected ${anyOf.map((a) => (a.const !== undefined ? JSON.stringify(a.const) : String(a.type))).join(' or ')}`
    : e.message.charAt(0).toLowerCase() + e.message.slice(1);
  return `${where}${why}, got ${quote(e.value)}`;
}

/**
 * `value` typed as the schema's type; else a TuxsecError (`invalid-request`) saying
 * "cannot <what>: <where>: <why>, got <value>". `value` must come from JSON.parse (nothing deeper
 * than the caller's depth limit).
 */
export function checkMessage<T extends TSchema>(schema: T, value: unknown, what: string): Static<T> {
  const why = schemaError(schema, value);
  if (why !== null) throw new TuxsecError(ErrorCodes.invalidRequest, `cannot ${what}: ${why}`);
  return value as Static<T>;
}

function jobId(raw: unknown): string | null {
  if (typeof raw === 'string' && raw.length > 0 && raw.length <= 128) return raw;
  if (typeof raw === 'number' && Number.isSafeInteger(raw) && raw >= 0) return String(raw);
  return null;
}

/** The envelope of a checked wire job: the id as a string, `params` whatever it was called. */
function envelope(id: string, j: Omit<Static<typeof WireJob>, 'id'>): JobEnvelope {
  const job: JobEnvelope = { id, module: j.module, action: j.action, params: j.params ?? j.parameters ?? {} };
  if (j.expires_at !== undefined) job.expires_at = j.expires_at;
  return job;
}

/**
 * Checks one job from the wire. A bad job with a usable id gets a message to report as its
 * failed result; one without an id can only be logged.
 */
export function parseJob(raw: unknown): { job: JobEnvelope } | { id: string | null; error: string } {
  if (!isPlainObject(raw)) return { id: null, error: 'cannot run job: not an object' };
  const id = jobId(raw.id);
  if (id === null) return { id: null, error: `cannot run job: missing or invalid "id" ${quote(raw.id)}` };
  const why = schemaError(WireJob, raw);
  if (why !== null) return { id, error: `cannot run job "${id}": ${why}` };
  return { job: envelope(id, raw as Static<typeof WireJob>) };
}

/**
 * The job of a push `/execute` body (either shape). An id the body does not carry is made up:
 * the original server sends none, and each of its calls is a new job.
 * Throws a TuxsecError (`invalid-request`) naming what was wrong.
 */
export function parseExecuteBody(body: unknown, newId: () => string = randomUUID): JobEnvelope {
  // The shape is told by its "job" key, so a refusal names the field, not "no alternative matched".
  const wrapped = isPlainObject(body) && Object.hasOwn(body, 'job');
  const j = wrapped ? checkMessage(WrappedJob, body, 'run job').job : checkMessage(PushedJob, body, 'run job');
  return envelope(j.id === undefined ? newId() : String(j.id), j);
}

/** The `/execute` reply carrying a result: `result` is always an object, as INTEROP's `{...}` says. */
export function executeReplyOf(r: ResultEnvelope): ExecuteReply {
  const { command_id, success, output, error, status, code, started_at, finished_at, duration_ms } = r;
  const outcome = success ? { result: output ?? {}, error: null } : { result: {}, error: error ?? `job "${command_id}" failed` };
  return { success, ...outcome, id: command_id, status, ...(code === undefined ? {} : { code }), started_at, finished_at, duration_ms };
}
