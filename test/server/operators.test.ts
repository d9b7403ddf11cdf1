/**
 * Operators of tuxsec-server over real HTTPS with the real server process: users, login sessions
 * (cookie attributes, expiry, logout, revocation, per-user cap, fixation), login throttling per
 * user name and per address, CSRF and Origin, roles on every route, the audit log with redaction
 * and its exports (CSV, JSON lines, JSON; streamed from the database), and the `user` / `audit` commands.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import Database from 'better-sqlite3';
import { Agent, request } from 'undici';
import { buildApp } from '../../src/server/app.ts';
import { auditCsv, auditView } from '../../src/server/audit.ts';
import { SESSION_COOKIE } from '../../src/server/operator-auth.ts';
import { SqliteAuthStore, type AuditFilter, type AuditRecord } from '../../src/server/storage/auth-store.ts';
import { openSqliteStorage } from '../../src/server/storage/sqlite.ts';
import { seedAudit } from '../helpers/audit.ts';
import { adminCall, SERVER_JS, startServer, type TestServer } from '../helpers/server.ts';

const PW = 'correct horse battery staple';

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  body: Record<string, unknown>;
}

/** A browser-like client: keeps the session cookie and CSRF token; may connect from another loopback address. */
class Client {
  readonly dispatcher: Agent;
  cookie: string | null = null;
  csrf: string | null = null;
  setCookie: string | null = null;

  constructor(
    readonly srv: TestServer,
    localAddress = '127.0.0.1',
  ) {
    this.dispatcher = new Agent({ localAddress, connect: { ca: readFileSync(srv.certs.ca) } });
  }

  async call(method: string, p: string, body?: unknown, headers: Record<string, string> = {}): Promise<Reply> {
    const h: Record<string, string> = { ...headers };
    if (this.cookie !== null && h.cookie === undefined) h.cookie = `${SESSION_COOKIE}=${this.cookie}`;
    if (this.csrf !== null && method !== 'GET' && h['x-csrf-token'] === undefined) h['x-csrf-token'] = this.csrf;
    if (body !== undefined) h['content-type'] = 'application/json';
    const res = await request(`${this.srv.url}/api/v1${p}`, {
      method: method as 'GET',
      dispatcher: this.dispatcher,
      headers: h,
      body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
    });
    const text = await res.body.text();
    let parsed: Record<string, unknown> = {};
    try {
      parsed = JSON.parse(text) as Record<string, unknown>;
    } catch {
      // CSV, JSON lines
    }
    return { status: res.statusCode, headers: res.headers, text, body: parsed };
  }

  async login(name: string, password: string, headers: Record<string, string> = {}): Promise<Reply> {
    const r = await this.call('POST', '/session', { name, password }, headers);
    if (r.status === 200) {
      this.setCookie = String(r.headers['set-cookie']);
      this.cookie = new RegExp(`^${SESSION_COOKIE}=([^;]*)`).exec(this.setCookie)![1]!;
      this.csrf = String(r.body.csrf);
    }
    return r;
  }

  close(): Promise<void> {
    return this.dispatcher.close();
  }
}

async function addUser(srv: TestServer, name: string, role: string, extra: Record<string, unknown> = {}): Promise<void> {
  const r = await adminCall(srv, 'POST', '/users', { name, role, password: PW, ...extra });
  assert.equal(r.status, 201, JSON.stringify(r.body));
}

/** Runs the CLI with `input` on stdin. */
function cli(srv: TestServer, args: string[], input = ''): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const c = spawn(process.execPath, [SERVER_JS, ...args, '--config', srv.configPath, '--server', srv.url], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    c.stdout!.on('data', (b: Buffer) => (stdout += b.toString()));
    c.stderr!.on('data', (b: Buffer) => (stderr += b.toString()));
    c.on('exit', (code) => resolve({ code, stdout, stderr }));
    c.stdin!.end(input);
  });
}

