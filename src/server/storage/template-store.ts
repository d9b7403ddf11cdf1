/**
 * Firewall templates (a named desired state of zones) and firewall drift: per agent, the baseline
 * hash of its firewall (firewalld `get_state_hash`) and the last one seen. Hashes are recorded as
 * the jobs that carry them finish (SqliteStorage.storeResults calls jobsFinished in its own
 * transaction); a firewalld write that changed something through the server marks the baseline
 * to be taken again from the next hash, so only changes made elsewhere show as drift.
 */
import type Database from 'better-sqlite3';
import type { ZonesSettings } from '../../protocol/firewall-template.ts';
import type { DriftedHost as DriftedHostView } from '../../protocol/operator-api.ts';
import type { JobRecord } from './storage.ts';

export interface TemplateRecord {
  id: string;
  name: string;
  description: string;
  zones: ZonesSettings;
  createdAt: number;
  updatedAt: number;
}

/** What the server knows of one agent's firewall. */
export interface FirewallState {
  agentId: string;
  baseline: string | null;
  baselineAt: number | null;
  current: string | null;
  checkedAt: number | null;
  /** A write through the server changed the firewall: the next hash becomes the baseline. */
  refresh: boolean;
}

/** A host whose firewall is not what it was: the dashboard's `drifted` entries (labels for the caller's selector). */
export interface DriftedHost extends DriftedHostView {
  labels: Record<string, string>;
}

export interface TemplateStore {
  /** Creates a template; 'exists' when another has its name, 'full' when `max` templates exist already. */
  create(t: TemplateRecord, max: number): 'ok' | 'exists' | 'full';
  get(id: string): TemplateRecord | undefined;
  list(): TemplateRecord[];
  /** Replaces name, description and zones; undefined when there is no such template, 'exists' when the name is taken. */
  replace(id: string, t: Pick<TemplateRecord, 'name' | 'description' | 'zones'>, now: number): TemplateRecord | 'exists' | undefined;
  delete(id: string): boolean;
  /** Records the firewall hashes and writes among jobs that got their result now (called inside storeResults' transaction). */
  jobsFinished(jobs: readonly JobRecord[], now: number): void;
  firewall(agentId: string): FirewallState | undefined;
  /** Takes the last hash seen as the baseline; undefined when no hash was seen yet. */
  acceptBaseline(agentId: string, now: number): FirewallState | undefined;
  /** Hosts whose last hash differs from their baseline, most recently checked first (at most 1000). */
  drifted(): DriftedHost[];
}

/** Schema version 7 (issue 11): templates and per-agent firewall hashes. */
export const TEMPLATE_MIGRATION = `
CREATE TABLE IF NOT EXISTS templates (
  id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, description TEXT NOT NULL, zones TEXT NOT NULL,
  created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS firewall_state (
  agent_id TEXT PRIMARY KEY, baseline TEXT, baseline_at INTEGER, current TEXT, checked_at INTEGER,
  refresh INTEGER NOT NULL DEFAULT 0);`;

interface TemplateRow { id: string; name: string; description: string; zones: string; created_at: number; updated_at: number }
interface StateRow { agent_id: string; baseline: string | null; baseline_at: number | null; current: string | null; checked_at: number | null; refresh: number }

const HASH_RE = /^[0-9a-f]{64}$/;

function templateFromRow(r: TemplateRow): TemplateRecord {
  return { id: r.id, name: r.name, description: r.description, zones: JSON.parse(r.zones) as ZonesSettings, createdAt: r.created_at, updatedAt: r.updated_at };
}

function stateFromRow(r: StateRow): FirewallState {
  return { agentId: r.agent_id, baseline: r.baseline, baselineAt: r.baseline_at, current: r.current, checkedAt: r.checked_at, refresh: r.refresh === 1 };
}

/**
 * What a finished firewalld job says of the firewall: a runtime hash, a change made through the
 * server (kept: not a dry run, not awaiting confirmation; or a confirmation), or nothing.
 */
function firewallEvent(j: JobRecord): { hash: string } | 'changed' | null {
  if (j.module !== 'firewalld' || j.status !== 'completed' || !j.result?.success) return null;
  const out = j.result.output;
  if (out === null || typeof out !== 'object' || Array.isArray(out)) return null;
  const o = out as Record<string, unknown>;
  if (j.action === 'get_state_hash') {
    // The baseline is of the runtime state, what the firewall enforces.
    return typeof o.hash === 'string' && HASH_RE.test(o.hash) && o.permanent !== true ? { hash: o.hash } : null;
  }
  if (j.action === 'confirm') return 'changed';
  // A change awaiting confirmation may still roll back to the baseline: it counts once confirmed.
  if (o.changed === true && o.dry_run !== true && o.change_id === undefined) return 'changed';
  return null;
}

export class SqliteTemplateStore implements TemplateStore {
  private readonly st;

