/**
 * tuxsec-server as a real process on 127.0.0.1 over TLS with certificates made by the test:
 * enrollment, check-in auth, long-poll wake-up, durable results, SIGKILL + restart, pending
 * machine ids, the operator CLI end to end, client certificates and graceful shutdown.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { makeCerts } from '../helpers/certs.ts';
import { adminCall, SimAgent, startServer, type TestServer } from '../helpers/server.ts';

async function submit(srv: TestServer, agentId: string, extra: Record<string, unknown> = {}): Promise<string> {
  const r = await adminCall(srv, 'POST', '/jobs', { agent_id: agentId, module: 'systeminfo', action: 'get_info', params: {}, ...extra });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  return (r.body.job as { id: string }).id;
}

async function token(srv: TestServer, body: Record<string, unknown> = {}): Promise<string> {
  const r = await adminCall(srv, 'POST', '/tokens', body);
  assert.equal(r.status, 201);
  return String(r.body.token);
}

async function getJob(srv: TestServer, id: string, wait = 0): Promise<Record<string, unknown>> {
  const r = await adminCall(srv, 'GET', `/jobs/${id}${wait ? `?wait=${wait}` : ''}`);
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body.job as Record<string, unknown>;
}

describe('tuxsec-server process', () => {
  let srv: TestServer;
  let ca: Buffer;
  const agents: SimAgent[] = [];
  const sim = (): SimAgent => {
    const a = new SimAgent(srv.url, ca);
    agents.push(a);
    return a;
  };
  /** A registered, active agent. */
  const enrolled = async (extra: Record<string, unknown> = {}): Promise<SimAgent> => {
    const a = sim();
    const r = await a.register({ enrollment_token: await token(srv), ...extra });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return a;
  };

  before(async () => {
    srv = await startServer();
    ca = readFileSync(srv.certs.ca);
  });
  after(async () => {
    await Promise.all(agents.map((a) => a.close()));
    if (srv.proc.exitCode === null && srv.proc.signalCode === null) await srv.stop();
    srv.cleanup();
  });

  test('register accepts a good token and refuses a wrong, an expired and a reused single-use token', async () => {
    const good = await token(srv);
    const a = sim();
    const ok = await a.register({ enrollment_token: good });
    assert.equal(ok.status, 200);
    assert.equal(ok.body.success, true);
    assert.match(String(ok.body.agent_id), /^[0-9a-f-]{36}$/);
    assert.ok(String(ok.body.api_key).length >= 43);
    assert.equal(ok.body.checkin_interval, 30);

    const reused = await sim().register({ enrollment_token: good });
    assert.equal(reused.status, 401);
    assert.deepEqual([reused.body.success, reused.body.code], [false, 'invalid-token']);

    const wrong = await sim().register({ enrollment_token: 'not-a-token' });
    assert.equal(wrong.status, 401);
    assert.equal(wrong.body.code, 'invalid-token');

    const missing = await sim().register({});
    assert.equal(missing.status, 401);
    assert.equal(missing.body.code, 'invalid-token');

    const short = await token(srv, { ttl: 1 });
    await sleep(1100);
    const expired = await sim().register({ enrollment_token: short });
    assert.equal(expired.status, 401);
    assert.match(String(expired.body.error), /expired/);

    const multi = await token(srv, { uses: 2 });
    assert.equal((await sim().register({ enrollment_token: multi, machine_id: 'multi-1' })).status, 200);
    assert.equal((await sim().register({ enrollment_token: multi, machine_id: 'multi-2' })).status, 200);
    assert.equal((await sim().register({ enrollment_token: multi, machine_id: 'multi-3' })).status, 401);
    assert.doesNotMatch(srv.log(), new RegExp(good), 'a token reached the log');
    assert.doesNotMatch(srv.log(), new RegExp(String(ok.body.api_key).replace(/[-]/g, '\\-')), 'an api_key reached the log');
  });

  test('checkin answers 400 without agent_id or api_key and 401 for bad credentials', async () => {
    const a = await enrolled();
    const noKey = await a.post('/agents/api/checkin/', { agent_id: a.agentId, status: 'online' });
    assert.equal(noKey.status, 400);
    const noId = await a.post('/agents/api/checkin/', { api_key: a.apiKey, status: 'online' });
    assert.equal(noId.status, 400);
    assert.equal(noId.body.success, false);
    const wrongKey = await a.post('/agents/api/checkin/', { agent_id: a.agentId, api_key: `${a.apiKey}x` });
    assert.equal(wrongKey.status, 401);
    assert.equal(wrongKey.body.code, 'unauthorized');
    const unknown = await a.post('/agents/api/checkin/', { agent_id: '00000000-0000-0000-0000-000000000000', api_key: a.apiKey });
    assert.equal(unknown.status, 401);
    const headerMismatch = await a.post('/agents/api/checkin/', { agent_id: a.agentId, api_key: a.apiKey }, { 'x-api-key': 'other' });
    assert.equal(headerMismatch.status, 401);
    const headerOnly = await a.post('/agents/api/checkin/', { agent_id: a.agentId }, { 'x-api-key': a.apiKey });
    assert.equal(headerOnly.status, 200);
    const notJson = await a.post('/agents/api/checkin/', '{"agent_id": ');
    assert.equal(notJson.status, 400);
    assert.equal(notJson.body.code, 'invalid-json');
    const ok = await a.checkin();
    assert.equal(ok.status, 200);
    assert.deepEqual(Object.keys(ok.body).sort(), ['acknowledged', 'commands', 'server_time', 'success', 'sync_interval']);
    assert.deepEqual(ok.body.commands, []);
    const big = await a.post('/agents/api/checkin/', { agent_id: a.agentId, api_key: a.apiKey, pad: 'x'.repeat(1024 * 1024) });
    assert.equal(big.status, 413);
    assert.equal(big.body.code, 'message-too-large');
  });

  test('checkin long-poll wakes within milliseconds when a job is submitted', async () => {
    const a = await enrolled();
    const lat: number[] = [];
    const wake: number[] = [];
    for (let i = 0; i < 5; i++) {
      const poll = a.checkin({ wait: 20, features: ['long-poll', 'results', 'redelivery'] });
      await sleep(500); // the check-in is held at the server now (its connection is warm)
      const t0 = performance.now();
      const id = await submit(srv, a.agentId, { params: { i } });
      const r = await poll;
      lat.push(performance.now() - t0);
      assert.equal(r.status, 200);
      const cmds = r.body.commands as Array<Record<string, unknown>>;
      assert.deepEqual(cmds.map((c) => [c.id, c.module, c.action, c.params]), [[id, 'systeminfo', 'get_info', { i }]]);
      assert.equal(typeof cmds[0]!.expires_at, 'string');
      const job = await getJob(srv, id);
      assert.equal(job.status, 'sent');
      wake.push(Date.parse(String(job.sent_at)) - Date.parse(String(job.created_at)));
      await a.results([{ command_id: id, success: true, output: { i } }]);
    }
    // The wake-up itself, on the server's clock: the job is handed out as it is stored (a queue
    // looked at every second would show up in the median). Seen from here it adds a fresh TLS
    // connection for the submit and a loaded machine's scheduling (on 2 busy cores: 239 ms once,
    // and 187 ms on the server's clock), so each is only bounded well below the 20 s hold.
    console.log(`long-poll wake-up: ${wake.join(', ')} ms on the server; ${lat.map((x) => x.toFixed(0)).join(', ')} ms seen from here with the submit`);
    assert.ok([...wake].sort((x, y) => x - y)[2]! < 250, `job handed out ${wake.join(', ')} ms after it was stored`);
    assert.ok(Math.max(...lat) < 5000, `long-poll answered after ${lat.map((x) => x.toFixed(0)).join(', ')} ms`);
    // Without a job, the long-poll is held about `wait` seconds.
    const t0 = performance.now();
    const idle = await a.checkin({ wait: 1 });
    assert.ok(performance.now() - t0 >= 950);
    assert.deepEqual(idle.body.commands, []);
  });

  test('results are acknowledged, stored once, and survive SIGKILL; sent jobs are redelivered after a restart', async () => {
    const a = await enrolled();
    const plain = await enrolled();
    const feats = { features: ['long-poll', 'results', 'redelivery'] };
    const j1 = await submit(srv, a.agentId);
    const j2 = await submit(srv, a.agentId);
    const j3 = await submit(srv, a.agentId);
    const got = await a.checkin(feats);
    assert.deepEqual((got.body.commands as Array<{ id: string }>).map((c) => c.id), [j1, j2, j3]);

    // j1 through the results endpoint, j2 in the next check-in; j3 stays in flight.
    const r1 = await a.results([
      { command_id: j1, success: true, output: { ok: 1 }, status: 'completed', duration_ms: 5 },
      { command_id: 'no-such-job', success: true, output: {} },
    ]);
    assert.deepEqual(r1.body, { success: true, acknowledged: [j1, 'no-such-job'] });
    const r2 = await a.checkin({ ...feats, wait: 5, command_results: [{ command_id: j2, success: false, error: 'cannot frobnicate: "x"', code: 'action-failed' }] });
    assert.deepEqual(r2.body.acknowledged, [j2]);
    assert.deepEqual(r2.body.commands, [], 'a sent job was redelivered at once');
    // A repeated result is acknowledged and ignored.
    const r3 = await a.results([{ command_id: j1, success: false, error: 'late duplicate' }]);
    assert.deepEqual(r3.body.acknowledged, [j1]);
    // Another agent cannot write our result (acknowledged so it stops resending, not stored).
    const jp = await submit(srv, plain.agentId);
    const r4 = await plain.results([{ command_id: j3, success: true, output: { stolen: true } }]);
    assert.deepEqual(r4.body.acknowledged, [j3]);
    // An original agent (no features) gets its job once.
    assert.deepEqual((await plain.checkin().then((r) => r.body.commands as Array<{ id: string }>)).map((c) => c.id), [jp]);
    const j4 = await submit(srv, a.agentId);

    await srv.kill();
    srv = await startServer({ dir: srv.dir, certs: srv.certs, config: { listen: `127.0.0.1:${srv.port}` } });

    const s1 = await getJob(srv, j1);
    assert.equal(s1.status, 'completed');
    assert.deepEqual(s1.result, { success: true, status: 'completed', output: { ok: 1 }, duration_ms: 5 });
    const s2 = await getJob(srv, j2);
    assert.equal(s2.status, 'failed');
    assert.deepEqual(s2.result, { success: false, status: 'failed', error: 'cannot frobnicate: "x"', code: 'action-failed' });
    assert.equal((await getJob(srv, j3)).status, 'sent');
    assert.equal((await getJob(srv, j4)).status, 'queued');

    // After the restart: the queued job and the sent-without-result one, not the finished ones.
    const again = await a.checkin({ ...feats, wait: 5 });
    assert.deepEqual((again.body.commands as Array<{ id: string }>).map((c) => c.id).sort(), [j3, j4].sort());
    assert.equal((await getJob(srv, j3)).deliveries, 2);
    // Just handed out: not again on the next long-poll.
    const quiet = await a.checkin({ ...feats, wait: 1 });
    assert.deepEqual(quiet.body.commands, []);
    // The original agent is not sent its job twice.
    assert.deepEqual((await plain.checkin()).body.commands, []);
    const fin = await a.results([
      { command_id: j3, status: 'interrupted', success: false, error: 'agent restarted while running', code: 'interrupted' },
      { command_id: j4, success: true, output: {} },
    ]);
    assert.deepEqual(fin.body.acknowledged, [j3, j4]);
    assert.equal((await getJob(srv, j3)).status, 'interrupted');
    assert.equal((await getJob(srv, j4)).status, 'completed');
  });

  test('a second agent with an enrolled machine_id is held pending until an operator decides', async () => {
    const first = await enrolled({ machine_id: 'machine-dup' });
    const second = sim();
    const r = await second.register({ enrollment_token: await token(srv), machine_id: 'machine-dup', hostname: 'clone' });
    assert.equal(r.status, 202);
    assert.equal(r.body.code, 'pending-approval');
    assert.equal(r.body.success, false);
    assert.notEqual(second.agentId, first.agentId);
    const held = await second.checkin();
    assert.equal(held.status, 403);
    assert.equal(held.body.code, 'pending-approval');
    const listed = JSON.parse((await srv.cli(['agents', 'list', '--json'])).stdout) as { agents: Array<{ id: string; status: string }> };
    assert.equal(listed.agents.find((x) => x.id === second.agentId)?.status, 'pending');
    assert.equal(listed.agents.find((x) => x.id === first.agentId)?.status, 'active');

    const ap = await srv.cli(['agents', 'approve', second.agentId]);
    assert.equal(ap.code, 0, ap.stderr);
    assert.match(ap.stdout, /active/);
    assert.equal((await second.checkin()).status, 200);
    assert.equal((await first.checkin()).status, 200);

    const third = sim();
    assert.equal((await third.register({ enrollment_token: await token(srv), machine_id: 'machine-dup' })).status, 202);
    const rj = await srv.cli(['agents', 'reject', third.agentId, '--json']);
    assert.equal(rj.code, 0, rj.stderr);
    assert.equal((JSON.parse(rj.stdout) as { agent: { status: string } }).agent.status, 'rejected');
    const refused = await third.checkin();
    assert.equal(refused.status, 403);
    assert.equal(refused.body.code, 'agent-rejected');
    const job = await adminCall(srv, 'POST', '/jobs', { agent_id: third.agentId, module: 'systeminfo', action: 'get_info' });
    assert.equal(job.status, 409);
  });

  test('operator CLI submits a job, waits for its result from a simulated agent, and lists it', async () => {
    const tok = await srv.cli(['token', 'create', '--uses', '1', '--ttl', '600', '--json']);
    assert.equal(tok.code, 0, tok.stderr);
    const a = sim();
    assert.equal((await a.register({ enrollment_token: (JSON.parse(tok.stdout) as { token: string }).token, hostname: 'cli-host' })).status, 200);

    let stop = false;
    const ran: string[] = [];
    const loop = (async () => {
      while (!stop) {
        const r = await a.checkin({ wait: 2, features: ['long-poll', 'results', 'redelivery'] });
        for (const c of r.body.commands as Array<{ id: string; module: string; action: string; params: Record<string, unknown> }>) {
          ran.push(c.id);
          await a.results([{ command_id: c.id, success: true, output: { echo: c.params, module: c.module, action: c.action } }]);
        }
      }
    })();
    try {
      const sub = await srv.cli(['jobs', 'submit', a.agentId, 'systeminfo', 'get_hostname', '--param', 'port=80', '--param', 'zone=public', '--json-params', '{"permanent": true}', '--wait', '20', '--json']);
      assert.equal(sub.code, 0, sub.stderr);
      const job = (JSON.parse(sub.stdout) as { job: Record<string, unknown> }).job;
      assert.equal(job.status, 'completed');
      assert.deepEqual(job.result, { success: true, status: 'completed', output: { echo: { permanent: true, port: 80, zone: 'public' }, module: 'systeminfo', action: 'get_hostname' } });
      assert.deepEqual(ran, [job.id]);

      const human = await srv.cli(['jobs', 'get', String(job.id)]);
      assert.equal(human.code, 0, human.stderr);
      assert.match(human.stdout, new RegExp(`job ${String(job.id)}: completed`));
      const list = await srv.cli(['jobs', 'list', '--agent', a.agentId, '--status', 'completed', '--json']);
      assert.deepEqual((JSON.parse(list.stdout) as { jobs: Array<{ id: string }> }).jobs.map((j) => j.id), [job.id]);
      const agentsHuman = await srv.cli(['agents', 'list']);
      assert.match(agentsHuman.stdout, /cli-host/);
      const bad = await srv.cli(['jobs', 'submit', a.agentId, 'Bad-Module', 'x']);
      assert.equal(bad.code, 1);
      assert.match(bad.stderr, /invalid module name "Bad-Module"/);
    } finally {
      stop = true;
      await loop;
    }
    // An agent that never checks in: the job waits, then expires.
    const off = await enrolled();
    const sub = await srv.cli(['jobs', 'submit', off.agentId, 'systeminfo', 'get_info', '--expires', '1', '--wait', '10', '--json']);
    assert.equal(sub.code, 1);
    assert.equal((JSON.parse(sub.stdout) as { job: { status: string } }).job.status, 'expired');
    const wrongAdmin = await adminCall({ ...srv, adminToken: 'wrong-admin-token-000000' }, 'GET', '/agents');
    assert.equal(wrongAdmin.status, 401);
  });

  test('operator CLI refuses a server certificate from an unknown CA', async () => {
    const other = await makeCerts(path.join(srv.dir, 'other-ca'), { caName: 'someone-else' });
    const r = await srv.cli(['agents', 'list', '--ca', other.ca]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^Error: .*(certificate|self.signed)/i);
    assert.equal(r.stdout, '');
  });

  test('SIGTERM answers held long-polls and exits 0', async () => {
    const a = await enrolled();
    const held = a.checkin({ wait: 25 });
    await sleep(200);
    const t0 = performance.now();
    const code = await srv.stop();
    const r = await held;
    assert.equal(code, 0);
    assert.equal(r.status, 200);
    assert.deepEqual(r.body.commands, []);
    assert.ok(performance.now() - t0 < 3000);
  });
});

describe('tuxsec-server with client_ca', () => {
  test('refuses a client without a certificate and serves one with a certificate from the CA', async () => {
    const srv = await startServer({ config: { require_enrollment_token: false } });
    const ca = readFileSync(srv.certs.ca);
    const srv2 = srv;
    await srv.stop();
    const strict = await startServer({
      dir: srv2.dir,
      certs: srv2.certs,
      config: { client_ca: srv2.certs.ca, require_enrollment_token: false, client_cert: srv2.certs.clientCert, client_key: srv2.certs.clientKey },
    });
    const anon = new SimAgent(strict.url, ca);
    const withCert = new SimAgent(strict.url, ca, { cert: readFileSync(srv2.certs.clientCert), key: readFileSync(srv2.certs.clientKey) });
    try {
      await assert.rejects(anon.register());
      const r = await withCert.register({ hostname: 'mtls' });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      // The operator CLI presents config client_cert/client_key.
      const list = await strict.cli(['agents', 'list', '--json']);
      assert.equal(list.code, 0, list.stderr);
      assert.equal((JSON.parse(list.stdout) as { agents: unknown[] }).agents.length, 1);
    } finally {
      await anon.close();
      await withCert.close();
      await strict.stop();
      srv.cleanup();
    }
  });
});
