// Issue 7, finding 4 and item 7a: the agent's secrets against a member of the socket group.
// agent.yaml is 0640 root:tuxsec and every CLI user is in group tuxsec, so whatever agent.yaml,
// the state directory or the log holds, the member reads. The attacker here is the real user
// tuxsec-test-member, reading every file it can with its own credentials (setpriv); the agent is
// the real program as the real tuxsec user against the real tuxsec-server and rootd.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { run } from '../../src/os/exec.ts';
import type { UserEntry } from '../../src/os/users.ts';
import { startRootd, type RootdHandle } from '../helpers/rootd.ts';
import { asUser, ensureTestUsers } from '../helpers/users.ts';
import type { CertPaths } from '../helpers/certs.ts';
import {
  AGENT_JS,
  certsIn,
  createToken,
  makeAgentEnv,
  readCredentials,
  registerAgent,
  startAgent,
  startServer,
  tempDir,
  until,
  type AgentEnv,
  type ServerHandle,
} from '../agent/harness.ts';

let dir: string;
let certs: CertPaths;
let server: ServerHandle;
let rootd: RootdHandle;
let member: UserEntry;
const envs: AgentEnv[] = [];

before(async () => {
  dir = tempDir('tsa-secrets-');
  certs = await certsIn(path.join(dir, 'certs'));
  server = await startServer({ dir, certs });
  rootd = await startRootd();
  member = (await ensureTestUsers()).member;
});

after(async () => {
  await server?.stop();
  await rootd?.stop();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
  for (const e of envs) fs.rmSync(e.dir, { recursive: true, force: true });
});

/**
 * An agent laid out as install.sh lays it out: the config directory, a state directory 0750
 * tuxsec:tuxsec (/var/lib/tuxsec) and a log directory 0755 tuxsec:tuxsec (/var/log/tuxsec).
 */
async function productionEnv(extra: Record<string, unknown> = {}): Promise<AgentEnv & { logDir: string }> {
  const logDir = tempDir('tsa-secrets-log-');
  const env = await makeAgentEnv({ ca_cert: certs.ca, rootd_socket: rootd.socketPath, poll_interval: 1, log_file: path.join(logDir, 'agent.log'), ...extra });
  envs.push(env, { ...env, dir: logDir });
  fs.chmodSync(env.stateDir, 0o750);
  fs.chownSync(logDir, env.uid, env.gid);
  return { ...env, logDir };
}

function filesUnder(root: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile()) out.push(p);
    }
  };
  walk(root);
  return out;
}

/**
 * Tries to read every file under `roots` as the group member; fails if any it could read holds
 * one of `secrets`. Returns the files it could read (so a test can show it did read some).
 */
async function memberReads(roots: string[], secrets: string[]): Promise<string[]> {
  const readable: string[] = [];
  for (const f of roots.flatMap(filesUnder)) {
    const [file, args] = asUser(member, '/bin/cat', ['--', f]);
    const r = await run(file, args, { timeoutMs: 20_000 });
    if (r.code !== 0) continue;
    readable.push(f);
    for (const s of secrets) assert.ok(!r.stdout.includes(s), `the socket group member read a secret from ${f}`);
  }
  return readable;
}

/**
 * `tuxsec-agent register` as root; this machine enrolls more than once here, and the server holds
 * every enrollment after the first for approval (exit 3), which the operator then gives.
 */
async function register(env: AgentEnv, token: string): Promise<void> {
  const r = await registerAgent(env, server.url, token);
  assert.ok(r.code === 0 || r.code === 3, r.stderr);
  if (r.code === 3) await server.op.setAgentStatus(readCredentials(env).agent_id, 'approve');
}

/** Runs one job through the agent; returns its final status. */
async function jobStatus(agentId: string, out: () => string): Promise<string> {
  const job = await server.waitJob((await server.op.submitJob({ agent_id: agentId, module: 'systeminfo', action: 'get_hostname' })).id, 30_000);
  assert.equal(job.status, 'completed', `${JSON.stringify(job)}\n${out()}`);
  return job.status;
}

