// A second enrollment of the same machine is held for an operator (202 pending-approval): the agent
// stores its credentials, waits while check-ins answer 403 pending-approval, runs jobs once approved,
// and stops for good when rejected.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { startRootd, type RootdHandle } from '../helpers/rootd.ts';
import { certsIn, createToken, makeAgentEnv, registerAgent, startAgent, startServer, tempDir, until, type AgentEnv, type ServerHandle } from './harness.ts';

let dir: string;
let server: ServerHandle;
let rootd: RootdHandle;
const envs: AgentEnv[] = [];

before(async () => {
  dir = tempDir('tsa-pend-');
  const certs = await certsIn(path.join(dir, 'certs'));
  // sync_interval is the Retry-After of a pending check-in: keep the test short.
  server = await startServer({ dir, certs, config: { sync_interval: 1 } });
  rootd = await startRootd();
});

after(async () => {
  await server?.stop();
  await rootd?.stop();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
  for (const e of envs) fs.rmSync(e.dir, { recursive: true, force: true });
});

async function enroll(): Promise<{ env: AgentEnv; code: number | null; out: string; agentId: string }> {
  const env = await makeAgentEnv({ ca_cert: server.certs.ca, rootd_socket: rootd.socketPath });
  envs.push(env);
  const r = await registerAgent(env, server.url, await createToken(server));
  const agentId = String((YAML.parse(fs.readFileSync(env.configPath, 'utf8')) as Record<string, unknown>).agent_id);
  return { env, code: r.code, out: r.stdout + r.stderr, agentId };
}

test('tuxsec-agent register of an already enrolled machine stores credentials, exits 3, and runs jobs once approved', async () => {
  const first = await enroll();
  assert.equal(first.code, 0, first.out);
  const second = await enroll();
  assert.equal(second.code, 3, second.out);
  assert.match(second.out, /pending an operator's approval/);
  assert.match(second.agentId, /^[0-9a-f-]{36}$/);
  const agent = startAgent(second.env);
  try {
    await until('a pending check-in', () => /waiting for an operator to approve this agent/.test(agent.out()), 15_000);
    const a = await server.cli(['agents', 'approve', second.agentId]);
    assert.equal(a.code, 0, a.stderr);
    const job = await server.waitJob((await server.op.submitJob({ agent_id: second.agentId, module: 'systeminfo', action: 'get_hostname' })).id, 30_000);
    assert.equal(job.status, 'completed', agent.out());
  } finally {
    await agent.kill();
  }
});

test('tuxsec-agent stops with exit code 4 when an operator rejected it', async () => {
  const third = await enroll();
  assert.equal(third.code, 3, third.out);
  const r = await server.cli(['agents', 'reject', third.agentId]);
  assert.equal(r.code, 0, r.stderr);
  const agent = startAgent(third.env);
  const x = await Promise.race([agent.exited, new Promise<null>((res) => setTimeout(() => res(null), 15_000))]);
  if (x === null) await agent.kill('SIGKILL');
  assert.equal(x?.code, 4, agent.out());
  assert.match(agent.out(), /an operator rejected this agent/);
});
