import { test } from 'node:test';
import { inProcessServer } from '../helpers.ts';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Executor, policyAllows, type ResultEnvelope } from '../../../src/agent/executor.ts';
import { Journal } from '../../../src/agent/journal.ts';
import { Outbox } from '../../../src/agent/outbox.ts';
import { RootdClient } from '../../../src/client/rootd-client.ts';
import { ErrorCodes, TuxsecError } from '../../../src/protocol/errors.ts';

// In-process tests of the executor's bookkeeping; rootd is a recording stand-in here
// (the process tests in this folder drive the real rootd).
function tmp(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'tsa-exec-'));
}

function setup(dir: string, rootdImpl?: (m: string, a: string, p: Record<string, unknown>) => unknown) {
  const calls: Array<[string, string, Record<string, unknown>]> = [];
  const journal = Journal.open(dir);
  const outbox = Outbox.open(dir, { maxEntries: 3, maxBytes: 1024 * 1024 });
  const rootd = {
    async execute(m: string, a: string, p: Record<string, unknown> = {}) {
      calls.push([m, a, p]);
      return rootdImpl ? rootdImpl(m, a, p) : { hostname: 'h' };
    },
  };
  const ex = new Executor({ rootd, journal, sink: (r) => outbox.add(r), policy: { deny: ['firewalld/*'] } });
  return { journal, outbox, ex, calls };
}

test('Executor runs a job once and never again, also after a reopen', async () => {
  const dir = tmp();
  let s = setup(dir);
  const job = { id: 'j1', module: 'systeminfo', action: 'get_hostname', params: {} };
  const r = await s.ex.run(job);
  assert.ok(r.ran);
  const res = (r as { result: ResultEnvelope }).result;
  assert.equal(res.command_id, 'j1');
  assert.equal(res.success, true);
  assert.equal(res.status, 'completed');
  assert.deepEqual(res.output, { hostname: 'h' });
  assert.ok(res.duration_ms >= 0 && res.started_at <= res.finished_at);
  assert.deepEqual(await s.ex.run(job), { ran: false, reason: 'duplicate' });
  s.journal.close();
  s = setup(dir);
  assert.deepEqual(await s.ex.run(job), { ran: false, reason: 'duplicate' });
  assert.equal(s.calls.length, 0);
  assert.ok(s.outbox.has('j1'), 'the unacknowledged result survived the reopen');
  fs.rmSync(dir, { recursive: true });
});

test('Executor.recover reports a job started without a result as interrupted, not re-run', async () => {
  const dir = tmp();
  const j = Journal.open(dir);
  j.start('crashed', 'systeminfo', 'get_uptime', new Date(Date.now() - 1000).toISOString());
  j.close();
  // A torn append (crash mid-write) is cut off at load.
  fs.appendFileSync(path.join(dir, 'journal.log'), '{"s":"torn","m":"x"');
  const s = setup(dir);
  assert.equal(s.journal.has('torn'), false);
  assert.equal(await s.ex.recover((id) => s.outbox.has(id)), 1);
  const [r] = s.outbox.batch(10, 1e6);
  assert.equal(r!.command_id, 'crashed');
  assert.equal(r!.status, 'interrupted');
  assert.equal(r!.success, false);
  assert.deepEqual(await s.ex.run({ id: 'crashed', module: 'systeminfo', action: 'get_uptime', params: {} }), { ran: false, reason: 'duplicate' });
  assert.equal(s.calls.length, 0);
  assert.equal(s.journal.unfinished().length, 0);
  fs.rmSync(dir, { recursive: true });
});

