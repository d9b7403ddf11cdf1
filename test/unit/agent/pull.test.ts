// In-process tests of the pull loop's decisions (acknowledgment, pacing, backoff, full outbox)
// with the HTTP layer and rootd replaced by recorders; the process tests in this folder drive the
// real server, rootd and agent.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Executor, type ResultEnvelope } from '../../../src/agent/executor.ts';
import { HttpError, parseRetryAfter, type HttpResponse, type PostOptions } from '../../../src/agent/http.ts';
import { Journal } from '../../../src/agent/journal.ts';
import { Outbox } from '../../../src/agent/outbox.ts';
import { AgentRejectedError, PullLoop } from '../../../src/agent/pull.ts';
import { backoffDelay } from '../../../src/common/backoff.ts';

type Answer = HttpResponse | HttpError;

function rig(answers: Answer[], outboxMax = 100) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsa-pull-'));
  const journal = Journal.open(dir);
  const outbox = Outbox.open(dir, { maxEntries: outboxMax, maxBytes: 1 << 20 });
  const ran: string[] = [];
  const executor = new Executor({
    rootd: { execute: async (_m, a) => (ran.push(a), { ok: a }) },
    journal,
    sink: (r) => outbox.add(r),
  });
  const sent: Array<{ path: string; body: Record<string, unknown>; opts: PostOptions }> = [];
  const sleeps: number[] = [];
  const logs: string[] = [];
  const log = { debug: () => {}, info: () => {}, warn: (_o: object, m: string) => void logs.push(m), error: (_o: object, m: string) => void logs.push(m) };
  const http = {
    async post(p: string, body: unknown, opts: PostOptions): Promise<HttpResponse> {
      sent.push({ path: p, body: structuredClone(body) as Record<string, unknown>, opts });
      const a = answers.shift();
      if (!a) throw new Error('no more answers');
      if (a instanceof HttpError) throw a;
      return a;
    },
  };
  let clock = 0;
  const loop = new PullLoop(
    { agentId: 'a', apiKey: 'k', pollInterval: 5 },
    { http, executor, outbox, log, random: () => 0.5, now: () => clock, sleep: async (ms) => void sleeps.push(ms) },
  );
  const signal = new AbortController().signal;
  return { loop, journal, outbox, ran, sent, sleeps, logs, signal, dir, advance: (ms: number) => (clock += ms) };
}

const ok = (body: Record<string, unknown>): HttpResponse => ({ status: 200, body: { success: true, ...body }, retryAfter: null });
const cmd = (id: string) => ({ id, module: 'systeminfo', action: `act_${id}`, params: {} });

test('PullLoop against the original server: the 200 acknowledges, idle answers are paced by sync_interval', async () => {
  const r = rig([ok({ commands: [cmd('1')], sync_interval: 7 }), ok({ commands: [] }), ok({ commands: [] })]);
  await r.loop.step(r.signal);
  assert.deepEqual(r.ran, ['act_1']);
  assert.equal(r.loop.interval, 7);
  assert.equal(r.sent[0]!.body.wait, 25);
  assert.deepEqual(r.sent[0]!.body.features, ['long-poll', 'results', 'redelivery']);
  assert.deepEqual(r.sleeps, [], 'a job ran: check in again at once with its result');
  await r.loop.step(r.signal);
  const results = r.sent[1]!.body.command_results as ResultEnvelope[];
  assert.deepEqual(results.map((x) => x.command_id), ['1']);
  assert.equal(r.sent[1]!.body.wait, 0, 'results pending: no long-poll');
  assert.equal(r.outbox.size, 0, 'no acknowledged field: the 200 counts');
  await r.loop.step(r.signal);
  assert.deepEqual(r.sleeps, [7000], 'answered at once without work: wait sync_interval');
  fs.rmSync(r.dir, { recursive: true });
});

test('PullLoop keeps results the server did not acknowledge and backs off when it acknowledges none', async () => {
  const r = rig([ok({ commands: [cmd('1'), cmd('2')], acknowledged: [] }), ok({ commands: [], acknowledged: ['2'] }), ok({ commands: [], acknowledged: [] })]);
  await r.loop.step(r.signal);
  await r.loop.step(r.signal);
  assert.deepEqual(r.outbox.batch(10, 1e6).map((x) => x.command_id), ['1']);
  await r.loop.step(r.signal);
  assert.equal(r.outbox.size, 1);
  assert.equal(r.sleeps.length, 1, 'backed off');
  assert.match(r.logs.join('\n'), /acknowledged none/);
  fs.rmSync(r.dir, { recursive: true });
});

test('PullLoop long-polls again at once after a held answer from a server that acknowledges', async () => {
  const r = rig([ok({ commands: [], acknowledged: [] })]);
  const orig = r.loop.step.bind(r.loop);
  r.advance(0);
  // Simulate a held request: the clock moves while the server holds it.
  (r as { loop: PullLoop }).loop.step = async (s) => {
    const p = orig(s);
    r.advance(25_000);
    return p;
  };
  await r.loop.step(r.signal);
  assert.deepEqual(r.sleeps, []);
  fs.rmSync(r.dir, { recursive: true });
});

