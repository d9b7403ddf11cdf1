/**
 * Jobs across many hosts with real pull agents (the tuxsec user, real rootd, real tuxsec-server
 * over TLS): a batch for a label with one host offline keeps that host's job queued and runs it
 * when the host comes back; retry-failed queues again only the hosts whose job expired; cancel
 * ends what is still queued; the live events show the jobs and the agents coming and going. The
 * command line drives it: `jobs submit --label`, `jobs batch get|retry|cancel`.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { startRootd, type RootdHandle } from '../helpers/rootd.ts';
import { openEvents } from '../helpers/sse.ts';
import { certsIn, makeAgentEnv, readCredentials, registerAgent, startAgent, startServer, tempDir, until, type AgentEnv, type Proc, type ServerHandle } from './harness.ts';

type Job = { id: string; agent_id: string; status: string; batch_id: string | null };
type Batch = { id: string; counts: Record<string, number>; hosts: Array<{ agent_id: string; hostname: string; job: Job }> };

let dir: string;
let server: ServerHandle;
let rootd: RootdHandle;
const envs: AgentEnv[] = [];
const procs: Proc[] = [];
/** Agent ids of the two web hosts and the db host. */
let web1: string, web2: string, db: string;
let web1Env: AgentEnv, web2Env: AgentEnv;

async function enroll(token: string): Promise<{ env: AgentEnv; id: string }> {
  const env = await makeAgentEnv({ ca_cert: server.certs.ca, rootd_socket: rootd.socketPath });
  envs.push(env);
  const r = await registerAgent(env, server.url, token);
  // 3: held for approval (all test agents share this machine's machine-id).
  assert.ok(r.code === 0 || r.code === 3, r.stdout + r.stderr);
  const id = readCredentials(env).agent_id;
  if (r.code === 3) assert.equal((await server.cli(['agents', 'approve', id])).code, 0);
  return { env, id };
}

function run(env: AgentEnv): Proc {
  const p = startAgent(env);
  procs.push(p);
  return p;
}

async function batch(id: string): Promise<Batch> {
  const r = await server.cli(['jobs', 'batch', 'get', id]);
  assert.equal(r.code, 0, r.stderr);
  return r.json!.batch as Batch;
}
const jobOf = (b: Batch, agent: string): Job => b.hosts.find((h) => h.agent_id === agent)!.job;

before(async () => {
  dir = tempDir('tsa-fleet-');
  const certs = await certsIn(path.join(dir, 'certs'));
  server = await startServer({ dir, certs, config: { sync_interval: 1, long_poll_max: 2 } });
  rootd = await startRootd();
  const web = await server.cli(['token', 'create', '--uses', '2', '--label', 'role=web', '--name', 'web hosts']);
  assert.equal(web.code, 0, web.stderr);
  const other = await server.cli(['token', 'create', '--label', 'role=db']);
  ({ env: web1Env, id: web1 } = await enroll(String(web.json!.token)));
  ({ env: web2Env, id: web2 } = await enroll(String(web.json!.token)));
  ({ id: db } = await enroll(String(other.json!.token)));
});

after(async () => {
  for (const p of procs) await p.kill();
  await server?.stop();
  await rootd?.stop();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
  for (const e of envs) fs.rmSync(e.dir, { recursive: true, force: true });
});