test('Executor reports policy refusals, rootd errors and bad jobs as failed results', async () => {
  const dir = tmp();
  const s = setup(dir, () => {
    throw new TuxsecError(ErrorCodes.actionNotFound, 'unknown action "nope"');
  });
  const denied = await s.ex.run({ id: 'p', module: 'firewalld', action: 'add_service', params: {} });
  assert.equal((denied as { result: ResultEnvelope }).result.code, ErrorCodes.permissionDenied);
  const failed = await s.ex.run({ id: 'f', module: 'systeminfo', action: 'nope' });
  assert.equal((failed as { result: ResultEnvelope }).result.code, ErrorCodes.actionNotFound);
  assert.equal((failed as { result: ResultEnvelope }).result.error, 'unknown action "nope"');
  const bad = await s.ex.run({ id: 'b', module: 'systeminfo', action: 'get_info', params: [1] });
  assert.equal((bad as { result: ResultEnvelope }).result.code, ErrorCodes.invalidRequest);
  assert.deepEqual(await s.ex.run({ module: 'x', action: 'y' }), { ran: false, reason: 'invalid' });
  assert.equal(s.calls.length, 1, 'only the allowed, well-formed job reached rootd');
  fs.rmSync(dir, { recursive: true });
});

test('policyAllows: deny wins, an allow list admits only its entries', () => {
  assert.equal(policyAllows(undefined, 'a', 'b'), true);
  assert.equal(policyAllows({ allow: ['systeminfo/*'] }, 'systeminfo', 'get_info'), true);
  assert.equal(policyAllows({ allow: ['systeminfo/*'] }, 'firewalld', 'list_zones'), false);
  assert.equal(policyAllows({ allow: ['*'], deny: ['firewalld/panic_on'] }, 'firewalld', 'panic_on'), false);
  assert.equal(policyAllows({ allow: ['*'], deny: ['firewalld/panic_on'] }, 'firewalld', 'list_zones'), true);
});

test('Outbox keeps results until removed, survives a reopen, sweeps temp files, reports when full', async () => {
  const dir = tmp();
  let ob = Outbox.open(dir, { maxEntries: 2, maxBytes: 1024 * 1024 });
  const mk = (id: string): ResultEnvelope => ({ command_id: id, success: true, output: {}, status: 'completed', started_at: 'a', finished_at: 'b', duration_ms: 0 });
  ob.add(mk('a'));
  assert.equal(ob.hasRoom, true);
  ob.add(mk('b'));
  assert.equal(ob.hasRoom, false);
  ob.add(mk('c')); // past the bound: a result is never dropped
  fs.writeFileSync(path.join(ob.dir, '.tmp-leftover'), 'x');
  ob = Outbox.open(dir, { maxEntries: 2, maxBytes: 1024 * 1024 });
  assert.deepEqual(ob.batch(10, 1e6).map((r) => r.command_id), ['a', 'b', 'c']);
  assert.equal(fs.existsSync(path.join(ob.dir, '.tmp-leftover')), false);
  assert.equal(ob.remove(['a', 'c', 'zzz']), 2);
  ob = Outbox.open(dir, { maxEntries: 2, maxBytes: 1024 * 1024 });
  assert.deepEqual(ob.batch(10, 1e6).map((r) => r.command_id), ['b']);
  assert.equal(ob.hasRoom, true);
  fs.rmSync(dir, { recursive: true });
});

test('Journal.compact forgets only the oldest finished ids', () => {
  const dir = tmp();
  const j = Journal.open(dir, { maxFinished: 5 });
  for (let i = 0; i < 20; i++) {
    j.start(`id${i}`, 'm', 'a', 't');
    if (i !== 3) j.finish(`id${i}`);
  }
  j.compact();
  j.close();
  const k = Journal.open(dir, { maxFinished: 5 });
  assert.equal(k.has('id3'), true, 'unfinished kept');
  assert.equal(k.has('id19'), true);
  assert.equal(k.has('id15'), true);
  assert.equal(k.has('id14'), false);
  assert.deepEqual(k.unfinished().map((e) => e.id), ['id3']);
  k.close();
  fs.rmSync(dir, { recursive: true });
});

