// A Python-era agent.yaml in pull mode: the seed README's example, verbatim, at its own paths
// (/etc/tuxsec, /var/lib/tuxsec, /var/log/tuxsec, /var/run/tuxsec), in a mount namespace of this
// test so the host's directories are never touched. It names push mode's certificate files, which
// a pull-mode host does not have: the agent ignores them with one warning and runs jobs. A ca_cert
// that is not there still stops the agent, saying how to fix it.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { loadConfig } from '../../src/agent/config.ts';
import { startRootd, type RootdHandle } from '../helpers/rootd.ts';
import { ensureTestUsers } from '../helpers/users.ts';
import { AGENT_JS, certsIn, createToken, makeAgentEnv, startAgent, startProc, startServer, tempDir, until, type AgentEnv, type Proc, type ServerHandle } from './harness.ts';

/** The seed README's agent.yaml, as a site has it. */
const SEED_AGENT_YAML = `# Connection mode: pull, push, or ssh
mode: pull

# Server connection (for pull mode)
server_url: https://tuxsec.example.com
agent_id: null  # Set during registration
api_key: null   # Set during registration

# Pull mode settings
poll_interval: 30  # Seconds between polls

# Push mode settings
listen_host: 0.0.0.0
listen_port: 8443

# SSL/TLS certificates
ssl_cert: /etc/tuxsec/certs/agent.crt
ssl_key: /etc/tuxsec/certs/agent.key
ca_cert: /etc/tuxsec/certs/ca.crt

# Logging
log_level: INFO
log_file: /var/log/tuxsec/agent.log
`;

let dir: string;
let server: ServerHandle;
let rootd: RootdHandle;
let agent: Proc | null = null;
const envs: AgentEnv[] = [];

before(async () => {
  dir = tempDir('tsa-pyconf-');
  const certs = await certsIn(path.join(dir, 'certs'));
  server = await startServer({ dir, certs });
  rootd = await startRootd();
});

after(async () => {
  await agent?.kill();
  await server?.stop();
  await rootd?.stop();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
  for (const e of envs) fs.rmSync(e.dir, { recursive: true, force: true });
});

