/**
 * One tuxsec-server driving one agent in each connection mode (issue 9): pull (the agent polls the
 * server), push (the server calls the agent over mutual TLS) and SSH (the server logs in with the
 * OpenSSH client and tuxsec-shell runs the job). All real processes: the server, rootd as root,
 * the agents as the tuxsec user, sshd on 127.0.0.1. The same job goes to all three; the same result
 * shape comes back, and each agent's journal shows it ran once.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { hostname } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { makeAgentEnv, readCredentials, readJournal, registerAgent, startAgent, type AgentEnv, type Proc } from '../agent/harness.ts';
import { API_KEY, startPushAgent, type PushAgent } from '../agent/push-harness.ts';
import { startSshMode, type SshMode } from '../helpers/sshd.ts';
import { startServer, type TestServer } from '../helpers/server.ts';

interface Job {
  id: string;
  status: string;
  deliveries: number;
  result: Record<string, unknown> | null;
}

let push: PushAgent;
let sshMode: SshMode;
let srv: TestServer;
let pullEnv: AgentEnv;
let pull: Proc;
const ids: Record<'pull' | 'push' | 'ssh', string> = { pull: '', push: '', ssh: '' };

async function cliJson<T>(args: string[]): Promise<T> {
  const r = await srv.cli([...args, '--json']);
  assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr} (the pull agent said: ${pull?.out().slice(-500)})`);
  return JSON.parse(r.stdout) as T;
}

before(async () => {
  push = await startPushAgent();
  sshMode = await startSshMode();
  srv = await startServer({
    config: { agent_client_cert: push.certs.clientCert, agent_client_key: push.certs.clientKey, ssh_identity: sshMode.keys.key, ssh_keepalive: 0 },
  });

  // Pull: enrolled with a token, then polling; it uses the push agent's rootd (one rootd, two agents).
  pullEnv = await makeAgentEnv({ server_url: null, agent_id: null, api_key: null, ca_cert: null, rootd_socket: push.rootd.socketPath, poll_interval: 1 });
  // The agent (tuxsec) reads the server's CA from its own config directory.
  const ca = path.join(pullEnv.dir, 'server-ca.pem');
  fs.copyFileSync(srv.certs.ca, ca);
  fs.chmodSync(ca, 0o644);
  const yaml = fs.readFileSync(pullEnv.configPath, 'utf8').replace(/^ca_cert: null$/m, `ca_cert: ${ca}`);
  fs.writeFileSync(pullEnv.configPath, yaml);
  const { token } = await cliJson<{ token: string }>(['token', 'create']);
  const reg = await registerAgent(pullEnv, srv.url, token);
  assert.equal(reg.code, 0, reg.stderr);
  ids.pull = readCredentials(pullEnv).agent_id;
  pull = startAgent(pullEnv);

  const keyFile = path.join(push.dir, 'three-modes-key');
  fs.writeFileSync(keyFile, `${API_KEY}\n`, { mode: 0o600 });
  ids.push = (
    await cliJson<{ agent: { id: string } }>(['agents', 'add', 'push-agent', '--mode', 'push', '--url', `https://127.0.0.1:${push.port}`, '--agent-ca', push.certs.ca, '--api-key-file', keyFile])
  ).agent.id;
  const knownHost = fs.readFileSync(sshMode.keyed.knownHosts, 'utf8').trim();
  ids.ssh = (
    await cliJson<{ agent: { id: string } }>(['agents', 'add', 'ssh-agent', '--mode', 'ssh', '--host', '127.0.0.1', '--port', String(sshMode.keyed.port), '--known-host', knownHost])
  ).agent.id;
});

after(async () => {
  await pull?.kill();
  if (srv && srv.proc.exitCode === null && srv.proc.signalCode === null) await srv.stop();
  srv?.cleanup();
  await push?.stop();
  await sshMode?.stop();
  if (pullEnv) fs.rmSync(pullEnv.dir, { recursive: true, force: true });
});

describe('tuxsec-server and one agent in each mode', () => {
  test('agents list shows the three modes', async () => {
    const { agents } = await cliJson<{ agents: Array<{ id: string; mode: string }> }>(['agents', 'list']);
    const modeOf = (id: string) => agents.find((a) => a.id === id)?.mode;
    assert.deepEqual([modeOf(ids.pull), modeOf(ids.push), modeOf(ids.ssh)], ['pull', 'push', 'ssh']);
  });

  test('the same job to all three: completed, the same result shape, run once each', async () => {
    const jobs: Record<string, Job> = {};
    await Promise.all(
      (['pull', 'push', 'ssh'] as const).map(async (mode) => {
        const { job } = await cliJson<{ job: Job }>(['jobs', 'submit', ids[mode], 'systeminfo', 'get_hostname', '--wait', '120']);
        jobs[mode] = job;
      }),
    );
    for (const mode of ['pull', 'push', 'ssh']) {
      const j = jobs[mode]!;
      assert.equal(j.status, 'completed', `${mode}: ${JSON.stringify(j)}`);
      assert.equal(j.deliveries, 1, mode);
      assert.equal(j.result!.success, true, mode);
      assert.equal((j.result!.output as { hostname: string }).hostname, hostname(), mode);
    }
    const shape = (mode: string) => Object.keys(jobs[mode]!.result!).sort();
    assert.deepEqual(shape('push'), shape('pull'));
    assert.deepEqual(shape('ssh'), shape('pull'));
    // Each agent's journal holds the job once: started and finished, never a second start.
    for (const [mode, env] of [['pull', pullEnv], ['push', push.env], ['ssh', sshMode.agent]] as const) {
      const starts = readJournal(env).filter((e) => e.s === jobs[mode]!.id);
      assert.equal(starts.length, 1, `${mode}: ${JSON.stringify(starts)}`);
    }
  });

  test('a job that fails on the agent fails alike in every mode, with the same code', async () => {
    const codes: Record<string, unknown> = {};
    for (const mode of ['pull', 'push', 'ssh'] as const) {
      // A job that ends failed: the CLI says so with its exit status, and prints the job.
      const r = await srv.cli(['jobs', 'submit', ids[mode], 'systeminfo', 'no_such_action', '--wait', '120', '--json']);
      const { job } = JSON.parse(r.stdout) as { job: Job };
      assert.notEqual(r.code, 0, mode);
      assert.equal(job.status, 'failed', `${mode}: ${JSON.stringify(job)}`);
      assert.equal(job.result!.success, false, mode);
      codes[mode] = job.result!.code;
    }
    assert.deepEqual(codes, { pull: 'action-not-found', push: 'action-not-found', ssh: 'action-not-found' });
  });
});
