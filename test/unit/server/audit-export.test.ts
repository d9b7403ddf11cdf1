/**
 * The audit export read a page at a time: the newest `limit` entries as they stood when asked,
 * the connection free for writes between pages, the same bytes as the whole-list forms, and a
 * reader that goes away ends the reading.
 */
import assert from 'node:assert/strict';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { auditExport, auditView, csvCell } from '../../../src/server/audit.ts';
import type { AuditRecord } from '../../../src/server/storage/auth-store.ts';
import { openSqliteStorage } from '../../../src/server/storage/sqlite.ts';
import { seededEntry } from '../../helpers/audit.ts';

function withLog(n: number, pad: number) {
  const storage = openSqliteStorage(':memory:');
  for (let i = 0; i < n; i++) storage.auth.addAudit(seededEntry(i, pad));
  return storage;
}

test('auditEntries gives the newest limit entries as they stood, and leaves the connection free for writes between entries', () => {
  const storage = withLog(500, 10);
  try {
    const it = storage.auth.auditEntries({ limit: 300 })[Symbol.iterator]();
    const got: AuditRecord[] = [];
    for (let i = 0; i < 150; i++) got.push(it.next().value as AuditRecord);
    // A write in the middle of the reading (an open better-sqlite3 iterator would refuse it).
    storage.auth.addAudit(seededEntry(1000, 10));
    for (let r = it.next(); !r.done; r = it.next()) got.push(r.value);
    assert.deepEqual(got.map((r) => r.id), Array.from({ length: 300 }, (_, i) => 201 + i));
    assert.deepEqual(storage.auth.listAudit({ limit: 300 }).at(-1)!.id, 501);
    const filtered = [...storage.auth.auditEntries({ actor: 'user3', action: 'job.create', limit: 20 })];
    const all = [...storage.auth.auditEntries({ limit: 10_000 })];
    assert.deepEqual(filtered.map((r) => r.id), all.filter((r) => r.actor === 'user3' && r.action === 'job.create').slice(-20).map((r) => r.id));
    assert.deepEqual([...storage.auth.auditEntries({ since: Date.UTC(2030, 0, 1), limit: 10 })], []);
  } finally {
    storage.close();
  }
});

test('auditExport gives the bytes of the whole-list forms, in chunks of about 64 KiB', () => {
  const storage = withLog(400, 1000);
  try {
    const records = storage.auth.listAudit({ limit: 400 });
    const chunks = (f: 'json' | 'jsonl' | 'csv') => [...auditExport(records, f)];
    assert.equal(chunks('json').join(''), JSON.stringify({ success: true, entries: records.map(auditView) }));
    assert.equal(chunks('jsonl').join(''), records.map((r) => `${JSON.stringify(auditView(r))}\n`).join(''));
    const cols = ['id', 'at', 'actor', 'actor_kind', 'action', 'agents', 'params', 'result', 'ip'] as const;
    const csv = `${cols.join(',')}\r\n${records.map((r) => { const v = auditView(r); return `${cols.map((c) => csvCell(c === 'agents' ? v.agents.join(' ') : v[c])).join(',')}\r\n`; }).join('')}`;
    assert.equal(chunks('csv').join(''), csv);
    assert.ok(chunks('csv').length > 4);
    assert.ok(chunks('csv').every((c) => c.length < 64 * 1024 + 4096));
    assert.equal([...auditExport([], 'json')].join(''), '{"success":true,"entries":[]}');
    assert.deepEqual([...auditExport([], 'jsonl')], []);
  } finally {
    storage.close();
  }
});

test('an export whose reader goes away stops reading entries', async () => {
  const storage = withLog(3000, 1000);
  try {
    let read = 0;
    let released = false;
    const counted = function* (): Generator<AuditRecord> {
      try {
        for (const r of storage.auth.auditEntries({ limit: 3000 })) {
          read++;
          yield r;
        }
      } finally {
        released = true;
      }
    };
    const body = Readable.from(auditExport(counted(), 'csv'), { objectMode: false });
    // A reader that takes 100 KiB slowly, then goes away.
    let taken = 0;
    const reader = new Writable({
      write(chunk: Buffer, _enc, done) {
        taken += chunk.length;
        if (taken > 100 * 1024) done(new Error('reader gone'));
        else setTimeout(done, 5);
      },
    });
    await assert.rejects(pipeline(body, reader), /reader gone/);
    await sleep(20);
    assert.ok(released, 'the entries are still being read');
    assert.ok(read < 1000, `${read} of 3000 entries read for a reader that took ${taken} bytes`);
  } finally {
    storage.close();
  }
});