test('a socket group member reads no api_key, client key or enrollment token in any file of the config, state or log directory after register, and the agent still runs jobs', async () => {
  const env = await productionEnv();
  const token = await createToken(server);
  await register(env, token);
  const { agent_id, api_key } = readCredentials(env);
  const agent = startAgent(env);
  try {
    await until('the agent to start', () => /started in pull mode/.test(fs.existsSync(path.join(env.logDir, 'agent.log')) ? fs.readFileSync(path.join(env.logDir, 'agent.log'), 'utf8') : '') || agent.proc.exitCode !== null, 20_000);
    assert.equal(agent.proc.exitCode, null, agent.out());
    await jobStatus(agent_id, agent.out);
  } finally {
    await agent.kill();
  }
  const readable = await memberReads([env.dir, env.logDir], [api_key, token, fs.readFileSync(certs.clientKey, 'utf8').trim()]);
  assert.ok(readable.includes(env.configPath), 'the member does read agent.yaml (the test reads what it can)');
  assert.ok(readable.includes(path.join(env.logDir, 'agent.log')), 'and the agent log');
});

test('the agent refuses an api_key_file or an ssl_key that the socket group can read, naming the file and its mode', async () => {
  const env = await productionEnv();
  await register(env, await createToken(server));
  const keyFile = String((YAML.parse(fs.readFileSync(env.configPath, 'utf8')) as Record<string, unknown>).api_key_file);
  fs.chmodSync(keyFile, 0o640);
  let agent = startAgent(env);
  let x = await agent.exited;
  assert.equal(x.code, 1);
  assert.match(agent.out(), new RegExp(`cannot read api_key_file "${keyFile}": mode 0640 lets group or others read the api_key`));
  fs.chmodSync(keyFile, 0o600);

  // A client key installed 0640 root:tuxsec, as the docs said before.
  const key = path.join(env.dir, 'client.key');
  fs.copyFileSync(certs.clientKey, key);
  fs.chownSync(key, 0, env.gid);
  fs.chmodSync(key, 0o640);
  const text = fs.readFileSync(env.configPath, 'utf8');
  fs.writeFileSync(env.configPath, text + `ssl_cert: ${certs.clientCert}\nssl_key: ${key}\n`);
  agent = startAgent(env);
  x = await agent.exited;
  assert.equal(x.code, 1);
  assert.match(agent.out(), new RegExp(`cannot use ssl_key "${key}": mode 0640 lets group or others read the private key`));
});

