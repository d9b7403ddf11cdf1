/**
 * The fleet store on an in-memory SQLite database: agent search, filters, states and paging in
 * SQL, every result cut to an operator's label selector; batches' latest job per host and counts;
 * tokens listed without secrets. Also batches.ts's target resolution for a limited operator.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { test } from 'node:test';
import type { FastifyRequest } from 'fastify';
import { resolveTarget } from '../../../src/server/batches.ts';
import type { ServerContext } from '../../../src/server/context.ts';
import type { Operator } from '../../../src/server/operators.ts';
import { agentState } from '../../../src/server/storage/fleet-store.ts';
import { openSqliteStorage } from '../../../src/server/storage/sqlite.ts';
import type { AgentRecord, AgentStatus, JobRecord, JobStatus, Storage } from '../../../src/server/storage/storage.ts';

const NOW = 1_000_000_000;
const W = { onlineSince: NOW - 60_000, staleSince: NOW - 300_000 };

function agent(storage: Storage, hostname: string, labels: Record<string, string>, o: { status?: AgentStatus; lastSeen?: number | null; mode?: 'pull' | 'push' } = {}): AgentRecord {
  const a: AgentRecord = {
    id: randomUUID(),
    keyHash: randomUUID(),
    status: o.status ?? 'active',
    machineId: null,
    hostname,
    ip: `10.0.0.${hostname.length}`,
    osInfo: { system: 'Linux', distro: hostname.startsWith('r') ? 'rocky' : 'debian' },
    modules: [],
    version: null,
    features: [],
    createdAt: NOW - 1000,
    lastSeen: o.lastSeen === undefined ? NOW : o.lastSeen,
    tokenId: null,
    mode: o.mode ?? 'pull',
    endpoint: o.mode === 'push' ? { url: 'https://127.0.0.1:9', caFile: null } as never : null,
    pushKey: null,
    labels,
  };
  assert.equal(storage.enroll(null, a, NOW), 'ok');
  return a;
}

function job(agentId: string, status: JobStatus, createdAt: number, batchId: string | null = null): JobRecord {
  return {
    id: randomUUID(),
    agentId,
    module: 'systeminfo',
    action: 'get_info',
    params: {},
    status,
    createdAt,
    sentAt: null,
    lastSentAt: null,
    deliveries: 0,
    finishedAt: status === 'queued' ? null : createdAt + 1,
    expiresAt: NOW + 86_400_000,
    result: null,
    batchId,
  };
}

const op = (selector: Record<string, string> | null): Operator => ({ kind: 'user', name: 'u', role: 'operator', selector });

test('agentState follows status and last_seen against the windows', () => {
  assert.equal(agentState('pending', NOW, W), 'pending');
  assert.equal(agentState('rejected', NOW, W), 'rejected');
  assert.equal(agentState('active', NOW - 1, W), 'online');
  assert.equal(agentState('active', W.onlineSince - 1, W), 'stale');
  assert.equal(agentState('active', W.staleSince - 1, W), 'offline');
  assert.equal(agentState('active', null, W), 'offline');
});

test('fleet.listAgents filters in SQL and never returns an agent outside the selector', () => {
  const s = openSqliteStorage(':memory:');
  try {
    agent(s, 'web-a', { env: 'prod', role: 'web' });
    agent(s, 'web-b', { env: 'prod', role: 'web' }, { lastSeen: NOW - 120_000 });
    agent(s, 'rweb-c', { env: 'dev', role: 'web' }, { lastSeen: null });
    agent(s, 'db-a', { env: 'prod', role: 'db' }, { status: 'pending' });
    agent(s, 'push-a', { env: 'prod', role: "web' OR 1=1 --" }, { mode: 'push', lastSeen: null });
    const q = (x: Partial<Parameters<Storage['fleet']['listAgents']>[0]>) =>
      s.fleet.listAgents({ selector: null, limit: 100, offset: 0, ...x }, W).agents.map((a) => a.hostname).sort();
    assert.deepEqual(q({ labels: { role: 'web' } }), ['rweb-c', 'web-a', 'web-b']);
    assert.deepEqual(q({ labels: { role: 'web' }, selector: { env: 'prod' } }), ['web-a', 'web-b']);
    assert.deepEqual(q({ selector: { env: 'dev' } }), ['rweb-c']);
    assert.deepEqual(q({ selector: { env: 'nowhere' } }), []);
    assert.deepEqual(q({ state: 'online' }), ['web-a']);
    assert.deepEqual(q({ state: 'stale' }), ['web-b']);
    assert.deepEqual(q({ state: 'offline' }), ['push-a', 'rweb-c']);
    assert.deepEqual(q({ state: 'pending' }), ['db-a']);
    assert.deepEqual(q({ mode: 'push' }), ['push-a']);
    assert.deepEqual(q({ os: 'rocky' }), ['rweb-c']);
    assert.deepEqual(q({ q: 'WEB-' }), ['rweb-c', 'web-a', 'web-b']);
    // Label values and search text are bound, never SQL.
    assert.deepEqual(q({ labels: { role: "web' OR 1=1 --" } }), ['push-a']);
    assert.deepEqual(q({ q: "' OR 1=1 --" }), []);
    const page = s.fleet.listAgents({ selector: { env: 'prod' }, limit: 2, offset: 1 }, W);
    assert.equal(page.total, 4);
    assert.equal(page.agents.length, 2);
    const c = s.fleet.agentCounts({ env: 'prod' }, W);
    assert.deepEqual(c, { online: 1, stale: 1, offline: 1, pending: 1, rejected: 0, total: 4 });
    assert.deepEqual(s.fleet.agentCounts(null, W), { online: 1, stale: 1, offline: 2, pending: 1, rejected: 0, total: 5 });
  } finally {
    s.close();
  }
});

test('fleet batches: latest job per host, counts cut to the selector, recent jobs and failures cut too', () => {
  const s = openSqliteStorage(':memory:');
  try {
    const a = agent(s, 'a', { env: 'prod' });
    const b = agent(s, 'b', { env: 'dev' });
    const batch = { id: 'b1', createdAt: NOW, createdBy: 'u', module: 'systeminfo', action: 'get_info', params: {}, target: { label: { role: 'web' } }, expiresIn: 60 };
    s.fleet.createBatch(batch, [job(a.id, 'failed', NOW, 'b1'), job(b.id, 'completed', NOW, 'b1')]);
    // A retry of a, within the same millisecond: the later row is the latest.
    s.fleet.addBatchJobs([job(a.id, 'queued', NOW, 'b1')]);
    const latest = s.fleet.latestJobs('b1');
    assert.deepEqual(latest.map((h) => [h.hostname, h.job.status]), [['a', 'queued'], ['b', 'completed']]);
    assert.deepEqual(s.fleet.batchCounts('b1', null), { total: 2, queued: 1, completed: 1 });
    assert.deepEqual(s.fleet.batchCounts('b1', { env: 'dev' }), { total: 1, completed: 1 });
    assert.deepEqual(s.fleet.batchCounts('b1', { env: 'lab' }), { total: 0 });
    assert.equal(s.fleet.batchReaches('b1', { env: 'dev' }), true);
    assert.equal(s.fleet.batchReaches('b1', { env: 'lab' }), false);
    assert.deepEqual([...s.fleet.batchesOf(latest.map((h) => h.job.id)).batches], ['b1']);
    s.createJob(job(b.id, 'expired', NOW + 5));
    assert.deepEqual(s.fleet.recentJobs({ env: 'prod' }, false, 10).map((j) => j.agentId), [a.id, a.id]);
    assert.deepEqual(s.fleet.recentJobs({ env: 'prod' }, true, 10).map((j) => j.status), ['failed']);
    assert.deepEqual(s.fleet.recentJobs(null, true, 10).map((j) => j.status), ['expired', 'failed']);
    assert.equal(s.fleet.listBatches(10, 0)[0]!.id, 'b1');
  } finally {
    s.close();
  }
});

test('storeProgress records and names only the reporting agent\'s jobs awaiting a result (nothing else is told as changed)', () => {
  const s = openSqliteStorage(':memory:');
  try {
    const a = agent(s, 'a', {});
    const b = agent(s, 'b', {});
    const mine = { ...job(a.id, 'sent', NOW), finishedAt: null };
    const theirs = { ...job(b.id, 'sent', NOW), finishedAt: null };
    const ended = job(a.id, 'completed', NOW);
    for (const j of [mine, theirs, ended]) s.createJob(j);
    const report = (id: string) => ({ command_id: id, operation_id: 'op-1', phase: 'scanning', fraction: 0.5 });
    const out = s.storeProgress(a.id, [report(mine.id), report(theirs.id), report(ended.id), report(randomUUID()), report(mine.id)], NOW + 1);
    assert.deepEqual(out, { changed: [mine.id], cancel: [] });
    assert.equal(s.getJob(mine.id)?.status, 'running');
    assert.equal(s.getJob(theirs.id)?.status, 'sent', 'another agent\'s job is untouched');
  } finally {
    s.close();
  }
});

test('fleet.listTokens never gives the hash; deleteToken says whether there was one', () => {
  const s = openSqliteStorage(':memory:');
  try {
    s.createToken({ id: 't1', hash: 'secret-hash', createdAt: NOW, expiresAt: NOW + 1, maxUses: 3, usesLeft: 2, labels: { env: 'x' }, name: 'n' });
    const list = s.fleet.listTokens();
    assert.deepEqual(list, [{ id: 't1', name: 'n', labels: { env: 'x' }, createdAt: NOW, expiresAt: NOW + 1, maxUses: 3, usesLeft: 2 }]);
    assert.ok(!JSON.stringify(list).includes('secret-hash'));
    assert.equal(s.fleet.deleteToken('t1'), true);
    assert.equal(s.fleet.deleteToken('t1'), false);
  } finally {
    s.close();
  }
});

test('resolveTarget intersects a label with the operator\'s selector and refuses a selected host out of reach as unknown', () => {
  const s = openSqliteStorage(':memory:');
  try {
    const prod = agent(s, 'p', { env: 'prod', role: 'web' });
    const dev = agent(s, 'd', { env: 'dev', role: 'web' });
    agent(s, 'x', { env: 'prod', role: 'web' }, { status: 'pending' });
    const ctx = { storage: s, config: { batch_max_hosts: 5000 } } as unknown as ServerContext;
    const req = (o: Operator) => ({ operator: o }) as unknown as FastifyRequest;
    assert.deepEqual(resolveTarget(ctx, req(op(null)), { label: { role: 'web' } }).map((a) => a.hostname).sort(), ['d', 'p']);
    assert.deepEqual(resolveTarget(ctx, req(op({ env: 'prod' })), { label: { role: 'web' } }).map((a) => a.hostname), ['p']);
    assert.throws(() => resolveTarget(ctx, req(op({ env: 'lab' })), { label: { role: 'web' } }), /no approved agent you can reach has label role=web/);
    assert.throws(() => resolveTarget(ctx, req(op({ env: 'prod' })), { agents: [prod.id, dev.id] }), new RegExp(`agent "${dev.id}": no such agent`));
    assert.deepEqual(resolveTarget(ctx, req(op({ env: 'prod' })), { agents: [prod.id, prod.id] }).map((a) => a.id), [prod.id]);
    const small = { storage: s, config: { batch_max_hosts: 1 } } as unknown as ServerContext;
    assert.throws(() => resolveTarget(small, req(op(null)), { label: { role: 'web' } }), /matches more than 1 hosts/);
  } finally {
    s.close();
  }
});
