/**
 * TypeBox schemas of every request body and query tuxsec-server accepts (docs/pull-protocol.md and
 * the operator API). Agent-facing objects allow unknown fields (compatibility: an original agent may
 * send more); operator-facing ones do not.
 */
import { Type, type Static } from '@sinclair/typebox';
import { JOB_STATUSES } from './storage/storage.ts';

export const NAME_PATTERN = '^[a-z][a-z0-9_]{0,63}$';
const Id = Type.String({ minLength: 1, maxLength: 128 });
const ShortText = (max: number) => Type.String({ maxLength: max });
const Modules = Type.Array(Type.String({ minLength: 1, maxLength: 64 }), { maxItems: 256 });
const Features = Type.Array(Type.String({ minLength: 1, maxLength: 32 }), { maxItems: 32 });

export const RegisterBody = Type.Object({
  hostname: Type.String({ minLength: 1, maxLength: 253 }),
  ip_address: Type.Optional(Type.Union([ShortText(64), Type.Null()])),
  os_info: Type.Optional(Type.Unknown()),
  enrollment_token: Type.Optional(Type.String({ minLength: 1, maxLength: 256 })),
  machine_id: Type.Optional(Type.String({ minLength: 1, maxLength: 128 })),
  version: Type.Optional(ShortText(64)),
  modules: Type.Optional(Modules),
});
export type RegisterBody = Static<typeof RegisterBody>;

export const CommandResult = Type.Object({
  command_id: Id,
  success: Type.Optional(Type.Boolean()),
  output: Type.Optional(Type.Unknown()),
  error: Type.Optional(Type.Union([ShortText(65536), Type.Null()])),
  status: Type.Optional(Type.Union([Type.Literal('completed'), Type.Literal('failed'), Type.Literal('interrupted')])),
  code: Type.Optional(ShortText(64)),
  started_at: Type.Optional(ShortText(64)),
  finished_at: Type.Optional(ShortText(64)),
  duration_ms: Type.Optional(Type.Number({ minimum: 0 })),
});
export type CommandResult = Static<typeof CommandResult>;

const Credentials = {
  agent_id: Id,
  api_key: Type.Optional(Type.String({ maxLength: 256 })),
};

export const CheckinBody = Type.Object({
  ...Credentials,
  status: Type.Optional(ShortText(32)),
  command_results: Type.Optional(Type.Array(CommandResult, { maxItems: 1000 })),
  wait: Type.Optional(Type.Number({ minimum: 0, maximum: 3600 })),
  features: Type.Optional(Features),
  hostname: Type.Optional(Type.String({ minLength: 1, maxLength: 253 })),
  ip_address: Type.Optional(Type.Union([ShortText(64), Type.Null()])),
  version: Type.Optional(ShortText(64)),
  modules: Type.Optional(Modules),
  machine_id: Type.Optional(Type.String({ minLength: 1, maxLength: 128 })),
});
export type CheckinBody = Static<typeof CheckinBody>;

export const ResultsBody = Type.Object({
  ...Credentials,
  command_results: Type.Array(CommandResult, { maxItems: 1000 }),
});
export type ResultsBody = Static<typeof ResultsBody>;

export const TokenBody = Type.Object(
  {
    uses: Type.Optional(Type.Integer({ minimum: 1, maximum: 100000 })),
    ttl: Type.Optional(Type.Integer({ minimum: 1, maximum: 365 * 86400 })),
  },
  { additionalProperties: false },
);
export type TokenBody = Static<typeof TokenBody>;

export const JobBody = Type.Object(
  {
    agent_id: Id,
    module: Type.String({ pattern: NAME_PATTERN }),
    action: Type.String({ pattern: NAME_PATTERN }),
    params: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
    expires_in: Type.Optional(Type.Integer({ minimum: 1, maximum: 30 * 86400 })),
  },
  { additionalProperties: false },
);
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

export const IdParams = Type.Object({ id: Id });
export type IdParams = Static<typeof IdParams>;

// ---- responses ---------------------------------------------------------------------------------
// Properties in the order the handlers build them: the serializer writes them in schema order.

/** A string or null, as one JSON Schema type list (the serializer handles it without trying alternatives). */
const NullableString = Type.Unsafe<string | null>({ type: ['string', 'null'] });
const Time = NullableString;

const Enrolled = {
  agent_id: Type.String(),
  api_key: Type.String(),
  checkin_interval: Type.Number(),
};

export const RegisterReply = {
  200: Type.Object({ success: Type.Literal(true), ...Enrolled }),
  /** Held for an operator: the credentials work once the agent is approved. */
  202: Type.Object({ success: Type.Literal(false), code: Type.String(), error: Type.String(), ...Enrolled }),
};

export const Command = Type.Object({
  id: Type.String(),
  module: Type.String(),
  action: Type.String(),
  params: Type.Unknown(),
  expires_at: Time,
});

export const CheckinReply = {
  200: Type.Object({
    success: Type.Literal(true),
    commands: Type.Array(Command),
    sync_interval: Type.Number(),
    server_time: Type.String(),
    acknowledged: Type.Array(Type.String()),
  }),
};

export const ResultsReply = { 200: Type.Object({ success: Type.Literal(true), acknowledged: Type.Array(Type.String()) }) };

export const TokenReply = {
  201: Type.Object({ success: Type.Literal(true), id: Type.String(), token: Type.String(), uses: Type.Number(), expires_at: Time }),
};

export const AgentView = Type.Object({
  id: Type.String(),
  status: Type.String(),
  machine_id: NullableString,
  hostname: Type.String(),
  ip: NullableString,
  os_info: Type.Unknown(),
  modules: Type.Array(Type.String()),
  version: NullableString,
  features: Type.Array(Type.String()),
  created_at: Time,
  last_seen: Time,
});

export const AgentsReply = { 200: Type.Object({ success: Type.Literal(true), agents: Type.Array(AgentView) }) };
export const AgentReply = { 200: Type.Object({ success: Type.Literal(true), agent: AgentView }) };

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
});

export const JobReply = { 200: Type.Object({ success: Type.Literal(true), job: JobView }) };
export const JobCreatedReply = { 201: JobReply[200] };
export const JobsReply = { 200: Type.Object({ success: Type.Literal(true), jobs: Type.Array(JobView) }) };
