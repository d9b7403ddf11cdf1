/**
 * The SQLite storage across the schema change of issue 9 (per-agent delivery mode): a database of
 * schema 1 with an enrolled agent opens, is migrated in place, and the agent is a pull agent; the
 * database file, which now holds push agents' keys, is made the server's own (0600). Then schema 3
 * (issue 10: job progress and cancel): its jobs keep their state, with no progress. Schema 4 (issue 11):
 * agents without labels.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import Database from 'better-sqlite3';
import { openSqliteStorage, SCHEMA_VERSION } from '../../src/server/storage/sqlite.ts';

test('openSqliteStorage migrates a schema 1 database: its agents become pull agents, its jobs have no progress, the file becomes 0600', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tuxsec-migrate-'));
  try {
    const file = path.join(dir, 'server.db');
    const id = randomUUID();
    openSqliteStorage(file).close();
    // Back to schema 1 as an older server left it: no delivery or progress columns, a world-readable file.
    const db = new Database(file);
    db.exec(`DROP INDEX agents_mode; ALTER TABLE agents DROP COLUMN mode; ALTER TABLE agents DROP COLUMN endpoint;
      ALTER TABLE agents DROP COLUMN push_key; ALTER TABLE jobs DROP COLUMN progress; ALTER TABLE jobs DROP COLUMN progress_at;
      ALTER TABLE jobs DROP COLUMN cancel_requested_at; ALTER TABLE agents DROP COLUMN labels; ALTER TABLE tokens DROP COLUMN labels;
      ALTER TABLE tokens DROP COLUMN name; DROP TABLE batches; DROP INDEX jobs_batch; ALTER TABLE jobs DROP COLUMN batch_id;
      DROP INDEX jobs_finished; DROP INDEX agents_status_seen; UPDATE meta SET value = '1' WHERE key = 'schema_version'`);
    db.prepare(`INSERT INTO agents (id, key_hash, status, hostname, modules, features, created_at) VALUES (?, 'h', 'active', 'old', '[]', '[]', 1)`).run(id);
    db.prepare(`INSERT INTO jobs (id, agent_id, module, action, params, status, created_at, sent_at, last_sent_at, deliveries, expires_at)
      VALUES ('j1', ?, 'aide', 'check', '{}', 'sent', 1, 2, 2, 1, 9999999999999)`).run(id);
    db.close();
    fs.chmodSync(file, 0o644);

    const storage = openSqliteStorage(file);
    try {
      const a = storage.getAgent(id)!;
      assert.equal(a.mode, 'pull');
      assert.equal(a.endpoint, null);
      assert.equal(a.pushKey, null);
      assert.deepEqual(storage.deliveryAgents(), []);
      // Issue 11: no labels yet.
      assert.deepEqual(a.labels, {});
      const j = storage.getJob('j1')!;
      assert.equal(j.status, 'sent');
      assert.equal(j.progress, null);
      assert.equal(j.cancelRequestedAt, null);
      // Issue 11, the fleet: not in a batch; batches work.
      assert.equal(j.batchId, null);
      assert.equal(storage.fleet.listAgents({ selector: null, state: 'offline', limit: 10, offset: 0 }, { onlineSince: 0, staleSince: 0 }).total, 1);
      assert.deepEqual(storage.fleet.listBatches(10, 0), []);
    } finally {
      storage.close();
    }
    assert.equal(fs.statSync(file).mode & 0o777, 0o600);
    const check = new Database(file, { readonly: true });
    assert.equal((check.prepare(`SELECT value FROM meta WHERE key = 'schema_version'`).get() as { value: string }).value, String(SCHEMA_VERSION));
    check.close();
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('openSqliteStorage refuses a database of a newer schema, naming it', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tuxsec-migrate-'));
  try {
    const file = path.join(dir, 'server.db');
    openSqliteStorage(file).close();
    const db = new Database(file);
    db.prepare(`UPDATE meta SET value = '99' WHERE key = 'schema_version'`).run();
    db.close();
    assert.throws(() => openSqliteStorage(file), new RegExp(`cannot open database ".*server\\.db": schema version 99, expected ${SCHEMA_VERSION} or older`));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
