/**
 * EventHub with an in-memory database and fake responses (a reader that takes everything, or one
 * that takes nothing): events reach only the operators whose selector reaches the host, a reader
 * that falls behind is dropped at the buffer limit, heartbeats, limits per operator and in all,
 * streams of one session closed at logout, and every stream ended at close.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { ServerResponse } from 'node:http';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { EventHub, type EventLimits } from '../../../src/server/events.ts';
import type { Operator } from '../../../src/server/operators.ts';
import { openSqliteStorage } from '../../../src/server/storage/sqlite.ts';
import type { AgentRecord, Storage } from '../../../src/server/storage/storage.ts';

class FakeRes extends EventEmitter {
  text = '';
  writableLength = 0;
  destroyed = false;
  ended = false;
  constructor(private readonly stalled = false) {
    super();
  }
  writeHead(): this {
    return this;
  }
  write(s: string): boolean {
    if (this.stalled) this.writableLength += Buffer.byteLength(s);
    else this.text += s;
    return !this.stalled;
  }
  end(): void {
    this.ended = true;
    this.emit('close');
  }
  destroy(): void {
    this.destroyed = true;
    this.emit('close');
  }
  events(kind: string): Array<Record<string, unknown>> {
    return this.text
      .split('\n\n')
      .filter((b) => b.startsWith(`event: ${kind}\n`))
      .map((b) => JSON.parse(b.split('\ndata: ')[1]!) as Record<string, unknown>);
  }
}

const NOW = Date.now();
const LIMITS: EventLimits = { maxStreams: 4, maxPerOperator: 2, bufferBytes: 8192, heartbeatMs: 30, stateCheckMs: 20 };
const user = (name: string, selector: Record<string, string> | null, sessionId?: string): Operator => ({ kind: 'user', name, role: 'viewer', selector, ...(sessionId ? { sessionId } : {}) });

function setup(seen = new Map<string, number>()) {
  const storage = openSqliteStorage(':memory:');
  const hub = new EventHub({
    storage,
    windows: () => ({ onlineSince: Date.now() - 200, staleSince: Date.now() - 400 }),
    lastSeen: (id, stored) => seen.get(id) ?? stored,
    log: { info: () => undefined, warn: () => undefined },
    limits: LIMITS,
  });
  return { storage, hub, seen };
}

function addAgent(storage: Storage, labels: Record<string, string>): AgentRecord {
  const a = {
    id: randomUUID(), keyHash: randomUUID(), status: 'active', machineId: null, hostname: 'h', ip: null, osInfo: null, modules: [], version: null,
    features: [], createdAt: NOW, lastSeen: Date.now(), tokenId: null, mode: 'pull', endpoint: null, pushKey: null, labels,
  } as AgentRecord;
  storage.enroll(null, a, NOW);
  return a;
}

function addJob(storage: Storage, agentId: string, params: Record<string, unknown> = {}): string {
  const id = randomUUID();
  storage.createJob({ id, agentId, module: 'm', action: 'a', params, status: 'queued', createdAt: NOW, sentAt: null, lastSentAt: null, deliveries: 0, finishedAt: null, expiresAt: NOW + 60_000, result: null });
  return id;
}

/**
 * One turn of the event loop after the hub's own: it flushes jobs with setImmediate, and an
 * immediate queued now runs after it. (A timer could fire first on a loaded machine.)
 */
const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

const open = (hub: EventHub, op: Operator, res: FakeRes): void => hub.open(op, res as unknown as ServerResponse);

test('EventHub sends a job event only to operators whose selector reaches its host', async () => {
  const { storage, hub } = setup();
  try {
    const prod = addAgent(storage, { env: 'prod' });
    const dev = addAgent(storage, { env: 'dev' });
    const all = new FakeRes();
    const prodOnly = new FakeRes();
    open(hub, user('admin', null), all);
    open(hub, user('limited', { env: 'prod' }), prodOnly);
    const j1 = addJob(storage, prod.id);
    const j2 = addJob(storage, dev.id);
    hub.jobs([j1, j2, j1]);
    await turn();
    assert.deepEqual(all.events('job').map((e) => e.id).sort(), [j1, j2].sort());
    assert.deepEqual(prodOnly.events('job').map((e) => e.id), [j1]);
    hub.close();
    assert.ok(all.ended && prodOnly.ended);
  } finally {
    storage.close();
  }
});

