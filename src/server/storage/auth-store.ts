/**
 * Storage of operators (issue 11): users with their password hash, login sessions (only the hash
 * of a session id is stored) and the audit log. Tables from schema migration 5 (sqlite.ts).
 */
import type Database from 'better-sqlite3';
import type { LabelSelector, Role } from '../operators.ts';

/** Migration 5: users, sessions, audit. */
export const AUTH_MIGRATION = `
CREATE TABLE IF NOT EXISTS users (
  name TEXT PRIMARY KEY, role TEXT NOT NULL, selector TEXT, password_hash TEXT NOT NULL,
  created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS sessions (
  id_hash TEXT PRIMARY KEY, user_name TEXT NOT NULL REFERENCES users (name) ON DELETE CASCADE,
  csrf TEXT NOT NULL, created_at INTEGER NOT NULL, last_used INTEGER NOT NULL, expires_at INTEGER NOT NULL, ip TEXT);
CREATE INDEX IF NOT EXISTS sessions_user ON sessions (user_name, created_at);
CREATE TABLE IF NOT EXISTS audit (
  id INTEGER PRIMARY KEY AUTOINCREMENT, at INTEGER NOT NULL, actor TEXT NOT NULL, actor_kind TEXT NOT NULL,
  action TEXT NOT NULL, agents TEXT NOT NULL, params TEXT NOT NULL, result TEXT NOT NULL, ip TEXT);
CREATE INDEX IF NOT EXISTS audit_at ON audit (at);
CREATE INDEX IF NOT EXISTS audit_actor ON audit (actor, at);
CREATE INDEX IF NOT EXISTS audit_action ON audit (action, at);
`;

/** Audit entries read at once by an export (an entry is at most about 100 KiB: 1000 agent ids). */
const AUDIT_PAGE = 64;

export interface UserRecord {
  name: string;
  role: Role;
  /** Operators only: the hosts they may reach; null = all. */
  selector: LabelSelector | null;
  passwordHash: string;
  createdAt: number;
  updatedAt: number;
}

export interface SessionRecord {
  /** sha256 of the session id (the cookie); the id itself is never stored. */
  idHash: string;
  userName: string;
  /** The session's CSRF token, given to the page that logged in. */
  csrf: string;
  createdAt: number;
  lastUsed: number;
  /** Absolute end (created_at + session_max_age). */
  expiresAt: number;
  ip: string | null;
}

export interface AuditRecord {
  id: number;
  at: number;
  actor: string;
  actorKind: 'token' | 'user' | 'anonymous';
  action: string;
  agents: string[];
  params: unknown;
  result: string;
  ip: string | null;
}

export interface AuditFilter {
  actor?: string;
  action?: string;
  agent?: string;
  since?: number;
  until?: number;
  limit: number;
}

/** The operators' part of Storage (`storage.auth`). */
export interface AuthStore {
  /** false when a user of that name exists. */
  createUser(u: UserRecord): boolean;
  getUser(name: string): UserRecord | undefined;
  listUsers(): UserRecord[];
  /** Deletes the user and its sessions; false when there was none. */
  deleteUser(name: string): boolean;
  /** Sets the password hash and ends the user's sessions; false when there is no such user. */
  setPassword(name: string, hash: string, now: number, keepSession?: string): boolean;
  /** Stores a session; the user's oldest sessions beyond `maxPerUser` are ended. */
  createSession(s: SessionRecord, maxPerUser: number): void;
  /** A session with its user, when both exist. */
  getSession(idHash: string): { session: SessionRecord; user: UserRecord } | undefined;
  touchSession(idHash: string, now: number): void;
  deleteSession(idHash: string): boolean;
  /** Ends every session of a user; returns how many. */
  deleteSessionsOf(name: string): number;
  /** Deletes sessions past their absolute end or idle since `idleBefore`. */
  pruneSessions(now: number, idleBefore: number): number;
  countSessions(name: string): number;
  addAudit(e: Omit<AuditRecord, 'id'>): void;
  /** Entries matching the filter, oldest first: the newest `limit` of them. */
  listAudit(f: AuditFilter): AuditRecord[];
  /**
   * The same entries as they stand now, read a page at a time as they are taken (an export
   * streams them). Entries written later are not included.
   */
  auditEntries(f: AuditFilter): Iterable<AuditRecord>;
  /** Keeps the newest `keep` entries. */
  pruneAudit(keep: number): number;
}