test('tuxsec-agent runs jobs with the seed README agent.yaml verbatim in pull mode, ignoring push mode settings with one warning', { timeout: 120_000 }, async () => {
  const { tuxsec } = await ensureTestUsers();
  // The namespace's /etc is the host's with this overlay on top: agent.yaml and the CA only.
  const upper = path.join(dir, 'etc-upper');
  const work = path.join(dir, 'etc-work');
  fs.mkdirSync(path.join(upper, 'tuxsec', 'certs'), { recursive: true, mode: 0o755 });
  fs.mkdirSync(work);
  fs.chmodSync(path.join(upper, 'tuxsec'), 0o755);
  fs.copyFileSync(server.certs.ca, path.join(upper, 'tuxsec', 'certs', 'ca.crt'));
  fs.chmodSync(path.join(upper, 'tuxsec', 'certs', 'ca.crt'), 0o644);
  const yamlPath = path.join(upper, 'tuxsec', 'agent.yaml');
  fs.writeFileSync(yamlPath, SEED_AGENT_YAML, { mode: 0o640 });
  fs.chownSync(yamlPath, 0, tuxsec.gid);
  // log_file is in the namespace; this directory is mounted there so the test can read it.
  const logDir = path.join(dir, 'log');
  fs.mkdirSync(logDir, { mode: 0o755 });
  fs.chownSync(logDir, tuxsec.uid, tuxsec.gid);
  const logFile = path.join(logDir, 'agent.log');
  const logText = () => (fs.existsSync(logFile) ? fs.readFileSync(logFile, 'utf8') : '');
  const token = await createToken(server);
  const ids = `--reuid=${tuxsec.uid} --regid=${tuxsec.gid}`;
  // A test-only script (the product never runs a shell): mounts, register as root, then the agent as tuxsec.
  const script = [
    'set -e',
    `mount -t overlay overlay -o lowerdir=/etc,upperdir=${upper},workdir=${work} /etc`,
    'for d in /var/lib /var/log /run; do mount -t tmpfs -o mode=0755 tmpfs $d; done',
    'mkdir -p /var/lib/tuxsec /var/log/tuxsec /run/tuxsec',
    `chown ${tuxsec.uid}:${tuxsec.gid} /var/lib/tuxsec /var/log/tuxsec && chmod 0700 /var/lib/tuxsec`,
    `mount --bind ${path.dirname(rootd.socketPath)} /run/tuxsec`,
    `mount --bind ${logDir} /var/log/tuxsec`,
    `${process.execPath} ${AGENT_JS} register --server ${server.url}`,
    `/usr/bin/setpriv ${ids} --init-groups -- ${process.execPath} ${AGENT_JS} --check-config`,
    `exec /usr/bin/setpriv ${ids} --init-groups -- ${process.execPath} ${AGENT_JS}`,
  ].join('\n');
  agent = startProc('/usr/bin/unshare', ['--mount', '--propagation', 'private', '/bin/sh', '-c', script], { env: { TUXSEC_ENROLL_TOKEN: token } });
  await until('the agent started in pull mode', () => /tuxsec-agent started in pull mode/.test(logText()) || agent!.proc.exitCode !== null, 60_000);
  const out = agent.out();
  assert.match(logText(), /tuxsec-agent started in pull mode/, out);
  assert.match(out, /registered as agent/, out);
  assert.doesNotMatch(out, /cannot read ssl_cert/);
  const warnings = out.split('\n').filter((l) => l.startsWith('tuxsec-agent: warning: ignoring'));
  // One from --check-config (a migration's check before the swap), one from the agent itself.
  assert.equal(warnings.length, 2, out);
  assert.equal(warnings[0], warnings[1]);
  assert.match(out, /^\/etc\/tuxsec\/agent\.yaml: valid \(mode pull, server https:\/\/\S+, rootd socket \/var\/run\/tuxsec\/rootd\.sock\)$/m);
  assert.match(warnings[0]!, /ignoring listen_host, listen_port, ssl_cert, ssl_key: settings of push mode, which pull mode does not use; .*"\/etc\/tuxsec\/certs\/agent\.crt" and "\/etc\/tuxsec\/certs\/agent\.key" are not there/);
  const listed = await server.cli(['agents', 'list']);
  const agentId = ((listed.json!.agents as Array<{ id: string }>)[0]!).id;
  const sub = await server.cli(['jobs', 'submit', agentId, 'systeminfo', 'get_hostname', '--wait', '60'], 70_000);
  assert.equal(sub.code, 0, `${sub.stderr}\n${agent.out()}`);
  assert.equal((sub.json!.job as { status: string }).status, 'completed');
});

test('tuxsec-agent stops on a ca_cert that is not there, saying to put the CA there or set ca_cert: null', async () => {
  const env = await makeAgentEnv({ server_url: server.url, agent_id: 'a1', api_key: 'k1', ca_cert: path.join(dir, 'no-such-ca.crt'), rootd_socket: rootd.socketPath });
  envs.push(env);
  const want = /cannot read ca_cert ".*no-such-ca\.crt": no such file; put there the CA certificate that signed the server's certificate, or set "ca_cert: null" in .*agent\.yaml to trust the system's CAs/;
  assert.throws(() => loadConfig(env.configPath, {}, { env: {} }), (e: Error) => want.test(e.message));
  const p = startAgent(env);
  const { code } = await p.exited;
  assert.equal(code, 1);
  assert.match(p.out(), want);
  assert.doesNotMatch(p.out(), /started in pull mode/);
  const check = startProc(process.execPath, [AGENT_JS, '--config', env.configPath, '--check-config']);
  assert.equal((await check.exited).code, 1);
  assert.match(check.out(), want);
});
