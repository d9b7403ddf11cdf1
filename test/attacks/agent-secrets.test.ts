// Issue 7, finding 4 and item 7a: the agent's secrets against a member of the socket group.
// agent.yaml is 0640 root:tuxsec and every CLI user is in group tuxsec, so whatever agent.yaml,
// the state directory or the log holds, the member reads. The attacker here is the real user
// tuxsec-test-member, reading every file it can with its own credentials (setpriv); the agent is
// the real program as the real tuxsec user against the real tuxsec-server and rootd.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import https from 'node:https';
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

/** Starts the agent of `env`, checks that it runs one job for `agentId` to completion, and stops it. */
async function agentRunsAJob(env: AgentEnv & { logDir: string }, agentId: string): Promise<void> {
  const agent = startAgent(env);
  const log = path.join(env.logDir, 'agent.log');
  try {
    await until('the agent to start', () => /started in pull mode/.test(fs.existsSync(log) ? fs.readFileSync(log, 'utf8') : '') || agent.proc.exitCode !== null, 20_000);
    assert.equal(agent.proc.exitCode, null, agent.out());
    const job = await server.waitJob((await server.op.submitJob({ agent_id: agentId, module: 'systeminfo', action: 'get_hostname' })).id, 30_000);
    assert.equal(job.status, 'completed', `${JSON.stringify(job)}\n${agent.out()}`);
  } finally {
    await agent.kill();
  }
}

test('a socket group member reads no api_key, client key or enrollment token in any file of the config, state or log directory after register, and the agent still runs jobs', async () => {
  const env = await productionEnv();
  const token = await createToken(server);
  await register(env, token);
  const { agent_id, api_key } = readCredentials(env);
  await agentRunsAJob(env, agent_id);
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

  await agentRunsAJob(env, agent_id);
  await memberReads([env.dir, env.logDir], [api_key, fs.readFileSync(certs.clientKey, 'utf8').trim()]);
});

/** Rewrites `env` to an older version's layout: the api_key in agent.yaml, no credentials file. */
function oldLayout(env: AgentEnv, apiKey: string, extra: Record<string, unknown> = {}): void {
  fs.rmSync(path.join(env.dir, 'credentials'), { recursive: true, force: true });
  const old = YAML.parse(fs.readFileSync(env.configPath, 'utf8')) as Record<string, unknown>;
  delete old.api_key_file;
  fs.writeFileSync(env.configPath, '# tuxsec-agent configuration\n' + YAML.stringify({ ...old, ...extra, api_key: apiKey }));
}

async function migrate(env: AgentEnv) {
  const m = await run(process.execPath, [AGENT_JS, 'migrate-secrets', '--config', env.configPath], { timeoutMs: 30_000 });
  assert.equal(m.code, 0, m.stderr);
  return m;
}

/** One check-in over TLS with the given credentials, as the agent makes it. */
function checkin(agentId: string, apiKey: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const body = JSON.stringify({ agent_id: agentId, api_key: apiKey });
    const req = https.request(
      `${server.url}/agents/api/checkin/`,
      { method: 'POST', ca: fs.readFileSync(certs.ca), headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }, timeout: 20_000 },
      (res) => {
        let text = '';
        res.on('data', (c: Buffer) => (text += c.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
      },
    );
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error('check-in timed out')));
    req.end(body);
  });
}

/** Runs a program as the tuxsec user (the agent's user, which owns the credentials directory). */
async function asTuxsec(file: string, args: string[]): Promise<void> {
  const { tuxsec } = await ensureTestUsers();
  const [f, a] = asUser(tuxsec, file, args);
  const r = await run(f, a, { timeoutMs: 20_000 });
  assert.equal(r.code, 0, `${file} ${args.join(' ')}: ${r.stderr}`);
}

test('the tuxsec user plants a file or a link at the default credentials/api_key before an upgrade: migrate-secrets keeps agent.yaml\'s working key and the agent still runs jobs', async () => {
  for (const planted of ['file', 'symlink'] as const) {
    const env = await productionEnv();
    await register(env, await createToken(server));
    const { agent_id, api_key } = readCredentials(env);
    oldLayout(env, api_key);
    // setup-system.sh creates the credentials directory (0700 tuxsec) before migrate-secrets runs.
    const creds = path.join(env.dir, 'credentials');
    fs.mkdirSync(creds, { mode: 0o700 });
    fs.chownSync(creds, env.uid, env.gid);
    const bait = path.join(env.dir, 'bait');
    fs.writeFileSync(bait, 'ATTACKERKEY\n', { mode: 0o644 });
    const keyFile = path.join(creds, 'api_key');
    if (planted === 'file') {
      // Exactly as register would write it, but with the attacker's key.
      await asTuxsec('/bin/cp', ['--', bait, keyFile]);
      await asTuxsec('/bin/chmod', ['0600', '--', keyFile]);
    } else {
      await asTuxsec('/bin/ln', ['-s', '--', bait, keyFile]);
    }
    const m = await migrate(env);
    const st = fs.lstatSync(keyFile);
    assert.ok(st.isFile(), `${planted}: the key file is a regular file, not a link`);
    assert.deepEqual([st.mode & 0o7777, st.uid, st.nlink], [0o600, env.uid, 1], planted);
    assert.equal(fs.readFileSync(keyFile, 'utf8').trim(), api_key, `${planted}: the working key is kept`);
    assert.match(m.stdout, /^moved the api_key from .*agent\.yaml to .*credentials\/api_key \(replacing what was there, which the agent never used\)$/m, planted);
    assert.equal(fs.readFileSync(bait, 'utf8'), 'ATTACKERKEY\n', `${planted}: the link's target is not written through`);
    assert.equal(readCredentials(env).api_key, api_key);
    await agentRunsAJob(env, agent_id);
  }
});

