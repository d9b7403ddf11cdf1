/**
 * buildApp driven in-process with inject() over an in-memory SQLite storage and a settable clock:
 * access rules of every operator route, input validation tables, hostile JSON, secrets kept out of
 * the log, redelivery timing, expiry, and the long-poll wake-up race.
 */
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import pino from 'pino';
import { buildApp, type TuxsecServerApp } from '../../src/server/app.ts';
import { openSqliteStorage } from '../../src/server/storage/sqlite.ts';

const ADMIN = 'admin-token-for-inject-tests-0123';
const AUTH = { authorization: `Bearer ${ADMIN}` };

function make(opts: { require_enrollment_token?: boolean } = {}) {
  let logText = '';
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      logText += chunk.toString();
      cb();
    },
  });
  const clock = { t: Date.parse('2026-06-01T00:00:00Z') };
  const built: TuxsecServerApp = buildApp({
    config: {
      adminToken: ADMIN,
      require_enrollment_token: opts.require_enrollment_token ?? true,
      long_poll_max: 30,
      sync_interval: 30,
      job_default_ttl: 3600,
      redeliver_after: 15,
    },
    storage: openSqliteStorage(':memory:'),
    logger: pino({ level: 'trace' }, sink),
    clock: () => clock.t,
  });
  return { ...built, clock, log: () => logText };
}

type T = ReturnType<typeof make>;