test('PullLoop takes no job while the outbox is full and never drops a result', async () => {
  const r = rig([ok({ commands: [cmd('1'), cmd('2'), cmd('3')], acknowledged: [] })], 2);
  await r.loop.step(r.signal);
  assert.deepEqual(r.ran, ['act_1', 'act_2']);
  assert.equal(r.outbox.size, 2);
  assert.match(r.logs.join('\n'), /outbox is full/);
  fs.rmSync(r.dir, { recursive: true });
});

test('PullLoop backs off with full jitter, honours Retry-After and stops when the agent is rejected', async () => {
  const r = rig([
    new HttpError('down', 0),
    new HttpError('busy', 503, { retryAfter: 9 }),
    new HttpError('rejected', 403, { body: { code: 'agent-rejected', error: 'no' } }),
  ]);
  await r.loop.step(r.signal);
  await r.loop.step(r.signal);
  assert.deepEqual(r.sleeps, [500, 9000]);
  await assert.rejects(r.loop.step(r.signal), AgentRejectedError);
  fs.rmSync(r.dir, { recursive: true });
});

test('backoffDelay stays within [0, min(max, base * 2^(n-1))] and at least Retry-After', () => {
  for (let n = 1; n < 40; n++) {
    const ceiling = Math.min(60_000, 1000 * 2 ** (n - 1));
    assert.equal(backoffDelay(n, { baseMs: 1000, maxMs: 60_000, random: () => 0 }), 0);
    assert.ok(backoffDelay(n, { baseMs: 1000, maxMs: 60_000, random: () => 0.999999 }) <= ceiling);
  }
  assert.equal(backoffDelay(1, { retryAfterSec: 30, baseMs: 1000, maxMs: 60_000, random: () => 0.1 }), 30_000);
  assert.equal(parseRetryAfter('120'), 120);
  assert.equal(parseRetryAfter(new Date(Date.now() + 10_000).toUTCString())! > 8, true);
  assert.equal(parseRetryAfter('soon'), null);
  assert.equal(parseRetryAfter('99999999'), 3600);
});

test('PullLoop.flush hands pending results to the results endpoint at shutdown', async () => {
  const r = rig([ok({ commands: [cmd('1')], acknowledged: [] }), ok({ acknowledged: ['1'] })]);
  await r.loop.step(r.signal);
  assert.equal(r.outbox.size, 1);
  await r.loop.flush();
  assert.equal(r.sent[1]!.path, 'agents/api/results/');
  assert.deepEqual((r.sent[1]!.body.command_results as ResultEnvelope[]).map((x) => x.command_id), ['1']);
  assert.equal(r.outbox.size, 0);
  fs.rmSync(r.dir, { recursive: true });
});

test('PullLoop asks a long-polling server again after 1-2 s when it let go early with nothing', async () => {
  const r = rig([ok({ commands: [], acknowledged: [] })]);
  await r.loop.step(r.signal);
  assert.deepEqual(r.sleeps, [1500]);
  fs.rmSync(r.dir, { recursive: true });
});

test('PullLoop when state_dir cannot be written: a result the outbox cannot store is sent from memory, a job the journal cannot record is not run, and the loop backs off', async () => {
  const r = rig([
    ok({ commands: [cmd('1')], acknowledged: [] }),
    ok({ commands: [], acknowledged: ['1'] }),
    ok({ commands: [cmd('2'), cmd('3')], acknowledged: [] }),
  ]);
  // The outbox's folder gone: its writes fail as on a full disk.
  fs.rmSync(r.outbox.dir, { recursive: true });
  await r.loop.step(r.signal);
  assert.deepEqual(r.ran, ['act_1']);
  assert.match(r.logs.join('\n'), /cannot run job: cannot store the result of job "1" in the outbox .*kept in memory/);
  assert.equal(r.sleeps.length, 1, 'backed off');
  assert.equal(r.outbox.size, 1, 'kept in memory');
  await r.loop.step(r.signal);
  assert.deepEqual((r.sent[1]!.body.command_results as ResultEnvelope[]).map((x) => x.command_id), ['1'], 'sent from memory');
  assert.equal(r.outbox.size, 0);
  // The journal cannot be written: neither job runs.
  r.journal.close();
  await r.loop.step(r.signal);
  assert.deepEqual(r.ran, ['act_1']);
  assert.match(r.logs.join('\n'), /cannot run job: cannot write job journal/);
  assert.ok(!r.journal.has('2') && !r.journal.has('3'));
  assert.equal(r.sleeps.length, 2, 'backed off');
  fs.rmSync(r.dir, { recursive: true });
});
