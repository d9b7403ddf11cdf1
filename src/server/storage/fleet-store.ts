/**
 * The fleet's storage (issue 11): the agent list searched, filtered and paged in SQL, agent counts
 * by state for the dashboard, recent jobs, enrollment tokens listed and revoked, and batches (one
 * job per host for a label or a selection, each host's latest job its state). Built on the same
 * better-sqlite3 database as sqlite.ts (schema migration 6 there); every filter a caller gives is a
 * bound parameter, never SQL text.
 */
import type Database from 'better-sqlite3';
import type { LabelSelector } from '../operators.ts';
import type { AgentRecord, AgentStatus, JobRecord, JobStatus } from './storage.ts';

/** What an agent is to an operator: from its approval status and when it was last seen. */
export type AgentState = 'online' | 'stale' | 'offline' | 'pending' | 'rejected';
export const AGENT_STATES: readonly AgentState[] = ['online', 'stale', 'offline', 'pending', 'rejected'];

/** Seen at or after `onlineSince`: online; at or after `staleSince`: stale; else offline (ms). */
export interface StateWindows {
  onlineSince: number;
  staleSince: number;
}

/** The state of an approved, pending or rejected agent last seen at `lastSeen`. */
export function agentState(status: AgentStatus, lastSeen: number | null, w: StateWindows): AgentState {
  if (status === 'pending' || status === 'rejected') return status;
  if (lastSeen !== null && lastSeen >= w.onlineSince) return 'online';
  if (lastSeen !== null && lastSeen >= w.staleSince) return 'stale';
  return 'offline';
}

/** A search of the agent list; every field optional but the operator's reach. */
export interface AgentQuery {
  /** Part of the hostname, id or address (case-insensitive for ASCII). */
  q?: string;
  /** Every pair must be among the agent's labels. */
  labels?: LabelSelector;
  state?: AgentState;
  mode?: string;
  /** Part of the OS information the agent reported (its JSON text). */
  os?: string;
  /** The operator's selector: null reaches every agent. */
  selector: LabelSelector | null;
  limit: number;
  offset: number;
}

export interface AgentCounts {
  online: number;
  stale: number;
  offline: number;
  pending: number;
  rejected: number;
  total: number;
}

/** An enrollment token as listed: never its secret nor its hash. */
export interface TokenInfo {
  id: string;
  name: string | null;
  labels: Record<string, string>;
  createdAt: number;
  expiresAt: number;
  maxUses: number;
  usesLeft: number;
}

/** Whom a batch was for, as the operator asked. */
export interface BatchTarget {
  agents?: string[];
  label?: Record<string, string>;
}

export interface BatchRecord {
  id: string;
  createdAt: number;
  /** The operator's name (`admin-token` for the admin token). */
  createdBy: string;
  module: string;
  action: string;
  params: Record<string, unknown>;
  target: BatchTarget;
  /** Seconds each of its jobs waits for its host (retries too). */
  expiresIn: number;
}

/** The fleet store: one property of Storage (`storage.fleet`). */
export interface FleetStore {
  /** A page of agents matching `q` (in created order) and how many match in all. */
  listAgents(q: AgentQuery, w: StateWindows): { agents: AgentRecord[]; total: number };
  /** Agents by state among those the selector reaches. */
  agentCounts(selector: LabelSelector | null, w: StateWindows): AgentCounts;
  /** The newest jobs (or the newest that ended badly) of agents the selector reaches. */
  recentJobs(selector: LabelSelector | null, failuresOnly: boolean, limit: number): JobRecord[];
  /** Approved agents carrying every pair of `label` and reached by `selector`, at most `max` + 1 of them. */
  agentsWithLabels(label: LabelSelector, selector: LabelSelector | null, max: number): AgentRecord[];
  /** id, status, last_seen and labels of every agent (the event hub's state watch). */
  agentStates(): Array<{ id: string; status: AgentStatus; lastSeen: number | null; labels: Record<string, string> }>;
  listTokens(): TokenInfo[];
  /** Deletes a token (agents it enrolled stay); false when there is none. */
  deleteToken(id: string): boolean;
  /** Stores a batch and its jobs at once (each job's batchId is the batch's). */
  createBatch(b: BatchRecord, jobs: JobRecord[]): void;
  getBatch(id: string): BatchRecord | undefined;
  /** Newest first. */
  listBatches(limit: number, offset: number): BatchRecord[];
  /**
   * Each host's latest job of the batch, in the order the hosts were first given, with the host's
   * hostname and labels (null when the agent is gone).
   */
  latestJobs(batchId: string): Array<{ job: JobRecord; hostname: string | null; labels: Record<string, string> | null }>;
  /** How many hosts' latest jobs are in each status, among the hosts the selector reaches. */
  batchCounts(batchId: string, selector: LabelSelector | null): Partial<Record<JobStatus, number>> & { total: number };
  /** Adds jobs to an existing batch (retry). */
  addBatchJobs(jobs: JobRecord[]): void;
  /** Of these job ids, those in a batch, and the batches they are in. */
  batchesOf(jobIds: readonly string[]): { jobs: Set<string>; batches: Set<string> };
  /** Whether the selector reaches one of the batch's hosts. */
  batchReaches(batchId: string, selector: LabelSelector): boolean;
}

