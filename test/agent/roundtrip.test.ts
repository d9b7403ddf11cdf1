// The real agent (as the tuxsec user), the real tuxsec-server over TLS and the real rootd as root:
// enrollment from the agent's side and job round trips.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import YAML from 'yaml';
import { run } from '../../src/os/exec.ts';
import { startRootd, type RootdHandle } from '../helpers/rootd.ts';
import { pluginDir, writeLongRunningPlugin } from '../helpers/plugin.ts';
import {
  AGENT_JS,
  certsIn,
  createToken,
  makeAgentEnv,
  readCredentials,
  readJournal,
  registerAgent,
  startAgent,
  startServer,
  tempDir,
  until,
  type AgentEnv,
  type Proc,
  type ServerHandle,
} from './harness.ts';

let dir: string;
let server: ServerHandle;
let rootd: RootdHandle;
let env: AgentEnv;
let agent: Proc | null = null;

before(async () => {
  dir = tempDir('tsa-rt-');
  const certs = await certsIn(path.join(dir, 'certs'));
  server = await startServer({ dir, certs });
  const plugins = pluginDir();
  writeLongRunningPlugin(plugins);
  rootd = await startRootd({ config: { plugins_dir: plugins, modules: { firewalld: { enabled: false } } } });
  env = await makeAgentEnv(
    { server_url: null, agent_id: null, api_key: null, ca_cert: certs.ca, rootd_socket: rootd.socketPath, poll_interval: 30 },
    '# Connection mode: pull, push, or ssh\n# kept across registration\n',
  );
});

after(async () => {
  await agent?.kill();
  await server?.stop();
  await rootd?.stop();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
  if (env) fs.rmSync(env.dir, { recursive: true, force: true });
});

test('tuxsec-agent register refuses a wrong and an expired token and leaves the config untouched', async () => {
  const before = fs.readFileSync(env.configPath);
  const wrong = await registerAgent(env, server.url, 'not-a-token');
  assert.notEqual(wrong.code, 0);
  assert.match(wrong.stderr, /cannot register/);
  assert.match(wrong.stderr, /401/);
  const expired = await createToken(server, 1, 1);
  await new Promise((r) => setTimeout(r, 1600));
  const e = await registerAgent(env, server.url, expired);
  assert.notEqual(e.code, 0);
  assert.match(e.stderr, /expired/);
  assert.deepEqual(fs.readFileSync(env.configPath), before);
  assert.doesNotMatch(wrong.stderr + e.stderr, /not-a-token/);
});

let usedToken = '';

test('tuxsec-agent register writes agent_id into the config atomically, keeping comments, mode 0640 and root:tuxsec, and the api_key to a 0600 tuxsec file', async () => {
  usedToken = await createToken(server);
  const st0 = fs.statSync(env.configPath);
  const r = await registerAgent(env, server.url, usedToken);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /registered as agent/);
  const st = fs.statSync(env.configPath);
  assert.equal(st.mode & 0o7777, 0o640);
  assert.equal(st.uid, 0);
  assert.equal(st.gid, env.gid);
  assert.notEqual(st.ino, st0.ino, 'replaced by rename, not rewritten in place');
  const text = fs.readFileSync(env.configPath, 'utf8');
  assert.match(text, /^# Connection mode: pull, push, or ssh\n# kept across registration\n/);
  const cfg = YAML.parse(text) as Record<string, unknown>;
  assert.equal(cfg.server_url, server.url);
  assert.match(String(cfg.agent_id), /^[0-9a-f-]{36}$/);
  assert.equal(cfg.api_key, null, 'the socket group can read agent.yaml: no api_key in it');
  const keyFile = path.join(env.dir, 'credentials', 'api_key');
  assert.equal(cfg.api_key_file, keyFile);
  const kst = fs.statSync(keyFile);
  assert.deepEqual([kst.mode & 0o7777, kst.uid, kst.gid], [0o600, env.uid, env.gid]);
  const dst = fs.statSync(path.dirname(keyFile));
  assert.deepEqual([dst.mode & 0o7777, dst.uid], [0o700, env.uid]);
  const key = readCredentials(env).api_key;
  assert.match(key, /^\S{16,}$/);
  assert.equal(cfg.rootd_socket, rootd.socketPath, 'other keys kept');
  assert.deepEqual(fs.readdirSync(env.dir).filter((n) => n.startsWith('.tmp')), [], 'no temp file left');
  assert.deepEqual(fs.readdirSync(path.dirname(keyFile)), ['api_key'], 'no temp file left');
  assert.ok(!r.stdout.includes(key) && !r.stderr.includes(key));
});

test('tuxsec-agent register refuses a single-use token used already', async () => {
  const other = await makeAgentEnv({ ca_cert: server.certs.ca });
  try {
    const before = fs.readFileSync(other.configPath);
    const reused = await registerAgent(other, server.url, usedToken);
    assert.notEqual(reused.code, 0);
    assert.match(reused.stderr, /used up/);
    assert.deepEqual(fs.readFileSync(other.configPath), before);
  } finally {
    fs.rmSync(other.dir, { recursive: true, force: true });
  }
});

