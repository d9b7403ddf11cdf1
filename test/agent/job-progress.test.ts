// Issue 10, long-running actions item 3: the real agent (as tuxsec), the real tuxsec-server over TLS
// and the real rootd as root. A job whose action is a rootd operation is `running` with its progress
// in `jobs get` while it runs; `jobs cancel` reaches the operation; a queued job cancelled is never
// handed out; and the whole path with real aide: job -> agent -> rootd -> aide check.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { run } from '../../src/os/exec.ts';
import type { JobView } from '../../src/protocol/operator-api.ts';
import { startRootd, type RootdHandle } from '../helpers/rootd.ts';
import { pluginDir, writeLongRunningPlugin } from '../helpers/plugin.ts';
import {
  certsIn,
  createToken,
  makeAgentEnv,
  readCredentials,
  registerAgent,
  SERVER_JS,
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
let agentId: string;
let tree: string;

/** A tree for aide with files from a past day (aide keeps seconds: every later change shows). */
function aideTree(root: string): string {
  const t = path.join(root, 'tree');
  fs.mkdirSync(t, { recursive: true });
  fs.writeFileSync(path.join(t, 'keep'), 'same\n');
  fs.writeFileSync(path.join(t, 'change me'), 'before\n');
  // Enough files that the check runs for a while, so its phase can be seen.
  const many = path.join(t, 'many');
  fs.mkdirSync(many);
  const past = new Date('2020-01-01T00:00:00Z');
  for (let i = 0; i < 12_000; i++) {
    const f = path.join(many, `f${i}`);
    fs.writeFileSync(f, `file ${i}\n`);
    fs.utimesSync(f, past, past);
  }
  for (const p of [t, many, path.join(t, 'keep'), path.join(t, 'change me')]) fs.utimesSync(p, past, past);
  fs.mkdirSync(path.join(root, 'db'));
  const db = path.join(root, 'db');
  fs.writeFileSync(path.join(root, 'aide.conf'), [`database_in=file:${db}/aide.db`, `database_out=file:${db}/aide.db.new`, 'gzip_dbout=yes', `${t} p+u+g+s+m+sha256`, ''].join('\n'));
  return t;
}

before(async () => {
  dir = tempDir('tsa-prog-');
  const certs = await certsIn(path.join(dir, 'certs'));
  server = await startServer({ dir, certs });
  const plugins = pluginDir();
  writeLongRunningPlugin(plugins);
  tree = aideTree(path.join(dir, 'aide'));
  rootd = await startRootd({
    config: {
      plugins_dir: plugins,
      modules: {
        firewalld: { enabled: false },
        aide: { settings: { config: path.join(dir, 'aide', 'aide.conf'), report_file: path.join(dir, 'aide', 'state', 'last.json') } },
      },
    },
  });
  env = await makeAgentEnv({ server_url: null, agent_id: null, api_key: null, ca_cert: certs.ca, rootd_socket: rootd.socketPath, poll_interval: 30, progress_interval: 1 });
  const r = await registerAgent(env, server.url, await createToken(server));
  assert.equal(r.code, 0, r.stderr);
  agentId = readCredentials(env).agent_id;
});

after(async () => {
  await agent?.kill();
  await server?.stop();
  await rootd?.stop();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
  if (env) fs.rmSync(env.dir, { recursive: true, force: true });
});

async function startTheAgent(): Promise<void> {
  agent = startAgent(env);
  await until('the agent to check in', () => /tuxsec-agent started in pull mode/.test(agent!.out()), 10_000);
}

/** `tuxsec-server jobs get ID` as an operator types it (text, not --json). */
async function jobsGetText(id: string): Promise<string> {
  const r = await run(process.execPath, [SERVER_JS, 'jobs', 'get', id, '--config', server.configPath], { timeoutMs: 30_000 });
  assert.equal(r.code, 0, r.stderr);
  return r.stdout;
}

async function runningWithProgress(id: string, phase: RegExp): Promise<JobView> {
  return until(`job ${id} running with progress`, async () => {
    const j = await server.op.getJob(id);
    return j.status === 'running' && j.progress && phase.test(j.progress.phase ?? '') ? j : null;
  }, 30_000, 100);
}

test('a long-running job is running with its progress in jobs get while it runs, then completed with its result', async () => {
  await startTheAgent();
  const sub = await server.op.submitJob({ agent_id: agentId, module: 'longmod', action: 'count', params: { steps: 20, ms: 400 } });
  const j = await runningWithProgress(sub.id, /^counting$/);
  assert.match(j.progress!.operation_id, /^op-[0-9a-f]{32}$/);
  assert.ok(j.progress!.fraction !== null && j.progress!.fraction >= 0 && j.progress!.fraction < 1, JSON.stringify(j.progress));
  const text = await jobsGetText(sub.id);
  assert.match(text, new RegExp(`^job ${sub.id}: running\\n`));
  assert.match(text, /\n {2}progress: counting \d+% \(operation op-[0-9a-f]{32}, reported \S+\)/);
  const json = await server.cli(['jobs', 'get', sub.id]);
  assert.equal((json.json?.job as JobView).status, 'running');
  // The fraction moves on while it runs, and the server hears of it.
  await until('a later fraction', async () => ((await server.op.getJob(sub.id)).progress?.fraction ?? 0) > j.progress!.fraction!, 30_000, 100);
  const done = await server.waitJob(sub.id, 60_000);
  assert.equal(done.status, 'completed', `${JSON.stringify(done)}\n${agent!.out()}`);
  assert.deepEqual((done.result as { output: unknown }).output, { counted: 20, uid: env.uid });
  assert.doesNotMatch(await jobsGetText(sub.id), /progress:/);
});

test('jobs cancel on a running loop job reaches its operation: the operation is cancelled, the result code cancelled', async () => {
  const sub = await server.op.submitJob({ agent_id: agentId, module: 'longmod', action: 'loop', params: {} });
  const j = await runningWithProgress(sub.id, /^looping \d+$/);
  const opId = j.progress!.operation_id;
  const c = await server.cli(['jobs', 'cancel', sub.id]);
  assert.equal(c.code, 0, c.stderr);
  assert.equal(typeof (c.json?.job as JobView).cancel_requested_at, 'string');
  const done = await server.waitJob(sub.id, 60_000);
  assert.equal(done.status, 'failed', `${JSON.stringify(done)}\n${agent!.out()}`);
  const res = done.result as { success: boolean; code: string; error: string };
  assert.equal(res.success, false);
  assert.equal(res.code, 'cancelled');
  const op = await rootd.client.operationStatus(opId);
  assert.equal(op.state, 'cancelled');
  assert.ok(!(await rootd.client.operations()).some((o) => o.state === 'running'), 'no operation left running');
});

test('jobs cancel on a queued job: cancelled at once and never handed out', async () => {
  await agent!.kill();
  agent = null;
  const before = (await rootd.client.operations()).length;
  const sub = await server.op.submitJob({ agent_id: agentId, module: 'longmod', action: 'count', params: { steps: 1, ms: 0 } });
  const c = await server.cli(['jobs', 'cancel', sub.id]);
  assert.equal(c.code, 0, c.stderr);
  const cj = c.json?.job as JobView;
  assert.equal(cj.status, 'cancelled');
  assert.equal((cj.result as { code: string }).code, 'cancelled');
  await startTheAgent();
  // A job queued after it completes only once the agent has checked in: the cancelled one would have gone out then.
  const next = await server.op.submitJob({ agent_id: agentId, module: 'longmod', action: 'count', params: { steps: 1, ms: 0 } });
  assert.equal((await server.waitJob(next.id, 30_000)).status, 'completed');
  const after = await server.op.getJob(sub.id);
  assert.equal(after.status, 'cancelled');
  assert.equal(after.sent_at, null);
  assert.equal(after.deliveries, 0);
  assert.equal((await rootd.client.operations()).length, before + 1, 'only the second job ran');
  const again = await server.cli(['jobs', 'cancel', sub.id]);
  assert.equal(again.code, 1);
  assert.match(again.stderr, /cannot cancel job ".*": it already ended cancelled/);
});

test('the whole path: tuxsec-server job -> agent -> rootd -> aide check, its phase seen, the changed file in the stored result', async () => {
  // The database made as root, directly: the agent's access to aide init is not what is tested here.
  await rootd.client.execute('aide', 'init', {});
  fs.appendFileSync(path.join(tree, 'change me'), 'after\n');
  const sub = await server.op.submitJob({ agent_id: agentId, module: 'aide', action: 'check', params: {} });
  const phases = new Set<string>();
  let job: JobView;
  for (;;) {
    job = await server.op.getJob(sub.id);
    if (job.progress?.phase) phases.add(job.progress.phase);
    if (job.status === 'completed' || job.status === 'failed') break;
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.equal(job.status, 'completed', `${JSON.stringify(job)}\n${agent!.out()}`);
  assert.match(job.progress?.operation_id ?? '', /^op-[0-9a-f]{32}$/);
  assert.ok(phases.has('checking files'), `the check's phase was seen: ${[...phases].join(', ')}; ${JSON.stringify(job.progress)}`);
  const out = (job.result as { output: { clean: boolean; changed: Array<{ path: string }>; added: unknown[]; removed: unknown[] } }).output;
  assert.equal(out.clean, false, JSON.stringify(out));
  assert.deepEqual(out.changed.map((c) => c.path), [path.join(tree, 'change me')]);
  assert.deepEqual([out.added.length, out.removed.length], [0, 0]);
});
