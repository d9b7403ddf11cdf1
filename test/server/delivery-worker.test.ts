/**
 * The delivery worker's scheduling against real SQLite storage: per-agent concurrency (a slow
 * agent cannot starve another), retry with backoff on an unreachable agent, a refusal failing the
 * job at once. The transport is a stand-in here: a slow or flapping push agent on cue is what the
 * real one (test/server/push-delivery.test.ts) cannot be made into; the states are the real storage's.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { test } from 'node:test';
import type { JobEnvelope } from '../../src/protocol/jobs.ts';
import { DeliveryError, type Transport } from '../../src/server/delivery/transport.ts';
import { DeliveryWorker } from '../../src/server/delivery/worker.ts';
import { GroupCommit } from '../../src/server/group-commit.ts';
import { JobDispatch } from '../../src/server/job-dispatch.ts';
import { openSqliteStorage } from '../../src/server/storage/sqlite.ts';
import type { AgentRecord, IncomingResult, Storage } from '../../src/server/storage/storage.ts';
import { until } from '../agent/harness.ts';

const quiet = { info() {}, warn() {}, error() {} };

function addAgent(storage: Storage, name: string): string {
  const id = randomUUID();
  const a: AgentRecord = {
    id, keyHash: randomUUID(), status: 'active', machineId: null, hostname: name, ip: null, osInfo: null, modules: [], version: null,
    features: [], createdAt: Date.now(), lastSeen: null, tokenId: null, mode: 'push',
    endpoint: { url: `https://${name}:8443`, caFile: '/nonexistent-ca.pem' }, pushKey: 'k'.repeat(43), labels: {},
  };
  storage.enroll(null, a, Date.now());
  return id;
}

function queue(storage: Storage, agentId: string, n: number): string[] {
  return Array.from({ length: n }, () => {
    const id = randomUUID();
    storage.createJob({
      id, agentId, module: 'systeminfo', action: 'get_hostname', params: {}, status: 'queued', createdAt: Date.now(), sentAt: null,
      lastSentAt: null, deliveries: 0, finishedAt: null, expiresAt: Date.now() + 600_000, result: null,
    });
    return id;
  });
}

const ok = (job: JobEnvelope): IncomingResult => ({ commandId: job.id, success: true, status: 'completed', output: { hostname: 'h' } });

function setup(execute: (agent: AgentRecord, job: JobEnvelope, signal: AbortSignal) => Promise<IncomingResult>, limits = { concurrency: 4, perAgent: 2, retryMaxMs: 50 }) {
  const storage = openSqliteStorage(':memory:');
  const dispatch = new JobDispatch();
  const worker = new DeliveryWorker({
    storage, group: new GroupCommit(storage), dispatch, log: quiet, now: Date.now, startedAt: Date.now(), limits,
    transports: {
      push: (agent): Transport => ({ execute: (job, signal) => execute(agent, job, signal), close: async () => {} }),
    },
  });
  dispatch.onJobQueued((id) => worker.wake(id));
  return { storage, dispatch, worker };
}

test('DeliveryWorker a slow agent holds only its own slots: another agent\'s jobs all complete meanwhile', async () => {
  const held: Array<() => void> = [];
  let slowRunning = 0;
  let slowMax = 0;
  const { storage, dispatch, worker } = setup(async (agent, job) => {
    if (agent.hostname !== 'slow') return ok(job);
    slowRunning++;
    slowMax = Math.max(slowMax, slowRunning);
    await new Promise<void>((r) => held.push(r));
    slowRunning--;
    return ok(job);
  });
  const slow = addAgent(storage, 'slow');
  const fast = addAgent(storage, 'fast');
  const slowJobs = queue(storage, slow, 10);
  const fastJobs = queue(storage, fast, 20);
  worker.start();
  dispatch.jobQueued(slow);
  dispatch.jobQueued(fast);
  await until('the fast agent\'s jobs completed', () => fastJobs.every((id) => storage.getJob(id)!.status === 'completed'), 10_000);
  assert.equal(slowMax, 2, 'the slow agent got more than its per-agent limit');
  assert.equal(slowJobs.filter((id) => storage.getJob(id)!.status === 'queued').length, 8);
  while (slowJobs.some((id) => storage.getJob(id)!.status !== 'completed')) {
    held.splice(0).forEach((r) => r());
    await new Promise((r) => setTimeout(r, 5));
  }
  assert.equal(slowMax, 2);
  await worker.close();
  storage.close();
});

test('DeliveryWorker an unreachable agent: the job stays sent and is delivered on a later attempt; a refusal fails it at once', async () => {
  let attempts = 0;
  const { storage, dispatch, worker } = setup(async (agent, job) => {
    if (agent.hostname === 'refusing') throw new DeliveryError('cannot deliver job: the agent refused the api_key (HTTP 401)', false, 'unauthorized');
    attempts++;
    if (attempts < 3) throw new DeliveryError('cannot reach agent: ECONNREFUSED', true);
    return ok(job);
  });
  const flaky = addAgent(storage, 'flaky');
  const refusing = addAgent(storage, 'refusing');
  const [job] = queue(storage, flaky, 1);
  const [refused] = queue(storage, refusing, 1);
  worker.start();
  dispatch.jobQueued(flaky);
  dispatch.jobQueued(refusing);
  await until('the flaky job completed', () => storage.getJob(job!)!.status === 'completed', 10_000);
  assert.equal(storage.getJob(job!)!.deliveries, 3);
  const r = storage.getJob(refused!)!;
  assert.equal(r.status, 'failed');
  assert.equal(r.deliveries, 1);
  assert.equal(r.result!.code, 'unauthorized');
  await worker.close();
  storage.close();
});

test('DeliveryWorker on close leaves a job in delivery sent, and a new worker sends it again', async () => {
  // Like the real transports, it gives up when the worker aborts its deliveries.
  const { storage, dispatch, worker } = setup(
    (_agent, _job, signal) => new Promise((_resolve, reject) => signal.addEventListener('abort', () => reject(new DeliveryError('aborted', true)))),
  );
  const id = addAgent(storage, 'hung');
  const [job] = queue(storage, id, 1);
  worker.start();
  dispatch.jobQueued(id);
  await until('the job sent', () => storage.getJob(job!)!.status === 'sent', 10_000);
  await worker.close();
  assert.equal(storage.getJob(job!)!.status, 'sent');
  await new Promise((r) => setTimeout(r, 2));
  const again = new DeliveryWorker({
    storage, group: new GroupCommit(storage), dispatch: new JobDispatch(), log: quiet, now: Date.now, startedAt: Date.now(),
    limits: { concurrency: 4, perAgent: 2, retryMaxMs: 50 },
    transports: { push: (): Transport => ({ execute: async (j) => ok(j), close: async () => {} }) },
  });
  again.start();
  await until('the job completed after the restart', () => storage.getJob(job!)!.status === 'completed', 10_000);
  assert.equal(storage.getJob(job!)!.deliveries, 2);
  await again.close();
  storage.close();
});