/** Jobs whose ending makes a host worth a "retry failed". */
export const RETRYABLE_STATUSES: ReadonlySet<JobStatus> = new Set(['failed', 'expired', 'interrupted', 'delivered-without-result', 'cancelled']);
const FAILURE_STATUSES = "('failed', 'expired', 'interrupted', 'delivered-without-result')";

interface BatchRow { id: string; created_at: number; created_by: string; module: string; action: string; params: string; target: string; expires_in: number }

function batchFromRow(r: BatchRow): BatchRecord {
  return {
    id: r.id,
    createdAt: r.created_at,
    createdBy: r.created_by,
    module: r.module,
    action: r.action,
    params: JSON.parse(r.params) as Record<string, unknown>,
    target: JSON.parse(r.target) as BatchTarget,
    expiresIn: r.expires_in,
  };
}

/** `a.labels` carries every pair: one EXISTS per pair, keys and values bound. */
function labelClauses(sel: LabelSelector | null | undefined, prefix: string, where: string[], params: Record<string, unknown>): void {
  if (!sel) return;
  Object.entries(sel).forEach(([k, v], i) => {
    where.push(`EXISTS (SELECT 1 FROM json_each(a.labels) WHERE json_each.key = @${prefix}k${i} AND json_each.value = @${prefix}v${i})`);
    params[`${prefix}k${i}`] = k;
    params[`${prefix}v${i}`] = v;
  });
}