test('Executor reports a "prototype" or "constructor" key as it is, and replaces only an output servers refuse (__proto__, constructor.prototype, deep nesting)', async () => {
  const { app, admin, call } = await inProcessServer();
  const post = (url: string, body: unknown, headers: Record<string, string> = {}) => call('POST', url, body, headers);
  const reg = await post('/agents/api/register/', { hostname: 'h' });
  const creds = { agent_id: String(reg.body.agent_id), api_key: String(reg.body.api_key) };
  let deep: unknown = 1;
  for (let i = 0; i < 70; i++) deep = [deep];
  // get_active_zones keys its output by zone name, and "prototype" is a valid firewalld zone name.
  const reported: unknown[] = [
    { zones: { prototype: { interfaces: ['eth0'], sources: [] } } },
    { zones: { constructor: { interfaces: ['eth1'] } }, constructor: 'x' },
  ];
  // As rootd's output arrives: parsed JSON, where "__proto__" is an own key.
  const refused: Array<[unknown, RegExp]> = [
    [JSON.parse('{"zones":{"__proto__":{"polluted":true}}}'), /holds the key "zones.__proto__"/],
    [JSON.parse('{"a":{"constructor":{"prototype":{"polluted":true}}}}'), /holds the key "a.constructor.prototype"/],
    [{ deep }, /nested deeper than/],
  ];
  for (const [output, why] of [...reported.map((o) => [o, null] as const), ...refused]) {
    const q = await post('/api/v1/jobs', { agent_id: creds.agent_id, module: 'firewalld', action: 'get_active_zones' }, admin);
    assert.equal(q.status, 201);
    const got = await post('/agents/api/checkin/', creds);
    const cmd = (got.body.commands as Array<Record<string, unknown>>)[0]!;
    const dir = tmp();
    const s = setup(dir, () => output);
    const r = await s.ex.run({ ...cmd, module: 'systeminfo' });
    const res = (r as { result: ResultEnvelope }).result;
    if (why === null) {
      assert.equal(res.success, true, String(res.error));
      assert.deepEqual(res.output, output);
    } else {
      assert.equal(res.status, 'failed');
      assert.match(String(res.error), /^cannot report the result of systeminfo get_active_zones: /);
      assert.match(String(res.error), why);
    }
    const sent = await post('/agents/api/checkin/', { ...creds, command_results: [res] });
    assert.equal(sent.status, 200, JSON.stringify(sent.body));
    assert.deepEqual(sent.body.acknowledged, [cmd.id]);
    const stored = await call('GET', `/api/v1/jobs/${String(cmd.id)}`, undefined, admin);
    const job = stored.body.job as { status: string; result: { output?: unknown } };
    assert.equal(job.status, why === null ? 'completed' : 'failed');
    if (why === null) assert.deepEqual(job.result.output, output);
    s.journal.close();
    fs.rmSync(dir, { recursive: true });
  }
  await app.close();
});

test('Executor quotes at most a short part of a bad module or action in the result it reports', async () => {
  const dir = tmp();
  const s = setup(dir);
  for (const [id, bad] of [['m', { module: 'x'.repeat(100_000), action: 'a' }], ['a', { module: 'm', action: ['y'.repeat(100_000)] }]] as const) {
    const r = await s.ex.run({ id, ...bad });
    const res = (r as { result: ResultEnvelope }).result;
    assert.equal(res.code, ErrorCodes.invalidRequest);
    // tuxsec-server refuses a result error over 65,536 characters, and with it the whole check-in.
    assert.ok(String(res.error).length < 300, `${String(res.error).length} characters`);
  }
  s.journal.close();
  fs.rmSync(dir, { recursive: true });
});

