/**
 * A large audit log for the export tests and benchmark: entries written straight into a server's
 * database file (one transaction, through the server's own store) while the server runs.
 */
import Database from 'better-sqlite3';
import { SqliteAuthStore, type AuditRecord } from '../../src/server/storage/auth-store.ts';

/** Entry `i` of a seeded log: its params padded to about `padBytes` of JSON. */
export function seededEntry(i: number, padBytes: number): Omit<AuditRecord, 'id'> {
  return {
    at: Date.UTC(2026, 0, 1) + i * 1000,
    actor: `user${i % 7}`,
    actorKind: 'user',
    action: i % 2 === 0 ? 'job.create' : 'agent.labels',
    agents: [`agent-${i}`],
    params: { i, zone: 'public', note: '=1+1 "quoted", comma', pad: 'x'.repeat(padBytes) },
    result: 'ok',
    ip: '192.0.2.1',
  };
}

/** Writes entries 0..n-1 (seededEntry) into the database at `file`. */
export function seedAudit(file: string, n: number, padBytes: number): void {
  const db = new Database(file);
  try {
    db.pragma('busy_timeout = 5000');
    const store = new SqliteAuthStore(db);
    db.transaction(() => {
      for (let i = 0; i < n; i++) store.addAudit(seededEntry(i, padBytes));
    })();
  } finally {
    db.close();
  }
}