/** LIKE with the user's %, _ and \ taken literally. */
const likeArg = (s: string): string => `%${s.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;

const STATE_SQL: Record<AgentState, string> = {
  online: "a.status = 'active' AND a.last_seen >= @onlineSince",
  stale: "a.status = 'active' AND a.last_seen < @onlineSince AND a.last_seen >= @staleSince",
  offline: "a.status = 'active' AND (a.last_seen IS NULL OR a.last_seen < @staleSince)",
  pending: "a.status = 'pending'",
  rejected: "a.status = 'rejected'",
};

/**
 * The fleet store over `db`; `agentFromRow` and `jobFromRow` are sqlite.ts's (one reading of a row).
 */
export function openFleetStore(
  db: Database.Database,
  rows: { agent: (r: never) => AgentRecord; job: (r: never) => JobRecord; insertJob: (j: JobRecord) => void },
): FleetStore {
  const agentFromRow = rows.agent as (r: unknown) => AgentRecord;
  const jobFromRow = rows.job as (r: unknown) => JobRecord;
  // Statements differ by which filters are present; a few dozen shapes at most, each prepared once.
  const cache = new Map<string, Database.Statement>();
  const stmt = (sql: string): Database.Statement => {
    let s = cache.get(sql);
    if (!s) {
      s = db.prepare(sql);
      if (cache.size < 500) cache.set(sql, s);
    }
    return s;
  };
  const st = {
    tokens: db.prepare('SELECT id, name, labels, created_at, expires_at, max_uses, uses_left FROM tokens ORDER BY created_at DESC, id'),
    deleteToken: db.prepare('DELETE FROM tokens WHERE id = ?'),
    insertBatch: db.prepare(`INSERT INTO batches (id, created_at, created_by, module, action, params, target, expires_in)
      VALUES (@id, @created_at, @created_by, @module, @action, @params, @target, @expires_in)`),
    batch: db.prepare('SELECT * FROM batches WHERE id = ?'),
    batches: db.prepare('SELECT * FROM batches ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?'),
    // Latest job per host: the newest by creation (rowid breaks a tie within one millisecond).
    latest: db.prepare(`SELECT x.*, a.hostname AS host_name, a.labels AS host_labels FROM (SELECT j.*,
        row_number() OVER (PARTITION BY j.agent_id ORDER BY j.created_at DESC, j.rowid DESC) AS n,
        min(j.rowid) OVER (PARTITION BY j.agent_id) AS first
      FROM jobs j WHERE j.batch_id = ?) x LEFT JOIN agents a ON a.id = x.agent_id WHERE x.n = 1 ORDER BY x.first`),
    states: db.prepare('SELECT id, status, last_seen, labels FROM agents'),
    batchesOf: db.prepare('SELECT id, batch_id FROM jobs WHERE batch_id IS NOT NULL AND id IN (SELECT value FROM json_each(?))'),
  };

  const agentWhere = (q: Omit<AgentQuery, 'limit' | 'offset'>, w: StateWindows) => {
    const where: string[] = [];
    const params: Record<string, unknown> = {};
    if (q.q !== undefined && q.q !== '') {
      where.push("(a.hostname LIKE @q ESCAPE '\\' OR a.id LIKE @q ESCAPE '\\' OR a.ip LIKE @q ESCAPE '\\')");
      params.q = likeArg(q.q);
    }
    if (q.state !== undefined) {
      where.push(STATE_SQL[q.state]);
      if (q.state === 'online' || q.state === 'stale') params.onlineSince = w.onlineSince;
      if (q.state === 'stale' || q.state === 'offline') params.staleSince = w.staleSince;
    }
    if (q.mode !== undefined) {
      where.push('a.mode = @mode');
      params.mode = q.mode;
    }
    if (q.os !== undefined && q.os !== '') {
      where.push("a.os_info LIKE @os ESCAPE '\\'");
      params.os = likeArg(q.os);
    }
    labelClauses(q.labels, 'l', where, params);
    labelClauses(q.selector, 's', where, params);
    return { sql: where.length ? `WHERE ${where.join(' AND ')}` : '', params };
  };

  return {
    listAgents(q, w) {
      const { sql, params } = agentWhere(q, w);
      const total = (stmt(`SELECT count(*) AS n FROM agents a ${sql}`).get(params) as { n: number }).n;
      const rows = stmt(`SELECT a.* FROM agents a ${sql} ORDER BY a.created_at, a.id LIMIT @limit OFFSET @offset`).all({ ...params, limit: q.limit, offset: q.offset });
      return { agents: rows.map(agentFromRow), total };
    },

    agentCounts(selector, w) {
      const where: string[] = [];
      const params: Record<string, unknown> = { onlineSince: w.onlineSince, staleSince: w.staleSince };
      labelClauses(selector, 's', where, params);
      const r = stmt(`SELECT
          count(*) AS total,
          coalesce(sum(${STATE_SQL.online}), 0) AS online,
          coalesce(sum(${STATE_SQL.stale}), 0) AS stale,
          coalesce(sum(${STATE_SQL.offline}), 0) AS offline,
          coalesce(sum(${STATE_SQL.pending}), 0) AS pending,
          coalesce(sum(${STATE_SQL.rejected}), 0) AS rejected
        FROM agents a ${where.length ? `WHERE ${where.join(' AND ')}` : ''}`).get(params) as AgentCounts;
      return { online: r.online, stale: r.stale, offline: r.offline, pending: r.pending, rejected: r.rejected, total: r.total };
    },

    recentJobs(selector, failuresOnly, limit) {
      const where: string[] = [];
      const params: Record<string, unknown> = { limit };
      if (failuresOnly) where.push(`j.status IN ${FAILURE_STATUSES}`);
      if (selector !== null) {
        where.push('a.id IS NOT NULL');
        labelClauses(selector, 's', where, params);
      }
      const join = selector === null ? '' : 'LEFT JOIN agents a ON a.id = j.agent_id';
      const order = failuresOnly ? 'j.finished_at DESC, j.id DESC' : 'j.created_at DESC, j.id DESC';
      return stmt(`SELECT j.* FROM jobs j ${join} ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY ${order} LIMIT @limit`)
        .all(params)
        .map(jobFromRow);
    },

    agentsWithLabels(label, selector, max) {
      const where = ["a.status = 'active'"];
      const params: Record<string, unknown> = { limit: max + 1 };
      labelClauses(label, 'l', where, params);
      labelClauses(selector, 's', where, params);
      return stmt(`SELECT a.* FROM agents a WHERE ${where.join(' AND ')} ORDER BY a.created_at, a.id LIMIT @limit`).all(params).map(agentFromRow);
    },

    agentStates() {
      return (st.states.all() as Array<{ id: string; status: AgentStatus; last_seen: number | null; labels: string }>).map((r) => ({
        id: r.id,
        status: r.status,
        lastSeen: r.last_seen,
        labels: JSON.parse(r.labels) as Record<string, string>,
      }));
    },

    listTokens() {
      return (st.tokens.all() as Array<{ id: string; name: string | null; labels: string; created_at: number; expires_at: number; max_uses: number; uses_left: number }>).map((r) => ({
        id: r.id,
        name: r.name,
        labels: JSON.parse(r.labels) as Record<string, string>,
        createdAt: r.created_at,
        expiresAt: r.expires_at,
        maxUses: r.max_uses,
        usesLeft: r.uses_left,
      }));
    },

    deleteToken(id) {
      return st.deleteToken.run(id).changes === 1;
    },

    createBatch(b, jobs) {
      db.transaction(() => {
        st.insertBatch.run({
          id: b.id,
          created_at: b.createdAt,
          created_by: b.createdBy,
          module: b.module,
          action: b.action,
          params: JSON.stringify(b.params),
          target: JSON.stringify(b.target),
          expires_in: b.expiresIn,
        });
        this.addBatchJobs(jobs);
      })();
    },

    addBatchJobs(jobs) {
      db.transaction(() => {
        for (const j of jobs) rows.insertJob(j);
      })();
    },

    getBatch(id) {
      const r = st.batch.get(id) as BatchRow | undefined;
      return r && batchFromRow(r);
    },

    listBatches(limit, offset) {
      return (st.batches.all(limit, offset) as BatchRow[]).map(batchFromRow);
    },

    batchesOf(jobIds) {
      const rows = st.batchesOf.all(JSON.stringify(jobIds)) as Array<{ id: string; batch_id: string }>;
      return { jobs: new Set(rows.map((r) => r.id)), batches: new Set(rows.map((r) => r.batch_id)) };
    },

    batchReaches(batchId, selector) {
      const where = ['j.batch_id = @batch'];
      const params: Record<string, unknown> = { batch: batchId };
      labelClauses(selector, 's', where, params);
      return stmt(`SELECT 1 FROM jobs j JOIN agents a ON a.id = j.agent_id WHERE ${where.join(' AND ')} LIMIT 1`).get(params) !== undefined;
    },

    latestJobs(batchId) {
      return (st.latest.all(batchId) as Array<{ host_name: string | null; host_labels: string | null }>).map((r) => ({
        job: jobFromRow(r),
        hostname: r.host_name,
        labels: r.host_labels === null ? null : (JSON.parse(r.host_labels) as Record<string, string>),
      }));
    },

    batchCounts(batchId, selector) {
      const where = ['x.n = 1'];
      const params: Record<string, unknown> = { batch: batchId };
      labelClauses(selector, 's', where, params);
      const rows = stmt(`SELECT x.status AS status, count(*) AS c FROM (SELECT j.status, j.agent_id,
          row_number() OVER (PARTITION BY j.agent_id ORDER BY j.created_at DESC, j.rowid DESC) AS n
        FROM jobs j WHERE j.batch_id = @batch) x ${selector === null ? '' : 'JOIN agents a ON a.id = x.agent_id'}
        WHERE ${where.join(' AND ')} GROUP BY x.status`).all(params) as Array<{ status: JobStatus; c: number }>;
      const out: Partial<Record<JobStatus, number>> & { total: number } = { total: 0 };
      for (const r of rows) {
        out[r.status] = r.c;
        out.total += r.c;
      }
      return out;
    },
  };
}