interface UserRow { name: string; role: string; selector: string | null; password_hash: string; created_at: number; updated_at: number }
interface SessionRow { id_hash: string; user_name: string; csrf: string; created_at: number; last_used: number; expires_at: number; ip: string | null }
interface AuditRow { id: number; at: number; actor: string; actor_kind: string; action: string; agents: string; params: string; result: string; ip: string | null }

const userOf = (r: UserRow): UserRecord => ({
  name: r.name,
  role: r.role as Role,
  selector: r.selector === null ? null : (JSON.parse(r.selector) as LabelSelector),
  passwordHash: r.password_hash,
  createdAt: r.created_at,
  updatedAt: r.updated_at,
});
const sessionOf = (r: SessionRow): SessionRecord => ({
  idHash: r.id_hash,
  userName: r.user_name,
  csrf: r.csrf,
  createdAt: r.created_at,
  lastUsed: r.last_used,
  expiresAt: r.expires_at,
  ip: r.ip,
});
const auditOf = (r: AuditRow): AuditRecord => ({
  id: r.id,
  at: r.at,
  actor: r.actor,
  actorKind: r.actor_kind as AuditRecord['actorKind'],
  action: r.action,
  agents: JSON.parse(r.agents) as string[],
  params: JSON.parse(r.params) as unknown,
  result: r.result,
  ip: r.ip,
});

export class SqliteAuthStore implements AuthStore {
  private readonly st;

  constructor(private readonly db: Database.Database) {
    this.st = {
      insertUser: db.prepare(`INSERT INTO users (name, role, selector, password_hash, created_at, updated_at)
        VALUES (@name, @role, @selector, @password_hash, @created_at, @updated_at) ON CONFLICT (name) DO NOTHING`),
      user: db.prepare('SELECT * FROM users WHERE name = ?'),
      users: db.prepare('SELECT * FROM users ORDER BY name'),
      deleteUser: db.prepare('DELETE FROM users WHERE name = ?'),
      setPassword: db.prepare('UPDATE users SET password_hash = ?, updated_at = ? WHERE name = ?'),
      insertSession: db.prepare(`INSERT INTO sessions (id_hash, user_name, csrf, created_at, last_used, expires_at, ip)
        VALUES (@id_hash, @user_name, @csrf, @created_at, @last_used, @expires_at, @ip)`),
      session: db.prepare('SELECT * FROM sessions WHERE id_hash = ?'),
      touch: db.prepare('UPDATE sessions SET last_used = ? WHERE id_hash = ? AND last_used < ?'),
      deleteSession: db.prepare('DELETE FROM sessions WHERE id_hash = ?'),
      deleteSessionsOf: db.prepare('DELETE FROM sessions WHERE user_name = ?'),
      deleteOtherSessionsOf: db.prepare('DELETE FROM sessions WHERE user_name = ? AND id_hash != ?'),
      countSessions: db.prepare('SELECT count(*) AS n FROM sessions WHERE user_name = ?'),
      oldestSessions: db.prepare('SELECT id_hash FROM sessions WHERE user_name = ? ORDER BY created_at DESC, id_hash LIMIT -1 OFFSET ?'),
      prune: db.prepare('DELETE FROM sessions WHERE expires_at <= ? OR last_used <= ?'),
      insertAudit: db.prepare(`INSERT INTO audit (at, actor, actor_kind, action, agents, params, result, ip)
        VALUES (@at, @actor, @actor_kind, @action, @agents, @params, @result, @ip)`),
      pruneAudit: db.prepare('DELETE FROM audit WHERE id <= (SELECT id FROM audit ORDER BY id DESC LIMIT 1 OFFSET ?)'),
    };
  }

  createUser(u: UserRecord): boolean {
    return (
      this.st.insertUser.run({
        name: u.name,
        role: u.role,
        selector: u.selector === null ? null : JSON.stringify(u.selector),
        password_hash: u.passwordHash,
        created_at: u.createdAt,
        updated_at: u.updatedAt,
      }).changes === 1
    );
  }

  getUser(name: string): UserRecord | undefined {
    const r = this.st.user.get(name) as UserRow | undefined;
    return r && userOf(r);
  }

  listUsers(): UserRecord[] {
    return (this.st.users.all() as UserRow[]).map(userOf);
  }

