// tuxsec-agent setup as a real process, as root, with a temp config dir: flags for each mode give
// a config the agent (as the tuxsec user) accepts; the files get the seed's owners and modes;
// --dry-run writes nothing and masks secrets; a bad value writes nothing; the wizard is driven
// through a pseudo-terminal (util-linux `script`); the enrollment token never reaches the process
// list or a file.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { run } from '../../src/os/exec.ts';
import { ensureTestUsers } from '../helpers/users.ts';
import { makeKeys, sshdConfig, type SshKeys } from '../helpers/sshd.ts';
import { AGENT_JS, certsIn, createToken, startServer, tempDir, until, type ServerHandle } from './harness.ts';
import type { CertPaths } from '../helpers/certs.ts';

let server: ServerHandle;
let certs: CertPaths;
let work: string;
let tuxsec: { uid: number; gid: number };
let keys: SshKeys;

before(async () => {
  const users = await ensureTestUsers();
  tuxsec = { uid: users.tuxsec.uid, gid: users.tuxsecGid };
  work = tempDir('tsa-setup-');
  certs = await certsIn(path.join(work, 'certs'), { days: 365 });
  // Push mode's key as an operator would leave it for the agent: 0600 tuxsec.
  fs.chownSync(certs.serverKey, tuxsec.uid, tuxsec.gid);
  fs.chmodSync(certs.serverKey, 0o600);
  for (const f of [certs.serverCert, certs.clientCert]) fs.chmodSync(f, 0o644);
  server = await startServer({ dir: tempDir('tsa-setup-srv-'), certs });
  keys = makeKeys('tuxsec');
});

after(async () => {
  await server?.stop();
  if (server) fs.rmSync(server.dir, { recursive: true, force: true });
  fs.rmSync(work, { recursive: true, force: true });
  if (keys) fs.rmSync(keys.dir, { recursive: true, force: true });
});

interface Ran {
  code: number | null;
  stdout: string;
  stderr: string;
  /** Every command line of every process seen on the host while setup ran. */
  cmdlines: Set<string>;
}

function allCmdlines(into: Set<string>): void {
  for (const pid of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    try {
      into.add(fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' '));
    } catch {
      // gone
    }
  }
}

/** `tuxsec-agent setup ARGS` as root, no terminal; the process list is sampled while it runs. */
async function setup(args: string[], opts: { input?: string; env?: Record<string, string> } = {}): Promise<Ran> {
  const p = spawn(process.execPath, [AGENT_JS, 'setup', ...args], {
    stdio: ['pipe', 'pipe', 'pipe'],
    env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', LANG: 'C', ...opts.env },
  });
  let stdout = '';
  let stderr = '';
  p.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
  p.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
  p.stdin.end(opts.input ?? '');
  const cmdlines = new Set<string>();
  const exited = new Promise<number | null>((resolve) => p.once('exit', (c) => resolve(c)));
  let done = false;
  void exited.then(() => (done = true));
  while (!done) {
    allCmdlines(cmdlines);
    await new Promise((r) => setTimeout(r, 5));
  }
  const code = await exited;
  return { code, stdout, stderr, cmdlines };
}

/** `tuxsec-agent --check-config` as the tuxsec user, as the service would load the config. */
async function checkAsAgent(config: string): Promise<{ code: number | null; out: string }> {
  const r = await run(process.execPath, [AGENT_JS, '--check-config', '--config', config], { uid: tuxsec.uid, gid: tuxsec.gid, cwd: '/', timeoutMs: 60_000 });
  return { code: r.code, out: r.stdout + r.stderr };
}

function stat(file: string): { mode: string; uid: number; gid: number } {
  const st = fs.statSync(file);
  return { mode: (st.mode & 0o7777).toString(8), uid: st.uid, gid: st.gid };
}

/** Every file under `dir` with its bytes, to prove nothing changed. */
function tree(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  if (!fs.existsSync(dir)) return out;
  for (const e of fs.readdirSync(dir, { recursive: true, withFileTypes: true })) {
    const p = path.join(e.parentPath, e.name);
    out[p] = e.isFile() ? fs.readFileSync(p, 'base64') : 'dir';
  }
  return out;
}

