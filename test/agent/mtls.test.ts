// The agent with a client certificate against a server that requires one (client_ca), and the
// api_key from a systemd credential file instead of agent.yaml; without the certificate it is refused.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { startRootd, type RootdHandle } from '../helpers/rootd.ts';
import type { CertPaths } from '../helpers/certs.ts';
import { certsIn, createToken, makeAgentEnv, readCredentials, registerAgent, startAgent, startServer, tempDir, until, type AgentEnv, type ServerHandle } from './harness.ts';

let dir: string;
let certs: CertPaths;
let server: ServerHandle;
let rootd: RootdHandle;
let env: AgentEnv;

before(async () => {
  dir = tempDir('tsa-mtls-');
  certs = await certsIn(path.join(dir, 'certs'));
  server = await startServer({
    dir,
    certs,
    config: { client_ca: certs.ca, client_cert: certs.clientCert, client_key: certs.clientKey },
  });
  rootd = await startRootd();
  env = await makeAgentEnv({ ca_cert: certs.ca, ssl_cert: certs.clientCert, ssl_key: certs.clientKey, rootd_socket: rootd.socketPath });
  // The client key as it would be installed: readable by the agent's user alone (0600 tuxsec).
  fs.chownSync(certs.clientKey, env.uid, env.gid);
  fs.chmodSync(certs.clientKey, 0o600);
});

after(async () => {
  await server?.stop();
  await rootd?.stop();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
  if (env) fs.rmSync(env.dir, { recursive: true, force: true });
});

test('tuxsec-agent presents ssl_cert/ssl_key and takes the api_key from $CREDENTIALS_DIRECTORY/api_key', async () => {
  const r = await registerAgent(env, server.url, await createToken(server));
  assert.equal(r.code, 0, r.stderr);
  // Hand the key over as systemd's LoadCredential= would, and take register's file away.
  const cfg = YAML.parse(fs.readFileSync(env.configPath, 'utf8')) as Record<string, unknown>;
  const key = readCredentials(env).api_key;
  fs.rmSync(String(cfg.api_key_file));
  const creds = path.join(env.dir, 'creds');
  fs.mkdirSync(creds, { mode: 0o750 });
  fs.chownSync(creds, 0, env.gid);
  fs.writeFileSync(path.join(creds, 'api_key'), key + '\n', { mode: 0o640 });
  fs.chownSync(path.join(creds, 'api_key'), 0, env.gid);
  const agent = startAgent(env, [], { CREDENTIALS_DIRECTORY: creds });
  try {
    await until('agent start', () => /started in pull mode/.test(agent.out()), 10_000);
    const job = await server.waitJob((await server.op.submitJob({ agent_id: String(cfg.agent_id), module: 'systeminfo', action: 'get_hostname' })).id);
    assert.equal(job.status, 'completed', agent.out());
    assert.ok(!agent.out().includes(key));
  } finally {
    await agent.kill();
  }
});

test('tuxsec-agent without a client certificate is refused by a server that requires one', async () => {
  const cfg = YAML.parse(fs.readFileSync(env.configPath, 'utf8')) as Record<string, unknown>;
  fs.writeFileSync(env.configPath, YAML.stringify({ ...cfg, ssl_cert: null, ssl_key: null, api_key: 'whatever' }));
  const agent = startAgent(env);
  try {
    await until('the refusal', () => /cannot check in: cannot reach/.test(agent.out()), 10_000);
  } finally {
    await agent.kill();
  }
});
