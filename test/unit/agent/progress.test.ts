// In-process tests of the progress reporter's pacing and cancel handling, with the HTTP layer and
// rootd replaced by recorders and a clock the test moves; job-progress.test.ts (test/agent and
// test/server) drives the real server, agent and rootd.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HttpError, type HttpResponse } from '../../../src/agent/http.ts';
import { ProgressReporter } from '../../../src/agent/progress.ts';
import type { OperationInfo } from '../../../src/protocol/messages.ts';

function op(phase: string | null, fraction: number | null, id = 'op-00000000000000000000000000000001'): OperationInfo {
  return { id, module: 'aide', action: 'check', uid: 1, state: 'running', phase, fraction, timeout_seconds: 60, started_at: '', finished_at: null, expires_at: null };
}

function rig(answer: (body: { progress: Array<{ command_id: string }> }) => HttpResponse | HttpError) {
  let now = 1_000_000;
  const posts: Array<Array<Record<string, unknown>>> = [];
  const cancelled: string[] = [];
  const logs: string[] = [];
  const r = new ProgressReporter(
    { agentId: 'a', apiKey: 'k', minIntervalMs: 5000, maxIntervalMs: 15_000 },
    {
      http: {
        async post(_p, body) {
          const b = body as { progress: Array<Record<string, unknown>> };
          posts.push(b.progress);
          const a = answer(b as { progress: Array<{ command_id: string }> });
          if (a instanceof HttpError) throw a;
          return a;
        },
      },
      rootd: { operationCancel: async (id) => (cancelled.push(id), op('cancelling', null, id)) },
      log: { info: (_o, m) => void logs.push(m), warn: (_o, m) => void logs.push(m) },
      now: () => now,
    },
  );
  const advance = (ms: number) => (now += ms);
  return { r, posts, cancelled, logs, advance };
}

const ok = (cancel: string[] = []): HttpResponse => ({ status: 200, body: { success: true, cancel }, retryAfter: null });

test('ProgressReporter reports a job at once, then changes at most every minIntervalMs, unchanged every maxIntervalMs', async () => {
  const { r, posts, advance } = rig(() => ok());
  try {
    r.progress('j1', op(null, 0));
    await r.tick();
    assert.equal(posts.length, 1);
    assert.deepEqual(posts[0], [{ command_id: 'j1', operation_id: 'op-00000000000000000000000000000001', phase: null, fraction: 0 }]);
    r.progress('j1', op('checking files', 0.1));
    advance(1000);
    await r.tick();
    assert.equal(posts.length, 1, 'a change within minIntervalMs waits');
    advance(4000);
    await r.tick();
    assert.equal(posts.length, 2);
    assert.equal(posts[1]![0]!.phase, 'checking files');
    advance(6000);
    await r.tick();
    assert.equal(posts.length, 2, 'nothing new: no report before maxIntervalMs');
    advance(9000);
    await r.tick();
    assert.equal(posts.length, 3, 'unchanged, but maxIntervalMs passed: a cancel must be able to come back');
    r.finished('j1');
    advance(60_000);
    await r.tick();
    assert.equal(posts.length, 3, 'a finished job is not reported');
  } finally {
    r.stop();
  }
});

test('ProgressReporter cancels the operation of a job the server names, once, and ignores names of jobs it does not run', async () => {
  const { r, cancelled, advance } = rig((b) => ok([...b.progress.map((p) => p.command_id), 'someone-else']));
  try {
    r.progress('j1', op('looping', 0.5));
    await r.tick();
    advance(15_000);
    await r.tick();
    assert.deepEqual(cancelled, ['op-00000000000000000000000000000001']);
  } finally {
    r.stop();
  }
});

test('ProgressReporter stops for good against a server without the path (404), and keeps the job on other failures', async () => {
  let status = 503;
  const { r, posts, logs, advance } = rig(() => new HttpError(`server refused: ${status}`, status));
  try {
    r.progress('j1', op('a', 0.1));
    await r.tick();
    assert.equal(r.unsupported, false);
    assert.match(logs.join('\n'), /cannot report job progress: server refused: 503/);
    status = 404;
    advance(5000);
    r.progress('j1', op('b', 0.2));
    await r.tick();
    assert.equal(r.unsupported, true);
    const n = posts.length;
    r.progress('j2', op('c', 0.3));
    advance(60_000);
    await r.tick();
    assert.equal(posts.length, n);
  } finally {
    r.stop();
  }
});

test('ProgressReporter sends no fraction outside 0..1 and no phase over 200 characters (the server would refuse the report)', async () => {
  const { r, posts } = rig(() => ok());
  try {
    r.progress('j1', op('x'.repeat(500), 7));
    await r.tick();
    assert.equal((posts[0]![0]!.phase as string).length, 200);
    assert.equal(posts[0]![0]!.fraction, null);
  } finally {
    r.stop();
  }
});