function configDir(name: string): { dir: string; config: string } {
  const dir = path.join(work, name, 'etc');
  fs.mkdirSync(path.dirname(dir), { mode: 0o755 });
  return { dir, config: path.join(dir, 'agent.yaml') };
}

function pushArgs(config: string): string[] {
  return ['--config', config, '--mode', 'push', '--listen-host', '127.0.0.1', '--listen-port', '9443', '--ssl-cert', certs.serverCert, '--ssl-key', certs.serverKey, '--client-ca', certs.ca];
}

describe('tuxsec-agent setup with flags', () => {
  test('push mode: a config the agent accepts as tuxsec, agent.yaml 0640 root:tuxsec, a generated api_key 0600 tuxsec', async () => {
    const { dir, config } = configDir('push');
    const r = await setup(pushArgs(config));
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /systemctl enable --now tuxsec-agent/);
    assert.match(r.stdout, /tuxsec-cli doctor/);
    assert.deepEqual(stat(config), { mode: '640', uid: 0, gid: tuxsec.gid });
    assert.deepEqual(stat(dir), { mode: '750', uid: 0, gid: tuxsec.gid });
    const cfg = YAML.parse(fs.readFileSync(config, 'utf8')) as Record<string, unknown>;
    assert.equal(cfg.mode, 'push');
    assert.equal(cfg.listen_port, 9443);
    assert.equal(cfg.api_key, null);
    const keyFile = cfg.api_key_file as string;
    assert.equal(keyFile, path.join(dir, 'credentials', 'api_key'));
    assert.deepEqual(stat(keyFile), { mode: '600', uid: tuxsec.uid, gid: tuxsec.gid });
    assert.deepEqual(stat(path.dirname(keyFile)), { mode: '700', uid: tuxsec.uid, gid: tuxsec.gid });
    const key = fs.readFileSync(keyFile, 'utf8').trim();
    assert.match(key, /^[A-Za-z0-9_-]{40,}$/);
    assert.doesNotMatch(r.stdout + r.stderr, new RegExp(key));
    const chk = await checkAsAgent(config);
    assert.equal(chk.code, 0, chk.out);
    assert.match(chk.out, /valid \(mode push, listening on 127\.0\.0\.1:9443/);

    // Again with one flag changed: the key is kept, the other answers come from the current file.
    const again = await setup(['--config', config, '--listen-port', '9444']);
    assert.equal(again.code, 0, again.stderr);
    assert.equal(fs.readFileSync(keyFile, 'utf8').trim(), key);
    assert.equal((YAML.parse(fs.readFileSync(config, 'utf8')) as Record<string, unknown>).listen_port, 9444);
  });

  test('push mode: an existing config keeps its comments, and a seed-style api_key in it moves to the credentials file', async () => {
    const { dir, config } = configDir('push-seed');
    fs.mkdirSync(dir, { mode: 0o755 });
    fs.writeFileSync(config, '# my own note\nmode: pull\napi_key: seed-key-0123456789abcdef0123456789\nlog_level: DEBUG\n', { mode: 0o644 });
    const r = await setup(pushArgs(config));
    assert.equal(r.code, 0, r.stderr);
    const text = fs.readFileSync(config, 'utf8');
    assert.match(text, /^# my own note$/m);
    assert.match(text, /^log_level: DEBUG$/m);
    assert.doesNotMatch(text, /seed-key/);
    assert.deepEqual(stat(config), { mode: '640', uid: 0, gid: tuxsec.gid });
    assert.equal(fs.readFileSync(path.join(dir, 'credentials', 'api_key'), 'utf8').trim(), 'seed-key-0123456789abcdef0123456789');
    assert.equal((await checkAsAgent(config)).code, 0);
  });

  test('push mode: a current api_key too short for push mode is refused, naming api_key, and nothing is written', async () => {
    const { dir, config } = configDir('push-short');
    fs.mkdirSync(dir, { mode: 0o755 });
    fs.writeFileSync(config, 'mode: pull\napi_key: short-key-0123456789\n', { mode: 0o644 });
    const before = tree(dir);
    const r = await setup(pushArgs(config));
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /cannot use key "api_key" in push mode: it is shorter than 32 characters/);
    assert.doesNotMatch(r.stderr + r.stdout, /short-key/);
    assert.deepEqual(tree(dir), before);
  });

  test('pull mode: enrolls with the token from a file; the token is in no process list and no file', async () => {
    const { dir, config } = configDir('pull');
    const token = await createToken(server);
    const tokenFile = path.join(work, 'pull-token');
    fs.writeFileSync(tokenFile, token + '\n', { mode: 0o600 });
    const r = await setup(['--config', config, '--mode', 'pull', '--server-url', server.url, '--ca-cert', certs.ca, '--enrollment-token-file', tokenFile]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /registered as agent /);
    // The sampler saw setup itself, so a token on its command line would have been seen.
    assert.ok([...r.cmdlines].some((c) => c.includes(`--enrollment-token-file ${tokenFile}`)));
    for (const c of r.cmdlines) assert.ok(!c.includes(token), `the token is in a command line: ${c.slice(0, 200)}`);
    assert.doesNotMatch(r.stdout + r.stderr, new RegExp(token));
    for (const [file, bytes] of Object.entries(tree(dir))) {
      assert.ok(!Buffer.from(bytes, 'base64').toString('utf8').includes(token), `the token is in ${file}`);
    }
    const cfg = YAML.parse(fs.readFileSync(config, 'utf8')) as Record<string, unknown>;
    assert.equal(cfg.server_url, server.url);
    assert.equal(cfg.ca_cert, certs.ca);
    assert.equal(typeof cfg.agent_id, 'string');
    assert.deepEqual(stat(config), { mode: '640', uid: 0, gid: tuxsec.gid });
    assert.deepEqual(stat(cfg.api_key_file as string), { mode: '600', uid: tuxsec.uid, gid: tuxsec.gid });
    const chk = await checkAsAgent(config);
    assert.equal(chk.code, 0, chk.out);
    assert.match(chk.out, /valid \(mode pull, server https:\/\/127\.0\.0\.1:/);
  });

  test('pull mode: a registered agent is not enrolled again, and its seed-style api_key moves out of agent.yaml', async () => {
    const { dir, config } = configDir('pull-seed');
    fs.mkdirSync(dir, { mode: 0o750 });
    fs.chownSync(dir, 0, tuxsec.gid);
    fs.writeFileSync(config, `mode: pull\nserver_url: ${server.url}\nagent_id: agent-seed-1\napi_key: pull-seed-key-0123456789\n`, { mode: 0o640 });
    const r = await setup(['--config', config, '--server-url', server.url, '--ca-cert', certs.ca]);
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(r.stdout, /registered as agent/);
    const cfg = YAML.parse(fs.readFileSync(config, 'utf8')) as Record<string, unknown>;
    assert.equal(cfg.agent_id, 'agent-seed-1');
    assert.equal(cfg.api_key, null);
    assert.equal(fs.readFileSync(cfg.api_key_file as string, 'utf8').trim(), 'pull-seed-key-0123456789');
    assert.deepEqual(stat(cfg.api_key_file as string), { mode: '600', uid: tuxsec.uid, gid: tuxsec.gid });
    const chk = await checkAsAgent(config);
    assert.equal(chk.code, 0, chk.out);
    assert.doesNotMatch(chk.out, /warning/);
  });

  test('pull mode: a wrong token is refused by the server and the config is left as it was', async () => {
    const { dir, config } = configDir('pull-wrong');
    fs.mkdirSync(dir, { mode: 0o750 });
    fs.chownSync(dir, 0, tuxsec.gid);
    fs.writeFileSync(config, '# before\nmode: pull\n', { mode: 0o640 });
    const before = tree(dir);
    const r = await setup(['--config', config, '--mode', 'pull', '--server-url', server.url, '--ca-cert', certs.ca, '--enrollment-token-file', '-'], { input: 'not-a-valid-token\n' });
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /is as it was/);
    assert.doesNotMatch(r.stderr, /not-a-valid-token/);
    assert.deepEqual(tree(dir), before);
  });

  test('ssh mode: delegates to ssh-setup and writes mode ssh, which --check-config accepts', async () => {
    const { config } = configDir('ssh');
    const sshd = path.join(work, 'ssh', 'sshd_config.d');
    const ak = path.join(work, 'ssh', 'authorized_keys');
    fs.mkdirSync(sshd, { recursive: true });
    // ssh-setup checks with sshd -T that its drop-in is in effect: a main config that includes it.
    const main = await sshdConfig(`Include ${sshd}/*.conf`);
    const r = await setup(['--config', config, '--mode', 'ssh', '--authorized-key', `${keys.key}.pub`, '--sshd-dir', sshd, '--sshd-config', main.conf, '--authorized-keys-file', ak, '--keep-shell']);
    fs.rmSync(main.dir, { recursive: true, force: true });
    assert.equal(r.code, 0, r.stderr);
    assert.match(fs.readFileSync(ak, 'utf8'), /^restrict,command="\/usr\/bin\/tuxsec-shell" ssh-ed25519 /m);
    assert.match(fs.readFileSync(path.join(sshd, '00-tuxsec.conf'), 'utf8'), /Match User tuxsec/);
    assert.equal((YAML.parse(fs.readFileSync(config, 'utf8')) as Record<string, unknown>).mode, 'ssh');
    assert.match(r.stdout, /systemctl reload ssh/);
    const chk = await checkAsAgent(config);
    assert.equal(chk.code, 0, chk.out);
    assert.match(chk.out, /needs no agent process/);
  });
});