async function json(t: T, method: 'GET' | 'POST' | 'PUT' | 'DELETE', url: string, body?: unknown, headers: Record<string, string> = {}) {
  const r = await t.app.inject({
    method,
    url,
    headers: { ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers },
    payload: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  return { status: r.statusCode, body: r.json() as Record<string, unknown> };
}

async function enrol(t: T, extra: Record<string, unknown> = {}) {
  const tok = await json(t, 'POST', '/api/v1/tokens', {}, AUTH);
  const r = await json(t, 'POST', '/agents/api/register/', { hostname: 'h', enrollment_token: tok.body.token, ...extra });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return { id: String(r.body.agent_id), key: String(r.body.api_key), token: String(tok.body.token) };
}

const checkin = (t: T, a: { id: string; key: string }, extra: Record<string, unknown> = {}) =>
  json(t, 'POST', '/agents/api/checkin/', { agent_id: a.id, api_key: a.key, status: 'online', ...extra });

async function submit(t: T, agentId: string, extra: Record<string, unknown> = {}) {
  const r = await json(t, 'POST', '/api/v1/jobs', { agent_id: agentId, module: 'systeminfo', action: 'get_info', ...extra }, AUTH);
  assert.equal(r.status, 201, JSON.stringify(r.body));
  return (r.body.job as { id: string }).id;
}

describe('buildApp', () => {
  let t: T;
  before(async () => {
    t = make();
    await t.app.ready();
  });
  after(() => t.app.close());

  test('buildApp refuses every operator route without the right admin token or a session', async () => {
    const operator = t.routes.filter((r) => r.includes(' /api/v1/'));
    assert.deepEqual(operator.sort(), [
      'DELETE /api/v1/session',
      'DELETE /api/v1/templates/:id',
      'DELETE /api/v1/tokens/:id',
      'DELETE /api/v1/users/:name',
      'GET /api/v1/agents',
      'GET /api/v1/agents/:id/firewall',
      'GET /api/v1/agents/:id/health',
      'GET /api/v1/audit',
      'GET /api/v1/batches',
      'GET /api/v1/batches/:id',
      'GET /api/v1/dashboard',
      'GET /api/v1/events',
      'GET /api/v1/firewall/drift',
      'GET /api/v1/jobs',
      'GET /api/v1/jobs/:id',
      'GET /api/v1/session',
      'GET /api/v1/templates',
      'GET /api/v1/templates/:id',
      'GET /api/v1/tokens',
      'GET /api/v1/users',
      'POST /api/v1/agents',
      'POST /api/v1/agents/:id/approve',
      'POST /api/v1/agents/:id/firewall/baseline',
      'POST /api/v1/agents/:id/labels',
      'POST /api/v1/agents/:id/mode',
      'POST /api/v1/agents/:id/reject',
      'POST /api/v1/batches',
      'POST /api/v1/batches/:id/cancel',
      'POST /api/v1/batches/:id/retry-failed',
      'POST /api/v1/firewall/check',
      'POST /api/v1/jobs',
      'POST /api/v1/jobs/:id/cancel',
      'POST /api/v1/session',
      'POST /api/v1/templates',
      'POST /api/v1/templates/:id/apply',
      'POST /api/v1/templates/:id/preview',
      'POST /api/v1/tokens',
      'POST /api/v1/users',
      'POST /api/v1/users/:name/password',
      'POST /api/v1/users/:name/revoke',
      'PUT /api/v1/templates/:id',
    ]);
    // Every route but the login itself.
    for (const r of operator.filter((x) => x !== 'POST /api/v1/session')) {
      const [method, url] = r.split(' ') as ['GET' | 'POST' | 'PUT' | 'DELETE', string];
      const path = url.replace(':id', '00000000-0000-0000-0000-000000000000').replace(':name', 'someone');
      const variants: Array<Record<string, string>> = [{}, { authorization: 'Bearer wrong-token-wrong-token' }, { authorization: ADMIN }, { authorization: `Basic ${ADMIN}` }];
      for (const headers of variants) {
        const res = await json(t, method, path, method === 'POST' || method === 'PUT' ? {} : undefined, headers);
        assert.equal(res.status, 401, `${r} with ${JSON.stringify(headers)}`);
        assert.equal(res.body.code, 'unauthorized');
      }
    }
    // Agent routes: all four exist; the authenticated ones refuse a request without credentials.
    assert.deepEqual(t.routes.filter((r) => r.includes('/agents/api/')).sort(), [
      'POST /agents/api/checkin/',
      'POST /agents/api/progress/',
      'POST /agents/api/register/',
      'POST /agents/api/results/',
    ]);
  });

  test('POST /api/v1/jobs validates names, params and keys', async () => {
    const a = await enrol(t);
    const base = { agent_id: a.id, module: 'firewalld', action: 'add_service', params: { service: 'http' } };
    const bad: Array<[string, Record<string, unknown>]> = [
      ['module uppercase', { module: 'Firewalld' }],
      ['module digit first', { module: '1abc' }],
      ['module hyphen', { module: 'fire-walld' }],
      ['module too long', { module: `a${'b'.repeat(64)}` }],
      ['module empty', { module: '' }],
      ['action with dot', { action: 'add.service' }],
      ['action not a string', { action: 5 }],
      ['params array', { params: [1, 2] }],
      ['params string', { params: 'x' }],
      ['params null', { params: null }],
      ['unknown key', { priority: 1 }],
      ['expires_in zero', { expires_in: 0 }],
      ['expires_in too long', { expires_in: 31 * 86400 }],
    ];
    for (const [name, change] of bad) {
      const r = await json(t, 'POST', '/api/v1/jobs', { ...base, ...change }, AUTH);
      assert.equal(r.status, 400, name);
      assert.equal(r.body.code, 'invalid-request', name);
      assert.equal(r.body.success, false, name);
    }
    const { agent_id: _drop, ...noAgent } = base;
    assert.equal((await json(t, 'POST', '/api/v1/jobs', noAgent, AUTH)).status, 400);
    assert.equal((await json(t, 'POST', '/api/v1/jobs', { ...base, agent_id: 'nobody' }, AUTH)).status, 404);
    const ok = await json(t, 'POST', '/api/v1/jobs', { ...base, module: `a${'b'.repeat(63)}` }, AUTH);
    assert.equal(ok.status, 201);
    assert.equal((await json(t, 'GET', '/api/v1/jobs?status=bogus', undefined, AUTH)).status, 400);
    assert.equal((await json(t, 'POST', '/api/v1/tokens', { uses: 0 }, AUTH)).status, 400);
  });

  test('agent endpoints refuse hostile JSON', async () => {
    const a = await enrol(t);
    const deep = `{"agent_id":"${a.id}","api_key":"${a.key}","command_results":[{"command_id":"x","output":${'['.repeat(100)}${']'.repeat(100)}}]}`;
    const r1 = await json(t, 'POST', '/agents/api/checkin/', deep);
    assert.equal(r1.status, 400);
    assert.match(String(r1.body.error), /nested deeper/);
    const r2 = await json(t, 'POST', '/agents/api/checkin/', `{"agent_id":"${a.id}","api_key":"${a.key}","__proto__":{"x":1}}`);
    assert.equal(r2.status, 400);
    assert.match(String(r2.body.error), /forbidden key "__proto__"/);
    const r3 = await t.app.inject({ method: 'POST', url: '/agents/api/checkin/', headers: { 'content-type': 'text/plain' }, payload: 'x' });
    assert.equal(r3.statusCode, 415);
    const r4 = await json(t, 'POST', '/agents/api/register/', { hostname: 'h', enrollment_token: 'x', modules: { a: 1 } });
    assert.equal(r4.status, 400);
    const r5 = await json(t, 'POST', '/agents/api/checkin/', { agent_id: a.id, api_key: a.key, command_results: [{ success: true }] });
    assert.equal(r5.status, 400, 'a result without command_id');
    const r6 = await json(t, 'GET', '/nope');
    assert.equal(r6.status, 404);
  });

  test('results with "prototype" and "constructor" keys are stored; __proto__ and constructor.prototype are refused', async () => {
    const a = await enrol(t);
    const outputs: unknown[] = [{ zones: { prototype: { interfaces: ['eth0'] } } }, { constructor: 'x', prototype: { constructor: 'y' } }];
    for (const output of outputs) {
      const id = await submit(t, a.id);
      assert.equal((await checkin(t, a)).status, 200);
      const r = await checkin(t, a, { command_results: [{ command_id: id, success: true, output }] });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.deepEqual(r.body.acknowledged, [id]);
      const job = (await json(t, 'GET', `/api/v1/jobs/${id}`, undefined, AUTH)).body.job as { status: string; result: { output: unknown } };
      assert.equal(job.status, 'completed');
      assert.deepEqual(job.result.output, output);
    }
    const poisoned: Array<[string, string]> = [
      ['{"__proto__":{"polluted":true}}', '__proto__'],
      ['{"a":{"constructor":{"prototype":{"polluted":true}}}}', 'a.constructor.prototype'],
    ];
    for (const [output, path] of poisoned) {
      const id = await submit(t, a.id);
      assert.equal((await checkin(t, a)).status, 200);
      const r = await json(t, 'POST', '/agents/api/checkin/', `{"agent_id":"${a.id}","api_key":"${a.key}","command_results":[{"command_id":"${id}","success":true,"output":${output}}]}`);
      assert.equal(r.status, 400);
      assert.equal(r.body.error, `cannot read request: forbidden key "command_results[0].output.${path}"`);
      assert.equal(({} as Record<string, unknown>).polluted, undefined);
    }
  });

  test('every error raised before a handler has the project shape and a registry code', async () => {
    const { ErrorCodes } = await import('../../src/protocol/errors.ts');
    const codes = new Set<string>(Object.values(ErrorCodes));
    const a = await enrol(t);
    type Req = { method: 'GET' | 'POST' | 'DELETE'; url: string; headers?: Record<string, string>; payload?: string };
    const cases: Array<[string, Req, number, string]> = [
      ['malformed URL (operator)', { method: 'GET', url: '/api/v1/jobs/%E0%A4%A', headers: AUTH }, 400, 'invalid-request'],
      ['malformed URL (agent)', { method: 'POST', url: '/agents/api/checkin/%E0%A4%A' }, 400, 'invalid-request'],
      ['unknown route', { method: 'GET', url: '/nope?x=1' }, 404, 'not-found'],
      ['unknown method', { method: 'DELETE', url: '/agents/api/checkin/' }, 404, 'not-found'],
      ['bad content type', { method: 'POST', url: '/agents/api/checkin/', headers: { 'content-type': 'text/plain' }, payload: 'x' }, 415, 'invalid-request'],
      ['body too large', { method: 'POST', url: '/agents/api/checkin/', headers: { 'content-type': 'application/json', 'x-api-key': a.key }, payload: `{"pad":"${'x'.repeat(1024 * 1024)}"}` }, 413, 'message-too-large'],
      ['registration body too large', { method: 'POST', url: '/agents/api/register/', headers: { 'content-type': 'application/json' }, payload: `{"pad":"${'x'.repeat(200 * 1024)}"}` }, 413, 'message-too-large'],
      ['JSON parse error', { method: 'POST', url: '/agents/api/checkin/', headers: { 'content-type': 'application/json' }, payload: '{"agent_id": ' }, 400, 'invalid-json'],
      ['empty JSON body', { method: 'POST', url: '/agents/api/checkin/', headers: { 'content-type': 'application/json' }, payload: '' }, 400, 'invalid-json'],
      ['schema violation', { method: 'POST', url: '/agents/api/checkin/', headers: { 'content-type': 'application/json' }, payload: '{"agent_id": 5}' }, 400, 'invalid-request'],
      ['wrong X-API-Key', { method: 'POST', url: '/agents/api/checkin/', headers: { 'content-type': 'application/json', 'x-api-key': 'nope' }, payload: '{}' }, 401, 'unauthorized'],
      ['operator without token', { method: 'GET', url: '/api/v1/agents' }, 401, 'unauthorized'],
    ];
    for (const [name, req, status, code] of cases) {
      const r = await t.app.inject(req);
      assert.equal(r.statusCode, status, `${name}: ${r.body}`);
      const body = r.json() as Record<string, unknown>;
      assert.deepEqual(Object.keys(body).sort(), ['code', 'error', 'success'], name);
      assert.equal(body.success, false, name);
      assert.equal(body.code, code, name);
      assert.ok(codes.has(String(body.code)), name);
      assert.match(String(body.error), /^cannot [a-z]/, name);
    }
  });

  test('buildApp never logs api keys, tokens or the admin token', async () => {
    const a = await enrol(t, { hostname: 'logged-host' });
    await checkin(t, a);
    await json(t, 'POST', '/agents/api/checkin/', { agent_id: a.id, api_key: 'wrong-key-value-123' }, { 'x-api-key': 'wrong-key-value-123' });
    await json(t, 'POST', '/agents/api/register/', { hostname: 'h', enrollment_token: 'bad-token-value-456' });
    const log = t.log();
    assert.match(log, /agent registered/);
    for (const secret of [a.key, a.token, ADMIN, 'wrong-key-value-123', 'bad-token-value-456']) {
      assert.ok(!log.includes(secret), `secret ${secret.slice(0, 6)}... in the log`);
    }
  });

  test('checkin redelivers a sent job without result only to redelivery agents and not within redeliver_after', async () => {
    const a = await enrol(t);
    const plain = await enrol(t);
    const feats = { features: ['long-poll', 'results', 'redelivery'] };
    const j = await submit(t, a.id);
    const jp = await submit(t, plain.id);
    t.clock.t += 1000;
    assert.deepEqual(((await checkin(t, a, feats)).body.commands as Array<{ id: string }>).map((c) => c.id), [j]);
    assert.deepEqual(((await checkin(t, plain)).body.commands as Array<{ id: string }>).map((c) => c.id), [jp]);
    t.clock.t += 5000;
    assert.deepEqual((await checkin(t, a, feats)).body.commands, []);
    t.clock.t += 11_000;
    assert.deepEqual(((await checkin(t, a, feats)).body.commands as Array<{ id: string }>).map((c) => c.id), [j]);
    assert.deepEqual((await checkin(t, plain)).body.commands, []);
    const job = await json(t, 'GET', `/api/v1/jobs/${j}`, undefined, AUTH);
    assert.equal((job.body.job as { deliveries: number }).deliveries, 2);
    // A result for a queued job (never handed out) is acknowledged but not stored.
    const q = await submit(t, a.id);
    const r = await json(t, 'POST', '/agents/api/results/', { agent_id: a.id, api_key: a.key, command_results: [{ command_id: q, success: true }] });
    assert.deepEqual(r.body.acknowledged, [q]);
    assert.equal(((await json(t, 'GET', `/api/v1/jobs/${q}`, undefined, AUTH)).body.job as { status: string }).status, 'queued');
  });

  test('jobs expire when their agent stays away, and a late result of a sent job is still kept', async () => {
    const a = await enrol(t);
    const queued = await submit(t, a.id, { expires_in: 10 });
    const sent = await submit(t, a.id, { expires_in: 10, action: 'get_hostname' });
    const got = await checkin(t, a);
    assert.equal((got.body.commands as unknown[]).length, 2);
    const later = await submit(t, a.id, { expires_in: 10 });
    t.clock.t += 11_000;
    assert.deepEqual((await checkin(t, a)).body.commands, [], 'an expired job was handed out');
    // The sweep runs every second on the server's (here: fake) clock.
    const waited = await json(t, 'GET', `/api/v1/jobs/${later}?wait=5`, undefined, AUTH);
    assert.equal((waited.body.job as { status: string }).status, 'expired');
    for (const id of [queued, sent]) {
      assert.equal(((await json(t, 'GET', `/api/v1/jobs/${id}`, undefined, AUTH)).body.job as { status: string }).status, 'expired');
    }
    await json(t, 'POST', '/agents/api/results/', { agent_id: a.id, api_key: a.key, command_results: [{ command_id: sent, success: true, output: { late: true } }] });
    const s = (await json(t, 'GET', `/api/v1/jobs/${sent}`, undefined, AUTH)).body.job as { status: string; result: unknown };
    assert.equal(s.status, 'completed');
    assert.deepEqual(s.result, { success: true, status: 'completed', output: { late: true } });
  });

  test('checkin long-poll never misses a job queued while it reads the queue', async () => {
    const a = await enrol(t);
    for (let i = 0; i < 60; i++) {
      const t0 = performance.now();
      const [c, id] = await Promise.all([
        checkin(t, a, { wait: 10, features: ['redelivery'] }),
        // Vary the interleaving of the submit with the check-in's read.
        (async () => {
          for (let k = 0; k < i % 4; k++) await new Promise((r) => setImmediate(r));
          return submit(t, a.id, { params: { i } });
        })(),
      ]);
      const ids = (c.body.commands as Array<{ id: string }>).map((x) => x.id);
      if (ids.length === 0) {
        // The check-in may have answered before the job existed only if it was not held: never.
        assert.fail(`iteration ${i}: check-in came back empty after ${performance.now() - t0} ms`);
      }
      assert.deepEqual(ids, [id]);
      assert.ok(performance.now() - t0 < 2000, `iteration ${i} took ${performance.now() - t0} ms`);
      await json(t, 'POST', '/agents/api/results/', { agent_id: a.id, api_key: a.key, command_results: [{ command_id: id, success: true }] });
    }
  });

  test('checkin refreshes inventory but never takes a machine_id enrolled under another agent', async () => {
    const a = await enrol(t, { machine_id: 'inv-m1' });
    const b = await enrol(t);
    await checkin(t, b, { machine_id: 'inv-m1', hostname: 'renamed', version: '2.0', modules: ['systeminfo'] });
    await checkin(t, a, { machine_id: 'inv-m1' });
    const c = await enrol(t);
    await checkin(t, c, { machine_id: 'inv-m2' });
    const agents = (await json(t, 'GET', '/api/v1/agents', undefined, AUTH)).body.agents as Array<Record<string, unknown>>;
    const byId = new Map(agents.map((x) => [x.id, x]));
    assert.deepEqual([byId.get(b.id)!.machine_id, byId.get(b.id)!.hostname, byId.get(b.id)!.version, byId.get(b.id)!.modules], [null, 'renamed', '2.0', ['systeminfo']]);
    assert.equal(byId.get(a.id)!.machine_id, 'inv-m1');
    assert.equal(byId.get(c.id)!.machine_id, 'inv-m2');
  });

  test('register without a token works only when require_enrollment_token is false', async () => {
    const open = make({ require_enrollment_token: false });
    try {
      const r = await json(open, 'POST', '/agents/api/register/', { hostname: 'legacy', ip_address: '10.1.1.1', os_info: { system: 'Linux' } });
      assert.equal(r.status, 200);
      assert.deepEqual(Object.keys(r.body).sort(), ['agent_id', 'api_key', 'checkin_interval', 'success']);
      const agents = await json(open, 'GET', '/api/v1/agents', undefined, AUTH);
      const listed = (agents.body.agents as Array<Record<string, unknown>>)[0]!;
      assert.deepEqual([listed.hostname, listed.ip, listed.os_info, listed.status], ['legacy', '10.1.1.1', { system: 'Linux' }, 'active']);
      assert.equal('key_hash' in listed || 'keyHash' in listed, false);
    } finally {
      await open.app.close();
    }
  });
});

test('checkin long-poll of an agent that hung up before the hold began takes no job', async () => {
  // Over a real socket: inject() has none to hang up. The agent sends its check-in and resets the
  // connection at once, so the server learns of the reset before the check-in reaches its hold.
  const net = await import('node:net');
  const storage = openSqliteStorage(':memory:');
  const { app, dispatch } = buildApp({
    config: { adminToken: ADMIN, require_enrollment_token: false, long_poll_max: 30, sync_interval: 30, job_default_ttl: 3600, redeliver_after: 15 },
    storage,
    logger: pino({ level: 'silent' }),
  });
  try {
    await app.listen({ host: '127.0.0.1', port: 0 });
    const { port } = app.server.address() as { port: number };
    const reg = await app.inject({ method: 'POST', url: '/agents/api/register/', headers: { 'content-type': 'application/json' }, payload: JSON.stringify({ hostname: 'h' }) });
    const a = reg.json() as { agent_id: string; api_key: string };
    for (let i = 0; i < 5; i++) {
      const body = JSON.stringify({ agent_id: a.agent_id, api_key: a.api_key, wait: 20, features: ['long-poll', 'results', 'redelivery'], version: String(i) });
      const sock = net.connect(port, '127.0.0.1');
      await new Promise((r) => sock.once('connect', r));
      sock.on('error', () => {});
      sock.write(`POST /agents/api/checkin/ HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
      sock.resetAndDestroy();
      await new Promise((r) => setTimeout(r, 200));
      assert.equal(dispatch.heldCheckins, 0, `check-in ${i} is held for a connection that is gone`);
    }
    const job = await app.inject({ method: 'POST', url: '/api/v1/jobs', headers: { 'content-type': 'application/json', ...AUTH }, payload: JSON.stringify({ agent_id: a.agent_id, module: 'systeminfo', action: 'get_info' }) });
    assert.equal(job.statusCode, 201);
    await new Promise((r) => setTimeout(r, 100));
    const id = (job.json() as { job: { id: string } }).job.id;
    assert.equal(storage.getJob(id)?.status, 'queued', 'the job was handed to a connection that is gone');
  } finally {
    await app.close();
  }
});
