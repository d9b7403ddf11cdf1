// The real agent (as the tuxsec user, against the real tuxsec-server over TLS) with a rootd that
// behaves like the Python one: one request per connection, closed after the answer. Jobs queued
// at once all complete; a job whose request the daemon read and never answered is reported
// interrupted and not run again.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { certsIn, createToken, makeAgentEnv, registerAgent, startAgent, startServer, tempDir, type AgentEnv, type ServerHandle } from '../agent/harness.ts';
import { startOneShotDaemon, type OneShotOptions } from './one-shot-daemon.ts';

let dir: string;
let server: ServerHandle;
const envs: AgentEnv[] = [];

before(async () => {
  dir = tempDir('tsa-oneshot-');
  server = await startServer({ dir, certs: await certsIn(path.join(dir, 'certs')) });
});

after(async () => {
  await server?.stop();
  for (const e of envs) fs.rmSync(e.dir, { recursive: true, force: true });
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

/** Queues the jobs for a newly registered agent, then starts it against a one-shot daemon. */
async function runJobs(opts: OneShotOptions, markers: string[]) {
  const d = await startOneShotDaemon(fs.mkdtempSync(path.join(dir, 'd-')), opts);
  fs.chmodSync(path.dirname(d.socketPath), 0o755);
  const env = await makeAgentEnv({ ca_cert: server.certs.ca, rootd_socket: d.socketPath, poll_interval: 1, log_level: 'INFO' });
  envs.push(env);
  const r = await registerAgent(env, server.url, await createToken(server));
  // This machine enrolls once per server: every enrollment after the first waits for an operator (exit 3).
  assert.ok(r.code === 0 || r.code === 3, r.stderr);
  const agentId = (YAML.parse(fs.readFileSync(env.configPath, 'utf8')) as { agent_id: string }).agent_id;
  if (r.code === 3) await server.op.setAgentStatus(agentId, 'approve');
  const jobs = [];
  for (const marker of markers) jobs.push(await server.op.submitJob({ agent_id: agentId, module: 'resil', action: 'mark', params: { marker } }));
  const agent = startAgent(env);
  try {
    const done = [];
    for (const j of jobs) done.push(await server.waitJob(j.id, 60_000));
    return { done, d, out: agent.out() };
  } finally {
    await agent.kill('SIGTERM');
    await d.close();
  }
}

describe('tuxsec-agent with a rootd that closes after each answer, like the Python one', () => {
  it('tuxsec-agent completes 10 jobs queued at once, each run once', async () => {
    const markers = Array.from({ length: 10 }, (_, i) => `job-${i}`);
    const { done, d, out } = await runJobs({}, markers);
    assert.deepEqual(
      done.map((j) => [j.status, j.result && (j.result as { output?: unknown; error?: unknown }).output]),
      markers.map((m) => ['completed', { marker: m }]),
      out.slice(-3000),
    );
    for (const m of markers) assert.equal(d.received.get(m), 1, `${m} ran once`);
  });

  it('tuxsec-agent reports a job interrupted, and does not run it again, when the daemon closes after reading it without answering', async () => {
    const { done, d, out } = await runJobs({ behaviour: (n) => (n === 0 ? 'answer' : 'read-and-close') }, ['cut']);
    const j = done[0]!;
    assert.equal(j.status, 'interrupted', `${JSON.stringify(j)}\n${out.slice(-3000)}`);
    assert.match(String((j.result as { error?: string }).error), /tuxsec-rootd closed the connection after execute_command was sent/);
    assert.equal(d.received.get('cut'), 1, 'not run again');
  });
});
