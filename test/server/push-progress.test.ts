/**
 * Issue 10, long-running actions item 3 in push mode: the real tuxsec-server delivers to the real
 * push agent (as tuxsec) in front of the real rootd as root. While the server holds a job's
 * `/execute` open it looks at `GET /jobs/<id>`: the job is `running` with its progress in
 * `jobs get`, and an operator's `jobs cancel` reaches the rootd operation.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { until } from '../agent/harness.ts';
import { API_KEY, startPushAgent, type PushAgent } from '../agent/push-harness.ts';
import { pluginDir, writeLongRunningPlugin } from '../helpers/plugin.ts';
import { adminCall, startServer, type TestServer } from '../helpers/server.ts';

interface Job {
  id: string;
  status: string;
  progress: { operation_id: string; phase: string | null; fraction: number | null } | null;
  result: Record<string, unknown> | null;
}

let h: PushAgent;
let srv: TestServer;
let agentId: string;

async function getJob(id: string): Promise<Job> {
  const r = await adminCall(srv, 'GET', `/jobs/${id}`);
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body.job as Job;
}

async function submit(action: string, params: Record<string, unknown>): Promise<string> {
  const r = await adminCall(srv, 'POST', '/jobs', { agent_id: agentId, module: 'longmod', action, params });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  return (r.body.job as Job).id;
}

async function runningWithProgress(id: string, phase: RegExp): Promise<Job> {
  return until(`job ${id} running with progress`, async () => {
    const j = await getJob(id);
    return j.status === 'running' && j.progress && phase.test(j.progress.phase ?? '') ? j : null;
  }, 60_000, 100);
}

async function finished(id: string): Promise<Job> {
  return until(`job ${id} finished`, async () => {
    const j = await getJob(id);
    return j.status === 'completed' || j.status === 'failed' ? j : null;
  }, 90_000, 200);
}

before(async () => {
  const plugins = pluginDir();
  writeLongRunningPlugin(plugins);
  h = await startPushAgent({ rootd: { config: { plugins_dir: plugins, modules: { firewalld: { enabled: false } } } } });
  const keyFile = path.join(h.dir, 'push-api-key');
  fs.writeFileSync(keyFile, `${API_KEY}\n`, { mode: 0o600 });
  srv = await startServer({ config: { agent_client_cert: h.certs.clientCert, agent_client_key: h.certs.clientKey, delivery_retry_max: 2 } });
  const r = await srv.cli(['agents', 'add', 'push-long', '--mode', 'push', '--url', `https://127.0.0.1:${h.port}`, '--agent-ca', h.certs.ca, '--api-key-file', keyFile, '--json']);
  assert.equal(r.code, 0, r.stderr);
  agentId = (JSON.parse(r.stdout) as { agent: { id: string } }).agent.id;
});

after(async () => {
  if (srv && srv.proc.exitCode === null && srv.proc.signalCode === null) await srv.stop();
  srv?.cleanup();
  await h?.stop();
});

test('a push job running count is running with its phase in jobs get before it completes', async () => {
  const id = await submit('count', { steps: 40, ms: 400 });
  const j = await runningWithProgress(id, /^counting$/);
  assert.match(j.progress!.operation_id, /^op-[0-9a-f]{32}$/);
  assert.ok(j.progress!.fraction !== null && j.progress!.fraction < 1, JSON.stringify(j.progress));
  const text = await srv.cli(['jobs', 'get', id]);
  assert.equal(text.code, 0, text.stderr);
  assert.match(text.stdout, new RegExp(`^job ${id}: running\\n`));
  assert.match(text.stdout, /\n {2}progress: counting \d+% \(operation op-[0-9a-f]{32}, reported \S+\)/);
  const done = await finished(id);
  assert.equal(done.status, 'completed', `${JSON.stringify(done)}\n${h.agent.out()}`);
  assert.deepEqual((done.result as { output: unknown }).output, { counted: 40, uid: h.env.uid });
});

test('jobs cancel on a push job running loop ends it with code cancelled; the operation is gone', async () => {
  const id = await submit('loop', {});
  const j = await runningWithProgress(id, /^looping \d+$/);
  const opId = j.progress!.operation_id;
  const c = await srv.cli(['jobs', 'cancel', id, '--json']);
  assert.equal(c.code, 0, c.stderr);
  const done = await finished(id);
  assert.equal(done.status, 'failed', `${JSON.stringify(done)}\n${h.agent.out()}`);
  assert.equal((done.result as { code: string }).code, 'cancelled');
  assert.equal((await h.rootd.client.operationStatus(opId)).state, 'cancelled');
  assert.ok(!(await h.rootd.client.operations()).some((o) => o.state === 'running'), 'no operation left running');
  // Once: the agent was asked to cancel one time, not at every look.
  assert.equal((h.agent.out().match(/tuxsec-server cancelled the job/g) ?? []).length, 1, h.agent.out());
});

test('GET /jobs/<id> and POST /jobs/<id>/cancel without the key: 401, nothing learned, nothing cancelled', async () => {
  const id = await submit('loop', {});
  const j = await runningWithProgress(id, /^looping \d+$/);
  const noKey = await h.request('GET', `/jobs/${id}`, { headers: { 'x-api-key': '' } });
  const wrongKey = await h.request('GET', `/jobs/${id}`, { headers: { 'x-api-key': 'wrong-key' } });
  const unknown = await h.request('GET', '/jobs/no-such-job', { headers: { 'x-api-key': 'wrong-key' } });
  for (const r of [noKey, wrongKey, unknown]) {
    assert.equal(r.status, 401, r.body);
    assert.equal(r.json.code, 'unauthorized');
    assert.ok(!r.body.includes(j.progress!.operation_id) && !r.body.includes('running'), r.body);
  }
  // The same answer for a running job and an unknown one: its existence is not told.
  assert.equal(noKey.body, unknown.body);
  const cancel = await h.request('POST', `/jobs/${id}/cancel`, { headers: { 'x-api-key': 'wrong-key' } });
  assert.equal(cancel.status, 401, cancel.body);
  assert.equal((await h.rootd.client.operationStatus(j.progress!.operation_id)).state, 'running');
  // With the key: the state, then the cancel (the server's own path, done by hand here).
  const ok = await h.request('GET', `/jobs/${id}`);
  assert.equal(ok.status, 200, ok.body);
  assert.equal(ok.json.state, 'running');
  assert.equal(ok.json.operation_id, j.progress!.operation_id);
  assert.deepEqual((await h.request('GET', '/jobs/no-such-job')).json, { id: 'no-such-job', state: 'unknown', operation_id: null, phase: null, fraction: null });
  assert.equal((await h.request('GET', `/jobs/${id}/cancel`)).status, 405);
  const yes = await h.request('POST', `/jobs/${id}/cancel`);
  assert.deepEqual(yes.json, { cancelled: true });
  const done = await finished(id);
  assert.equal((done.result as { code: string }).code, 'cancelled');
  assert.equal((await h.request('GET', `/jobs/${id}`)).json.state, 'done');
});
