/**
 * The storage interface of tuxsec-server. Every method that changes state is atomic, so a crash
 * leaves either all or nothing of it. Times are milliseconds since the epoch. SQLite implements it
 * (sqlite.ts); a PostgreSQL backend can implement the same interface later.
 */
import type { CommandResult, JobProgress, ResultStatus } from '../../protocol/jobs.ts';
import type { AuthStore } from './auth-store.ts';
import type { AgentMode, PushEndpoint, SshEndpoint } from '../delivery/transport.ts';
import type { FleetStore } from './fleet-store.ts';
import type { TemplateStore } from './template-store.ts';

export type AgentStatus = 'active' | 'pending' | 'rejected';
/**
 * `running`: the agent reports the job's rootd operation running (progress). `cancelled`: an
 * operator cancelled it before it was handed out. `delivered-without-result`: handed out, but no
 * result came within result_timeout of the delivery or of the last progress report (the original
 * Python agent never reports one). A result arriving later still replaces it.
 */
export type JobStatus = 'queued' | 'sent' | 'running' | 'completed' | 'failed' | 'interrupted' | 'expired' | 'cancelled' | 'delivered-without-result';
export const JOB_STATUSES: readonly JobStatus[] = ['queued', 'sent', 'running', 'completed', 'failed', 'interrupted', 'expired', 'cancelled', 'delivered-without-result'];
/** Statuses a job ends in: nothing changes them, except a late result for `delivered-without-result`. */
export const FINAL_STATUSES: ReadonlySet<JobStatus> = new Set(['completed', 'failed', 'interrupted', 'expired', 'cancelled', 'delivered-without-result']);

export interface TokenRecord {
  id: string;
  /** sha256 (hex) of the token; the token itself is never stored. */
  hash: string;
  createdAt: number;
  expiresAt: number;
  maxUses: number;
  usesLeft: number;
  /** Labels the agents enrolled with this token get. */
  labels?: Record<string, string>;
  /** The operator's name for the token (never the token). */
  name?: string | null;
}

export type TokenCheck = 'ok' | 'unknown' | 'expired' | 'used-up';

export interface AgentRecord {
  id: string;
  /** sha256 (hex) of the api_key. */
  keyHash: string;
  status: AgentStatus;
  machineId: string | null;
  hostname: string;
  ip: string | null;
  osInfo: unknown;
  modules: string[];
  version: string | null;
  features: string[];
  createdAt: number;
  lastSeen: number | null;
  tokenId: string | null;
  /** How its jobs reach it: pull (it fetches them), push or ssh (the server delivers them). */
  mode: AgentMode;
  /** Where the server delivers to (push and ssh); null for pull. */
  endpoint: PushEndpoint | SshEndpoint | null;
  /** Push mode: the api_key the server sends the agent (a secret: never in a log or an API reply). */
  pushKey: string | null;
  /** The operator's labels (KEY: VALUE): targeting and the limits of operators' reach. */
  labels: Record<string, string>;
}

/** A new delivery mode for an agent, with what it needs. */
export interface AgentModeChange {
  mode: AgentMode;
  endpoint: PushEndpoint | SshEndpoint | null;
  pushKey: string | null;
  /** A new key hash (push mode: the hash of pushKey, so the same key works if it goes back to pull); null keeps it. */
  keyHash: string | null;
}

export interface Inventory {
  hostname?: string;
  ip?: string;
  version?: string;
  modules?: string[];
  machineId?: string;
  features?: string[];
}

export interface JobResult {
  success: boolean;
  status: ResultStatus | 'cancelled' | 'delivered-without-result';
  output?: unknown;
  error?: string;
  code?: string;
  started_at?: string;
  finished_at?: string;
  duration_ms?: number;
}

export interface JobRecord {
  id: string;
  agentId: string;
  module: string;
  action: string;
  params: Record<string, unknown>;
  status: JobStatus;
  createdAt: number;
  /** First time it was handed out. */
  sentAt: number | null;
  /** Last time it was handed out (redelivery). */
  lastSentAt: number | null;
  deliveries: number;
  finishedAt: number | null;
  expiresAt: number;
  result: JobResult | null;
  /** The last progress report of its rootd operation, and when it came. */
  progress?: StoredProgress | null;
  /** When an operator asked to cancel it (sent or running). */
  cancelRequestedAt?: number | null;
  /** The batch (multi-host job) it belongs to. */
  batchId?: string | null;
}

/** A progress report as stored. */
export interface StoredProgress {
  operationId: string;
  phase: string | null;
  fraction: number | null;
  at: number;
}

/** What became of an operator's cancel. */
export type CancelOutcome =
  | { state: 'cancelled'; job: JobRecord }
  | { state: 'requested'; job: JobRecord }
  | { state: 'final'; job: JobRecord }
  | { state: 'unknown' };

