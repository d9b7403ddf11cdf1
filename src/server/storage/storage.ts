/**
 * The storage interface of tuxsec-server. Every method that changes state is atomic, so a crash
 * leaves either all or nothing of it. Times are milliseconds since the epoch. SQLite implements it
 * (sqlite.ts); a PostgreSQL backend can implement the same interface later.
 */
import type { ResultStatus } from '../../protocol/jobs.ts';

export type AgentStatus = 'active' | 'pending' | 'rejected';
/**
 * `delivered-without-result`: handed out, but no result came within result_timeout (the original
 * Python agent never reports one). A result arriving later still replaces it.
 */
export type JobStatus = 'queued' | 'sent' | 'completed' | 'failed' | 'interrupted' | 'expired' | 'delivered-without-result';
export const JOB_STATUSES: readonly JobStatus[] = ['queued', 'sent', 'completed', 'failed', 'interrupted', 'expired', 'delivered-without-result'];
/** Statuses a job ends in: nothing changes them, except a late result for `delivered-without-result`. */
export const FINAL_STATUSES: ReadonlySet<JobStatus> = new Set(['completed', 'failed', 'interrupted', 'expired', 'delivered-without-result']);

export interface TokenRecord {
  id: string;
  /** sha256 (hex) of the token; the token itself is never stored. */
  hash: string;
  createdAt: number;
  expiresAt: number;
  maxUses: number;
  usesLeft: number;
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
  status: ResultStatus | 'delivered-without-result';
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
}

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
  createToken(t: TokenRecord): void;
  /** Checks a token by hash and, when valid, uses it once and creates the agent, atomically. */
  enroll(tokenHash: string | null, agent: AgentRecord, now: number): TokenCheck;
  getAgent(id: string): AgentRecord | undefined;
  /** The agent whose API key hashes to this (sha256 of a 256-bit key: at most one). */
  agentByKeyHash(keyHash: string): AgentRecord | undefined;
  /** Deletes agents still pending that registered before `before`, with their jobs; returns their ids. */
  prunePending(before: number): string[];
  /** Agents (any status) that presented this machine_id. */
  agentsByMachineId(machineId: string): AgentRecord[];
  listAgents(): AgentRecord[];
  setAgentStatus(id: string, status: AgentStatus): AgentRecord | undefined;
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
  /** Stores results durably (one transaction) and says which ids to acknowledge. */
  storeResults(agentId: string, results: IncomingResult[], now: number): StoreResultsOutcome;
  /** Marks jobs past their expiry (queued, or sent without a result) as `expired`. */
  expireJobs(now: number): JobRecord[];
  /**
   * Marks `sent` jobs first handed out before `sentBefore` and still without a result as
   * `delivered-without-result`, with `reason(job)` as their result's error.
   */
  markResultOverdue(sentBefore: number, now: number, reason: (job: JobRecord) => string): JobRecord[];
  /**
   * Runs `fn` (which calls the methods above) in one transaction: one durable commit for many
   * changes (group commit). Methods called inside nest as savepoints.
   */
  batch<T>(fn: () => T): T;
  close(): void;
}
