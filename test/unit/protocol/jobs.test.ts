// The one definition of the job envelope and the agent-server messages: the checkers both ends use,
// fed hostile values, and a real tuxsec-server's replies (in-process, inject) checked by the agent's.
import { test } from 'node:test';
import { inProcessServer } from '../helpers.ts';
import assert from 'node:assert/strict';
import { HttpError, replyBody } from '../../../src/agent/http.ts';
import { ErrorCodes, TuxsecError } from '../../../src/protocol/errors.ts';
import {
  CheckinReply,
  CheckinResponse,
  ExecuteReply,
  HealthReply,
  PULL_PATH,
  RegisterPending,
  RegisterResponse,
  registerReplySchema,
  ResultEnvelope,
  ResultsReply,
  executeReplyOf,
  parseExecuteBody,
  parseJob,
  schemaError,
} from '../../../src/protocol/jobs.ts';
import * as serverSchemas from '../../../src/server/schemas.ts';

const job = { id: 'j1', module: 'firewalld', action: 'add_service', params: { zone: 'public', service: 'http' } };

/** The message a refused value gets, asserting it is one. */
function refusal(schema: Parameters<typeof schemaError>[0], value: unknown): string {
  const why = schemaError(schema, value);
  assert.notEqual(why, null, `${JSON.stringify(value)?.slice(0, 200)} was accepted`);
  return why!;
}

test('parseJob takes a compatible server\'s job: numeric id, params missing or called parameters, unknown fields', () => {
  assert.deepEqual(parseJob(job), { job });
  assert.deepEqual(parseJob({ id: 42, module: 'systeminfo', action: 'get_info' }), { job: { id: '42', module: 'systeminfo', action: 'get_info', params: {} } });
  assert.deepEqual(parseJob({ id: 'p', module: 'm', action: 'a', parameters: { x: 1 }, created_at: 'now' }), { job: { id: 'p', module: 'm', action: 'a', params: { x: 1 } } });
  assert.deepEqual(parseJob({ ...job, expires_at: null }), { job: { ...job, expires_at: null } });
  assert.deepEqual(parseJob({ ...job, params: null }), { job: { ...job, params: {} } });
});