test('an api_key an older version left in a 0640 agent.yaml is moved out by migrate-secrets (comments kept, ssl_key tightened) and the agent still runs jobs', async () => {
  const env = await productionEnv();
  await register(env, await createToken(server));
  const { agent_id, api_key } = readCredentials(env);
  // The layout of the older version: the key in agent.yaml 0640 root:tuxsec, no credentials file,
  // the client key 0640 root:tuxsec.
  fs.rmSync(path.join(env.dir, 'credentials'), { recursive: true });
  const key = path.join(env.dir, 'client.key');
  fs.copyFileSync(certs.clientKey, key);
  fs.chownSync(key, 0, env.gid);
  fs.chmodSync(key, 0o640);
  const old = YAML.parse(fs.readFileSync(env.configPath, 'utf8')) as Record<string, unknown>;
  delete old.api_key_file;
  const oldText =
    '# tuxsec-agent configuration\n# kept across the upgrade\n' +
    YAML.stringify({ ...old, ssl_cert: certs.clientCert, ssl_key: key }).replace(/^api_key: .*$/m, `api_key: "${api_key}"  # Set during registration`);
  fs.writeFileSync(env.configPath, oldText);
  assert.ok((await memberReads([env.dir], [])).includes(env.configPath));
  await assert.rejects(memberReads([env.dir], [api_key]), /read a secret/, 'the old layout does leak (precondition)');

  const m = await run(process.execPath, [AGENT_JS, 'migrate-secrets', '--config', env.configPath], { timeoutMs: 30_000 });
  assert.equal(m.code, 0, m.stderr);
  assert.match(m.stdout, /^moved the api_key from .*agent\.yaml to .*credentials\/api_key$/m);
  assert.match(m.stdout, /^made ssl_key .* readable by the agent's user only \(0600\)$/m);
  assert.ok(!m.stdout.includes(api_key) && !m.stderr.includes(api_key));
  const text = fs.readFileSync(env.configPath, 'utf8');
  assert.match(text, /^# tuxsec-agent configuration\n# kept across the upgrade\n/);
  assert.match(text, /^api_key: null # Set during registration$/m);
  assert.ok(!text.includes(api_key));
  const st = fs.statSync(env.configPath);
  assert.deepEqual([st.mode & 0o7777, st.uid, st.gid], [0o640, 0, env.gid]);
  const kst = fs.statSync(key);
  assert.deepEqual([kst.mode & 0o7777, kst.uid], [0o600, env.uid]);
  assert.equal(readCredentials(env).api_key, api_key);
  const again = await run(process.execPath, [AGENT_JS, 'migrate-secrets', '--config', env.configPath], { timeoutMs: 30_000 });
  assert.equal(again.code, 0, again.stderr);
  assert.equal(again.stdout, '', 'a second run changes nothing');
  assert.deepEqual(fs.readFileSync(env.configPath, 'utf8'), text);
  // A stale key put back into agent.yaml never replaces the one the agent uses.
  fs.writeFileSync(env.configPath, text.replace(/^api_key: null/m, 'api_key: stale-key-0123'));
  const stale = await run(process.execPath, [AGENT_JS, 'migrate-secrets', '--config', env.configPath], { timeoutMs: 30_000 });
  assert.equal(stale.code, 0, stale.stderr);
  assert.match(stale.stdout, /^removed the api_key from .*agent\.yaml \(the agent uses the one in .*credentials\/api_key\)$/m);
  assert.deepEqual(fs.readFileSync(env.configPath, 'utf8'), text);
  assert.equal(readCredentials(env).api_key, api_key);

  const agent = startAgent(env);
  try {
    await until('the agent to start', () => /started in pull mode/.test(fs.existsSync(path.join(env.logDir, 'agent.log')) ? fs.readFileSync(path.join(env.logDir, 'agent.log'), 'utf8') : '') || agent.proc.exitCode !== null, 20_000);
    assert.equal(agent.proc.exitCode, null, agent.out());
    await jobStatus(agent_id, agent.out);
  } finally {
    await agent.kill();
  }
  await memberReads([env.dir, env.logDir], [api_key, fs.readFileSync(certs.clientKey, 'utf8').trim()]);
});

/**
 * Runs `tuxsec-agent register` as root and samples its /proc/<pid>/cmdline and environ-free
 * argv while it runs; returns the exit code, output and every command line seen.
 */
async function registerWatched(env: AgentEnv, args: string[], opts: { stdin?: string; env?: Record<string, string> } = {}) {
  const p = spawn(process.execPath, [AGENT_JS, 'register', '--server', server.url, '--config', env.configPath, ...args], {
    stdio: ['pipe', 'pipe', 'pipe'],
    env: { PATH: '/usr/bin:/bin', LANG: 'C', ...opts.env },
  });
  let out = '';
  p.stdout.on('data', (c: Buffer) => (out += c.toString()));
  p.stderr.on('data', (c: Buffer) => (out += c.toString()));
  const seen = new Set<string>();
  const exited = new Promise<number | null>((resolve) => p.once('exit', (code) => resolve(code)));
  let done = false;
  void exited.then(() => (done = true));
  // Standard input is written once the program runs, so the samples cover it waiting for it.
  const sampler = (async () => {
    while (!done) {
      try {
        seen.add(fs.readFileSync(`/proc/${p.pid}/cmdline`, 'utf8'));
      } catch {
        // exited between the check and the read
      }
      await new Promise((r) => setTimeout(r, 5));
    }
  })();
  await until('register to start', () => [...seen].some((c) => c.includes('register')) || done, 20_000, 5);
  if (opts.stdin !== undefined) p.stdin.end(opts.stdin);
  else p.stdin.end();
  const code = await exited;
  await sampler;
  return { code, out, cmdlines: [...seen] };
}

test('tuxsec-agent register takes the enrollment token from --token-file, standard input and $TUXSEC_ENROLL_TOKEN, and it never shows in the process command line', async () => {
  const tokenDir = fs.mkdtempSync(path.join(dir, 'token-'));
  fs.chmodSync(tokenDir, 0o700);
  const cases: Array<[string, (t: string) => { args: string[]; stdin?: string; env?: Record<string, string> }]> = [
    ['--token-file PATH', (t) => {
      const f = path.join(tokenDir, 'token');
      fs.writeFileSync(f, t + '\n', { mode: 0o600 });
      return { args: ['--token-file', f] };
    }],
    ['--token-file -', (t) => ({ args: ['--token-file', '-'], stdin: t + '\n' })],
    ['--token -', (t) => ({ args: ['--token', '-'], stdin: t })],
    ['$TUXSEC_ENROLL_TOKEN', (t) => ({ args: [], env: { TUXSEC_ENROLL_TOKEN: t } })],
  ];
  for (const [name, how] of cases) {
    const env = await productionEnv();
    const token = await createToken(server);
    const h = how(token);
    const r = await registerWatched(env, h.args, { stdin: h.stdin, env: h.env });
    assert.ok(r.code === 0 || r.code === 3, `${name}: ${r.out}`);
    assert.match(r.out, /registered as agent /, name);
    assert.ok(r.cmdlines.some((c) => c.includes('register')), `${name}: the command line was sampled`);
    for (const c of r.cmdlines) assert.ok(!c.includes(token), `${name}: the token is in the command line ${JSON.stringify(c)}`);
    assert.ok(!r.out.includes(token), `${name}: the token is not echoed`);
    assert.match(readCredentials(env).api_key, /^\S+$/, name);
  }
});

test('tuxsec-agent register refuses a token given twice, an empty one and a missing token file, writing nothing', async () => {
  const env = await productionEnv();
  const before = fs.readFileSync(env.configPath);
  const f = path.join(env.dir, 'token');
  fs.writeFileSync(f, 'abc\n', { mode: 0o600 });
  const twice = await registerWatched(env, ['--token-file', f], { env: { TUXSEC_ENROLL_TOKEN: 'def' } });
  assert.equal(twice.code, 2, twice.out);
  assert.match(twice.out, /cannot register: give the enrollment token once/);
  const empty = await registerWatched(env, ['--token-file', '-'], { stdin: '\n' });
  assert.equal(empty.code, 2, empty.out);
  assert.match(empty.out, /cannot use the enrollment token from standard input: the value must be 1\.\.1024 characters without spaces/);
  const missing = await registerWatched(env, ['--token-file', path.join(env.dir, 'nope')]);
  assert.equal(missing.code, 2, missing.out);
  assert.match(missing.out, /cannot read --token-file ".*nope": no such file/);
  assert.deepEqual(fs.readFileSync(env.configPath), before);
  assert.equal(fs.existsSync(path.join(env.dir, 'credentials')), false);
});

test('tuxsec-agent register --help names the ways to pass the token that keep it out of ps', async () => {
  const r = await run(process.execPath, [AGENT_JS, 'register', '--help'], { timeoutMs: 20_000 });
  assert.equal(r.code, 0);
  assert.match(r.stdout, /--token-file <file>/);
  assert.match(r.stdout, /TUXSEC_ENROLL_TOKEN/);
  assert.match(r.stdout, /standard input/);
});
