/**
 * tuxsec-server delivering jobs to a push-mode agent itself (issue 9 item 5): the real server
 * process, the real agent as the tuxsec user in front of the real rootd, certificates the test
 * makes. rootd's audit log says what ran, and how many times.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import Database from 'better-sqlite3';
import { certsIn, startAgent, until } from '../agent/harness.ts';
import { API_KEY, startPushAgent, type PushAgent } from '../agent/push-harness.ts';
import { adminCall, SimAgent, startServer, type TestServer } from '../helpers/server.ts';

interface Job {
  id: string;
  status: string;
  deliveries: number;
  result: Record<string, unknown> | null;
}

/** What the agent reports for a job in pull mode (ResultEnvelope without command_id). */
const PULL_RESULT_KEYS = ['duration_ms', 'finished_at', 'output', 'started_at', 'status', 'success'];

let h: PushAgent;
let srv: TestServer;
let keyFile: string;

async function addPush(s: TestServer, name: string, extra: string[] = []): Promise<string> {
  const r = await s.cli(['agents', 'add', name, '--mode', 'push', '--url', `https://127.0.0.1:${h.port}`, '--agent-ca', h.certs.ca, '--json', ...extra]);
  assert.equal(r.code, 0, r.stderr);
  return (JSON.parse(r.stdout) as { agent: { id: string } }).agent.id;
}

async function submit(s: TestServer, agentId: string, action: string, wait = 90): Promise<{ code: number | null; job: Job; stderr: string }> {
  const r = await s.cli(['jobs', 'submit', agentId, 'systeminfo', action, '--wait', String(wait), '--json']);
  return { code: r.code, job: (JSON.parse(r.stdout) as { job: Job }).job, stderr: r.stderr };
}

async function getJob(s: TestServer, id: string): Promise<Job> {
  const r = await adminCall(s, 'GET', `/jobs/${id}`);
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body.job as Job;
}

before(async () => {
  h = await startPushAgent();
  keyFile = path.join(h.dir, 'push-api-key');
  fs.writeFileSync(keyFile, `${API_KEY}\n`, { mode: 0o600 });
  srv = await startServer({
    config: { agent_client_cert: h.certs.clientCert, agent_client_key: h.certs.clientKey, delivery_retry_max: 2, log_level: 'debug' },
  });
});

after(async () => {
  if (srv && srv.proc.exitCode === null && srv.proc.signalCode === null) await srv.stop();
  srv?.cleanup();
  // The agent restarted by a test is not the one the harness's stop() knows.
  await h?.agent.kill();
  await h?.stop();
});