/** Opens GET /events with c's cookie; `closed(ms)` says whether the server ended it within ms. */
async function openStream(c: Client) {
  const res = await request(`${c.srv.url}/api/v1/events`, { dispatcher: c.dispatcher, headers: { cookie: `${SESSION_COOKIE}=${c.cookie!}` } });
  assert.equal(res.statusCode, 200);
  const ended = new Promise<true>((resolve) => {
    res.body.on('end', () => resolve(true));
    res.body.on('error', () => resolve(true));
    res.body.on('close', () => resolve(true));
    res.body.resume();
  });
  return { closed: (ms: number) => Promise.race([ended, sleep(ms).then(() => false as const)]), destroy: () => res.body.destroy() };
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

describe('operators: sessions, CSRF, roles, audit', () => {
  let srv: TestServer;
  const clients: Client[] = [];
  const client = (addr?: string): Client => {
    const c = new Client(srv, addr);
    clients.push(c);
    return c;
  };

  before(async () => {
    srv = await startServer({ config: { sessions_per_user: 3, login_failures_per_user: 5, login_failures_per_address: 20 } });
    await addUser(srv, 'admin1', 'admin');
    await addUser(srv, 'op1', 'operator');
    await addUser(srv, 'viewer1', 'viewer');
  });
  after(async () => {
    await Promise.all(clients.map((c) => c.close()));
    await srv.stop();
    srv.cleanup();
  });

  test('login sets a __Host- prefixed HttpOnly, Secure, SameSite=Strict session cookie (Path=/, no Domain); GET /session shows the user and CSRF token', async () => {
    const c = client();
    const r = await c.login('op1', PW);
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.body.user, { name: 'op1', role: 'operator', selector: null });
    // __Host-: the browser keeps it only as sent by this host over TLS for the whole site (no Domain).
    assert.match(c.setCookie!, /^__Host-tuxsec_session=[A-Za-z0-9_-]{43}; HttpOnly; Secure; SameSite=Strict; Path=\/; Max-Age=43200$/);
    assert.doesNotMatch(c.setCookie!, /domain=/i);
    assert.match(String(r.body.csrf), /^[A-Za-z0-9_-]{43}$/);
    const s = await c.call('GET', '/session');
    assert.equal(s.status, 200);
    assert.equal(s.body.csrf, r.body.csrf);
    assert.equal((await c.call('GET', '/agents')).status, 200);
    // The session id is stored hashed: the database never holds the cookie's value.
    assert.equal(readFileSync(`${srv.dir}/server.db`).includes(Buffer.from(c.cookie!)), false);
  });

  test('a wrong password and an unknown user get the same 401 answer', async () => {
    const c = client('127.0.0.9');
    const wrong = await c.login('viewer1', 'not the password at all');
    const unknown = await c.login('nobody-here', 'not the password at all');
    assert.equal(wrong.status, 401);
    assert.equal(unknown.status, 401);
    assert.deepEqual(wrong.body, unknown.body);
    assert.equal(wrong.body.error, 'cannot log in: wrong user name or password');
    assert.equal((await client().call('GET', '/session')).status, 401);
  });

  test('GET /session without a session and an operator route with a made-up cookie: 401', async () => {
    const c = client();
    c.cookie = 'A'.repeat(43);
    assert.equal((await c.call('GET', '/agents')).status, 401);
    assert.equal((await c.call('GET', '/session')).status, 401);
  });

  test('logout ends the session: the old cookie is refused after', async () => {
    const c = client();
    await c.login('viewer1', PW);
    const out = await c.call('DELETE', '/session');
    assert.equal(out.status, 200, out.text);
    assert.match(String(out.headers['set-cookie']), /^__Host-tuxsec_session=; HttpOnly; Secure; SameSite=Strict; Path=\/; Max-Age=0$/);
    assert.equal((await c.call('GET', '/agents')).status, 401);
  });

  test('CSRF: a cookie request that changes something needs the session\'s X-CSRF-Token and its own Origin', async () => {
    const c = client();
    await c.login('op1', PW);
    const job = { agent_id: '00000000-0000-0000-0000-000000000000', module: 'systeminfo', action: 'get_info' };
    const csrf = c.csrf!;
    c.csrf = null;
    const missing = await c.call('POST', '/jobs', job);
    assert.equal(missing.status, 403, missing.text);
    assert.match(String(missing.body.error), /X-CSRF-Token/);
    assert.equal((await c.call('POST', '/jobs', job, { 'x-csrf-token': 'x'.repeat(43) })).status, 403);
    // Another session's token does not do either.
    const other = client();
    await other.login('op1', PW);
    assert.equal((await c.call('POST', '/jobs', job, { 'x-csrf-token': other.csrf! })).status, 403);
    c.csrf = csrf;
    assert.equal((await c.call('POST', '/jobs', job, { origin: 'https://evil.example' })).status, 403);
    // With both right, the request reaches the handler (no such agent).
    assert.equal((await c.call('POST', '/jobs', job, { origin: srv.url })).status, 404);
    assert.equal((await c.call('POST', '/jobs', job)).status, 404);
    // The admin token needs no CSRF token.
    assert.equal((await adminCall(srv, 'POST', '/jobs', job)).status, 404);
  });

  test('roles: a viewer gets 403 on every non-GET route, an operator on every admin route', async () => {
    // Every route of the real app (buildApp's list), called over HTTPS on the real server.
    const { app, routes } = buildApp({ config: { adminToken: 'x'.repeat(32), require_enrollment_token: true, long_poll_max: 30, sync_interval: 30, job_default_ttl: 60, redeliver_after: 15 }, storage: openSqliteStorage(':memory:') });
    await app.ready();
    await app.close();
    const changes = routes.filter((r) => r.includes(' /api/v1/') && !r.startsWith('GET ') && !r.endsWith(' /api/v1/session'));
    assert.ok(changes.length >= 11, changes.join());
    const viewer = client();
    await viewer.login('viewer1', PW);
    const op = client();
    await op.login('op1', PW);
    const ADMIN_ONLY = /\/tokens|\/users|\/approve|\/reject|\/mode$|POST \/api\/v1\/agents$|\/labels/;
    for (const r of changes) {
      const [method, url] = r.split(' ') as [string, string];
      const p = url.replace('/api/v1', '').replace(/:id/g, '00000000-0000-0000-0000-000000000000').replace(/:name/g, 'op1');
      const body = method === 'DELETE' ? undefined : {};
      const v = await viewer.call(method, p, body);
      assert.equal(v.status, 403, `viewer ${r}: ${v.text}`);
      assert.equal(v.body.code, 'permission-denied');
      if (ADMIN_ONLY.test(r)) {
        const o = await op.call(method, p, body);
        assert.equal(o.status, 403, `operator ${r}: ${o.text}`);
      }
    }
    // The users are untouched (op1's password was not changed: it still logs in).
    assert.equal((await client().login('op1', PW)).status, 200);
    // Reading is allowed to a viewer.
    for (const p of ['/agents', '/jobs', '/audit']) assert.equal((await viewer.call('GET', p)).status, 200, p);
    assert.equal((await viewer.call('GET', '/users')).status, 403);
  });

  test('attack: a viewer cannot make the server connect to a push agent (GET /agents/:id/health needs operator)', async () => {
    // A listener standing in for the push agent counts the server's connections to it.
    let connections = 0;
    const fake = net.createServer((s) => {
      connections++;
      s.destroy();
    });
    await new Promise<void>((resolve) => fake.listen(0, '127.0.0.1', resolve));
    try {
      const port = (fake.address() as net.AddressInfo).port;
      const r = await adminCall(srv, 'POST', '/agents', { name: 'health-probe', mode: 'push', url: `https://127.0.0.1:${port}`, ca_file: srv.certs.ca });
      assert.equal(r.status, 201, JSON.stringify(r.body));
      const id = (r.body.agent as { id: string }).id;
      const viewer = client();
      await viewer.login('viewer1', PW);
      const op = client();
      await op.login('op1', PW);
      // The operator's request shows the server does connect once its delivery lane exists.
      let o = await op.call('GET', `/agents/${id}/health`);
      for (let i = 0; i < 50 && o.status === 409; i++) {
        await sleep(100);
        o = await op.call('GET', `/agents/${id}/health`);
      }
      assert.equal(o.status, 502, o.text);
      assert.equal(o.body.code, 'delivery-failed');
      assert.ok(connections >= 1, 'the operator\'s health check reached the agent\'s endpoint');
      const before = connections;
      for (let i = 0; i < 5; i++) {
        const v = await viewer.call('GET', `/agents/${id}/health`);
        assert.equal(v.status, 403, v.text);
        assert.equal(v.body.code, 'permission-denied');
        assert.match(String(v.body.error), /has role viewer, this needs operator/);
      }
      await sleep(200);
      assert.equal(connections, before, 'a viewer\'s request made no connection');
      // A viewer still reads the agent itself.
      assert.equal((await viewer.call('GET', '/agents')).status, 200);
    } finally {
      await new Promise<void>((resolve) => fake.close(() => resolve()));
    }
  });

  test('an operator limited to a label reaches only those hosts: lists filtered, others "not found"', async () => {
    const mk = async (name: string, env: string): Promise<string> => {
      const r = await adminCall(srv, 'POST', '/agents', { name, mode: 'push', url: 'https://127.0.0.1:1', ca_file: srv.certs.ca });
      assert.equal(r.status, 201, JSON.stringify(r.body));
      const id = (r.body.agent as { id: string }).id;
      assert.equal((await adminCall(srv, 'POST', `/agents/${id}/labels`, { set: { env } })).status, 200);
      return id;
    };
    const prod = await mk('prod1', 'prod');
    const dev = await mk('dev1', 'dev');
    await addUser(srv, 'opprod', 'operator', { selector: { env: 'prod' } });
    const devJob = await adminCall(srv, 'POST', '/jobs', { agent_id: dev, module: 'systeminfo', action: 'get_info', expires_in: 600 });
    const devJobId = (devJob.body.job as { id: string }).id;
    const op = client();
    const login = await op.login('opprod', PW);
    assert.deepEqual((login.body.user as { selector: unknown }).selector, { env: 'prod' });
    const agents = (await op.call('GET', '/agents')).body.agents as Array<{ id: string }>;
    assert.deepEqual(agents.map((a) => a.id), [prod]);
    const other = await op.call('POST', '/jobs', { agent_id: dev, module: 'systeminfo', action: 'get_info' });
    assert.equal(other.status, 404);
    assert.match(String(other.body.error), /no such agent/);
    const mine = await op.call('POST', '/jobs', { agent_id: prod, module: 'systeminfo', action: 'get_info', expires_in: 600 });
    assert.equal(mine.status, 201, mine.text);
    assert.equal((await op.call('GET', `/jobs/${devJobId}`)).status, 404);
    assert.equal((await op.call('POST', `/jobs/${devJobId}/cancel`, {})).status, 404);
    assert.equal((await op.call('GET', `/agents/${dev}/health`)).status, 404);
    const jobs = (await op.call('GET', '/jobs')).body.jobs as Array<{ agent_id: string }>;
    assert.ok(jobs.length >= 1 && jobs.every((j) => j.agent_id === prod));
    assert.equal((await op.call('GET', `/jobs?agent_id=${dev}`)).body.jobs instanceof Array, true);
    assert.deepEqual((await op.call('GET', `/jobs?agent_id=${dev}`)).body.jobs, []);
    // The audit log shows it nothing about the other host either.
    const audit = (await op.call('GET', '/audit?limit=10000')).body.entries as Array<{ agents: string[] }>;
    assert.ok(audit.length > 0);
    assert.ok(audit.every((e) => !e.agents.includes(dev)));
    // An unlimited operator reaches both.
    const all = client();
    await all.login('op1', PW);
    assert.equal(((await all.call('GET', '/agents')).body.agents as unknown[]).length >= 2, true);
    assert.equal((await all.call('GET', `/jobs/${devJobId}`)).status, 200);
  });

  test('an admin user manages users; passwd, remove and revoke end the user\'s sessions', async () => {
    const admin = client();
    assert.equal((await admin.login('admin1', PW)).status, 200);
    const add = await admin.call('POST', '/users', { name: 'temp1', role: 'viewer' });
    assert.equal(add.status, 201, add.text);
    const generated = String(add.body.password);
    assert.equal(generated.length, 24);
    const u = client();
    assert.equal((await u.login('temp1', generated)).status, 200);
    // passwd: the old session ends, the new password works.
    assert.equal((await admin.call('POST', '/users/temp1/password', { password: 'another long password' })).status, 200);
    assert.equal((await u.call('GET', '/agents')).status, 401);
    assert.equal((await u.login('temp1', 'another long password')).status, 200);
    // revoke
    const rv = await admin.call('POST', '/users/temp1/revoke', {});
    assert.equal(rv.body.ended, 1);
    assert.equal((await u.call('GET', '/agents')).status, 401);
    // remove
    assert.equal((await u.login('temp1', 'another long password')).status, 200);
    assert.equal((await admin.call('DELETE', '/users/temp1')).status, 200);
    assert.equal((await u.call('GET', '/agents')).status, 401);
    assert.equal((await admin.call('DELETE', '/users/temp1')).status, 404);
  });

  test('user names and passwords are checked with clear errors', async () => {
    const cases: Array<[Record<string, unknown>, RegExp]> = [
      [{ name: 'Bad Name', role: 'viewer' }, /invalid user name "Bad Name": a name is 1 to 64 characters/],
      [{ name: 'admin-token', role: 'viewer' }, /reserved/],
      [{ name: 'shortpw', role: 'viewer', password: 'short' }, /password is shorter than 12 characters/],
      [{ name: 'longpw', role: 'viewer', password: 'x'.repeat(1025) }, /longer than 1024 characters/],
      [{ name: 'ctlpw', role: 'viewer', password: 'abcdefghijkl\u0001' }, /control character/],
      [{ name: 'sel', role: 'viewer', selector: { env: 'prod' } }, /role viewer takes none/],
      [{ name: 'op1', role: 'viewer' }, /a user of that name exists/],
    ];
    for (const [body, re] of cases) {
      const r = await adminCall(srv, 'POST', '/users', body);
      assert.ok(r.status === 400 || r.status === 409, JSON.stringify(r.body));
      assert.match(String(r.body.error), re);
    }
  });

  test('attack: session fixation: a session id chosen before login is never the one issued, and a known old one ends', async () => {
    const planted = 'P'.repeat(43);
    const c = client();
    const r = await c.login('viewer1', PW, { cookie: `${SESSION_COOKIE}=${planted}` });
    assert.equal(r.status, 200);
    assert.notEqual(c.cookie, planted);
    const attacker = client();
    attacker.cookie = planted;
    assert.equal((await attacker.call('GET', '/agents')).status, 401);
    // Logging in again with a live session cookie ends that session.
    const before = c.cookie!;
    await c.login('viewer1', PW, { cookie: `${SESSION_COOKIE}=${before}` });
    const old = client();
    old.cookie = before;
    assert.equal((await old.call('GET', '/agents')).status, 401);
  });

  test('attack: many sessions of one user: beyond sessions_per_user the oldest end', async () => {
    const cs = [client(), client(), client(), client()];
    for (const c of cs) assert.equal((await c.login('admin1', PW)).status, 200);
    assert.equal((await cs[0]!.call('GET', '/agents')).status, 401);
    for (const c of cs.slice(1)) assert.equal((await c.call('GET', '/agents')).status, 200);
    const users = await adminCall(srv, 'GET', '/users');
    assert.equal((users.body.users as Array<{ name: string; sessions: number }>).find((u) => u.name === 'admin1')!.sessions, 3);
  });

  test('attack: oversized login bodies are refused before hashing (413), oversized passwords with 400', async () => {
    const c = client('127.0.0.8');
    const big = await c.call('POST', '/session', JSON.stringify({ name: 'op1', password: 'x'.repeat(8000) }));
    assert.equal(big.status, 413, big.text);
    const long = await c.call('POST', '/session', { name: 'op1', password: 'x'.repeat(1025) });
    assert.equal(long.status, 400);
    const huge = await c.call('POST', '/session', JSON.stringify({ name: 'op1', password: 'x'.repeat(900_000) }));
    assert.equal(huge.status, 413);
  });

  test('throttling per user name: after 5 failures the name waits (429, Retry-After) from any address, others do not', async () => {
    await addUser(srv, 'victim', 'viewer');
    const a = client('127.0.0.2');
    for (let i = 0; i < 5; i++) assert.equal((await a.login('victim', `wrong password ${i}`)).status, 401);
    const locked = await a.login('victim', PW);
    assert.equal(locked.status, 429, locked.text);
    assert.equal(locked.body.code, 'rate-limited');
    const retry = Number(locked.headers['retry-after']);
    assert.ok(retry >= 1 && retry <= 900, String(retry));
    // Even with the right password from another address (the name is what is guessed).
    assert.equal((await client('127.0.0.3').login('victim', PW)).status, 429);
    // Another user, from another address, is not locked out by victim's failures.
    assert.equal((await client('127.0.0.3').login('viewer1', PW)).status, 200);
    // ...nor from the attacker's own address (below its per-address limit).
    assert.equal((await a.login('viewer1', PW)).status, 200);
  });

  test('throttling per address: 20 failures from one address stop its logins; another address is not affected', async () => {
    const a = client('127.0.0.4');
    for (let i = 0; i < 20; i++) assert.equal((await a.login(`guess${i}`, 'wrong password x')).status, 401);
    const r = await a.login('op1', PW);
    assert.equal(r.status, 429);
    assert.ok(Number(r.headers['retry-after']) >= 1);
    assert.equal((await client('127.0.0.5').login('op1', PW)).status, 200);
  });

  test('attack: timing: an unknown user takes as long as a wrong password (a dummy hash is checked)', async () => {
    const c = client('127.0.0.6');
    const unknown: number[] = [];
    const wrong: number[] = [];
    // Fresh names each time (the per-user throttle), below the per-address limit.
    for (let i = 0; i < 8; i++) {
      let t = performance.now();
      assert.equal((await c.login(`ghost${i}`, 'wrong password y')).status, 401);
      unknown.push(performance.now() - t);
      await addUser(srv, `real${i}`, 'viewer');
      t = performance.now();
      assert.equal((await c.login(`real${i}`, 'wrong password y')).status, 401);
      wrong.push(performance.now() - t);
    }
    const ratio = median(unknown) / median(wrong);
    console.log(`login answer: unknown user ${median(unknown).toFixed(1)} ms, wrong password ${median(wrong).toFixed(1)} ms (medians of 8)`);
    assert.ok(ratio > 0.6 && ratio < 1.6, `unknown ${median(unknown).toFixed(1)} ms, wrong ${median(wrong).toFixed(1)} ms`);
    // A hash costs real time (memory-hard parameters are in use).
    assert.ok(median(wrong) > 15, `wrong password answered in ${median(wrong).toFixed(1)} ms`);
  });

  test('attack: a login flood from one address: at most 4 of its logins are checked at once, the rest get 429 at once', async () => {
    const c = client('127.0.0.11');
    const t = performance.now();
    const rs = await Promise.all(Array.from({ length: 30 }, (_, i) => c.login(`flood${i}`, 'wrong password z')));
    const busy = rs.filter((r) => r.status === 429 && /logins from this address at once/.test(String(r.body.error)));
    assert.ok(busy.length >= 20, `${busy.length} refused: ${rs.map((r) => r.status).join()}`);
    assert.ok(rs.every((r) => r.status === 401 || r.status === 429));
    // Another address logs in meanwhile.
    assert.equal((await client('127.0.0.7').login('op1', PW)).status, 200);
    console.log(`flood of 30 from one address: ${busy.length} refused at once, all answered in ${(performance.now() - t).toFixed(0)} ms`);
  });

  test('audit: every change with actor, action, agents and result; secrets redacted; CSV cells safe for spreadsheets', async () => {
    // A change by the admin token with a secret in its parameters.
    const add = await adminCall(srv, 'POST', '/agents', { name: 'push1', mode: 'push', url: 'https://127.0.0.1:1', ca_file: srv.certs.ca, api_key: 'SUPER-SECRET-API-KEY-0123456789' });
    assert.equal(add.status, 201, JSON.stringify(add.body));
    const agentId = (add.body.agent as { id: string }).id;
    // A job by a user.
    const op = client();
    await op.login('op1', PW);
    const job = await op.call('POST', '/jobs', { agent_id: agentId, module: 'systeminfo', action: 'get_info', params: { password: 'JOB-SECRET-PW', zone: 'public' } });
    assert.equal(job.status, 201, job.text);
    // A refused change by a viewer is recorded too.
    const viewer = client();
    await viewer.login('viewer1', PW);
    assert.equal((await viewer.call('POST', '/tokens', { uses: 1 })).status, 403);
    // A login attempt with a name made to run in a spreadsheet.
    await client('127.0.0.10').login('=HYPERLINK("http://x")', 'wrong password q');
    await sleep(50);
    const j = await adminCall(srv, 'GET', '/audit?limit=10000');
    assert.equal(j.status, 200);
    const entries = j.body.entries as Array<{ actor: string; action: string; agents: string[]; params: Record<string, unknown>; result: string }>;
    const addEntry = entries.find((e) => e.action === 'agent.add' && e.params.name === 'push1')!;
    assert.equal(addEntry.actor, 'admin-token');
    assert.equal(addEntry.params.api_key, '[redacted]');
    assert.equal(addEntry.result, 'ok');
    const jobEntry = entries.find((e) => e.action === 'job.create' && e.agents[0] === agentId)!;
    assert.equal(jobEntry.actor, 'op1');
    assert.deepEqual(jobEntry.agents, [agentId]);
    assert.deepEqual((jobEntry.params.params as Record<string, unknown>).password, '[redacted]');
    assert.equal((jobEntry.params.params as Record<string, unknown>).zone, 'public');
    const refused = entries.find((e) => e.actor === 'viewer1' && e.action === 'POST /api/v1/tokens')!;
    assert.match(refused.result, /has role viewer, this needs admin/);
    assert.ok(entries.some((e) => e.action === 'user.add' && e.actor === 'admin-token'));
    assert.ok(entries.some((e) => e.action === 'session.login' && e.result === 'ok'));
    // No secret anywhere in the log, in any format; no password of a user either.
    for (const format of ['json', 'jsonl', 'csv']) {
      const r = await op.call('GET', `/audit?format=${format}&limit=10000`);
      assert.equal(r.status, 200);
      for (const secret of ['SUPER-SECRET-API-KEY', 'JOB-SECRET-PW', PW, 'wrong password']) assert.equal(r.text.includes(secret), false, `${format} holds ${secret}`);
    }
    // Filters
    const byActor = await adminCall(srv, 'GET', '/audit?actor=op1&action=job.create');
    assert.ok((byActor.body.entries as unknown[]).length >= 1);
    assert.ok((byActor.body.entries as Array<{ actor: string }>).every((e) => e.actor === 'op1'));
    const byAgent = await adminCall(srv, 'GET', `/audit?agent=${agentId}`);
    assert.deepEqual((byAgent.body.entries as Array<{ action: string }>).map((e) => e.action), ['agent.add', 'job.create']);
    assert.equal((await adminCall(srv, 'GET', '/audit?since=yesterday')).status, 400);
    const future = await adminCall(srv, 'GET', `/audit?since=${new Date(Date.now() + 3600_000).toISOString()}`);
    assert.deepEqual(future.body.entries, []);
    // CSV: quoted cells, formulas defused.
    const csv = await op.call('GET', '/audit?format=csv&limit=10000');
    assert.match(String(csv.headers['content-type']), /^text\/csv/);
    assert.ok(csv.text.includes(`"'=HYPERLINK(""http://x"")"`), csv.text.slice(-500));
    assert.equal(/(^|,)"?=HYPERLINK/m.test(csv.text), false);
    const jsonl = await op.call('GET', '/audit?format=jsonl&limit=5');
    assert.equal(jsonl.text.trim().split('\n').length, 5);
    for (const line of jsonl.text.trim().split('\n')) assert.ok(typeof (JSON.parse(line) as { action: string }).action === 'string');
  });

  test('attack: an events stream ends with its session: logout, revoke, password change and user removal close it at once', async () => {
    await addUser(srv, 'sse1', 'viewer');
    const cases: Array<[string, (c: Client) => Promise<Reply>]> = [
      ['logout', (c) => c.call('DELETE', '/session')],
      ['revoke', () => adminCall(srv, 'POST', '/users/sse1/revoke', {}) as Promise<Reply>],
      ['password change', () => adminCall(srv, 'POST', '/users/sse1/password', { password: PW }) as Promise<Reply>],
      ['user removal', () => adminCall(srv, 'DELETE', '/users/sse1') as Promise<Reply>],
    ];
    for (const [what, end] of cases) {
      const c = client();
      assert.equal((await c.login('sse1', PW)).status, 200);
      const other = client();
      assert.equal((await other.login('admin1', PW)).status, 200);
      const stream = await openStream(c);
      const bystander = await openStream(other);
      assert.equal(await stream.closed(200), false, `${what}: the stream is open before`);
      const r = await end(c);
      assert.equal(r.status, 200, `${what}: ${JSON.stringify(r.body)}`);
      assert.equal(await stream.closed(3000), true, `${what}: the stream of the ended session is still open`);
      assert.equal(await bystander.closed(200), false, `${what}: another user's stream was closed`);
      bystander.destroy();
    }
  });

  test('CLI: user add (stdin and generated), list, passwd, remove; audit --format csv', async () => {
    const add = await cli(srv, ['user', 'add', 'cli1', '--role', 'operator', '--label', 'env=prod', '--password-stdin'], 'a password from stdin\n');
    assert.equal(add.code, 0, add.stderr);
    assert.match(add.stdout, /user cli1 added: operator, limited to env=prod/);
    assert.equal((await client().login('cli1', 'a password from stdin')).status, 200);
    const gen = await cli(srv, ['user', 'add', 'cli2', '--role', 'viewer']);
    assert.equal(gen.code, 0, gen.stderr);
    const pw = gen.stdout.trim().split('\n').at(-1)!;
    assert.equal((await client().login('cli2', pw)).status, 200);
    const list = await cli(srv, ['user', 'list']);
    assert.match(list.stdout, /cli1\s+operator\s+env=prod/);
    const short = await cli(srv, ['user', 'passwd', 'cli2', '--password-stdin'], 'short\n');
    assert.equal(short.code, 1);
    assert.match(short.stderr, /cannot set password of user "cli2": the password is shorter than 12 characters/);
    const bad = await cli(srv, ['user', 'add', 'x', '--role', 'root']);
    assert.match(bad.stderr, /cannot use --role "root": expected admin, operator or viewer/);
    assert.equal((await cli(srv, ['user', 'passwd', 'cli2', '--password-stdin'], 'the new password!\n')).code, 0);
    assert.equal((await client().login('cli2', 'the new password!')).status, 200);
    assert.equal((await cli(srv, ['user', 'remove', 'cli2'])).code, 0);
    const gone = await cli(srv, ['user', 'remove', 'cli2']);
    assert.match(gone.stderr, /cannot remove user "cli2": no such user/);
    const audit = await cli(srv, ['audit', '--format', 'csv', '--since', '1h', '--actor', 'admin-token']);
    assert.equal(audit.code, 0, audit.stderr);
    assert.match(audit.stdout, /^id,at,actor,actor_kind,action,agents,params,result,ip\r\n/);
    assert.match(audit.stdout, /"user.remove"/);
    assert.equal(audit.stdout.includes('the new password!'), false);
    const table = await cli(srv, ['audit', '--action', 'user.add']);
    assert.match(table.stdout, /admin-token\s+user\.add/);
  });
});

describe('operators: session lifetimes, the hashing queue', () => {
  let srv: TestServer;
  let c: Client;
  before(async () => {
    srv = await startServer({ config: { session_idle_timeout: 2, session_max_age: 4, login_queue: 4 } });
    await addUser(srv, 'op1', 'operator');
  });
  after(async () => {
    await c?.close();
    await srv.stop();
    srv.cleanup();
  });

  test('a session idle longer than session_idle_timeout is refused', async () => {
    c = new Client(srv);
    await c.login('op1', PW);
    assert.match(c.setCookie!, /Max-Age=4$/);
    await sleep(2200);
    const r = await c.call('GET', '/agents');
    assert.equal(r.status, 401);
    assert.match(String(r.body.error), /the session ended, log in again/);
  });

  test('attack: a login flood from many addresses: 2 hashes run at once, login_queue wait, the rest get 429 at once', async () => {
    const cs = Array.from({ length: 10 }, (_, i) => new Client(srv, `127.0.2.${i + 1}`));
    try {
      const rs = await Promise.all(Array.from({ length: 30 }, (_, i) => cs[i % 10]!.login(`flood${i}`, 'wrong password z')));
      const busy = rs.filter((r) => r.status === 429 && /too many logins at once/.test(String(r.body.error)));
      assert.ok(busy.length >= 10, `${busy.length} refused as busy: ${rs.map((r) => r.status).join()}`);
      assert.ok(rs.every((r) => r.status === 401 || r.status === 429));
      assert.equal(rs.filter((r) => r.status === 429).every((r) => r.headers['retry-after'] === '1'), true);
    } finally {
      await Promise.all(cs.map((x) => x.close()));
    }
  });

  test('attack: an open events stream is not use of its session: the idle timeout still logs the console out and ends the stream', async () => {
    // An unattended console keeps its stream open; were that counted as use, the session would live
    // to session_max_age, and a walk-up to an unlocked screen would find it logged in.
    const s = new Client(srv);
    try {
      assert.equal((await s.login('op1', PW)).status, 200);
      const t0 = Date.now();
      const stream = await openStream(s);
      // The state timer (5 s) closes streams whose session ended by time.
      assert.equal(await stream.closed(2000 + 5000 + 3000), true, 'the stream outlived its idle session');
      assert.ok(Date.now() - t0 >= 1900, `the stream ended after ${Date.now() - t0} ms, before session_idle_timeout`);
      const r = await s.call('GET', '/agents');
      assert.equal(r.status, 401, `the console with only its stream open stayed logged in: ${r.text}`);
    } finally {
      await s.close();
    }
  });

  test('a session in use ends at session_max_age all the same', async () => {
    const t0 = Date.now(); // the session is younger than this
    await c.login('op1', PW);
    const t1 = Date.now(); // and older than this
    // Used every 300 ms, never idle for its 2 s: answered while well short of its 4 s age (a
    // request may take a second to arrive on a loaded machine)...
    while (Date.now() - t0 < 2500) {
      assert.equal((await c.call('GET', '/agents')).status, 200);
      await sleep(300);
    }
    // ...still used around the 4 s mark, whichever way those go, and refused once past it.
    while (Date.now() - t1 < 4200) {
      await c.call('GET', '/agents');
      await sleep(300);
    }
    assert.equal((await c.call('GET', '/agents')).status, 401);
  });
});

describe('operators: the audit export, streamed from the database', () => {
  const SEEDED = 12_000;
  let srv: TestServer;
  let admin: Agent;
  before(async () => {
    srv = await startServer();
    // Entries of about 8 KiB (the largest params stored), written while the server runs.
    seedAudit(path.join(srv.dir, 'server.db'), SEEDED, 8000);
    admin = new Agent({ connect: { ca: readFileSync(srv.certs.ca) } });
  });
  after(async () => {
    await admin?.close();
    await srv.stop();
    srv.cleanup();
  });

  const get = (p: string) => request(`${srv.url}/api/v1${p}`, { dispatcher: admin, headers: { authorization: `Bearer ${srv.adminToken}` } });
  /** The newest `limit` entries as the server's store reads them, and the whole-list export of them. */
  const stored = (f: Omit<AuditFilter, 'limit'>, limit: number): AuditRecord[] => {
    const db = new Database(path.join(srv.dir, 'server.db'), { readonly: true });
    try {
      return new SqliteAuthStore(db).listAudit({ ...f, limit });
    } finally {
      db.close();
    }
  };
  const kib = (field: string): number => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${srv.proc.pid!}/status`, 'utf8'))![1]);

  test('attack: an export of 10 000 entries of 8 KiB is complete, in order, byte for byte the whole-list form, while the server holds a bounded part of it', async () => {
    const records = stored({}, 10_000);
    assert.equal(records.length, 10_000);
    assert.equal(records[0]!.id, SEEDED - 10_000 + 1);
    // The server's peak RSS from here on (a fresh server: no export ran yet).
    const before = kib('VmRSS');
    writeFileSync(`/proc/${srv.proc.pid!}/clear_refs`, '5');
    const res = await get('/audit?format=csv&limit=10000');
    assert.equal(res.statusCode, 200);
    assert.match(String(res.headers['content-type']), /^text\/csv/);
    const csv = await res.body.text();
    const grew = (kib('VmHWM') - before) / 1024;
    console.log(`CSV export of 10 000 entries: ${(csv.length / 2 ** 20).toFixed(1)} MiB, server peak RSS ${grew.toFixed(1)} MiB above before`);
    // Built whole, the export took 470 to 670 MiB above before (the records, their text, the reply).
    assert.ok(grew < 128, `the server's RSS grew by ${grew.toFixed(1)} MiB during an export of ${(csv.length / 2 ** 20).toFixed(1)} MiB`);
    assert.equal(csv, auditCsv(records));
    const rows = csv.split('\r\n');
    assert.equal(rows.length, 10_002);
    assert.equal(rows[1]!.split(',')[0], `"${SEEDED - 10_000 + 1}"`);
    assert.equal(rows[10_000]!.split(',')[0], `"${SEEDED}"`);

    const jsonl = await (await get('/audit?format=jsonl&limit=10000')).body.text();
    const lines = jsonl.split('\n');
    assert.equal(lines.pop(), '');
    assert.deepEqual(lines.map((l) => (JSON.parse(l) as { id: number }).id), records.map((r) => r.id));
    assert.equal(jsonl, records.map((r) => `${JSON.stringify(auditView(r))}\n`).join(''));

    const json = await get('/audit?limit=10000');
    assert.match(String(json.headers['content-type']), /^application\/json; charset=utf-8/);
    assert.equal(await json.body.text(), JSON.stringify({ success: true, entries: records.map(auditView) }));

    // Filters keep to the newest matching entries.
    const mine = stored({ actor: 'user3', action: 'job.create' }, 500);
    const filtered = JSON.parse(await (await get('/audit?actor=user3&action=job.create&limit=500')).body.text()) as { entries: Array<{ id: number; actor: string }> };
    assert.equal(filtered.entries.length, 500);
    assert.deepEqual(filtered.entries.map((e) => e.id), mine.map((r) => r.id));
    assert.equal((await (await get('/audit?format=jsonl&since=2030-01-01')).body.text()), '');
  });

  test('an export its client cuts off stops being read; the server writes and answers at once after', async () => {
    const res = await get('/audit?format=csv&limit=10000');
    assert.equal(res.statusCode, 200);
    for await (const chunk of res.body) {
      assert.ok((chunk as Buffer).length > 0);
      break; // leaving the loop destroys the body: the connection is cut mid-export
    }
    const t = performance.now();
    const add = await adminCall(srv, 'POST', '/users', { name: 'after-cut', role: 'viewer', password: PW });
    assert.equal(add.status, 201, JSON.stringify(add.body));
    const last = await adminCall(srv, 'GET', '/audit?limit=1');
    assert.equal((last.body.entries as Array<{ action: string }>)[0]!.action, 'user.add');
    assert.ok(performance.now() - t < 5000);
    await sleep(200);
    assert.doesNotMatch(srv.log(), /"level":50/, 'the cut export was logged as an error');
  });
});