  constructor(private readonly db: Database.Database) {
    this.st = {
      insert: db.prepare('INSERT INTO templates (id, name, description, zones, created_at, updated_at) VALUES (@id, @name, @description, @zones, @created_at, @updated_at)'),
      byId: db.prepare('SELECT * FROM templates WHERE id = ?'),
      byName: db.prepare('SELECT id FROM templates WHERE name = ?'),
      count: db.prepare('SELECT count(*) AS n FROM templates'),
      all: db.prepare('SELECT * FROM templates ORDER BY name, id'),
      update: db.prepare('UPDATE templates SET name = @name, description = @description, zones = @zones, updated_at = @updated_at WHERE id = @id'),
      del: db.prepare('DELETE FROM templates WHERE id = ?'),
      hash: db.prepare(`INSERT INTO firewall_state (agent_id, baseline, baseline_at, current, checked_at, refresh)
        VALUES (@agent, @hash, @now, @hash, @now, 0)
        ON CONFLICT (agent_id) DO UPDATE SET
          baseline = CASE WHEN baseline IS NULL OR refresh = 1 THEN @hash ELSE baseline END,
          baseline_at = CASE WHEN baseline IS NULL OR refresh = 1 THEN @now ELSE baseline_at END,
          current = @hash, checked_at = @now, refresh = 0`),
      changed: db.prepare(`INSERT INTO firewall_state (agent_id, refresh) VALUES (?, 1) ON CONFLICT (agent_id) DO UPDATE SET refresh = 1`),
      state: db.prepare('SELECT * FROM firewall_state WHERE agent_id = ?'),
      accept: db.prepare('UPDATE firewall_state SET baseline = current, baseline_at = ?, refresh = 0 WHERE agent_id = ? AND current IS NOT NULL'),
      drifted: db.prepare(`SELECT f.agent_id, a.hostname, f.baseline, f.current, f.checked_at, a.labels FROM firewall_state f
        JOIN agents a ON a.id = f.agent_id
        WHERE f.baseline IS NOT NULL AND f.current IS NOT NULL AND f.baseline <> f.current
        ORDER BY f.checked_at DESC, f.agent_id LIMIT 1000`),
    };
  }

  create(t: TemplateRecord, max: number): 'ok' | 'exists' | 'full' {
    return this.db.transaction(() => {
      if (this.st.byName.get(t.name)) return 'exists' as const;
      if ((this.st.count.get() as { n: number }).n >= max) return 'full' as const;
      this.st.insert.run({ id: t.id, name: t.name, description: t.description, zones: JSON.stringify(t.zones), created_at: t.createdAt, updated_at: t.updatedAt });
      return 'ok' as const;
    })();
  }

  get(id: string): TemplateRecord | undefined {
    const r = this.st.byId.get(id) as TemplateRow | undefined;
    return r && templateFromRow(r);
  }

  list(): TemplateRecord[] {
    return (this.st.all.all() as TemplateRow[]).map(templateFromRow);
  }

  replace(id: string, t: Pick<TemplateRecord, 'name' | 'description' | 'zones'>, now: number): TemplateRecord | 'exists' | undefined {
    return this.db.transaction(() => {
      const other = this.st.byName.get(t.name) as { id: string } | undefined;
      if (other && other.id !== id) return 'exists' as const;
      if (this.st.update.run({ id, name: t.name, description: t.description, zones: JSON.stringify(t.zones), updated_at: now }).changes !== 1) return undefined;
      return templateFromRow(this.st.byId.get(id) as TemplateRow);
    })();
  }

  delete(id: string): boolean {
    return this.st.del.run(id).changes === 1;
  }

  jobsFinished(jobs: readonly JobRecord[], now: number): void {
    for (const j of jobs) {
      const ev = firewallEvent(j);
      if (ev === null) continue;
      if (ev === 'changed') this.st.changed.run(j.agentId);
      else this.st.hash.run({ agent: j.agentId, hash: ev.hash, now });
    }
  }

  firewall(agentId: string): FirewallState | undefined {
    const r = this.st.state.get(agentId) as StateRow | undefined;
    return r && stateFromRow(r);
  }

  acceptBaseline(agentId: string, now: number): FirewallState | undefined {
    if (this.st.accept.run(now, agentId).changes !== 1) return undefined;
    return this.firewall(agentId);
  }

  drifted(): DriftedHost[] {
    return (this.st.drifted.all() as Array<Omit<StateRow, 'baseline_at' | 'refresh'> & { hostname: string; labels: string }>).map((r) => ({
      agent_id: r.agent_id,
      hostname: r.hostname,
      baseline: r.baseline!,
      current: r.current!,
      checked_at: new Date(r.checked_at!).toISOString(),
      labels: JSON.parse(r.labels) as Record<string, string>,
    }));
  }
}
