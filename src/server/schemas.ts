/**
 * TypeBox schemas of the operator API's bodies, queries and replies, and the agent-facing replies by
 * status. The agent-facing messages themselves are defined once, in src/protocol/jobs.ts, for the
 * agent and the server alike. Operator-facing objects allow no unknown fields.
 */
import { Type, type Static } from '@sinclair/typebox';
import {
  CheckinResponse,
  HealthReply as HealthReplySchema,
  Id,
  Params,
  ProgressReply as ProgressResponse,
  RegisterPending,
  RegisterResponse,
  ResultsReply as ResultsResponse,
  StringOrNull,
} from '../protocol/jobs.ts';
import { MODULE_NAME_PATTERN } from '../protocol/messages.ts';
import { LABEL_KEY_PATTERN, LABEL_VALUE_PATTERN, MAX_LABELS } from './operators.ts';
import { AGENT_STATES } from './storage/fleet-store.ts';
import { JOB_STATUSES } from './storage/storage.ts';

/** What a module or action name of a job an operator creates may be. */
export const NAME_PATTERN = MODULE_NAME_PATTERN;

/** Labels: KEY: VALUE, keys and values checked, at most MAX_LABELS. */
export const Labels = Type.Record(Type.String({ pattern: LABEL_KEY_PATTERN }), Type.String({ pattern: LABEL_VALUE_PATTERN }), {
  maxProperties: MAX_LABELS,
  // Without it a key not matching the pattern would pass unchecked.
  additionalProperties: false,
});

export const TokenBody = Type.Object(
  {
    uses: Type.Optional(Type.Integer({ minimum: 1, maximum: 100000 })),
    ttl: Type.Optional(Type.Integer({ minimum: 1, maximum: 365 * 86400 })),
    /** Labels every agent enrolled with the token gets. */
    labels: Type.Optional(Labels),
    name: Type.Optional(Type.String({ minLength: 1, maxLength: 100, pattern: '^[^\\x00-\\x1f\\x7f-\\x9f]+$' })),
  },
  { additionalProperties: false },
);
export type TokenBody = Static<typeof TokenBody>;

/** What a job runs, and how long it waits for its agent: one host's job and a batch's alike. */
const JobSpec = {
  module: Type.String({ pattern: NAME_PATTERN }),
  action: Type.String({ pattern: NAME_PATTERN }),
  params: Type.Optional(Params),
  expires_in: Type.Optional(Type.Integer({ minimum: 1, maximum: 30 * 86400 })),
};

export const JobBody = Type.Object({ agent_id: Id, ...JobSpec }, { additionalProperties: false });
export type JobBody = Static<typeof JobBody>;

export const JobStatusSchema = Type.Union(JOB_STATUSES.map((s) => Type.Literal(s)));

export const JobsQuery = Type.Object(
  {
    agent_id: Type.Optional(Id),
    status: Type.Optional(JobStatusSchema),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000 })),
  },
  { additionalProperties: false },
);
export type JobsQuery = Static<typeof JobsQuery>;

export const JobQuery = Type.Object(
  { wait: Type.Optional(Type.Number({ minimum: 0, maximum: 300 })) },
  { additionalProperties: false },
);
export type JobQuery = Static<typeof JobQuery>;

export const EmptyBody = Type.Object({}, { additionalProperties: false });

/** A delivery mode and what it needs; endpoint.ts checks which fields go with which mode. */
const ModeFields = {
  mode: Type.Union([Type.Literal('pull'), Type.Literal('push'), Type.Literal('ssh')]),
  url: Type.Optional(Type.String({ minLength: 1, maxLength: 300 })),
  ca_file: Type.Optional(Type.String({ minLength: 1, maxLength: 4096 })),
  /** Push mode: the key the agent expects in X-API-Key; made up by the server when absent. */
  api_key: Type.Optional(Type.String({ minLength: 16, maxLength: 256, pattern: '^[\\x21-\\x7e]+$' })),
  host: Type.Optional(Type.String({ minLength: 1, maxLength: 253 })),
  port: Type.Optional(Type.Integer({ minimum: 1, maximum: 65535 })),
  user: Type.Optional(Type.String({ minLength: 1, maxLength: 32 })),
  known_host: Type.Optional(Type.String({ minLength: 1, maxLength: 20000 })),
};