describe('tuxsec-agent setup writes nothing', () => {
  test('--dry-run prints the files with secrets masked and writes nothing', async () => {
    const { dir, config } = configDir('dry');
    fs.mkdirSync(dir, { mode: 0o750 });
    fs.chownSync(dir, 0, tuxsec.gid);
    fs.writeFileSync(config, 'mode: pull\napi_key: dry-secret-key-42-0123456789abcdef0123\n', { mode: 0o640 });
    const before = tree(path.dirname(dir));
    const r = await setup([...pushArgs(config), '--dry-run']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /dry run: nothing is written/);
    assert.match(r.stdout, /^mode: push$/m);
    assert.match(r.stdout, /credentials\/api_key \(mode 0600, owner tuxsec:tuxsec\)/);
    assert.doesNotMatch(r.stdout + r.stderr, /dry-secret-key-42/);
    assert.deepEqual(tree(path.dirname(dir)), before);

    const token = 'dry-run-token-0123456789';
    const pull = await setup(['--config', config, '--mode', 'pull', '--server-url', server.url, '--enrollment-token-file', '-', '--dry-run'], { input: token });
    assert.equal(pull.code, 0, pull.stderr);
    assert.match(pull.stdout, /enroll with https:\/\/127\.0\.0\.1:\d+ with the enrollment token \(hidden\)/);
    assert.doesNotMatch(pull.stdout + pull.stderr, new RegExp(token));
    assert.deepEqual(tree(path.dirname(dir)), before);
  });

  test('a config directory the agent\'s user cannot enter is refused, nothing written', async () => {
    const { dir, config } = configDir('bad-dir');
    fs.mkdirSync(dir, { mode: 0o750 });
    const before = tree(path.dirname(dir));
    const r = await setup(pushArgs(config));
    assert.equal(r.code, 2, r.stdout + r.stderr);
    assert.match(r.stderr, /cannot use config directory ".*bad-dir\/etc": the agent's user "tuxsec" cannot enter it/);
    assert.deepEqual(tree(path.dirname(dir)), before);
  });

  const badCases: Array<{ name: string; args: () => string[]; message: RegExp }> = [
    { name: 'an http:// server URL', args: () => ['--mode', 'pull', '--server-url', 'http://tuxsec.example.com', '--no-register'], message: /cannot use --server-url "http:\/\/tuxsec\.example\.com": the server URL must start with https:\/\// },
    { name: 'a missing certificate', args: () => ['--mode', 'push', '--ssl-cert', path.join(work, 'no-such.pem'), '--ssl-key', certs.serverKey], message: /cannot use --ssl-cert ".*no-such\.pem": no such file/ },
    { name: 'a key that is not the certificate\'s', args: () => ['--mode', 'push', '--ssl-cert', certs.serverCert, '--ssl-key', certs.caKey], message: /cannot use --ssl-key: ssl_key .*ca\.key is not the key of the certificate in ssl_cert/ },
    { name: 'a file that is not PEM as the CA', args: () => ['--mode', 'pull', '--server-url', 'https://tuxsec.example.com', '--ca-cert', '/etc/hostname', '--no-register'], message: /cannot use --ca-cert: ca_cert \/etc\/hostname: not a PEM certificate/ },
    { name: 'a port out of range', args: () => ['--mode', 'push', '--listen-port', '70000', '--ssl-cert', certs.serverCert, '--ssl-key', certs.serverKey], message: /cannot use --listen-port: key "listen_port": 70000 is invalid/ },
    { name: 'a key the agent\'s user cannot read', args: () => ['--mode', 'push', '--ssl-cert', certs.clientCert, '--ssl-key', certs.clientKey], message: /cannot use ssl_key ".*client\.key": the agent's user "tuxsec" cannot read it/ },
    { name: 'push mode without a certificate', args: () => ['--mode', 'push'], message: /give --ssl-cert/ },
    { name: 'no mode and no config', args: () => [], message: /mode: pull, push or ssh is needed: give --mode/ },
  ];
  for (const c of badCases) {
    test(`${c.name} is refused with a message naming it, nothing written`, async () => {
      const { dir, config } = configDir(`bad-${badCases.indexOf(c)}`);
      fs.mkdirSync(dir, { mode: 0o750 });
      fs.chownSync(dir, 0, tuxsec.gid);
      if (c.name !== 'no mode and no config') fs.writeFileSync(config, '# untouched\nmode: pull\n', { mode: 0o640 });
      const before = tree(path.dirname(dir));
      const r = await setup(['--config', config, ...c.args()]);
      assert.equal(r.code, 2, r.stdout + r.stderr);
      assert.match(r.stderr, c.message);
      assert.deepEqual(tree(path.dirname(dir)), before);
    });
  }
});

/** The wizard on a pseudo-terminal: util-linux `script` gives the command a pty; answers are typed once each prompt shows. */
function onTerminal(args: string[]) {
  const cmd = [process.execPath, AGENT_JS, 'setup', ...args].map((a) => `'${a}'`).join(' ');
  const p = spawn('/usr/bin/script', ['-qec', cmd, '/dev/null'], { stdio: ['pipe', 'pipe', 'pipe'], env: { PATH: '/usr/bin:/bin', LANG: 'C', SHELL: '/bin/sh', TERM: 'dumb' } });
  let out = '';
  p.stdout.on('data', (b: Buffer) => (out += b.toString()));
  p.stderr.on('data', (b: Buffer) => (out += b.toString()));
  const exited = new Promise<number | null>((resolve) => p.once('exit', (c) => resolve(c)));
  let seen = 0;
  return {
    out: () => out,
    exited,
    /** Waits for `prompt` after what was already answered, then types `answer`. */
    async answer(prompt: RegExp, answer: string) {
      const at = await until(`prompt ${prompt}`, () => {
        const m = prompt.exec(out.slice(seen));
        return m ? seen + m.index + m[0].length : null;
      }, 30_000);
      seen = at;
      p.stdin.write(answer + '\r');
    },
    pid: () => p.pid!,
  };
}

describe('tuxsec-agent setup on a terminal', () => {
  test('pull mode: asks each answer, re-asks a bad one, takes the token without echo, confirms, enrolls', async () => {
    const { config } = configDir('tty-pull');
    const token = await createToken(server);
    const t = onTerminal(['--config', config]);
    await t.answer(/mode: pull, push or ssh: /, 'pull');
    await t.answer(/server URL \(https:\/\/\.\.\.\): /, 'http://wrong.example');
    await t.answer(/must start with https:\/\/[^\n]*\n[^]*server URL \(https:\/\/\.\.\.\): /, server.url);
    await t.answer(/CA certificate of the server[^:]*: /, certs.ca);
    await t.answer(/client certificate \("none": none\) \[none\]: /, '');
    await t.answer(/enrollment token \(not shown[^:]*: /, token);
    await t.answer(/write this\? \[Y\/n\]: /, '');
    // Typed, but paused at the confirmation: the token is in no process's command line.
    const cmdlines = new Set<string>();
    allCmdlines(cmdlines);
    assert.ok([...cmdlines].some((c) => c.includes(`setup --config ${config}`)));
    for (const c of cmdlines) assert.ok(!c.includes(token), `the token is in a command line: ${c.slice(0, 200)}`);
    assert.equal(await t.exited, 0, t.out());
    assert.match(t.out(), /registered as agent /);
    assert.ok(!t.out().includes(token), 'the token was echoed');
    const text = fs.readFileSync(config, 'utf8');
    assert.ok(!text.includes(token));
    assert.equal((YAML.parse(text) as Record<string, unknown>).server_url, server.url);
    assert.equal((await checkAsAgent(config)).code, 0);
  });

  test('push mode: the current config\'s values are the defaults, and "n" at the confirmation writes nothing', async () => {
    const { dir, config } = configDir('tty-push');
    assert.equal((await setup(pushArgs(config))).code, 0);
    const before = tree(dir);
    const t = onTerminal(['--config', config]);
    await t.answer(/mode: pull, push or ssh \[push\]: /, '');
    await t.answer(/address to listen on \[127\.0\.0\.1\]: /, '');
    await t.answer(/port to listen on \[9443\]: /, '8444');
    await t.answer(new RegExp(`certificate the agent serves \\(PEM\\) \\[${certs.serverCert}\\]: `), '');
    await t.answer(new RegExp(`its private key \\(PEM, 0600\\) \\[${certs.serverKey}\\]: `), '');
    await t.answer(new RegExp(`client certificates[^[]*\\[${certs.ca}\\]: `), '');
    await t.answer(/api_key the server sends \(empty: keep the current one\): /, '');
    await t.answer(/listen_port: 8444[^]*write this\? \[Y\/n\]: /, 'n');
    assert.equal(await t.exited, 0, t.out());
    assert.match(t.out(), /nothing written/);
    assert.deepEqual(tree(dir), before);
  });

  test('ssh mode: asks key or CA and the file, then runs ssh-setup', async () => {
    const { config } = configDir('tty-ssh');
    const sshd = path.join(work, 'tty-ssh', 'sshd_config.d');
    fs.mkdirSync(sshd);
    const main = await sshdConfig(`Include ${sshd}/*.conf`);
    after(() => fs.rmSync(main.dir, { recursive: true, force: true }));
    const t = onTerminal(['--config', config, '--sshd-dir', sshd, '--sshd-config', main.conf, '--keep-shell', '--yes']);
    await t.answer(/mode: pull, push or ssh: /, 'ssh');
    await t.answer(/key\/ca \[key\]: /, 'maybe');
    await t.answer(/answer key or ca[^]*key\/ca \[key\]: /, 'ca');
    await t.answer(/user CA's public key file: /, `${keys.ca}.pub`);
    assert.equal(await t.exited, 0, t.out());
    assert.match(fs.readFileSync(path.join(sshd, '00-tuxsec.conf'), 'utf8'), /TrustedUserCAKeys /);
    assert.equal(fs.readFileSync(path.join(sshd, 'tuxsec-user-ca.pub'), 'utf8').split(' ')[1], fs.readFileSync(`${keys.ca}.pub`, 'utf8').split(' ')[1]);
    assert.equal((YAML.parse(fs.readFileSync(config, 'utf8')) as Record<string, unknown>).mode, 'ssh');
  });

  test('--non-interactive on a terminal asks nothing: a missing answer names its flag', async () => {
    const { dir, config } = configDir('tty-nonint');
    const t = onTerminal(['--config', config, '--non-interactive', '--mode', 'pull']);
    assert.equal(await t.exited, 2, t.out());
    assert.match(t.out(), /server URL \(https:\/\/\.\.\.\) is needed: give --server-url/);
    assert.equal(fs.existsSync(dir), false);
  });
});
