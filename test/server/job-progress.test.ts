/**
 * The progress extension (`agents/api/progress/`) and operator cancel against the real
 * tuxsec-server, the agent's side spoken by hand: a job that reports progress shows `running` and
 * is not called delivered-without-result while it reports, one that stops reporting is; reports
 * are validated and scoped to the agent's own jobs; a cancel comes back in the progress reply.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { adminCall, SimAgent, startServer, type TestServer } from '../helpers/server.ts';

const RESULT_TIMEOUT = 2;
const OP = 'op-0123456789abcdef0123456789abcdef';

describe('tuxsec-server job progress and cancel', () => {
  let srv: TestServer;
  let a: SimAgent;
  let other: SimAgent;

  before(async () => {
    srv = await startServer({ config: { result_timeout: RESULT_TIMEOUT, require_enrollment_token: false } });
    const ca = readFileSync(srv.certs.ca);
    a = new SimAgent(srv.url, ca);
    other = new SimAgent(srv.url, ca);
    assert.equal((await a.register({ hostname: 'progress-a' })).status, 200);
    assert.equal((await other.register({ hostname: 'progress-b' })).status, 200);
  });
  after(async () => {
    await a?.close();
    await other?.close();
    if (srv.proc.exitCode === null && srv.proc.signalCode === null) await srv.stop();
    srv.cleanup();
  });

  const progress = (agent: SimAgent, reports: unknown[]) =>
    agent.post('/agents/api/progress/', { agent_id: agent.agentId, api_key: agent.apiKey, progress: reports }, { 'x-api-key': agent.apiKey });

  async function taken(agent: SimAgent): Promise<string> {
    const sub = await adminCall(srv, 'POST', '/jobs', { agent_id: agent.agentId, module: 'longmod', action: 'loop', params: {} });
    assert.equal(sub.status, 201, JSON.stringify(sub.body));
    const id = (sub.body.job as { id: string }).id;
    const c = await agent.checkin();
    assert.ok((c.body.commands as Array<{ id: string }>).some((j) => j.id === id), JSON.stringify(c.body));
    return id;
  }
  const job = async (id: string) => (await adminCall(srv, 'GET', `/jobs/${id}`)).body.job as Record<string, unknown>;

  test('a job reporting progress is running with it, outlives result_timeout while it reports, then is delivered-without-result once it stops', async () => {
    const id = await taken(a);
    const until = Date.now() + RESULT_TIMEOUT * 2000 + 1500;
    for (let i = 0; Date.now() < until; i++) {
      const r = await progress(a, [{ command_id: id, operation_id: OP, phase: `step ${i}`, fraction: 0.5 }]);
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.deepEqual(r.body, { success: true, cancel: [] });
      await new Promise((res) => setTimeout(res, 400));
    }
    const j = await job(id);
    assert.equal(j.status, 'running', JSON.stringify(j));
    const p = j.progress as Record<string, unknown>;
    assert.equal(p.operation_id, OP);
    assert.match(String(p.phase), /^step \d+$/);
    assert.equal(p.fraction, 0.5);
    // Silent agent: the sweep (every second or so) gives its verdict after result_timeout.
    const deadline = Date.now() + RESULT_TIMEOUT * 1000 + 15_000;
    let last = j;
    while (Date.now() < deadline && last.status === 'running') {
      await new Promise((res) => setTimeout(res, 200));
      last = await job(id);
    }
    assert.equal(last.status, 'delivered-without-result', JSON.stringify(last));
    assert.match(String((last.result as { error: string }).error), /no progress report .* of its last report \(operation "op-0123456789abcdef0123456789abcdef"\)/);
  });

  test('progress for another agent\'s job or a finished one changes nothing; bad reports are refused naming the field', async () => {
    const id = await taken(a);
    const r = await progress(other, [{ command_id: id, operation_id: OP, phase: 'hijack', fraction: 0.1 }]);
    assert.equal(r.status, 200);
    assert.equal((await job(id)).status, 'sent');
    const long = await progress(a, [{ command_id: id, operation_id: OP, phase: 'x'.repeat(201), fraction: 0.1 }]);
    assert.equal(long.status, 400);
    assert.match(String(long.body.error), /phase/);
    const frac = await progress(a, [{ command_id: id, operation_id: OP, fraction: 2 }]);
    assert.equal(frac.status, 400);
    assert.match(String(frac.body.error), /fraction/);
    const many = await progress(a, Array.from({ length: 101 }, () => ({ command_id: id, operation_id: OP })));
    assert.equal(many.status, 400);
    const anon = await a.post('/agents/api/progress/', { agent_id: a.agentId, api_key: 'wrong', progress: [{ command_id: id, operation_id: OP }] });
    assert.equal(anon.status, 401);
    assert.equal((await job(id)).status, 'sent');
    const res = await a.results([{ command_id: id, success: true, output: { ok: 1 }, status: 'completed' }]);
    assert.equal(res.status, 200);
    await progress(a, [{ command_id: id, operation_id: OP, phase: 'late' }]);
    const done = await job(id);
    assert.equal(done.status, 'completed');
    assert.equal(done.progress, null);
  });

  test('jobs cancel: a running job\'s cancel comes back in the progress reply until its result; a final job is a conflict; admin token required', async () => {
    const id = await taken(a);
    await progress(a, [{ command_id: id, operation_id: OP, phase: 'working' }]);
    // An agent's key is no operator's token.
    const asAgent = await a.post(`/api/v1/jobs/${id}/cancel`, {}, { authorization: `Bearer ${a.apiKey}` });
    assert.equal(asAgent.status, 401);
    assert.equal((await job(id)).cancel_requested_at, null);
    const c = await srv.cli(['jobs', 'cancel', id]);
    assert.equal(c.code, 0, c.stderr);
    assert.match(c.stdout, new RegExp(`^job ${id}: running\n`));
    assert.match(c.stdout, /progress: working \(operation op-0123456789abcdef0123456789abcdef, reported .*\)/);
    assert.match(c.stdout, /cancel requested .*: waiting for the agent/);
    assert.deepEqual((await progress(a, [{ command_id: id, operation_id: OP, phase: 'working' }])).body, { success: true, cancel: [id] });
    // The other agent never learns of it.
    assert.deepEqual((await progress(other, [{ command_id: id, operation_id: OP }])).body, { success: true, cancel: [] });
    await a.results([{ command_id: id, success: false, error: 'operation cancelled', code: 'cancelled', status: 'failed' }]);
    const done = await job(id);
    assert.equal(done.status, 'failed');
    assert.equal((done.result as Record<string, unknown>).code, 'cancelled');
    const again = await adminCall(srv, 'POST', `/jobs/${id}/cancel`, {});
    assert.equal(again.status, 409);
    assert.match(String(again.body.error), /cannot cancel job ".*": it already ended failed/);
    assert.equal((await adminCall(srv, 'POST', '/jobs/no-such-job/cancel', {})).status, 404);
  });
});