/** A result as an agent reports it. */
export interface IncomingResult extends JobResult {
  commandId: string;
  status: ResultStatus;
}

export interface StoreResultsOutcome {
  /** Every command id of the request: stored now, stored before, or not ours (logged). */
  acknowledged: string[];
  /** Jobs that got their result now. */
  finished: JobRecord[];
  /** Ids acknowledged but not stored, with why (for the log). */
  ignored: Array<{ commandId: string; why: string }>;
}

export interface JobFilter {
  agentId?: string;
  status?: JobStatus;
  limit?: number;
}

export interface Storage {
  /** Operators: users, sessions, audit (issue 11). */
  readonly auth: AuthStore;
  /** The fleet's queries and batches (fleet-store.ts). */
  readonly fleet: FleetStore;
  /** Firewall templates and drift (template-store.ts). */
  readonly templates: TemplateStore;
  createToken(t: TokenRecord): void;
  /**
   * Checks a token by hash and, when valid, uses it once and creates the agent, atomically; the agent
   * gets the token's labels (its own win), set on `agent.labels`.
   */
  enroll(tokenHash: string | null, agent: AgentRecord, now: number): TokenCheck;
  getAgent(id: string): AgentRecord | undefined;
  /** The agent whose API key hashes to this (sha256 of a 256-bit key: at most one). */
  agentByKeyHash(keyHash: string): AgentRecord | undefined;
  /** Deletes agents still pending that registered before `before`, with their jobs; returns their ids. */
  prunePending(before: number): string[];
  /** Agents (any status) that presented this machine_id. */
  agentsByMachineId(machineId: string): AgentRecord[];
  listAgents(): AgentRecord[];
  /** Active agents the server delivers to itself (mode push or ssh). */
  deliveryAgents(): AgentRecord[];
  setAgentMode(id: string, change: AgentModeChange): AgentRecord | undefined;
  setAgentStatus(id: string, status: AgentStatus): AgentRecord | undefined;
  /** Replaces an agent's labels by `change(current)`, atomically; undefined when there is no such agent. */
  setAgentLabels(id: string, change: (labels: Record<string, string>) => Record<string, string>): AgentRecord | undefined;
  /** Records last_seen for many agents at once (batched by the caller). */
  touchAgents(seen: ReadonlyMap<string, number>): void;
  updateInventory(id: string, inv: Inventory): void;

  createJob(job: JobRecord): void;
  getJob(id: string): JobRecord | undefined;
  listJobs(filter: JobFilter): JobRecord[];
  /**
   * Hands out the agent's queued jobs (marked `sent`, oldest first) and, when `redeliverBefore` is set,
   * its `sent` jobs without result last handed out before that time; all marked with `now`.
   */
  takeJobs(agentId: string, now: number, max: number, redeliverBefore: number | null): JobRecord[];
  /**
   * Marks one `sent` job without result as handed out again now (a delivery retry); undefined when
   * it is no longer waiting for a result (finished, expired, marked delivered-without-result).
   */
  redeliver(jobId: string, now: number): JobRecord | undefined;
  /** Stores results durably (one transaction) and says which ids to acknowledge. */
  storeResults(agentId: string, results: IncomingResult[], now: number): StoreResultsOutcome;
  /**
   * Records progress of the agent's jobs still waiting for a result (`sent` or `running`), marking
   * them `running`; gives the ids it recorded (`changed`) and those among them an operator asked to
   * cancel. Others (another agent's, ended, unknown) are ignored.
   */
  storeProgress(agentId: string, reports: JobProgress[], now: number): { changed: string[]; cancel: string[] };
  /**
   * An operator's cancel: a queued job ends `cancelled` at once (never handed out); a sent or
   * running one is marked, and the agent learns of it at its next progress report.
   */
  cancelJob(jobId: string, now: number): CancelOutcome;
  /** Marks jobs past their expiry (queued, or sent without a result) as `expired`. */
  expireJobs(now: number): JobRecord[];
  /**
   * Marks `sent` jobs first handed out before `sentBefore`, and `running` jobs whose last progress
   * report came before it, still without a result, as `delivered-without-result`, with
   * `reason(job)` as their result's error.
   */
  markResultOverdue(sentBefore: number, now: number, reason: (job: JobRecord) => string): JobRecord[];
  /**
   * Runs `fn` (which calls the methods above) in one transaction: one durable commit for many
   * changes (group commit). Methods called inside nest as savepoints.
   */
  batch<T>(fn: () => T): T;
  close(): void;
}

/** A result as the agent's message carries it, as storage takes it (an original agent sends only some fields). */
export function incomingResult(r: CommandResult): IncomingResult {
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
