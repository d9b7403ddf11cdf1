/**
 * SQLite storage (better-sqlite3 v12): WAL journal, synchronous=FULL so that a committed result or
 * job survives a crash of the process or the machine, prepared statements only.
 */
import { chmodSync, closeSync, existsSync, mkdirSync, openSync } from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { ErrorCodes } from '../../protocol/errors.ts';
import { storedEndpoint } from '../delivery/endpoint.ts';
import { AUTH_MIGRATION, SqliteAuthStore, type AuthStore } from './auth-store.ts';
import type { AgentMode } from '../delivery/transport.ts';
import type { JobProgress } from '../../protocol/jobs.ts';
import { openFleetStore, type FleetStore } from './fleet-store.ts';
import type {
  AgentModeChange,
  CancelOutcome,
  AgentRecord,
  AgentStatus,
  IncomingResult,
  Inventory,
  JobFilter,
  JobRecord,
  JobResult,
  JobStatus,
  Storage,
  StoredProgress,
  StoreResultsOutcome,
  TokenCheck,
  TokenRecord,
} from './storage.ts';
import { SqliteTemplateStore, TEMPLATE_MIGRATION } from './template-store.ts';

/** The schema this code writes; a database of an older one is migrated when opened. */
export const SCHEMA_VERSION = 7;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tokens (
  id TEXT PRIMARY KEY, hash TEXT NOT NULL UNIQUE, created_at INTEGER NOT NULL,
  expires_at INTEGER NOT NULL, max_uses INTEGER NOT NULL, uses_left INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS agents (
  id TEXT PRIMARY KEY, key_hash TEXT NOT NULL, status TEXT NOT NULL, machine_id TEXT,
  hostname TEXT NOT NULL, ip TEXT, os_info TEXT, modules TEXT NOT NULL, version TEXT,
  features TEXT NOT NULL, created_at INTEGER NOT NULL, last_seen INTEGER, token_id TEXT);
CREATE INDEX IF NOT EXISTS agents_machine_id ON agents (machine_id);
CREATE INDEX IF NOT EXISTS agents_key_hash ON agents (key_hash);
CREATE INDEX IF NOT EXISTS agents_status_created ON agents (status, created_at);
CREATE TABLE IF NOT EXISTS jobs (
  id TEXT PRIMARY KEY, agent_id TEXT NOT NULL, module TEXT NOT NULL, action TEXT NOT NULL,
  params TEXT NOT NULL, status TEXT NOT NULL, created_at INTEGER NOT NULL, sent_at INTEGER,
  last_sent_at INTEGER, deliveries INTEGER NOT NULL DEFAULT 0, finished_at INTEGER,
  expires_at INTEGER NOT NULL, result TEXT);
CREATE INDEX IF NOT EXISTS jobs_agent_status ON jobs (agent_id, status, created_at);
CREATE INDEX IF NOT EXISTS jobs_status_expires ON jobs (status, expires_at);
CREATE INDEX IF NOT EXISTS jobs_created ON jobs (created_at);
`;

/**
 * Migrations by the version they lead to; each runs in one transaction with the version update.
 * SCHEMA above is version 1.
 */
const MIGRATIONS: Record<number, string> = {
  // Issue 9: per-agent delivery mode. endpoint is JSON checked on read; push_key is the api_key the
  // server sends a push-mode agent (it must be sent, so it cannot be stored as a hash).
  2: `ALTER TABLE agents ADD COLUMN mode TEXT NOT NULL DEFAULT 'pull';
      ALTER TABLE agents ADD COLUMN endpoint TEXT;
      ALTER TABLE agents ADD COLUMN push_key TEXT;
      CREATE INDEX IF NOT EXISTS agents_mode ON agents (mode, status);`,
  // Issue 10: progress of jobs running as rootd operations (JSON), and operators' cancels.
  3: `ALTER TABLE jobs ADD COLUMN progress TEXT;
      ALTER TABLE jobs ADD COLUMN progress_at INTEGER;
      ALTER TABLE jobs ADD COLUMN cancel_requested_at INTEGER;`,
  // Issue 11: labels of agents (JSON object), and those an enrollment token gives the agents it enrolls.
  4: `ALTER TABLE agents ADD COLUMN labels TEXT NOT NULL DEFAULT '{}';
      ALTER TABLE tokens ADD COLUMN labels TEXT NOT NULL DEFAULT '{}';
      ALTER TABLE tokens ADD COLUMN name TEXT;`,
  // Issue 11: operators (users, sessions, audit): auth-store.ts.
  5: AUTH_MIGRATION,
  // Issue 11, the fleet (fleet-store.ts): batches (one job per host), the agent list filtered by
  // state, the dashboard's recent failures.
  6: `CREATE TABLE IF NOT EXISTS batches (
        id TEXT PRIMARY KEY, created_at INTEGER NOT NULL, created_by TEXT NOT NULL, module TEXT NOT NULL,
        action TEXT NOT NULL, params TEXT NOT NULL, target TEXT NOT NULL, expires_in INTEGER NOT NULL);
      CREATE INDEX IF NOT EXISTS batches_created ON batches (created_at);
      ALTER TABLE jobs ADD COLUMN batch_id TEXT;
      CREATE INDEX IF NOT EXISTS jobs_batch ON jobs (batch_id, agent_id, created_at);
      CREATE INDEX IF NOT EXISTS jobs_finished ON jobs (finished_at);
      CREATE INDEX IF NOT EXISTS agents_status_seen ON agents (status, last_seen);`,
  // Issue 11: firewall templates and per-agent firewall hashes (drift).
  7: TEMPLATE_MIGRATION,
};

interface AgentRow {
  id: string; key_hash: string; status: string; machine_id: string | null; hostname: string; ip: string | null;
  os_info: string | null; modules: string; version: string | null; features: string; created_at: number;
  last_seen: number | null; token_id: string | null; mode: string; endpoint: string | null; push_key: string | null;
  labels: string;
}
interface JobRow {
  id: string; agent_id: string; module: string; action: string; params: string; status: string; created_at: number;
  sent_at: number | null; last_sent_at: number | null; deliveries: number; finished_at: number | null;
  expires_at: number; result: string | null; progress: string | null; progress_at: number | null;
  cancel_requested_at: number | null; batch_id: string | null;
}
interface TokenRow { id: string; hash: string; created_at: number; expires_at: number; max_uses: number; uses_left: number; labels: string; name: string | null }

function agentFromRow(r: AgentRow): AgentRecord {
  return {
    id: r.id,
    keyHash: r.key_hash,
    status: r.status as AgentStatus,
    machineId: r.machine_id,
    hostname: r.hostname,
    ip: r.ip,
    osInfo: r.os_info === null ? null : JSON.parse(r.os_info),
    modules: JSON.parse(r.modules) as string[],
    version: r.version,
    features: JSON.parse(r.features) as string[],
    createdAt: r.created_at,
    lastSeen: r.last_seen,
    tokenId: r.token_id,
    mode: r.mode as AgentMode,
    endpoint: r.endpoint === null ? null : storedEndpoint(r.mode as AgentMode, JSON.parse(r.endpoint)),
    pushKey: r.push_key,
    labels: JSON.parse(r.labels) as Record<string, string>,
  };
}

function jobFromRow(r: JobRow): JobRecord {
  return {
    id: r.id,
    agentId: r.agent_id,
    module: r.module,
    action: r.action,
    params: JSON.parse(r.params) as Record<string, unknown>,
    status: r.status as JobStatus,
    createdAt: r.created_at,
    sentAt: r.sent_at,
    lastSentAt: r.last_sent_at,
    deliveries: r.deliveries,
    finishedAt: r.finished_at,
    expiresAt: r.expires_at,
    result: r.result === null ? null : (JSON.parse(r.result) as JobResult),
    progress: r.progress === null || r.progress_at === null ? null : { ...(JSON.parse(r.progress) as Omit<StoredProgress, 'at'>), at: r.progress_at },
    cancelRequestedAt: r.cancel_requested_at,
    batchId: r.batch_id,
  };
}

function prepare(db: Database.Database) {
  return {
    insertToken: db.prepare(`INSERT INTO tokens (id, hash, created_at, expires_at, max_uses, uses_left, labels, name)
      VALUES (?, ?, ?, ?, ?, ?, ?, ?)`),
    tokenByHash: db.prepare('SELECT * FROM tokens WHERE hash = ?'),
    useToken: db.prepare('UPDATE tokens SET uses_left = uses_left - 1 WHERE id = ? AND uses_left > 0'),
    insertAgent: db.prepare(`INSERT INTO agents (id, key_hash, status, machine_id, hostname, ip, os_info, modules, version,
      features, created_at, last_seen, token_id, mode, endpoint, push_key, labels) VALUES (@id, @key_hash, @status, @machine_id,
      @hostname, @ip, @os_info, @modules, @version, @features, @created_at, @last_seen, @token_id, @mode, @endpoint, @push_key,
      @labels)`),
    setLabels: db.prepare('UPDATE agents SET labels = ? WHERE id = ?'),
    deliveryAgents: db.prepare(`SELECT * FROM agents WHERE mode IN ('push', 'ssh') AND status = 'active' ORDER BY created_at, id`),
    setMode: db.prepare(`UPDATE agents SET mode = @mode, endpoint = @endpoint, push_key = @push_key,
      key_hash = coalesce(@key_hash, key_hash) WHERE id = @id`),
    redeliver: db.prepare(`UPDATE jobs SET last_sent_at = @now, deliveries = deliveries + 1
      WHERE id = @id AND status = 'sent' AND result IS NULL AND expires_at > @now`),
    agent: db.prepare('SELECT * FROM agents WHERE id = ?'),
    agentByKey: db.prepare('SELECT * FROM agents WHERE key_hash = ?'),
    stalePending: db.prepare(`SELECT id FROM agents WHERE status = 'pending' AND created_at < ? LIMIT 1000`),
    deleteAgent: db.prepare('DELETE FROM agents WHERE id = ?'),
    deleteJobsOf: db.prepare('DELETE FROM jobs WHERE agent_id = ?'),
    agentsByMachine: db.prepare('SELECT * FROM agents WHERE machine_id = ? ORDER BY created_at'),
    agents: db.prepare('SELECT * FROM agents ORDER BY created_at, id'),
    setAgentStatus: db.prepare('UPDATE agents SET status = ? WHERE id = ?'),
    touch: db.prepare('UPDATE agents SET last_seen = ? WHERE id = ? AND (last_seen IS NULL OR last_seen < ?)'),
    inventory: db.prepare(`UPDATE agents SET hostname = coalesce(@hostname, hostname), ip = coalesce(@ip, ip),
      version = coalesce(@version, version), modules = coalesce(@modules, modules),
      machine_id = coalesce(machine_id, @machine_id), features = coalesce(@features, features) WHERE id = @id`),
    insertJob: db.prepare(`INSERT INTO jobs (id, agent_id, module, action, params, status, created_at, sent_at, last_sent_at,
      deliveries, finished_at, expires_at, result, batch_id) VALUES (@id, @agent_id, @module, @action, @params, @status, @created_at,
      @sent_at, @last_sent_at, @deliveries, @finished_at, @expires_at, @result, @batch_id)`),
    job: db.prepare('SELECT * FROM jobs WHERE id = ?'),
    queued: db.prepare(`SELECT * FROM jobs WHERE agent_id = ? AND status = 'queued' AND expires_at > ?
      ORDER BY created_at, id LIMIT ?`),
    unanswered: db.prepare(`SELECT * FROM jobs WHERE agent_id = ? AND status = 'sent' AND expires_at > ?
      AND last_sent_at < ? ORDER BY created_at, id LIMIT ?`),
    markSent: db.prepare(`UPDATE jobs SET status = 'sent', sent_at = coalesce(sent_at, @now), last_sent_at = @now,
      deliveries = deliveries + 1 WHERE id = @id`),
    setResult: db.prepare('UPDATE jobs SET status = ?, finished_at = ?, result = ? WHERE id = ?'),
    expiring: db.prepare(`SELECT * FROM jobs WHERE status IN ('queued', 'sent') AND expires_at <= ? LIMIT 1000`),
    expire: db.prepare(`UPDATE jobs SET status = 'expired', finished_at = ? WHERE id = ?`),
    // A running job is overdue only once its agent stops reporting progress: an aide check may run for hours.
    resultOverdue: db.prepare(`SELECT * FROM jobs WHERE (status = 'sent' AND sent_at < @before)
      OR (status = 'running' AND progress_at < @before) LIMIT 1000`),
    setProgress: db.prepare(`UPDATE jobs SET status = 'running', progress = @progress, progress_at = @now
      WHERE id = @id AND agent_id = @agent_id AND status IN ('sent', 'running') AND result IS NULL`),
    cancelQueued: db.prepare(`UPDATE jobs SET status = 'cancelled', finished_at = @now, result = @result WHERE id = @id AND status = 'queued'`),
    requestCancel: db.prepare(`UPDATE jobs SET cancel_requested_at = coalesce(cancel_requested_at, @now)
      WHERE id = @id AND status IN ('sent', 'running')`),
  };
}

/** Why a stored job does not take a result from this agent now; null when it does. */
function refusesResult(row: JobRow | undefined, agentId: string): string | null {
  if (!row) return 'unknown command';
  if (row.agent_id !== agentId) return 'command of another agent';
  // A result after the verdict "no result" is still the truth of what ran: it replaces the verdict.
  if (row.result !== null && row.status !== 'delivered-without-result') return 'result already stored';
  if (row.sent_at === null) return 'command was never handed out';
  return null;
}

/** SQLite storage; open it with openSqliteStorage. */
class SqliteStorage implements Storage {
  private readonly db: Database.Database;
  private readonly st: ReturnType<typeof prepare>;
  private readonly listCache = new Map<string, Database.Statement>();
  readonly auth: AuthStore;
  readonly fleet: FleetStore;
  readonly templates: SqliteTemplateStore;

  constructor(db: Database.Database) {
    this.db = db;
    this.st = prepare(db);
    this.auth = new SqliteAuthStore(db);
    this.fleet = openFleetStore(db, { agent: agentFromRow as never, job: jobFromRow as never, insertJob: (j) => this.createJob(j) });
    this.templates = new SqliteTemplateStore(db);
  }

  private listStatement(filter: JobFilter): Database.Statement {
    const key = `${filter.agentId !== undefined}|${filter.status !== undefined}`;
    let s = this.listCache.get(key);
    if (!s) {
      const where: string[] = [];
      if (filter.agentId !== undefined) where.push('agent_id = @agentId');
      if (filter.status !== undefined) where.push('status = @status');
      s = this.db.prepare(`SELECT * FROM jobs ${where.length ? `WHERE ${where.join(' AND ')}` : ''}
        ORDER BY created_at DESC, id DESC LIMIT @limit`);
      this.listCache.set(key, s);
    }
    return s;
  }

  createToken(t: TokenRecord): void {
    this.st.insertToken.run(t.id, t.hash, t.createdAt, t.expiresAt, t.maxUses, t.usesLeft, JSON.stringify(t.labels ?? {}), t.name ?? null);
  }

  enroll(tokenHash: string | null, a: AgentRecord, now: number): TokenCheck {
    return this.db.transaction((): TokenCheck => {
      let tokenId: string | null = null;
      let labels = a.labels;
      if (tokenHash !== null) {
        const t = this.st.tokenByHash.get(tokenHash) as TokenRow | undefined;
        if (!t) return 'unknown';
        if (t.expires_at <= now) return 'expired';
        if (this.st.useToken.run(t.id).changes !== 1) return 'used-up';
        tokenId = t.id;
        // The token's labels: an agent enrolled with it is in its group from the start.
        labels = { ...(JSON.parse(t.labels) as Record<string, string>), ...labels };
      }
      this.st.insertAgent.run({
        id: a.id,
        key_hash: a.keyHash,
        status: a.status,
        machine_id: a.machineId,
        hostname: a.hostname,
        ip: a.ip,
        os_info: a.osInfo === undefined ? null : JSON.stringify(a.osInfo),
        modules: JSON.stringify(a.modules),
        version: a.version,
        features: JSON.stringify(a.features),
        created_at: a.createdAt,
        last_seen: a.lastSeen,
        token_id: tokenId ?? a.tokenId,
        mode: a.mode,
        endpoint: a.endpoint === null ? null : JSON.stringify(a.endpoint),
        push_key: a.pushKey,
        labels: JSON.stringify(labels),
      });
      a.labels = labels;
      return 'ok';
    })();
  }

  getAgent(id: string): AgentRecord | undefined {
    const r = this.st.agent.get(id) as AgentRow | undefined;
    return r && agentFromRow(r);
  }

  agentByKeyHash(h: string): AgentRecord | undefined {
    const r = this.st.agentByKey.get(h) as AgentRow | undefined;
    return r && agentFromRow(r);
  }

  prunePending(before: number): string[] {
    return this.db.transaction(() => {
      const ids = (this.st.stalePending.all(before) as Array<{ id: string }>).map((r) => r.id);
      for (const id of ids) {
        this.st.deleteJobsOf.run(id);
        this.st.deleteAgent.run(id);
      }
      return ids;
    })();
  }

  agentsByMachineId(m: string): AgentRecord[] {
    return (this.st.agentsByMachine.all(m) as AgentRow[]).map(agentFromRow);
  }

  listAgents(): AgentRecord[] {
    return (this.st.agents.all() as AgentRow[]).map(agentFromRow);
  }

  deliveryAgents(): AgentRecord[] {
    return (this.st.deliveryAgents.all() as AgentRow[]).map(agentFromRow);
  }

  setAgentMode(id: string, c: AgentModeChange): AgentRecord | undefined {
    const changed = this.st.setMode.run({
      id,
      mode: c.mode,
      endpoint: c.endpoint === null ? null : JSON.stringify(c.endpoint),
      push_key: c.pushKey,
      key_hash: c.keyHash,
    }).changes;
    return changed === 1 ? agentFromRow(this.st.agent.get(id) as AgentRow) : undefined;
  }

  setAgentStatus(id: string, status: AgentStatus): AgentRecord | undefined {
    if (this.st.setAgentStatus.run(status, id).changes !== 1) return undefined;
    return agentFromRow(this.st.agent.get(id) as AgentRow);
  }

  setAgentLabels(id: string, change: (labels: Record<string, string>) => Record<string, string>): AgentRecord | undefined {
    return this.db.transaction(() => {
      const r = this.st.agent.get(id) as AgentRow | undefined;
      if (!r) return undefined;
      const labels = change(JSON.parse(r.labels) as Record<string, string>);
      this.st.setLabels.run(JSON.stringify(labels), id);
      return { ...agentFromRow(r), labels };
    })();
  }

  touchAgents(seen: ReadonlyMap<string, number>): void {
    if (seen.size === 0) return;
    this.db.transaction(() => {
      for (const [id, t] of seen) this.st.touch.run(t, id, t);
    })();
  }

  updateInventory(id: string, inv: Inventory): void {
    this.st.inventory.run({
      id,
      hostname: inv.hostname ?? null,
      ip: inv.ip ?? null,
      version: inv.version ?? null,
      modules: inv.modules ? JSON.stringify(inv.modules) : null,
      machine_id: inv.machineId ?? null,
      features: inv.features ? JSON.stringify(inv.features) : null,
    });
  }

  createJob(j: JobRecord): void {
    this.st.insertJob.run({
      id: j.id,
      agent_id: j.agentId,
      module: j.module,
      action: j.action,
      params: JSON.stringify(j.params),
      status: j.status,
      created_at: j.createdAt,
      sent_at: j.sentAt,
      last_sent_at: j.lastSentAt,
      deliveries: j.deliveries,
      finished_at: j.finishedAt,
      expires_at: j.expiresAt,
      result: j.result === null ? null : JSON.stringify(j.result),
      batch_id: j.batchId ?? null,
    });
  }

  getJob(id: string): JobRecord | undefined {
    const r = this.st.job.get(id) as JobRow | undefined;
    return r && jobFromRow(r);
  }

  listJobs(filter: JobFilter): JobRecord[] {
    const params: Record<string, unknown> = { limit: Math.min(Math.max(filter.limit ?? 100, 1), 1000) };
    if (filter.agentId !== undefined) params.agentId = filter.agentId;
    if (filter.status !== undefined) params.status = filter.status;
    return (this.listStatement(filter).all(params) as JobRow[]).map(jobFromRow);
  }

  takeJobs(agentId: string, now: number, max: number, redeliverBefore: number | null): JobRecord[] {
    return this.db.transaction(() => {
      const rows = this.st.queued.all(agentId, now, max) as JobRow[];
      if (redeliverBefore !== null && rows.length < max) {
        rows.push(...(this.st.unanswered.all(agentId, now, redeliverBefore, max - rows.length) as JobRow[]));
      }
      const jobs = rows.map(jobFromRow);
      for (const j of jobs) {
        this.st.markSent.run({ id: j.id, now });
        j.status = 'sent';
        j.sentAt ??= now;
        j.lastSentAt = now;
        j.deliveries += 1;
      }
      return jobs;
    })();
  }

  redeliver(jobId: string, now: number): JobRecord | undefined {
    if (this.st.redeliver.run({ id: jobId, now }).changes !== 1) return undefined;
    return jobFromRow(this.st.job.get(jobId) as JobRow);
  }

  storeResults(agentId: string, results: IncomingResult[], now: number): StoreResultsOutcome {
    return this.db.transaction(() => {
      const out: StoreResultsOutcome = { acknowledged: [], finished: [], ignored: [] };
      const seen = new Set<string>();
      for (const r of results) {
        if (!seen.has(r.commandId)) out.acknowledged.push(r.commandId);
        seen.add(r.commandId);
        const row = this.st.job.get(r.commandId) as JobRow | undefined;
        const why = refusesResult(row, agentId);
        if (why !== null || !row) {
          out.ignored.push({ commandId: r.commandId, why: why ?? 'unknown command' });
          continue;
        }
        const { commandId: _id, ...result } = r;
        this.st.setResult.run(result.status, now, JSON.stringify(result), r.commandId);
        out.finished.push({ ...jobFromRow(row), status: result.status, finishedAt: now, result });
      }
      this.templates.jobsFinished(out.finished, now);
      return out;
    })();
  }

  storeProgress(agentId: string, reports: JobProgress[], now: number): { changed: string[]; cancel: string[] } {
    return this.db.transaction(() => {
      const changed = new Set<string>();
      const cancel: string[] = [];
      for (const p of reports) {
        const progress = JSON.stringify({ operationId: p.operation_id, phase: p.phase ?? null, fraction: p.fraction ?? null });
        if (this.st.setProgress.run({ id: p.command_id, agent_id: agentId, progress, now }).changes !== 1) continue;
        changed.add(p.command_id);
        const row = this.st.job.get(p.command_id) as JobRow;
        if (row.cancel_requested_at !== null && !cancel.includes(row.id)) cancel.push(row.id);
      }
      return { changed: [...changed], cancel };
    })();
  }

  cancelJob(jobId: string, now: number): CancelOutcome {
    return this.db.transaction((): CancelOutcome => {
      const result: JobResult = { success: false, status: 'cancelled', error: 'cancelled by an operator before it was handed out', code: ErrorCodes.cancelled };
      if (this.st.cancelQueued.run({ id: jobId, now, result: JSON.stringify(result) }).changes === 1) {
        return { state: 'cancelled', job: jobFromRow(this.st.job.get(jobId) as JobRow) };
      }
      const requested = this.st.requestCancel.run({ id: jobId, now }).changes === 1;
      const row = this.st.job.get(jobId) as JobRow | undefined;
      if (!row) return { state: 'unknown' };
      return { state: requested ? 'requested' : 'final', job: jobFromRow(row) };
    })();
  }

  expireJobs(now: number): JobRecord[] {
    return this.db.transaction(() => {
      const rows = (this.st.expiring.all(now) as JobRow[]).map(jobFromRow);
      for (const j of rows) {
        this.st.expire.run(now, j.id);
        j.status = 'expired';
        j.finishedAt = now;
      }
      return rows;
    })();
  }

  markResultOverdue(sentBefore: number, now: number, reason: (j: JobRecord) => string): JobRecord[] {
    return this.db.transaction(() => {
      const jobs = (this.st.resultOverdue.all({ before: sentBefore }) as JobRow[]).map(jobFromRow);
      for (const j of jobs) {
        j.status = 'delivered-without-result';
        j.finishedAt = now;
        j.result = { success: false, status: j.status, error: reason(j), code: ErrorCodes.noResult };
        this.st.setResult.run(j.status, now, JSON.stringify(j.result), j.id);
      }
      return jobs;
    })();
  }

  batch<T>(fn: () => T): T {
    return this.db.transaction(fn)();
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}

/** Opens (creating if needed) the database at `file` (`:memory:` for tests). */
export function openSqliteStorage(file: string): Storage {
  if (file !== ':memory:') {
    mkdirSync(path.dirname(file), { recursive: true, mode: 0o750 });
    // The server's own file: it holds push-mode agents' api_keys. SQLite gives its -wal and -shm
    // files the mode of the database file, so setting it before opening covers them too.
    closeSync(openSync(file, 'a', 0o600));
    for (const f of [file, `${file}-wal`, `${file}-shm`]) if (existsSync(f)) chmodSync(f, 0o600);
  }
  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = FULL');
  db.pragma('foreign_keys = ON');
  db.pragma('busy_timeout = 5000');
  db.exec(SCHEMA);
  const ver = db.prepare('SELECT value FROM meta WHERE key = ?').get('schema_version') as { value: string } | undefined;
  if (ver === undefined) db.prepare('INSERT INTO meta (key, value) VALUES (?, ?)').run('schema_version', '1');
  const from = ver === undefined ? 1 : Number(ver.value);
  if (!Number.isInteger(from) || from < 1 || from > SCHEMA_VERSION) {
    db.close();
    throw new Error(`cannot open database "${file}": schema version ${ver?.value}, expected ${SCHEMA_VERSION} or older`);
  }
  for (let v = from + 1; v <= SCHEMA_VERSION; v++) {
    db.transaction(() => {
      db.exec(MIGRATIONS[v]!);
      db.prepare('UPDATE meta SET value = ? WHERE key = ?').run(String(v), 'schema_version');
    })();
  }
  return new SqliteStorage(db);
}