test('parseJob refuses hostile jobs, naming the field and a bounded value, with the id when it is usable', () => {
  const huge = 'x'.repeat(100_000);
  const cases: Array<[unknown, string | null, RegExp]> = [
    [null, null, /^cannot run job: not an object$/],
    [[job], null, /^cannot run job: not an object$/],
    [{ ...job, id: undefined }, null, /missing or invalid "id"/],
    [{ ...job, id: '' }, null, /missing or invalid "id" ""/],
    [{ ...job, id: 'i'.repeat(129) }, null, /missing or invalid "id"/],
    [{ ...job, id: -1 }, null, /missing or invalid "id" -1/],
    [{ ...job, id: 1.5 }, null, /missing or invalid "id" 1\.5/],
    [{ ...job, id: { $ne: 1 } }, null, /missing or invalid "id"/],
    [{ ...job, module: 5 }, 'j1', /^cannot run job "j1": "module": expected string, got 5$/],
    [{ ...job, module: 'fire walld; id' }, 'j1', /"module": expected string to match .*got "fire walld; id"$/],
    [{ ...job, action: huge }, 'j1', /"action": .*got "x{70,80}\.\.\.$/],
    [{ ...job, params: [1] }, 'j1', /"params": expected object or null, got \[1\]$/],
    [{ ...job, id: 'j1', status: 'x', module: 'm', action: 'a', params: 5 }, 'j1', /"params": expected object or null, got 5$/],
    [{ ...job, params: 'zone=public' }, 'j1', /"params": expected object/],
    [{ ...job, parameters: 7, params: undefined }, 'j1', /"parameters": expected object/],
    [{ ...job, expires_at: 12 }, 'j1', /"expires_at"/],
    [JSON.parse('{"id":"p","module":"m","action":"a","params":{"__proto__":{"polluted":true}}}'), 'p', /forbidden key "params.__proto__"/],
    [JSON.parse('{"id":"p","module":"m","action":"a","params":{"constructor":{"prototype":{"x":1}}}}'), 'p', /forbidden key "params.constructor.prototype"/],
    [JSON.parse('{"id":"p","module":"m","action":"a","__proto__":{"x":1}}'), 'p', /forbidden key "__proto__"/],
  ];
  for (const [raw, id, why] of cases) {
    const r = parseJob(raw);
    assert.ok('error' in r, `${JSON.stringify(raw)?.slice(0, 100)} was accepted`);
    assert.equal(r.id, id);
    assert.match(r.error, why);
    assert.ok(r.error.length < 300, `message of ${r.error.length} characters`);
  }
  assert.equal(({} as Record<string, unknown>).polluted, undefined);
});

test('parseExecuteBody takes both INTEROP shapes and makes up an id only when the body has none', () => {
  const bare = { module: 'systeminfo', action: 'get_hostname', params: {} };
  assert.deepEqual(parseExecuteBody(bare, () => 'new'), { id: 'new', ...bare });
  assert.deepEqual(parseExecuteBody({ job: bare }, () => 'new'), { id: 'new', ...bare });
  assert.deepEqual(parseExecuteBody({ job: { ...bare, id: 7 } }), { id: '7', ...bare });
  assert.deepEqual(parseExecuteBody({ ...job, expires_at: '2030-01-01T00:00:00.000Z' }), { ...job, expires_at: '2030-01-01T00:00:00.000Z' });
  assert.deepEqual(parseExecuteBody({ module: 'm', action: 'a' }, () => 'n'), { id: 'n', module: 'm', action: 'a', params: {} });
  const a = parseExecuteBody(bare);
  const b = parseExecuteBody(bare);
  assert.notEqual(a.id, b.id, 'two calls of the original server are two jobs');
});

test('parseExecuteBody refuses wrong types, extra keys, oversized strings and prototype keys with an invalid-request error', () => {
  const cases: Array<[unknown, RegExp]> = [
    [null, /^cannot run job: expected object, got null$/],
    ['systeminfo get_hostname', /^cannot run job: expected object, got "systeminfo get_hostname"$/],
    [[{ module: 'm', action: 'a' }], /^cannot run job: expected object/],
    [{ module: 'm' }, /^cannot run job: "action": missing$/],
    [{ module: 'm', action: 'a', params: [] }, /^cannot run job: "params": expected object or null, got \[\]$/],
    [{ module: 'm', action: 'a', command: 'id' }, /^cannot run job: "command": unexpected property, got "id"$/],
    [{ job: { module: 'm', action: 'a' }, module: 'm' }, /^cannot run job: "module": unexpected property/],
    [{ job: { module: 'm', action: 'a', shell: true } }, /^cannot run job: "job\/shell": unexpected property, got true$/],
    [{ job: 'm a' }, /^cannot run job: "job": expected object, got "m a"$/],
    [{ module: 'm'.repeat(100_000), action: 'a' }, /^cannot run job: "module": expected string to match .*, got "m{70,80}\.\.\.$/],
    [{ module: 'm', action: 'a', id: 'i'.repeat(129) }, /^cannot run job: "id": /],
    [{ module: 'm', action: 'a', id: true }, /^cannot run job: "id": expected string or integer, got true$/],
    [{ module: '../../bin/sh', action: 'a' }, /^cannot run job: "module": /],
    [JSON.parse('{"module":"m","action":"a","params":{"__proto__":{"x":1}}}'), /^cannot run job: forbidden key "params.__proto__"$/],
    [JSON.parse('{"job":{"module":"m","action":"a","params":{"a":[{"constructor":{"prototype":{}}}]}}}'), /^cannot run job: forbidden key "job.params.a\[0\].constructor.prototype"$/],
  ];
  for (const [body, why] of cases) {
    assert.throws(
      () => parseExecuteBody(body),
      (e: unknown) => e instanceof TuxsecError && e.code === ErrorCodes.invalidRequest && why.test(e.message) && e.message.length < 300,
      why.source,
    );
  }
});

test('replyBody checks a reply against its message instead of casting it, naming what was wrong', () => {
  const res = (body: Record<string, unknown>) => ({ status: 200, body, retryAfter: 3 });
  const ok = { success: true, commands: [job], sync_interval: 30, server_time: '2026-01-01T00:00:00Z' };
  assert.deepEqual(replyBody(res(ok), CheckinReply, PULL_PATH.checkin), ok);
  // An original server's reply without the extensions, with a field of its own.
  assert.deepEqual(replyBody(res({ success: true, commands: [], extra: 1 }), CheckinReply, PULL_PATH.checkin).commands, []);
  const bad: Array<[Record<string, unknown>, RegExp]> = [
    [{ ...ok, sync_interval: '30' }, /^cannot read answer of \/agents\/api\/checkin\/: "sync_interval": expected number, got "30"$/],
    [{ ...ok, commands: { 0: job } }, /"commands": expected array/],
    [{ ...ok, commands: Array(1001).fill(job) }, /"commands": expected array length to be less or equal to 1000/],
    [{ ...ok, acknowledged: [1] }, /"acknowledged\/0": expected string, got 1/],
    [{ ...ok, acknowledged: ['a'.repeat(10_000)] }, /"acknowledged\/0": .*\.\.\.$/],
    [{ ...ok, success: 'yes' }, /"success"/],
    [JSON.parse('{"success":true,"commands":[],"__proto__":{"x":1}}'), /forbidden key "__proto__"/],
  ];
  for (const [body, why] of bad) {
    assert.throws(
      () => replyBody(res(body), CheckinReply, PULL_PATH.checkin),
      (e: unknown) => e instanceof HttpError && e.status === 200 && e.retryAfter === 3 && why.test(e.message) && e.message.length < 300,
      why.source,
    );
  }
  // A bad command is the executor's to report on its own; the rest of the reply still counts.
  assert.doesNotThrow(() => replyBody(res({ ...ok, commands: [job, { id: 'b', module: 5 }] }), CheckinReply, PULL_PATH.checkin));
  assert.match(refusal(ResultsReply, { success: true }), /^"acknowledged": missing$/);
});

test('registerReplySchema accepts the 200 and the 202 of docs/pull-protocol.md and nothing without usable credentials', () => {
  const creds = { agent_id: 'a1', api_key: 'k'.repeat(43), checkin_interval: 30 };
  const check = (body: Record<string, unknown>) => schemaError(registerReplySchema(body), body);
  assert.equal(check({ success: true, ...creds }), null);
  assert.equal(check({ success: false, code: 'pending-approval', error: 'held', ...creds }), null);
  for (const body of [
    { success: true },
    { success: true, ...creds, api_key: 'two words' },
    { success: true, ...creds, api_key: '' },
    { success: true, ...creds, agent_id: 'a'.repeat(129) },
    { success: true, ...creds, agent_id: 7 },
    { success: false, code: 'invalid-token', error: 'no', ...creds },
    { success: false, ...creds },
  ]) {
    assert.notEqual(check(body), null, JSON.stringify(body));
  }
  assert.match(String(check({ success: true, ...creds, api_key: 'two words' })), /^"api_key": expected string to match .*, got "two words"$/);
});

test('executeReplyOf answers INTEROP\'s {success, result, error} for a result, which ExecuteReply accepts', () => {
  const base = { command_id: 'c', started_at: 't0', finished_at: 't1', duration_ms: 3 };
  const good = executeReplyOf({ ...base, success: true, output: { hostname: 'h' }, status: 'completed' });
  assert.deepEqual(good, { success: true, result: { hostname: 'h' }, error: null, id: 'c', status: 'completed', ...{ started_at: 't0', finished_at: 't1', duration_ms: 3 } });
  const bad = executeReplyOf({ ...base, success: false, error: 'cannot add service', code: 'invalid-params', status: 'failed' });
  assert.deepEqual(bad.result, {});
  assert.equal(bad.error, 'cannot add service');
  assert.equal(bad.code, 'invalid-params');
  for (const r of [good, bad]) assert.equal(schemaError(ExecuteReply, r), null);
  assert.match(refusal(ExecuteReply, { success: true, result: {}, error: 5 }), /"error"/);
  assert.equal(schemaError(HealthReply, { status: 'healthy', rootd_connected: true, version: '1.0.0', modules: ['systeminfo'] }), null);
  assert.match(refusal(HealthReply, { status: 'fine', rootd_connected: true, version: '1', modules: [] }), /"status"/);
  assert.match(refusal(HealthReply, { status: 'healthy', rootd_connected: 'yes', version: '1', modules: [] }), /"rootd_connected"/);
  assert.match(refusal(ResultEnvelope, { ...base, success: true, status: 'done' }), /"status"/);
});

test('tuxsec-server replies with the protocol\'s messages, and the agent\'s checkers accept what it sends', async () => {
  assert.equal(serverSchemas.CheckinReply[200], CheckinResponse, 'the server serializes the protocol\'s own schema');
  const { app, admin, call } = await inProcessServer();
  const post = async (url: string, body: unknown, headers: Record<string, string> = {}) => ({ ...(await call('POST', url, body, headers)), retryAfter: null });
  try {
    const reg = replyBody(await post(`/${PULL_PATH.register}`, { hostname: 'h', machine_id: 'f'.repeat(32) }), RegisterResponse, PULL_PATH.register);
    const again = await post(`/${PULL_PATH.register}`, { hostname: 'h', machine_id: 'f'.repeat(32) });
    assert.equal(again.status, 202);
    assert.equal(replyBody(again, RegisterPending, PULL_PATH.register).success, false);
    const creds = { agent_id: reg.agent_id, api_key: reg.api_key };
    const q = await post('/api/v1/jobs', { agent_id: reg.agent_id, module: 'firewalld', action: 'add_service', params: { zone: 'public', service: 'http' } }, admin);
    assert.equal(q.status, 201);
    const got = await post(`/${PULL_PATH.checkin}`, creds);
    assert.equal(schemaError(CheckinResponse, got.body), null, 'the strict form, as the server promises it');
    const [cmd] = replyBody(got, CheckinReply, PULL_PATH.checkin).commands!;
    const parsed = parseJob(cmd);
    assert.ok('job' in parsed);
    assert.deepEqual(parsed.job.params, { zone: 'public', service: 'http' });
    const result = { command_id: parsed.job.id, success: true, output: {}, status: 'completed' as const, started_at: 'a', finished_at: 'b', duration_ms: 1 };
    const acked = replyBody(await post(`/${PULL_PATH.results}`, { ...creds, command_results: [result] }), ResultsReply, PULL_PATH.results);
    assert.deepEqual(acked.acknowledged, [parsed.job.id]);
  } finally {
    await app.close();
  }
});