test('EventHub drops a reader that falls behind by the buffer limit, holding at most that much for it', async () => {
  const { storage, hub } = setup();
  try {
    const a = addAgent(storage, {});
    const slow = new FakeRes(true);
    const fast = new FakeRes();
    open(hub, user('slow', null), slow);
    open(hub, user('fast', null), fast);
    for (let i = 0; i < 40; i++) {
      hub.jobs([addJob(storage, a.id, { pad: 'x'.repeat(1000) })]);
      await turn();
    }
    assert.ok(slow.destroyed, 'the slow reader was not dropped');
    assert.ok(slow.writableLength <= LIMITS.bufferBytes, `${slow.writableLength} bytes held for the slow reader`);
    assert.equal(hub.dropped, 1);
    assert.equal(fast.events('job').length, 40);
    assert.equal(hub.size, 1);
    hub.close();
  } finally {
    storage.close();
  }
});

test('EventHub refuses streams beyond the per-operator and overall limits, and counts closed ones out', () => {
  const { storage, hub } = setup();
  try {
    const a1 = new FakeRes();
    open(hub, user('a', null), a1);
    open(hub, user('a', null), new FakeRes());
    assert.throws(() => open(hub, user('a', null), new FakeRes()), /user "a" already holds 2 \(at most 2\)/);
    open(hub, user('b', null), new FakeRes());
    open(hub, user('c', null), new FakeRes());
    assert.throws(() => open(hub, user('d', null), new FakeRes()), /the server holds 4 \(at most 4\)/);
    a1.emit('close');
    open(hub, user('a', null), new FakeRes());
    hub.close();
    assert.throws(() => open(hub, user('e', null), new FakeRes()), /shutting down/);
  } finally {
    storage.close();
  }
});

test('EventHub closes the streams of a session that logged out, and only those', () => {
  const { storage, hub } = setup();
  try {
    const mine = new FakeRes();
    const other = new FakeRes();
    open(hub, user('a', null, 's1'), mine);
    open(hub, user('a', null, 's2'), other);
    assert.equal(hub.closeWhere((op) => op.sessionId === 's1'), 1);
    assert.ok(mine.ended);
    assert.ok(!other.ended);
    hub.close();
  } finally {
    storage.close();
  }
});

test('EventHub sends heartbeats, and agent events when a state changes (online -> stale -> offline, back online at check-in)', async () => {
  const { storage, hub, seen } = setup();
  try {
    const a = addAgent(storage, { env: 'prod' });
    const res = new FakeRes();
    const other = new FakeRes();
    open(hub, user('admin', null), res);
    open(hub, user('dev', { env: 'dev' }), other);
    // The state check runs every 20 ms: offline 400 ms after the last check-in; on a loaded machine later.
    for (let i = 0; i < 250 && res.events('agent').at(-1)?.state !== 'offline'; i++) await sleep(20);
    await sleep(100);
    assert.match(res.text, /\n: ping\n/);
    const states = res.events('agent').map((e) => [e.id, e.state]);
    // A machine stalled past both windows between two checks goes straight to offline.
    assert.ok(states.length >= 1 && states.length <= 2, JSON.stringify(states));
    assert.deepEqual(states, states.length === 2 ? [[a.id, 'stale'], [a.id, 'offline']] : [[a.id, 'offline']]);
    seen.set(a.id, Date.now());
    hub.agent(a.id);
    assert.deepEqual(res.events('agent').at(-1), { id: a.id, state: 'online', last_seen: new Date(seen.get(a.id)!).toISOString() });
    // Unchanged: nothing more.
    const n = res.events('agent').length;
    hub.agent(a.id);
    assert.equal(res.events('agent').length, n);
    assert.deepEqual(other.events('agent'), []);
    hub.close();
  } finally {
    storage.close();
  }
});
