// Push mode (issue 9 items 1-4): the real agent as the tuxsec user serves INTEROP section 3 over
// mutual TLS in front of the real rootd; node:https and curl are the server. Refusals are in
// test/attacks/push.test.ts.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import { makeCerts } from '../helpers/certs.ts';
import { until } from './harness.ts';
import { startPushAgent, type PushAgent } from './push-harness.ts';

let h: PushAgent;

before(async () => {
  h = await startPushAgent();
});

after(async () => {
  await h?.stop();
});

test('push POST /execute runs {module, action, params} and answers {success, result, error}', async () => {
  const r = await h.request('POST', '/execute', { body: JSON.stringify({ module: 'systeminfo', action: 'get_hostname', params: {} }) });
  assert.equal(r.status, 200, r.body);
  assert.equal(r.json.success, true);
  assert.equal(r.json.error, null);
  assert.equal(typeof (r.json.result as Record<string, unknown>).hostname, 'string');
});

test('push POST /execute takes the {"job": {...}} wrapper too, and curl as the client', async () => {
  const r = await h.curl(['-X', 'POST', '-H', 'X-API-Key: ' + 'push-test-key-0123456789abcdef0123456789', '-H', 'Content-Type: application/json',
    '--data', JSON.stringify({ job: { module: 'systeminfo', action: 'get_kernel_version' } }), `https://127.0.0.1:${h.port}/execute`]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.status, 200, r.body);
  const j = JSON.parse(r.body) as Record<string, unknown>;
  assert.equal(j.success, true);
  assert.equal(typeof (j.result as Record<string, unknown>).kernel_version, 'string');
});

test('push POST /execute answers a failed action with success false and the message', async () => {
  const r = await h.request('POST', '/execute', { body: JSON.stringify({ module: 'systeminfo', action: 'no_such_action', params: {} }) });
  assert.equal(r.status, 200, r.body);
  assert.equal(r.json.success, false);
  assert.match(String(r.json.error), /no_such_action/);
  assert.deepEqual(r.json.result, {});
});

test('push GET /health reports rootd, the version and the modules', async () => {
  const r = await h.request('GET', '/health');
  assert.equal(r.status, 200, r.body);
  assert.equal(r.json.status, 'healthy');
  assert.equal(r.json.rootd_connected, true);
  assert.equal(typeof r.json.version, 'string');
  assert.ok((r.json.modules as string[]).includes('systeminfo'));
});

test('push the same job id sent twice (also at once) runs once and answers the stored result', async () => {
  const body = JSON.stringify({ id: 'push-dup-1', module: 'systeminfo', action: 'get_uptime', params: {} });
  const [a, b] = await Promise.all([h.request('POST', '/execute', { body }), h.request('POST', '/execute', { body })]);
  const c = await h.request('POST', '/execute', { body: JSON.stringify({ job: { id: 'push-dup-1', module: 'systeminfo', action: 'get_uptime' } }) });
  for (const r of [a, b, c]) {
    assert.equal(r.status, 200, r.body);
    assert.equal(r.json.success, true);
    assert.equal(r.json.id, 'push-dup-1');
  }
  assert.deepEqual(b.json.result, a.json.result);
  assert.deepEqual(c.json.result, a.json.result);
  // The audit log is written asynchronously: a later job's record proves the earlier ones are in.
  await h.request('POST', '/execute', { body: JSON.stringify({ module: 'systeminfo', action: 'get_os_info' }) });
  await until('the later audit record', () => h.executions('get_os_info').length > 0);
  assert.equal(h.executions('get_uptime').length, 1);
});

test('push a job id sent again after the agent was killed gets the result kept in the journal, not a second run', async () => {
  const body = JSON.stringify({ id: 'push-crash-1', module: 'systeminfo', action: 'get_kernel_version', params: {} });
  const ranBefore = h.executions('get_kernel_version').length;
  const first = await h.request('POST', '/execute', { body });
  assert.equal(first.status, 200, first.body);
  assert.equal(first.json.success, true);
  await h.restart('SIGKILL');
  const again = await h.request('POST', '/execute', { body });
  assert.equal(again.status, 200, again.body);
  assert.deepEqual(again.json, first.json);
  const barrier = h.executions('get_os_info').length;
  await h.request('POST', '/execute', { body: JSON.stringify({ module: 'systeminfo', action: 'get_os_info' }) });
  await until('the later audit record', () => h.executions('get_os_info').length > barrier);
  assert.equal(h.executions('get_kernel_version').length, ranBefore + 1);
});

test('push jobs without an id each run (a fresh id each)', async () => {
  const body = JSON.stringify({ module: 'systeminfo', action: 'get_info' });
  const a = await h.request('POST', '/execute', { body });
  const b = await h.request('POST', '/execute', { body });
  assert.equal(a.json.success, true);
  assert.notEqual(a.json.id, b.json.id);
  await until('two get_info executions', () => h.executions('get_info').length === 2);
});

test('push SIGHUP serves a swapped certificate, also to a kept-alive client (which reconnects)', async () => {
  const other = await makeCerts(path.join(h.dir, 'other'), { caName: 'tuxsec-test-ca-2' });
  const cas = [fs.readFileSync(h.certs.ca), fs.readFileSync(other.ca)];
  const agent = new https.Agent({ keepAlive: true, maxSockets: 1 });
  try {
    const first = await h.request('GET', '/health', { agent, ca: cas });
    assert.equal(first.status, 200);
    fs.copyFileSync(other.serverCert, h.certs.serverCert);
    fs.copyFileSync(other.serverKey, h.certs.serverKey);
    const before = h.agent.out().length;
    h.agent.proc.kill('SIGHUP');
    await until('the reload', () => /re-read/.test(h.agent.out().slice(before)));
    // The idle kept-alive connection was closed by the reload (it would go on with the old
    // certificate and CA): the agent's next request handshakes again.
    await until('the idle connection closed', () => Object.values(agent.freeSockets).flat().length === 0);
    const again = await h.request('GET', '/health', { agent, ca: cas });
    assert.equal(again.status, 200);
    assert.notEqual(again.localPort, first.localPort, 'a new connection');
    assert.notEqual(again.fingerprint, first.fingerprint, 'with the new certificate');
    const fresh = await h.request('GET', '/health', { ca: cas });
    assert.equal(fresh.status, 200);
    assert.notEqual(fresh.fingerprint, first.fingerprint, 'a new connection gets the new certificate');
    assert.equal(h.agent.proc.exitCode, null);
  } finally {
    agent.destroy();
  }
});

test('push SIGHUP with a key group can read keeps the old certificate and says why', async () => {
  fs.chmodSync(h.certs.serverKey, 0o640);
  try {
    const before = h.agent.out().length;
    h.agent.proc.kill('SIGHUP');
    await until('the refusal', () => /cannot reload the certificate, key or CA on SIGHUP: .*ssl_key/.test(h.agent.out().slice(before)));
    // Still the certificate of the swap above, signed by the second CA.
    const r = await h.request('GET', '/health', { ca: [fs.readFileSync(path.join(h.dir, 'other', 'ca.pem'))] });
    assert.equal(r.status, 200);
  } finally {
    fs.chmodSync(h.certs.serverKey, 0o600);
  }
});