test('tuxsec-agent refuses to run as root with a clear message', async () => {
  const r = await run(process.execPath, [AGENT_JS, '--config', env.configPath], { timeoutMs: 10_000 });
  assert.equal(r.code, 1);
  assert.match(r.stderr, /cannot run as root: .*"tuxsec" user/);
});

test('tuxsec-agent --mode ssh says SSH mode needs no agent process and how to set it up; --mode push without a certificate names it', async () => {
  const ssh = startAgent(env, ['--mode', 'ssh']);
  assert.equal((await ssh.exited).code, 0);
  assert.match(ssh.out(), /mode "ssh" needs no agent process: .*set it up with "tuxsec-agent ssh-setup"/);
  const push = startAgent(env, ['--mode', 'push']);
  assert.equal((await push.exited).code, 1);
  assert.match(push.out(), /cannot run in push mode: set ssl_cert and ssl_key/);
});

test('tuxsec-agent runs submitted jobs through rootd and the server stores their results', async () => {
  agent = startAgent(env);
  const cfg = readCredentials(env);
  await until('the agent to check in', () => /tuxsec-agent started in pull mode/.test(agent!.out()), 10_000);
  // A SIGHUP (a reload meant for push mode, a closed terminal) does not stop a pull agent.
  agent.proc.kill('SIGHUP');
  await until('the SIGHUP to be logged', () => /SIGHUP: pull mode re-reads nothing/.test(agent!.out()), 10_000);
  for (const [action, check] of [
    ['get_hostname', (o: Record<string, unknown>) => assert.equal(o.hostname, os.hostname())],
    ['get_uptime', (o: Record<string, unknown>) => assert.equal(typeof o.uptime_seconds, 'number')],
    ['get_info', (o: Record<string, unknown>) => assert.equal(typeof (o.os as Record<string, unknown>).system, 'string')],
  ] as const) {
    const t0 = Date.now();
    const sub = await server.op.submitJob({ agent_id: cfg.agent_id, module: 'systeminfo', action });
    const job = await server.waitJob(sub.id);
    assert.equal(job.status, 'completed', `${action}: ${JSON.stringify(job)}\n${agent.out()}`);
    const res = job.result as { success: boolean; output: Record<string, unknown>; status: string };
    assert.equal(res.success, true);
    check(res.output);
    // Half the 30 s poll_interval: room for a loaded machine, and still no poll could have fetched it.
    assert.ok(Date.now() - t0 < 15_000, `took ${Date.now() - t0} ms: dispatched by a 30 s poll, not by long-poll`);
  }
  // A failing action comes back as a failed result with rootd's code.
  const bad = await server.waitJob((await server.op.submitJob({ agent_id: cfg.agent_id, module: 'systeminfo', action: 'no_such_action' })).id);
  assert.equal(bad.status, 'failed');
  const badRes = bad.result as { success: boolean; error: string; code: string };
  assert.equal(badRes.success, false);
  assert.match(badRes.error, /no_such_action/);
  const j = readJournal(env);
  assert.equal(j.filter((e) => e.s).length, 4);
  assert.equal(j.filter((e) => e.f).length, 4);
  await until('the outbox to drain', () => fs.readdirSync(path.join(env.stateDir, 'outbox')).filter((n) => n.endsWith('.json')).length === 0, 5000);
  assert.ok(!agent.out().includes(cfg.api_key), 'the api_key never appears in the log');
  const st = fs.statSync(path.join(env.stateDir, 'journal.log'));
  assert.equal(st.uid, env.uid, 'the agent ran as tuxsec');
  const stopped = await agent.kill('SIGTERM');
  assert.equal(stopped.code, 0, agent.out());
  agent = null;
});

// Issue 10, long-running actions item 3 in part: the agent waits for the operation (progress and
// cancel through the server: job-progress.test.ts).
test('a long-running action submitted as a job stays open until its final result is stored', async () => {
  agent = startAgent(env);
  const { agent_id } = readCredentials(env);
  await until('the agent to check in', () => /tuxsec-agent started in pull mode/.test(agent!.out()), 10_000);
  const sub = await server.op.submitJob({ agent_id, module: 'longmod', action: 'count', params: { steps: 10, ms: 300 } });
  await until('the operation to run', async () => (await rootd.client.operations()).some((o) => o.action === 'count' && o.state === 'running'), 15_000);
  assert.ok(!['completed', 'failed'].includes((await server.op.getJob(sub.id)).status), 'the job is still open while the operation runs');
  const job = await server.waitJob(sub.id, 30_000);
  assert.equal(job.status, 'completed', `${JSON.stringify(job)}\n${agent.out()}`);
  const res = job.result as { success: boolean; output: Record<string, unknown> };
  assert.equal(res.success, true);
  // The action's own data, not the "started as operation" answer.
  assert.deepEqual(res.output, { counted: 10, uid: env.uid });
});
