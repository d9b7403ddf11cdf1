/**
 * A job an agent takes but never answers: the original Python pull agent registers, checks in and
 * runs jobs, but its `_report_command_result` is empty. A real tuxsec-server (result_timeout 2 s)
 * must show such a job as `delivered-without-result` with the reason, leave a job that got its
 * result `completed`, and accept a result that arrives after the verdict.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { adminCall, SimAgent, startServer, type TestServer } from '../helpers/server.ts';

const RESULT_TIMEOUT = 2;

interface Command {
  id: string;
  module: string;
  action: string;
}

/**
 * Stands in for the Python pull agent (tuxsec_agent's pull client): registers with hostname,
 * ip_address and os_info only, checks in with `{agent_id, api_key, status: "online"}` and the
 * X-API-Key header (no `wait`, no `features`), takes the commands and never reports a result.
 */
class PythonAgentStandIn {
  private readonly http: SimAgent;

  constructor(url: string, ca: Buffer) {
    this.http = new SimAgent(url, ca);
  }

  async register(): Promise<void> {
    const os_info = { system: 'Linux', release: '6.1.0-18-amd64', version: '#1 SMP Debian', machine: 'x86_64' };
    const r = await this.http.post('/agents/api/register/', { hostname: 'python-host', ip_address: '127.0.0.1', os_info });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    this.http.agentId = String(r.body.agent_id);
    this.http.apiKey = String(r.body.api_key);
  }

  get agentId(): string {
    return this.http.agentId;
  }

  /** Polls until the server hands out the job, as the Python agent's loop does (faster here). */
  async takeJob(id: string): Promise<Command> {
    for (let i = 0; i < 600; i++) {
      const r = await this.http.post('/agents/api/checkin/', { agent_id: this.agentId, api_key: this.http.apiKey, status: 'online' }, { 'x-api-key': this.http.apiKey });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      const found = (r.body.commands as Command[]).find((c) => c.id === id);
      if (found) return found;
      await new Promise((res) => setTimeout(res, 100));
    }
    throw new Error(`job ${id} was never handed out`);
  }

  /** What the Python agent would send if it reported: used only to deliver a late result. */
  report(results: unknown[]) {
    return this.http.results(results);
  }

  close(): Promise<void> {
    return this.http.close();
  }
}

describe('tuxsec-server with an agent that never reports results', () => {
  let srv: TestServer;
  let ca: Buffer;

  before(async () => {
    srv = await startServer({ config: { result_timeout: RESULT_TIMEOUT, require_enrollment_token: false } });
    ca = readFileSync(srv.certs.ca);
  });
  after(async () => {
    if (srv.proc.exitCode === null && srv.proc.signalCode === null) await srv.stop();
    srv.cleanup();
  });

  async function submit(agentId: string): Promise<string> {
    const r = await adminCall(srv, 'POST', '/jobs', { agent_id: agentId, module: 'systeminfo', action: 'get_info', params: {} });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    return (r.body.job as { id: string }).id;
  }

  async function job(id: string): Promise<Record<string, unknown>> {
    const r = await adminCall(srv, 'GET', `/jobs/${id}`);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return r.body.job as Record<string, unknown>;
  }

  test('a job taken but never answered becomes delivered-without-result with the reason; an answered one stays completed; a late result is recorded', async () => {
    const python = new PythonAgentStandIn(srv.url, ca);
    const reporter = new SimAgent(srv.url, ca);
    try {
      await python.register();
      assert.equal((await reporter.register()).status, 200);

      // Delivered first and answered at once: its deadline passes before the unanswered one's.
      const answered = await submit(reporter.agentId);
      const taken = await reporter.checkin({ features: ['long-poll', 'results', 'redelivery'] });
      assert.deepEqual((taken.body.commands as Command[]).map((c) => c.id), [answered]);
      const ack = await reporter.results([{ command_id: answered, success: true, output: { hostname: 'sim-host' } }]);
      assert.deepEqual(ack.body.acknowledged, [answered]);

      const silent = await submit(python.agentId);
      await python.takeJob(silent);
      assert.equal((await job(silent)).status, 'sent');

      // The operator waits for it as for any job: the verdict ends the wait.
      const got = await srv.cli(['jobs', 'get', silent, '--wait', '60', '--json']);
      assert.equal(got.code, 0, got.stderr);
      const shown = (JSON.parse(got.stdout) as { job: Record<string, unknown> }).job;
      assert.equal(shown.status, 'delivered-without-result', JSON.stringify(shown));
      const result = shown.result as { success: boolean; code: string; error: string };
      assert.equal(result.success, false);
      assert.equal(result.code, 'no-result');
      assert.match(result.error, new RegExp(`^no result from agent "${python.agentId}" within ${RESULT_TIMEOUT} s of delivery`));
      const waited = Date.parse(String(shown.finished_at)) - Date.parse(String(shown.sent_at));
      assert.ok(waited >= RESULT_TIMEOUT * 1000, `marked ${waited} ms after delivery, before result_timeout`);

      const human = await srv.cli(['jobs', 'get', silent]);
      assert.match(human.stdout, new RegExp(`job ${silent}: delivered-without-result`));
      assert.match(human.stdout, /error: no result from agent .* \(no-result\)/);
      const listed = await srv.cli(['jobs', 'list', '--status', 'delivered-without-result', '--json']);
      assert.equal(listed.code, 0, listed.stderr);
      assert.deepEqual((JSON.parse(listed.stdout) as { jobs: Array<{ id: string }> }).jobs.map((j) => j.id), [silent]);
      assert.match(srv.log(), /job delivered without result/);

      const done = await job(answered);
      assert.equal(done.status, 'completed');
      assert.deepEqual(done.result, { success: true, status: 'completed', output: { hostname: 'sim-host' } });

      // A result after the verdict is still what ran on the host: it is stored and replaces it.
      const late = await python.report([{ command_id: silent, success: false, error: 'late', status: 'failed' }]);
      assert.deepEqual(late.body.acknowledged, [silent]);
      const after = await job(silent);
      assert.equal(after.status, 'failed');
      assert.deepEqual(after.result, { success: false, status: 'failed', error: 'late' });
      // ...once: a second one changes nothing.
      await python.report([{ command_id: silent, success: true, output: {} }]);
      assert.equal((await job(silent)).status, 'failed');
    } finally {
      await python.close();
      await reporter.close();
    }
  });
});
