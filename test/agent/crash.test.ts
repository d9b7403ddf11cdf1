// Crash safety with real processes: the agent SIGKILLed at random points of its loop, and the
// server SIGKILLed and restarted with jobs in flight. Executions are counted at a proxy in front of
// the real rootd, so "ran twice" is seen outside the agent's own bookkeeping.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import type { JobView } from '../../src/protocol/operator-api.ts';
import { startRootd, type RootdHandle } from '../helpers/rootd.ts';
import {
  certsIn,
  createToken,
  makeAgentEnv,
  readJournal,
  registerAgent,
  startAgent,
  startCountingProxy,
  startServer,
  tempDir,
  until,
  type AgentEnv,
  type CountingProxy,
  type ServerHandle,
} from './harness.ts';

let dir: string;
let server: ServerHandle;
let rootd: RootdHandle;
let proxy: CountingProxy;
let env: AgentEnv;
let agentId: string;

before(async () => {
  dir = tempDir('tsa-crash-');
  const certs = await certsIn(path.join(dir, 'certs'));
  // Redeliver after 1 s so commands lost with a killed agent come back quickly.
  server = await startServer({ dir, certs, config: { redeliver_after: 1 } });
  rootd = await startRootd();
  proxy = await startCountingProxy(rootd.socketPath, dir);
  env = await makeAgentEnv({ ca_cert: certs.ca, rootd_socket: proxy.socketPath, poll_interval: 1, log_level: 'INFO' });
  const r = await registerAgent(env, server.url, await createToken(server));
  assert.equal(r.code, 0, r.stderr);
  agentId = (YAML.parse(fs.readFileSync(env.configPath, 'utf8')) as { agent_id: string }).agent_id;
});

after(async () => {
  await server?.stop();
  await proxy?.close();
  await rootd?.stop();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
  if (env) fs.rmSync(env.dir, { recursive: true, force: true });
});

async function submit(marker: string): Promise<JobView> {
  return server.op.submitJob({ agent_id: agentId, module: 'systeminfo', action: 'get_hostname', params: { test_marker: marker } });
}

function journalStarts(): Map<string, number> {
  const m = new Map<string, number>();
  for (const e of readJournal(env)) if (e.s) m.set(e.s, (m.get(e.s) ?? 0) + 1);
  return m;
}

test('tuxsec-agent SIGKILLed 25 times at random points: no job runs twice, every result reaches the server', async () => {
  const jobs = new Map<string, string>(); // job id -> marker
  let n = 0;
  for (let kill = 0; kill < 25; kill++) {
    for (let k = 0; k < 3; k++) {
      const marker = `a${n++}`;
      jobs.set((await submit(marker)).id, marker);
    }
    const agent = startAgent(env);
    // Random point: during start-up, recovery, the check-in, a running job or a result hand-off.
    await new Promise((r) => setTimeout(r, 50 + Math.floor(Math.random() * 700)));
    const x = await agent.kill('SIGKILL');
    assert.equal(x.signal, 'SIGKILL', `agent exited by itself: ${agent.out()}`);
  }
  const agent = startAgent(env);
  const tFinal = Date.now();
  try {
    const final = await until(
      'every job to be final',
      async () => {
        const list = await Promise.all([...jobs.keys()].map((id) => server.op.getJob(id)));
        return list.every((j) => ['completed', 'failed', 'interrupted', 'expired'].includes(j.status)) ? list : null;
      },
      60_000,
      200,
    );
    const starts = journalStarts();
    let interrupted = 0;
    let redelivered = 0;
    for (const j of final) {
      const marker = jobs.get(j.id)!;
      const runs = proxy.counts.get(marker) ?? 0;
      assert.ok(runs <= 1, `job ${j.id} reached rootd ${runs} times`);
      assert.ok((starts.get(j.id) ?? 0) <= 1, `job ${j.id} journaled ${starts.get(j.id)} times`);
      assert.ok(j.result, `job ${j.id} has no stored result`);
      if (j.status === 'completed') {
        assert.equal(runs, 1, `completed job ${j.id} ran ${runs} times`);
        assert.equal((j.result as { success: boolean }).success, true);
      } else {
        assert.equal(j.status, 'interrupted', `job ${j.id}: ${JSON.stringify(j)}`);
        interrupted++;
      }
      if (j.deliveries > 1) redelivered++;
    }
    await until('the outbox to drain', () => fs.readdirSync(path.join(env.stateDir, 'outbox')).filter((f) => f.endsWith('.json')).length === 0, 10_000);
    process.stderr.write(
      `# ${final.length} jobs, 25 SIGKILLs: ${interrupted} interrupted, ${redelivered} handed out more than once; all final ${Date.now() - tFinal} ms after the last start\n`,
    );
  } finally {
    await agent.kill('SIGTERM');
  }
});

test('tuxsec-server SIGKILLed and restarted with jobs in flight: every job runs exactly once, every result is stored', async () => {
  const agent = startAgent(env);
  const jobs = new Map<string, string>();
  try {
    let n = 0;
    for (let round = 0; round < 4; round++) {
      for (let k = 0; k < 10; k++) {
        const marker = `s${n++}`;
        jobs.set((await submit(marker)).id, marker);
      }
      // Kill while the agent is busy with them and holding unacknowledged results.
      await new Promise((r) => setTimeout(r, Math.floor(Math.random() * 150)));
      await server.stop('SIGKILL');
      await new Promise((r) => setTimeout(r, 300 + Math.floor(Math.random() * 700)));
      await server.restart();
    }
    const final = await until(
      'every job to be final',
      async () => {
        try {
          const list = await Promise.all([...jobs.keys()].map((id) => server.op.getJob(id)));
          return list.every((j) => ['completed', 'failed', 'interrupted', 'expired'].includes(j.status)) ? list : null;
        } catch {
          return null;
        }
      },
      90_000,
      200,
    );
    for (const j of final) {
      assert.equal(j.status, 'completed', `job ${j.id}: ${JSON.stringify(j)}`);
      assert.equal(proxy.counts.get(jobs.get(j.id)!), 1, `job ${j.id} ran ${proxy.counts.get(jobs.get(j.id)!)} times`);
    }
  } finally {
    await agent.kill('SIGTERM');
  }
});

test('tuxsec-agent resumes within seconds after a graceful server restart (held long-poll answered early)', async () => {
  const agent = startAgent(env);
  try {
    await until('agent start', () => /started in pull mode/.test(agent.out()), 10_000);
    await new Promise((r) => setTimeout(r, 500)); // the long-poll is held now
    await server.stop('SIGTERM');
    await server.restart();
    const t0 = Date.now();
    const job = await server.waitJob((await submit('restart-1')).id, 20_000);
    assert.equal(job.status, 'completed');
    // Against the 30 s sync_interval, with room for a loaded machine (a job here passes a server, an agent and rootd).
    assert.ok(Date.now() - t0 < 15_000, `took ${Date.now() - t0} ms: the agent waited a whole sync_interval`);
  } finally {
    await agent.kill('SIGTERM');
  }
});