test('Executor stops retrying an unreachable rootd at once when the agent stops', { timeout: 60_000 }, async () => {
  const dir = tmp();
  const journal = Journal.open(dir);
  const outbox = Outbox.open(dir, { maxEntries: 3, maxBytes: 1024 * 1024 });
  // A real client to a socket that is not there: every call fails with ENOENT, as while rootd restarts.
  const rootd = new RootdClient({ socketPath: path.join(dir, 'no-rootd.sock'), timeoutMs: 1000 });
  const ac = new AbortController();
  const warned: number[] = [];
  const log = { info() {}, warn: (o: object) => warned.push((o as { retry_in_ms: number }).retry_in_ms) };
  const ex = new Executor({ rootd, journal, sink: (r) => outbox.add(r), connectRetryMs: 120_000, signal: ac.signal, log });
  const t0 = Date.now();
  setTimeout(() => ac.abort(), 1500);
  const r = await ex.run({ id: 'r1', module: 'systeminfo', action: 'get_hostname', params: {} });
  const took = Date.now() - t0;
  assert.ok(took < 20_000, `stopped after ${took} ms, not at once`);
  assert.equal((r as { result: ResultEnvelope }).result.code, ErrorCodes.rootdUnavailable);
  assert.ok(warned.length >= 2 && warned.every((d) => d >= 0 && d <= 2000), `retries backed off within [0, 2000] ms: ${warned.join(', ')}`);
  rootd.close();
  journal.close();
  fs.rmSync(dir, { recursive: true });
});

test('Journal keeps push results with their finish records: newest within the bounds, across a reopen and a compaction', () => {
  const dir = tmp();
  const keepResults = { maxEntries: 3, maxBytes: 1024 * 1024 };
  const mk = (id: string): ResultEnvelope => ({ command_id: id, success: true, output: { n: id }, status: 'completed', started_at: 'a', finished_at: 'b', duration_ms: 0 });
  const j = Journal.open(dir, { keepResults });
  for (let i = 0; i < 5; i++) {
    j.start(`r${i}`, 'm', 'a', 't', { hash: `h${i}` });
    j.finish(`r${i}`, mk(`r${i}`));
  }
  assert.equal(j.get('r1')?.result, undefined, 'past maxEntries the oldest result is let go');
  assert.deepEqual(j.get('r4')?.result, mk('r4'));
  j.close();
  let k = Journal.open(dir, { keepResults });
  assert.deepEqual([0, 1, 2, 3, 4].map((i) => k.get(`r${i}`)?.result?.command_id ?? null), [null, null, 'r2', 'r3', 'r4']);
  assert.equal(k.get('r0')?.hash, 'h0');
  assert.equal(k.has('r0'), true, 'the id is remembered after its result is let go');
  k.compact();
  k.close();
  k = Journal.open(dir, { keepResults });
  assert.deepEqual(k.get('r3')?.result, mk('r3'));
  assert.equal(k.get('r3')?.hash, 'h3');
  assert.equal(k.unfinished().length, 0);
  k.close();
  fs.rmSync(dir, { recursive: true });
});

test('Executor fdatasyncs a job\'s start before it runs unless rootd says the action only reads; push results are group-committed', async () => {
  const dir = tmp();
  const journal = Journal.open(dir, { keepResults: { maxEntries: 10, maxBytes: 1024 * 1024 } });
  const classes: Record<string, string> = { get_hostname: 'read', add_service: 'write' };
  const synced: string[] = [];
  const rootd = {
    async execute() {
      // What the journal made durable before the action ran (a power cut cannot be run here;
      // the fdatasync calls are counted instead).
      synced.push(String(syncs));
      return {};
    },
  };
  const ex = new Executor({ rootd, journal, sink: 'journal', accessOf: async (_m, a) => classes[a] });
  let syncs = 0;
  const real = fs.fdatasyncSync;
  fs.fdatasyncSync = (fd: number) => {
    syncs++;
    real(fd);
  };
  try {
    await ex.run({ id: 'read', module: 'systeminfo', action: 'get_hostname', params: {} });
    assert.equal(syncs, 0, 'a read job: no fdatasync before or after it runs');
    await ex.run({ id: 'write', module: 'firewalld', action: 'add_service', params: {} });
    assert.deepEqual(synced, ['0', '1'], 'a write job: one fdatasync, before it runs');
    await ex.run({ id: 'unknown', module: 'x', action: 'y', params: {} });
    assert.equal(syncs, 2, 'an action of unknown class is treated as a write');
    assert.equal(journal.get('read')?.result?.command_id, 'read');
    journal.close();
    assert.equal(syncs, 3, 'close makes the lazy finish records durable');
  } finally {
    fs.fdatasyncSync = real;
  }
  fs.rmSync(dir, { recursive: true });
});