test('a job for a label: the offline host keeps its job queued, and runs it when it comes back; events show it all', async () => {
  const ev = await openEvents(server, 'test-admin-token-0123456789abcdef');
  try {
    const a1 = run(web1Env);
    const sub = await server.cli(['jobs', 'submit', '--label', 'role=web', 'systeminfo', 'get_hostname', '--wait', '8']);
    // Exit 2: web-2 is offline, its job still open when --wait runs out.
    assert.equal(sub.code, 2, sub.stderr);
    assert.match(sub.stderr, /still has unfinished jobs/);
    const b = sub.json!.batch as Batch;
    assert.deepEqual(b.hosts.map((h) => h.agent_id).sort(), [web1, web2].sort(), 'the db host got a job, or a web host none');
    assert.equal(jobOf(b, web1).status, 'completed', a1.out());
    assert.equal(jobOf(b, web2).status, 'queued');
    const w1done = await ev.waitFor('web-1 job completed', (e) => e.event === 'job' && (e.data as Job).agent_id === web1 && (e.data as Job).status === 'completed');
    assert.equal((w1done.data as Job).batch_id, b.id);
    await ev.waitFor('web-1 job sent', (e) => e.event === 'job' && (e.data as Job).agent_id === web1 && (e.data as Job).status === 'sent');
    // Still queued a while later: nobody else took it.
    await sleep(2000);
    assert.equal(jobOf(await batch(b.id), web2).status, 'queued');
    // web-2 comes back and runs it.
    run(web2Env);
    await ev.waitFor('web-2 online', (e) => e.event === 'agent' && (e.data as { id: string }).id === web2 && (e.data as { state: string }).state === 'online', 20_000);
    const j2 = await server.waitJob(jobOf(b, web2).id, 30_000);
    assert.equal(j2.status, 'completed');
    await ev.waitFor('web-2 job completed', (e) => e.event === 'job' && (e.data as Job).id === j2.id && (e.data as Job).status === 'completed');
    const done = await batch(b.id);
    assert.equal(done.counts.completed, 2);
    // The agent list knows who is online, and the db host (never started) is not. The list filters
    // on last_seen as stored, written every 2 s (docs/fleet.md): web-2's check-in may not be there yet.
    let online = await server.op.findAgents({ state: 'online' });
    await until('web-2 online in the agent list', async () => {
      online = await server.op.findAgents({ state: 'online' });
      return online.agents.length >= 2;
    }, 10_000, 200);
    assert.deepEqual(online.agents.map((a) => a.id).sort(), [web1, web2].sort());
    assert.equal((await server.op.findAgents({ label: ['role=db'] })).agents[0]!.id, db);
  } finally {
    await ev.close();
  }
});

test('retry-failed queues again only the host whose job expired; cancel ends what is still queued', async () => {
  // Stop web-2: its job of the next batch expires while web-1's completes.
  const w2 = procs.find((p) => p.proc.spawnargs.includes(web2Env.configPath))!;
  await w2.kill();
  // 10 s: web-1 must run its job before then, through a server, an agent and rootd on a loaded machine.
  const sub = await server.cli(['jobs', 'submit', '--agent', web1, '--agent', web2, 'systeminfo', 'get_hostname', '--expires', '10']);
  assert.equal(sub.code, 0, sub.stderr);
  const id = (sub.json!.batch as Batch).id;
  await until('web-2\'s job to expire', async () => jobOf(await batch(id), web2).status === 'expired', 30_000, 200);
  const before = await batch(id);
  assert.equal(jobOf(before, web1).status, 'completed');
  const web1Job = jobOf(before, web1).id;
  const retry = await server.cli(['jobs', 'batch', 'retry', id]);
  assert.equal(retry.code, 0, retry.stderr);
  assert.deepEqual(retry.json!.retried, [web2]);
  const after1 = retry.json!.batch as Batch;
  assert.equal(jobOf(after1, web1).id, web1Job, 'web-1 ran again');
  assert.equal(jobOf(after1, web2).status, 'queued');
  // web-1 never got a second job of this batch.
  const w1jobs = (await server.op.listJobs({ agent_id: web1, limit: 1000 })).filter((j) => j.batch_id === id);
  assert.equal(w1jobs.length, 1);
  // Cancel: web-2's new job is still queued (web-2 is down), so it ends now; web-1's stays completed.
  const cancel = await server.cli(['jobs', 'batch', 'cancel', id]);
  assert.equal(cancel.code, 0, cancel.stderr);
  assert.equal((cancel.json!.cancelled as string[]).length, 1);
  const final = cancel.json!.batch as Batch;
  assert.equal(jobOf(final, web2).status, 'cancelled');
  assert.equal(jobOf(final, web1).status, 'completed');
  // A cancelled host is retried too, and runs once it is back.
  const again = await server.cli(['jobs', 'batch', 'retry', id]);
  assert.deepEqual(again.json!.retried, [web2]);
  run(web2Env);
  const j = await server.waitJob(jobOf(again.json!.batch as Batch, web2).id, 30_000);
  assert.equal(j.status, 'completed');
});