  deleteUser(name: string): boolean {
    return this.db.transaction(() => {
      this.st.deleteSessionsOf.run(name);
      return this.st.deleteUser.run(name).changes === 1;
    })();
  }

  setPassword(name: string, hash: string, now: number, keepSession?: string): boolean {
    return this.db.transaction(() => {
      if (this.st.setPassword.run(hash, now, name).changes !== 1) return false;
      if (keepSession === undefined) this.st.deleteSessionsOf.run(name);
      else this.st.deleteOtherSessionsOf.run(name, keepSession);
      return true;
    })();
  }

  createSession(s: SessionRecord, maxPerUser: number): void {
    this.db.transaction(() => {
      this.st.insertSession.run({
        id_hash: s.idHash,
        user_name: s.userName,
        csrf: s.csrf,
        created_at: s.createdAt,
        last_used: s.lastUsed,
        expires_at: s.expiresAt,
        ip: s.ip,
      });
      for (const r of this.st.oldestSessions.all(s.userName, maxPerUser) as Array<{ id_hash: string }>) this.st.deleteSession.run(r.id_hash);
    })();
  }

  getSession(idHash: string): { session: SessionRecord; user: UserRecord } | undefined {
    const s = this.st.session.get(idHash) as SessionRow | undefined;
    if (!s) return undefined;
    const u = this.st.user.get(s.user_name) as UserRow | undefined;
    return u && { session: sessionOf(s), user: userOf(u) };
  }

  touchSession(idHash: string, now: number): void {
    this.st.touch.run(now, idHash, now);
  }

  deleteSession(idHash: string): boolean {
    return this.st.deleteSession.run(idHash).changes === 1;
  }

  deleteSessionsOf(name: string): number {
    return this.st.deleteSessionsOf.run(name).changes;
  }

  pruneSessions(now: number, idleBefore: number): number {
    return this.st.prune.run(now, idleBefore).changes;
  }

  countSessions(name: string): number {
    return (this.st.countSessions.get(name) as { n: number }).n;
  }

  addAudit(e: Omit<AuditRecord, 'id'>): void {
    this.st.insertAudit.run({
      at: e.at,
      actor: e.actor,
      actor_kind: e.actorKind,
      action: e.action,
      agents: JSON.stringify(e.agents),
      params: JSON.stringify(e.params ?? null),
      result: e.result,
      ip: e.ip,
    });
  }

  listAudit(f: AuditFilter): AuditRecord[] {
    return [...this.auditEntries(f)];
  }

  auditEntries(f: AuditFilter): Iterable<AuditRecord> {
    const conditions = {
      actor: 'actor = @actor',
      action: 'action = @action',
      agent: 'EXISTS (SELECT 1 FROM json_each(audit.agents) WHERE value = @agent)',
      since: 'at >= @since',
      until: 'at < @until',
    } as const;
    const where: string[] = [];
    const p: Record<string, unknown> = {};
    for (const k of Object.keys(conditions) as Array<keyof typeof conditions>) {
      if (f[k] === undefined) continue;
      where.push(conditions[k]);
      p[k] = f[k];
    }
    const filter = where.length ? `WHERE ${where.join(' AND ')}` : '';
    // The ids of the newest `limit` entries now: the pages read later keep to them.
    const range = this.db.prepare(`SELECT min(id) AS lo, max(id) AS hi FROM (SELECT id FROM audit ${filter} ORDER BY id DESC LIMIT @limit)`)
      .get({ ...p, limit: f.limit }) as { lo: number | null; hi: number | null };
    if (range.lo === null || range.hi === null) return [];
    const page = this.db.prepare(`SELECT * FROM audit ${filter ? `${filter} AND` : 'WHERE'} id > @after AND id <= @hi ORDER BY id LIMIT ${AUDIT_PAGE}`);
    // Whole pages with all(): an open iterator would make the connection refuse every write
    // ("busy executing a query") for as long as a slow reader takes.
    return (function* pages(): Generator<AuditRecord> {
      let after = range.lo! - 1;
      for (;;) {
        const rows = page.all({ ...p, hi: range.hi, after }) as AuditRow[];
        for (const r of rows) yield auditOf(r);
        if (rows.length < AUDIT_PAGE) return;
        after = rows[rows.length - 1]!.id;
      }
    })();
  }

  pruneAudit(keep: number): number {
    return this.st.pruneAudit.run(keep).changes;
  }
}
