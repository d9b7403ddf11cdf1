// Attacks on `tuxsec-agent --check-config`, which root may run (a migration checks agent.yaml
// before and after the swap). The log directory belongs to the agent's user (install.sh:
// /var/log/tuxsec 0755 tuxsec), so a compromised agent controls what is at log_file.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { AGENT_JS, makeAgentEnv, startProc, tempDir, type AgentEnv } from '../agent/harness.ts';

const envs: AgentEnv[] = [];
const dirs: string[] = [];
after(() => {
  for (const e of envs) fs.rmSync(e.dir, { recursive: true, force: true });
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

test('tuxsec-agent --check-config run by root never opens log_file: a symlink the agent user put there creates no file as root', async () => {
  const logDir = tempDir('tsa-log-');
  const rootOnly = tempDir('tsa-target-');
  dirs.push(logDir, rootOnly);
  const target = path.join(rootOnly, 'nologin');
  const env = await makeAgentEnv({ server_url: 'https://127.0.0.1:9', agent_id: 'a1', api_key: 'k1', log_file: path.join(logDir, 'agent.log') });
  envs.push(env);
  // The agent's user owns its log directory and plants a link where its log goes.
  fs.chownSync(logDir, env.uid, env.gid);
  fs.symlinkSync(target, path.join(logDir, 'agent.log'));
  fs.lchownSync(path.join(logDir, 'agent.log'), env.uid, env.gid);
  const check = startProc(process.execPath, [AGENT_JS, '--config', env.configPath, '--check-config']);
  const { code } = await check.exited;
  assert.equal(code, 0, check.out());
  assert.match(check.out(), /agent\.yaml: valid \(mode pull/);
  // The warning (api_key in a group-readable file) still reaches the one running the check.
  assert.match(check.out(), /tuxsec-agent: warning: the api_key is in/);
  assert.equal(fs.existsSync(target), false, 'root created a file through the agent user\'s symlink');
});

test('tuxsec-agent --check-config run by root leaves no root-owned log file the agent then cannot open', async () => {
  const logDir = tempDir('tsa-log-');
  dirs.push(logDir);
  const env = await makeAgentEnv({ server_url: 'https://127.0.0.1:9', agent_id: 'a1', api_key: 'k1', log_file: path.join(logDir, 'agent.log') });
  envs.push(env);
  fs.chownSync(logDir, env.uid, env.gid);
  const check = startProc(process.execPath, [AGENT_JS, '--config', env.configPath, '--check-config']);
  assert.equal((await check.exited).code, 0, check.out());
  assert.equal(fs.existsSync(path.join(logDir, 'agent.log')), false);
});