export const AgentModeBody = Type.Object(ModeFields, { additionalProperties: false });
export type AgentModeBody = Static<typeof AgentModeBody>;

/** An agent the server delivers to, added by an operator (it never registers itself). */
export const AgentAddBody = Type.Object(
  { name: Type.String({ minLength: 1, maxLength: 253, pattern: '^[A-Za-z0-9][A-Za-z0-9._-]*$' }), ...ModeFields },
  { additionalProperties: false },
);
export type AgentAddBody = Static<typeof AgentAddBody>;

/** An agent's labels changed: `set` added or replaced, `remove` deleted. */
export const AgentLabelsBody = Type.Object(
  {
    set: Type.Optional(Labels),
    remove: Type.Optional(Type.Array(Type.String({ pattern: LABEL_KEY_PATTERN }), { maxItems: MAX_LABELS })),
  },
  { additionalProperties: false },
);
export type AgentLabelsBody = Static<typeof AgentLabelsBody>;

export const IdParams = Type.Object({ id: Id });
export type IdParams = Static<typeof IdParams>;

// ---- responses ---------------------------------------------------------------------------------
// Properties in the order the handlers build them: the serializer writes them in schema order.

const NullableString = StringOrNull();
const Time = NullableString;

/** The agent-facing replies are the protocol's (src/protocol/jobs.ts), by status. */
export const RegisterReply = { 200: RegisterResponse, 202: RegisterPending };
export const CheckinReply = { 200: CheckinResponse };
export const ResultsReply = { 200: ResultsResponse };
export const ProgressReply = { 200: ProgressResponse };

export const TokenReply = {
  201: Type.Object({
    success: Type.Literal(true),
    id: Type.String(),
    token: Type.String(),
    uses: Type.Number(),
    expires_at: Time,
    labels: Type.Record(Type.String(), Type.String()),
    name: NullableString,
  }),
};

export const AgentView = Type.Object({
  id: Type.String(),
  status: Type.String(),
  /** online, stale, offline, pending or rejected (docs/fleet.md). */
  state: Type.String(),
  machine_id: NullableString,
  hostname: Type.String(),
  ip: NullableString,
  os_info: Type.Unknown(),
  modules: Type.Array(Type.String()),
  version: NullableString,
  features: Type.Array(Type.String()),
  created_at: Time,
  last_seen: Time,
  mode: Type.String(),
  endpoint: Type.Unknown(),
  labels: Type.Record(Type.String(), Type.String()),
});

export const AgentReply = { 200: Type.Object({ success: Type.Literal(true), agent: AgentView }) };
/** `api_key` only when the server made it up: shown this once, for the agent's config. */
const AgentKeyReply = Type.Object({ success: Type.Literal(true), agent: AgentView, api_key: Type.Optional(Type.String()) });
export const AgentAddReply = { 201: AgentKeyReply };
export const AgentModeReply = { 200: AgentKeyReply };
export const AgentHealthReply = { 200: Type.Object({ success: Type.Literal(true), health: HealthReplySchema }) };

export const JobView = Type.Object({
  id: Type.String(),
  agent_id: Type.String(),
  module: Type.String(),
  action: Type.String(),
  params: Type.Unknown(),
  status: JobStatusSchema,
  created_at: Time,
  sent_at: Time,
  finished_at: Time,
  expires_at: Time,
  deliveries: Type.Number(),
  result: Type.Unknown(),
  /** While it runs as a rootd operation: `{operation_id, phase, fraction, updated_at}`. */
  progress: Type.Unknown(),
  cancel_requested_at: Time,
  /** The batch (multi-host job) it belongs to, if any. */
  batch_id: NullableString,
});

export const JobReply = { 200: Type.Object({ success: Type.Literal(true), job: JobView }) };
export const JobCreatedReply = { 201: JobReply[200] };
export const JobsReply = { 200: Type.Object({ success: Type.Literal(true), jobs: Type.Array(JobView) }) };

// ---- the fleet (issue 11, docs/fleet.md) -------------------------------------------------------

