/**
 * The drift record (template-store.ts) as results are stored: baseline, drift, a refresh after a
 * write made through the server, an accepted baseline. SQLite in memory.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { test } from 'node:test';
import { openSqliteStorage } from '../../../src/server/storage/sqlite.ts';
import type { AgentRecord, Storage } from '../../../src/server/storage/storage.ts';

function agent(storage: Storage, hostname: string, labels: Record<string, string>, status: AgentRecord['status'] = 'active'): string {
  const a: AgentRecord = {
    id: randomUUID(), keyHash: randomUUID(), status, machineId: null, hostname, ip: null, osInfo: null, modules: [], version: null,
    features: [], createdAt: 1, lastSeen: null, tokenId: null, mode: 'pull', endpoint: null, pushKey: null, labels,
  };
  storage.enroll(null, a, 1);
  return a.id;
}

test('the drift record follows the results stored: baseline, drift, refresh after a kept write, accepted baseline', () => {
  const storage = openSqliteStorage(':memory:');
  const id = agent(storage, 'h', {});
  let n = 0;
  const finish = (action: string, output: Record<string, unknown>, success = true) => {
    const jobId = `j${n++}`;
    storage.createJob({ id: jobId, agentId: id, module: 'firewalld', action, params: {}, status: 'queued', createdAt: 1, sentAt: null, lastSentAt: null, deliveries: 0, finishedAt: null, expiresAt: 9e12, result: null });
    storage.takeJobs(id, 2, 10, null);
    storage.storeResults(id, [{ commandId: jobId, success, status: success ? 'completed' : 'failed', output }], 3 + n);
  };
  const t = storage.templates;
  const h = (c: string) => c.repeat(64);
  finish('get_state_hash', { hash: h('1') });
  assert.deepEqual([t.firewall(id)!.baseline, t.drifted().length], [h('1'), 0]);
  finish('get_state_hash', { hash: h('2') });
  assert.deepEqual(t.drifted().map((d) => [d.baseline, d.current]), [[h('1'), h('2')]]);
  // Not kept yet, a dry run, a failure: no refresh.
  finish('add_port', { changed: true, change_id: 'abc' });
  finish('apply_zone_settings', { changed: true, dry_run: true });
  finish('add_port', { changed: true }, false);
  assert.equal(t.firewall(id)!.refresh, false);
  finish('apply_zone_settings', { changed: true, items: [] });
  assert.equal(t.firewall(id)!.refresh, true);
  finish('get_state_hash', { hash: h('3') });
  assert.deepEqual([t.firewall(id)!.baseline, t.firewall(id)!.refresh, t.drifted().length], [h('3'), false, 0]);
  finish('get_state_hash', { hash: h('4'), permanent: true });
  assert.equal(t.firewall(id)!.current, h('3'), 'a permanent hash is not the runtime firewall');
  finish('get_state_hash', { hash: h('5') });
  assert.equal(t.drifted().length, 1);
  assert.equal(t.acceptBaseline(id, 99)!.baseline, h('5'));
  assert.equal(t.drifted().length, 0);
  assert.equal(t.acceptBaseline('other', 99), undefined);
  storage.close();
});