describe('push delivery', () => {
  let agentId: string;

  test('agents add --mode push stores the agent and never shows the key it was given', async () => {
    agentId = await addPush(srv, 'push-one', ['--api-key-file', keyFile]);
    const list = await srv.cli(['agents', 'list']);
    assert.equal(list.code, 0, list.stderr);
    assert.match(list.stdout, new RegExp(`${agentId}.*push`));
    const json = await srv.cli(['agents', 'list', '--json']);
    assert.ok(!json.stdout.includes(API_KEY), 'the api_key is in the agent list');
    assert.ok(!srv.log().includes(API_KEY), 'the api_key is in the server log');
    const mode = (fs.statSync(path.join(srv.dir, 'server.db')).mode & 0o777).toString(8);
    assert.equal(mode, '600', 'the database holding the key is not the server\'s own file');
  });

  test('jobs submit to a push agent --wait completes with the same result shape as a pull job, run once', async () => {
    const r = await submit(srv, agentId, 'get_hostname');
    assert.equal(r.code, 0, `${r.stderr} ${JSON.stringify(r.job)}`);
    assert.equal(r.job.status, 'completed');
    assert.equal(r.job.deliveries, 1);
    assert.deepEqual(Object.keys(r.job.result!).sort(), PULL_RESULT_KEYS);
    assert.equal(r.job.result!.success, true);
    assert.equal(typeof (r.job.result!.output as { hostname?: unknown }).hostname, 'string');
    assert.equal(h.executions('get_hostname').length, 1);
  });

  test('agents get --health shows the push agent\'s /health', async () => {
    const r = await srv.cli(['agents', 'get', agentId, '--health', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const health = (JSON.parse(r.stdout) as { health: { status: string; rootd_connected: boolean } }).health;
    assert.equal(health.status, 'healthy');
    assert.equal(health.rootd_connected, true);
  });

  test('a push agent\'s key does not let it check in by pull (its jobs are the delivery worker\'s)', async () => {
    const sim = new SimAgent(srv.url, fs.readFileSync(srv.certs.ca));
    try {
      sim.agentId = agentId;
      sim.apiKey = API_KEY;
      const r = await sim.checkin();
      assert.equal(r.status, 409, JSON.stringify(r.body));
      assert.equal(r.body.code, 'conflict');
    } finally {
      await sim.close();
    }
  });

  test('the agent down then up: the job stays sent, is retried, and is delivered once the agent is back', async () => {
    await h.agent.kill();
    const before = h.executions('get_uptime').length;
    const sub = await adminCall(srv, 'POST', '/jobs', { agent_id: agentId, module: 'systeminfo', action: 'get_uptime', params: {} });
    assert.equal(sub.status, 201);
    const id = (sub.body.job as Job).id;
    await until('two failed attempts in the log', () => (srv.log().match(new RegExp(`"job":"${id}".*trying again`, 'g')) ?? []).length >= 2, 60_000, 100);
    assert.equal((await getJob(srv, id)).status, 'sent');
    h.agent = startAgent(h.env);
    const job = await until('the job completed', async () => {
      const j = await getJob(srv, id);
      return j.status === 'completed' ? j : null;
    }, 90_000, 200);
    assert.ok(job.deliveries >= 2, `deliveries ${job.deliveries}`);
    assert.equal(h.executions('get_uptime').length, before + 1);
  });

  test('a job redelivered after its answer was lost is answered from the agent\'s journal, not run again', async () => {
    const r = await submit(srv, agentId, 'get_os_info');
    assert.equal(r.job.status, 'completed');
    const runs = h.executions('get_os_info').length;
    await srv.stop();
    // The lost answer, made by hand: the server stopped after the agent ran the job but before
    // the result was stored, so the job is `sent` without a result.
    const db = new Database(path.join(srv.dir, 'server.db'));
    db.prepare(`UPDATE jobs SET status = 'sent', result = NULL, finished_at = NULL WHERE id = ?`).run(r.job.id);
    db.close();
    srv = await startServer({ dir: srv.dir, certs: srv.certs, config: { agent_client_cert: h.certs.clientCert, agent_client_key: h.certs.clientKey, delivery_retry_max: 2 } });
    const job = await until('the job completed again', async () => {
      const j = await getJob(srv, r.job.id);
      return j.status === 'completed' ? j : null;
    }, 60_000, 200);
    assert.equal(job.deliveries, 2);
    assert.deepEqual(job.result!.output, r.job.result!.output);
    assert.equal(h.executions('get_os_info').length, runs, 'the redelivered job ran again');
  });

  test('a wrong api_key: the job fails at once with unauthorized, no retry loop, nothing runs', async () => {
    const wrong = path.join(h.dir, 'wrong-key');
    fs.writeFileSync(wrong, 'not-the-agent-key-0123456789abcdef\n', { mode: 0o600 });
    const id = await addPush(srv, 'push-wrong-key', ['--api-key-file', wrong]);
    const before = h.executions('get_hostname').length;
    const r = await submit(srv, id, 'get_hostname', 60);
    assert.equal(r.code, 1);
    assert.equal(r.job.status, 'failed');
    assert.equal(r.job.deliveries, 1);
    assert.equal(r.job.result!.code, 'unauthorized');
    assert.match(String(r.job.result!.error), /refused the api_key/);
    assert.equal(h.executions('get_hostname').length, before);
  });

  test('the agent\'s certificate signed by another CA than the one configured for it: refused, the job not run', async () => {
    const other = await certsIn(path.join(h.dir, 'other-ca'), { caName: 'other-ca' });
    const r0 = await srv.cli(['agents', 'add', 'push-other-ca', '--mode', 'push', '--url', `https://127.0.0.1:${h.port}`, '--agent-ca', other.ca, '--api-key-file', keyFile, '--json']);
    assert.equal(r0.code, 0, r0.stderr);
    const id = (JSON.parse(r0.stdout) as { agent: { id: string } }).agent.id;
    const before = h.executions('get_hostname').length;
    const r = await submit(srv, id, 'get_hostname', 60);
    assert.equal(r.job.status, 'failed', JSON.stringify(r.job));
    assert.equal(r.job.result!.code, 'delivery-failed');
    assert.match(String(r.job.result!.error), /TLS refused/);
    assert.equal(h.executions('get_hostname').length, before);
  });

  test('a server without its client certificate: the agent refuses the connection, the job not run', async () => {
    const bare = await startServer({ config: { delivery_retry_max: 2 } });
    try {
      const id = await addPush(bare, 'push-no-client-cert', ['--api-key-file', keyFile]);
      const before = h.executions('get_hostname').length;
      const r = await submit(bare, id, 'get_hostname', 60);
      const tried = bare.log().split('\n').filter((l) => l.includes('trying again')).slice(0, 2).join('\n');
      assert.equal(r.job.status, 'failed', `${JSON.stringify(r.job)}\n${tried}`);
      assert.equal(r.job.result!.code, 'delivery-failed');
      assert.match(String(r.job.result!.error), /TLS refused by the agent \(ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED\)/);
      assert.equal(r.job.deliveries, 1);
      assert.equal(h.executions('get_hostname').length, before);
    } finally {
      await bare.stop();
      bare.cleanup();
    }
  });

  test('agents add and set-mode refuse bad input with a message naming it', async () => {
    const notCert = path.join(h.dir, 'not-a-cert.pem');
    fs.writeFileSync(notCert, 'hello\n');
    const base = { name: 'bad', mode: 'push', url: `https://127.0.0.1:${h.port}`, ca_file: h.certs.ca };
    const cases: Array<[Record<string, unknown>, RegExp]> = [
      [{ ...base, url: `http://127.0.0.1:${h.port}` }, /only https/],
      [{ ...base, url: 'https://user:pw@127.0.0.1:1' }, /no user or password/],
      [{ ...base, url: 'https://127.0.0.1:1/execute' }, /only https:\/\/host:port/],
      [{ ...base, url: 'not a url' }, /not a URL/],
      [{ ...base, ca_file: undefined }, /CA file .* is missing/],
      [{ ...base, ca_file: 'relative.pem' }, /absolute path/],
      [{ ...base, ca_file: '/nonexistent/ca.pem' }, /ENOENT/],
      [{ ...base, ca_file: notCert }, /not a PEM certificate/],
      [{ ...base, host: 'x' }, /cannot use host with mode push/],
      [{ name: 'bad', mode: 'ssh', host: '-oProxyCommand=id', known_host: 'h ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA' }, /cannot use host/],
      [{ name: 'bad', mode: 'ssh', host: 'h', known_host: 'h ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA\nevil ssh-ed25519 AAAA' }, /known-host/],
      [{ name: 'bad', mode: 'ssh', host: 'h' }, /known_hosts line is missing/],
      [{ name: 'bad', mode: 'ssh', host: 'h', user: 'root;id', known_host: 'h ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA' }, /cannot use user/],
      [{ name: 'bad', mode: 'pull' }, /registers itself/],
    ];
    const before = (await adminCall(srv, 'GET', '/agents')).body.agents as unknown[];
    for (const [body, re] of cases) {
      const r = await adminCall(srv, 'POST', '/agents', body);
      assert.equal(r.status, 400, `${JSON.stringify(body)}: ${JSON.stringify(r.body)}`);
      assert.match(String(r.body.error), re, JSON.stringify(body));
    }
    const afterList = (await adminCall(srv, 'GET', '/agents')).body.agents as unknown[];
    assert.equal(afterList.length, before.length, 'a refused agent was stored');
    const cli = await srv.cli(['agents', 'add', 'bad', '--mode', 'push', '--url', 'http://127.0.0.1:1', '--agent-ca', h.certs.ca]);
    assert.equal(cli.code, 1);
    assert.match(cli.stderr, /^Error: cannot add agent "bad": cannot use url .*only https/m);
  });

  test('set-mode ssh keeps the agent\'s jobs queued with a clear log line; set-mode push with a new key prints it once', async () => {
    const id = await addPush(srv, 'push-then-ssh', ['--api-key-file', keyFile]);
    const knownHost = '127.0.0.1 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKp7AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA';
    const ssh = await srv.cli(['agents', 'set-mode', id, 'ssh', '--host', '127.0.0.1', '--port', '2222', '--known-host', knownHost]);
    assert.equal(ssh.code, 0, ssh.stderr);
    assert.match(ssh.stdout, /ssh mode, tuxsec@127\.0\.0\.1 port 2222/);
    const sub = await adminCall(srv, 'POST', '/jobs', { agent_id: id, module: 'systeminfo', action: 'get_hostname', params: {} });
    const jobId = (sub.body.job as Job).id;
    await until('the log line', () => srv.log().includes(`agent \\"${id}\\" is in ssh mode`) || srv.log().includes(`agent "${id}" is in ssh mode`), 20_000, 100);
    assert.equal((await getJob(srv, jobId)).status, 'queued');
    const push = await srv.cli(['agents', 'set-mode', id, 'push', '--url', `https://127.0.0.1:${h.port}`, '--agent-ca', h.certs.ca]);
    assert.equal(push.code, 0, push.stderr);
    const key = /shown only now:\n(\S+)/.exec(push.stdout)?.[1];
    assert.ok(key && key.length >= 43, push.stdout);
    assert.ok(!srv.log().includes(key), 'the new key is in the server log');
    // The agent expects API_KEY, not the new key: the queued job is refused with a clear result.
    const job = await until('the queued job delivered', async () => {
      const j = await getJob(srv, jobId);
      return j.status === 'failed' ? j : null;
    }, 30_000, 200);
    assert.equal(job.result!.code, 'unauthorized');
  });
});