/** `KEY=VALUE`: a label filter in a query string. */
const LABEL_PAIR_PATTERN = `^${LABEL_KEY_PATTERN.slice(1, -1)}=${LABEL_VALUE_PATTERN.slice(1, -1)}$`;

export const AgentsQuery = Type.Object(
  {
    q: Type.Optional(Type.String({ maxLength: 253 })),
    label: Type.Optional(Type.Array(Type.String({ pattern: LABEL_PAIR_PATTERN }), { maxItems: MAX_LABELS })),
    state: Type.Optional(Type.Union(AGENT_STATES.map((s) => Type.Literal(s)))),
    mode: Type.Optional(Type.Union([Type.Literal('pull'), Type.Literal('push'), Type.Literal('ssh')])),
    os: Type.Optional(Type.String({ maxLength: 100 })),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000 })),
    offset: Type.Optional(Type.Integer({ minimum: 0, maximum: 10_000_000 })),
  },
  { additionalProperties: false },
);
export type AgentsQuery = Static<typeof AgentsQuery>;

export const AgentsReply = { 200: Type.Object({ success: Type.Literal(true), agents: Type.Array(AgentView), total: Type.Integer() }) };

const AgentCountsSchema = Type.Object({
  online: Type.Integer(),
  stale: Type.Integer(),
  offline: Type.Integer(),
  pending: Type.Integer(),
  rejected: Type.Integer(),
  total: Type.Integer(),
});

export const DashboardReply = {
  200: Type.Object({
    success: Type.Literal(true),
    agents: AgentCountsSchema,
    recent_jobs: Type.Array(JobView),
    recent_failures: Type.Array(JobView),
    drifted: Type.Array(Type.Unknown()),
  }),
};

const TokenInfoView = Type.Object({
  id: Type.String(),
  name: NullableString,
  labels: Type.Record(Type.String(), Type.String()),
  uses: Type.Integer(),
  uses_left: Type.Integer(),
  created_at: Time,
  expires_at: Time,
  expired: Type.Boolean(),
});
export const TokensReply = { 200: Type.Object({ success: Type.Literal(true), tokens: Type.Array(TokenInfoView) }) };
export const TokenDeletedReply = { 200: Type.Object({ success: Type.Literal(true), id: Type.String() }) };

export const BatchTargetSchema = Type.Object(
  {
    agents: Type.Optional(Type.Array(Id, { minItems: 1, maxItems: 100_000 })),
    label: Type.Optional(Labels),
  },
  { additionalProperties: false },
);

export const BatchBody = Type.Object({ target: BatchTargetSchema, ...JobSpec }, { additionalProperties: false });
export type BatchBody = Static<typeof BatchBody>;

export const BatchesQuery = Type.Object(
  {
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 200 })),
    offset: Type.Optional(Type.Integer({ minimum: 0, maximum: 10_000_000 })),
  },
  { additionalProperties: false },
);
export type BatchesQuery = Static<typeof BatchesQuery>;

const BatchCountsSchema = Type.Object({
  ...Object.fromEntries(JOB_STATUSES.map((s) => [s, Type.Integer()])),
  total: Type.Integer(),
});

const BatchFields = {
  id: Type.String(),
  created_at: Time,
  created_by: Type.String(),
  module: Type.String(),
  action: Type.String(),
  params: Type.Unknown(),
  target: Type.Unknown(),
  expires_in: Type.Integer(),
  counts: BatchCountsSchema,
};
export const BatchView = Type.Object({
  ...BatchFields,
  hosts: Type.Array(Type.Object({ agent_id: Type.String(), hostname: NullableString, job: JobView })),
});
export const BatchReply = { 200: Type.Object({ success: Type.Literal(true), batch: BatchView }) };
export const BatchCreatedReply = { 201: BatchReply[200] };
export const BatchesReply = { 200: Type.Object({ success: Type.Literal(true), batches: Type.Array(Type.Object(BatchFields)) }) };
export const BatchRetryReply = { 200: Type.Object({ success: Type.Literal(true), batch: BatchView, retried: Type.Array(Type.String()) }) };
export const BatchCancelReply = {
  200: Type.Object({ success: Type.Literal(true), batch: BatchView, cancelled: Type.Array(Type.String()), cancel_requested: Type.Array(Type.String()) }),
};
