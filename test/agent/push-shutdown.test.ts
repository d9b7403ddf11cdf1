/**
 * A push agent stopped (SIGTERM, as systemctl stop or restart) while a job runs: the job finishes
 * and its real answer goes out before the agent exits. Real agent as tuxsec, real rootd with a
 * long-running test action.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { until } from './harness.ts';
import { startPushAgent, type PushAgent } from './push-harness.ts';
import { pluginDir, writeLongRunningPlugin } from '../helpers/plugin.ts';

let h: PushAgent;

before(async () => {
  const plugins = pluginDir();
  writeLongRunningPlugin(plugins);
  h = await startPushAgent({ rootd: { config: { plugins_dir: plugins, modules: { firewalld: { enabled: false } } } } });
});

after(async () => {
  await h?.stop();
});

test('push SIGTERM while a job runs: the job finishes, its real answer is sent, then the agent exits 0', async () => {
  const answer = h.request('POST', '/execute', { body: JSON.stringify({ id: 'stop-1', module: 'longmod', action: 'count', params: { steps: 20, ms: 100 } }) });
  await until('the job\'s operation to run', async () => {
    const st = await h.request('GET', '/jobs/stop-1');
    return st.json.state === 'running' && st.json.operation_id !== null;
  }, 30_000, 50);
  const exited = h.agent.kill('SIGTERM');
  const r = await answer;
  assert.equal(r.status, 200, r.body);
  assert.equal(r.json.success, true, r.body);
  assert.deepEqual((r.json.result as { counted: number }).counted, 20);
  assert.equal((await exited).code, 0, h.agent.out());
});