test('migrate-secrets keeps a default credentials/api_key that already holds agent.yaml\'s key as register writes it (a crash between the two writes)', async () => {
  const env = await productionEnv();
  await register(env, await createToken(server));
  const { api_key } = readCredentials(env);
  const keyFile = path.join(env.dir, 'credentials', 'api_key');
  oldLayout(env, api_key);
  fs.mkdirSync(path.join(env.dir, 'credentials'), { mode: 0o700 });
  fs.chownSync(path.join(env.dir, 'credentials'), env.uid, env.gid);
  fs.writeFileSync(keyFile, api_key + '\n', { mode: 0o600 });
  fs.chownSync(keyFile, env.uid, env.gid);
  const kept = fs.statSync(keyFile).ino;
  const m = await migrate(env);
  assert.match(m.stdout, /^removed the api_key from .*agent\.yaml \(.*credentials\/api_key already holds it\)$/m);
  assert.equal(fs.statSync(keyFile).ino, kept, 'the file is left as it is');
  assert.equal(readCredentials(env).api_key, api_key);
});

test('migrate-secrets leaves alone an ssl_key in a directory the tuxsec user can change, or with a second hard link, so root never hands agent.yaml to the tuxsec user', async () => {
  const { tuxsec } = await ensureTestUsers();
  // The agent's key in a directory the tuxsec user owns: it links agent.yaml there under the key's
  // name. This machine has protected_hardlinks=1, which stops tuxsec linking a file it cannot
  // write; root makes the link in its place, standing in for a machine where it is 0.
  const env = await productionEnv();
  await register(env, await createToken(server));
  const userDir = path.join(env.dir, 'tls');
  fs.mkdirSync(userDir, { mode: 0o755 });
  fs.chownSync(userDir, tuxsec.uid, tuxsec.gid);
  const key = path.join(userDir, 'client.key');
  fs.writeFileSync(env.configPath, fs.readFileSync(env.configPath, 'utf8') + `ssl_cert: ${certs.clientCert}\nssl_key: ${key}\n`);
  const [lf, la] = asUser(tuxsec, '/bin/ln', ['--', env.configPath, key]);
  if ((await run(lf, la, { timeoutMs: 20_000 })).code !== 0) fs.linkSync(env.configPath, key);
  // In a root-owned directory, a hard link root made (or was tricked into keeping) is refused too.
  const env2 = await productionEnv();
  await register(env2, await createToken(server));
  const key2 = path.join(env2.dir, 'client.key');
  fs.writeFileSync(env2.configPath, fs.readFileSync(env2.configPath, 'utf8') + `ssl_cert: ${certs.clientCert}\nssl_key: ${key2}\n`);
  fs.linkSync(env2.configPath, key2);

  for (const [e, k, why] of [
    [env, key, /cannot make ssl_key ".*tls\/client\.key" private: .*tls is owned by uid \d+, not root .*; left as it is/],
    [env2, key2, /cannot make ssl_key ".*client\.key" private: it has 2 hard links .*; left as it is/],
  ] as const) {
    const m = await migrate(e);
    assert.equal(m.stdout, '', 'nothing changed');
    assert.match(m.stderr, why);
    const st = fs.statSync(e.configPath);
    assert.deepEqual([st.mode & 0o7777, st.uid, st.gid], [0o640, 0, e.gid], `${k}: agent.yaml stays 0640 root:tuxsec`);
  }
});

test('migrate-secrets warns that a key the socket group could read must be replaced, with the commands, and the documented re-registration makes the server refuse the old key', async () => {
  const env = await productionEnv();
  await register(env, await createToken(server));
  const { agent_id: oldId, api_key: oldKey } = readCredentials(env);
  oldLayout(env, oldKey);
  const m = await migrate(env);
  assert.ok(!m.stderr.includes(oldKey));
  const warning = m.stderr.split('\n').find((l) => l.includes('moving it does not take back a copy')) ?? '';
  assert.match(warning, /^tuxsec-agent: warning: the api_key was in .*agent\.yaml, which its group \(the socket group: every CLI user\) could read/);
  assert.ok(warning.includes('"tuxsec-server token create"'), warning);
  assert.ok(warning.includes(`"sudo tuxsec-agent register --server ${server.url} --token-file FILE --config ${env.configPath}"`), warning);
  assert.ok(warning.includes(`"tuxsec-server agents reject ${oldId}"`), warning);
  const again = await migrate(env);
  assert.equal(again.stderr, '', 'said once, when the key is moved');

  // The steps the warning gives: enroll again (held for approval: the machine is enrolled),
  // approve the new id, reject the old one.
  const r = await registerAgent(env, server.url, await createToken(server));
  assert.ok(r.code === 0 || r.code === 3, r.stderr);
  const { agent_id: newId, api_key: newKey } = readCredentials(env);
  assert.notEqual(newId, oldId);
  assert.notEqual(newKey, oldKey);
  if (r.code === 3) await server.op.setAgentStatus(newId, 'approve');
  await server.op.setAgentStatus(oldId, 'reject');
  // Whoever kept a copy of the old key checks in with it, as the agent would.
  const stolen = await checkin(oldId, oldKey);
  assert.equal(stolen.status, 403, stolen.text);
  assert.match(stolen.text, /rejected by an operator/);
  await agentRunsAJob(env, newId);
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
