/**
 * A real OpenSSH server for SSH-mode tests: /usr/sbin/sshd -D on 127.0.0.1 with a free port, its
 * own config file and host key in a temporary directory, stopped by its pid. Also the client's
 * keys (a plain key and a CA-signed certificate) and `ssh` with a pinned known_hosts.
 */
import { spawn, spawnSync, type ChildProcess, type SpawnSyncReturns } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ROOT, startRootd, type RootdHandle } from './rootd.ts';
import { ensureTestUsers } from './users.ts';
import { freePort, makeAgentEnv, type AgentEnv } from '../agent/harness.ts';
import { pluginDir, writePlugin } from './plugin.ts';

export const SSHD = '/usr/sbin/sshd';
export const SSH = '/usr/bin/ssh';
export const SSH_KEYGEN = '/usr/bin/ssh-keygen';

function must(file: string, args: string[]): string {
  const r = spawnSync(file, args, { encoding: 'utf8', timeout: 30_000 });
  if (r.status !== 0) throw new Error(`${file} ${args.join(' ')} failed: ${r.stderr}`);
  return r.stdout;
}

/** Client keys: a plain key pair, a user CA, and a second key with a certificate for `principal`. */
export interface SshKeys {
  dir: string;
  key: string;
  ca: string;
  certKey: string;
}

export function makeKeys(principal: string): SshKeys {
  const dir = mkdtempSync(path.join(tmpdir(), 'tsk-'));
  chmodSync(dir, 0o755);
  const gen = (f: string, comment: string) => must(SSH_KEYGEN, ['-q', '-t', 'ed25519', '-N', '', '-C', comment, '-f', path.join(dir, f)]);
  gen('key', 'tuxsec-server');
  gen('ca', 'tuxsec user ca');
  gen('cert-key', 'tuxsec-server cert');
  must(SSH_KEYGEN, ['-q', '-s', path.join(dir, 'ca'), '-I', 'tuxsec-test', '-n', principal, '-V', '-5m:+1h', path.join(dir, 'cert-key.pub')]);
  return { dir, key: path.join(dir, 'key'), ca: path.join(dir, 'ca'), certKey: path.join(dir, 'cert-key') };
}

export interface SshdHandle {
  port: number;
  dir: string;
  knownHosts: string;
  proc: ChildProcess;
  log(): string;
  stop(): Promise<void>;
}

/** An sshd config not yet running: ssh-setup checks its drop-in against it (sshd -T) first. */
export interface SshdConfig {
  dir: string;
  port: number;
  conf: string;
  hostKey: string;
}

/** Writes sshd's config with `extra` lines appended, in a new temporary directory. */
export async function sshdConfig(extra: string): Promise<SshdConfig> {
  const dir = mkdtempSync(path.join(tmpdir(), 'tss-'));
  chmodSync(dir, 0o755);
  const hostKey = path.join(dir, 'host');
  must(SSH_KEYGEN, ['-q', '-t', 'ed25519', '-N', '', '-f', hostKey]);
  const port = await freePort();
  const conf = path.join(dir, 'sshd_config');
  // UsePAM: without it sshd refuses the system user tuxsec, whose password is locked ("!").
  writeFileSync(
    conf,
    `ListenAddress 127.0.0.1
HostKey ${hostKey}
PidFile ${dir}/sshd.pid
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM yes
StrictModes yes
PrintMotd no
AcceptEnv LANG
LogLevel VERBOSE
${extra}
`,
    { mode: 0o600 },
  );
  // sshd's privilege separation directory, which the ssh service would create.
  mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });
  return { dir, port, conf, hostKey };
}

/** Starts sshd (a config from sshdConfig, or `extra` lines for a new one); resolves when it accepts connections. */
export async function startSshd(config: string | SshdConfig): Promise<SshdHandle> {
  const { dir, port, conf, hostKey } = typeof config === 'string' ? await sshdConfig(config) : config;
  const knownHosts = path.join(dir, 'known_hosts');
  writeFileSync(knownHosts, `[127.0.0.1]:${port} ${readFileSync(`${hostKey}.pub`, 'utf8').split(' ').slice(0, 2).join(' ')}\n`);
  const proc = spawn(SSHD, ['-D', '-e', '-f', conf, '-p', String(port)], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  proc.stderr!.on('data', (c: Buffer) => {
    stderr = (stderr + c.toString()).slice(-256 * 1024);
  });
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`sshd exited with ${proc.exitCode}: ${stderr}`);
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1');
      s.once('data', () => (s.destroy(), resolve(true)));
      s.once('error', () => resolve(false));
    });
    if (ok) break;
    if (Date.now() > deadline) throw new Error(`sshd did not listen on ${port}: ${stderr}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    port,
    dir,
    knownHosts,
    proc,
    log: () => stderr,
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) process.kill(proc.pid!, 'SIGTERM');
      await exited;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** `ssh user@127.0.0.1 <command>` with the given identity, the pinned host key and no agent. */
export function ssh(d: SshdHandle, identity: string, command: string, user = 'tuxsec'): SpawnSyncReturns<string> {
  return spawnSync(SSH, [...sshArgs(d, identity, user), command], { encoding: 'utf8', timeout: 60_000, env: SSH_ENV, maxBuffer: 8 * 1024 * 1024 });
}

export const SSH_ENV = { PATH: '/usr/bin:/bin', SSH_AUTH_SOCK: '' };

/** ssh's options for a login to `d` (the command or -N/-L/-W to follow). */
export function sshArgs(d: SshdHandle, identity: string, user = 'tuxsec', logLevel = 'ERROR'): string[] {
  return ['-F', '/dev/null', '-o', 'BatchMode=yes', '-o', 'IdentitiesOnly=yes', '-o', 'StrictHostKeyChecking=yes', '-o', `UserKnownHostsFile=${d.knownHosts}`,
    '-o', `LogLevel=${logLevel}`, '-i', identity, '-p', String(d.port), '-T', `${user}@127.0.0.1`];
}

/** tuxsec-shell under test; TUXSEC_SHELL_UNDER_TEST swaps in another (to prove the attack tests fail on a naive one). */
export const SHELL_UNDER_TEST = process.env.TUXSEC_SHELL_UNDER_TEST ?? path.join(ROOT, 'bin/tuxsec-shell');
const AGENT = path.join(ROOT, 'bin/tuxsec-agent');
/** One file per test process using the tuxsec login shell; the last to leave restores it. */
const USERS_DIR = '/run/tuxsec-test-ssh-users';

export interface SshMode {
  rootd: RootdHandle;
  /** Written by the plugin action marker/touch (access class write). */
  writeMarker: string;
  /** One line per run of the plugin action marker/count (access class write). */
  countFile: string;
  /** agent.yaml (shell.yaml's agent_config) and the state_dir of the job form, owned by tuxsec. */
  agent: AgentEnv;
  keys: SshKeys;
  /** A key installed with --read-only. */
  readOnlyKey: string;
  /** sshd with the authorized_keys `command=` path. */
  keyed: SshdHandle;
  /** sshd trusting the user CA through ssh-setup's drop-in (ForceCommand). */
  ca: SshdHandle;
  work: string;
  stop(): Promise<void>;
}

function setup(args: string[]): string {
  return must(AGENT, ['ssh-setup', '--shell', SHELL_UNDER_TEST, ...args]);
}

/**
 * A real rootd, two real sshds and the tuxsec user set up by `tuxsec-agent ssh-setup` (its
 * login shell becomes tuxsec-shell for the test and goes back to what it was after).
 */
export async function startSshMode(): Promise<SshMode> {
  const { tuxsec: tuxsecUser } = await ensureTestUsers();
  const before = must('/usr/bin/getent', ['passwd', 'tuxsec']).trim().split(':')[6]!;
  mkdirSync(USERS_DIR, { recursive: true, mode: 0o700 });
  writeFileSync(path.join(USERS_DIR, String(process.pid)), before);
  // A plugin whose write action leaves a marker: the read-only test proves it never ran.
  const plugins = pluginDir();
  const marker = path.join(plugins, 'write-ran');
  const countFile = path.join(plugins, 'count-runs');
  writePlugin(plugins, {
    name: 'marker',
    prelude: `import { appendFileSync, readFileSync, writeFileSync } from 'node:fs';`,
    actions: `[defineAction({ name: 'touch', description: 'leaves a marker', access: 'write', params: Params({}), handler: () => { writeFileSync(${JSON.stringify(marker)}, 'ran'); return { ok: true }; } }),
      defineAction({ name: 'look', description: 'reads', access: 'read', params: Params({}), handler: () => ({ ok: true }) }),
      defineAction({ name: 'echo', description: 'gives its parameter back', access: 'read', params: Params({ rule: Type.String() }), handler: (p) => ({ rule: p.rule }) }),
      defineAction({ name: 'count', description: 'counts its runs', access: 'write', params: Params({ sleep_ms: Type.Optional(Type.Integer({ minimum: 0, maximum: 10000 })) }), handler: async (p) => {
        appendFileSync(${JSON.stringify(countFile)}, 'x');
        if (p.sleep_ms) await new Promise((r) => setTimeout(r, p.sleep_ms));
        return { runs: readFileSync(${JSON.stringify(countFile)}, 'utf8').length };
      } })]`,
  });
  const rootd = await startRootd({ config: { plugins_dir: plugins, modules: { firewalld: { enabled: false } } } });
  const keys = makeKeys('tuxsec');
  must(SSH_KEYGEN, ['-q', '-t', 'ed25519', '-N', '', '-C', 'read-only', '-f', path.join(keys.dir, 'ro-key')]);
  // Not under /tmp: sshd's StrictModes refuses key files below a world-writable directory.
  const work = mkdtempSync('/run/tst-ssh-');
  chmodSync(work, 0o755);
  // The sessions are counted by tuxsec-shell, running as tuxsec.
  const sessions = path.join(work, 'sessions');
  mkdirSync(sessions, { mode: 0o700 });
  chownSync(sessions, tuxsecUser.uid, tuxsecUser.gid);
  const agent = await makeAgentEnv({ rootd_socket: rootd.socketPath });
  writeFileSync(path.join(work, 'shell.yaml'), `socket: ${rootd.socketPath}\nsessions_dir: ${sessions}\nagent_config: ${agent.configPath}\n`, { mode: 0o644 });
  const common = ['--shell-config', path.join(work, 'shell.yaml')];
  const akf = path.join(work, 'authorized_keys');
  // sshd's own default for the user's keys (~/.ssh/authorized_keys) applies unless ssh-setup's drop-in says otherwise.
  // A site-wide CA and key command too: in key mode the drop-in must keep out their keys, which
  // carry no command= (the command serves whatever a test puts in work/akc-keys).
  writeFileSync(path.join(work, 'akc'), `#!/bin/sh\ncat ${work}/akc-keys 2>/dev/null\nexit 0\n`, { mode: 0o755 });
  const keyedConf = await sshdConfig(
    `AllowUsers tuxsec\nTrustedUserCAKeys ${keys.ca}.pub\nAuthorizedKeysCommand ${work}/akc %u\nAuthorizedKeysCommandUser nobody\nInclude ${work}/keyed.d/*.conf`,
  );
  const caConf = await sshdConfig(`AllowUsers tuxsec\nInclude ${work}/sshd.d/*.conf`);
  const keyedDir = ['--sshd-dir', path.join(work, 'keyed.d'), '--sshd-config', keyedConf.conf];
  setup([...common, '--authorized-key', `${keys.key}.pub`, '--authorized-keys-file', akf, ...keyedDir]);
  setup([...common, '--authorized-key', path.join(keys.dir, 'ro-key.pub'), '--authorized-keys-file', akf, '--read-only', '--keep-shell', ...keyedDir]);
  setup([...common, '--user-ca', `${keys.ca}.pub`, '--sshd-dir', path.join(work, 'sshd.d'), '--sshd-config', caConf.conf, '--keep-shell']);
  const started: SshdHandle[] = [];
  const cleanup = async () => {
    for (const d of started) await d.stop();
    for (const c of [keyedConf, caConf]) rmSync(c.dir, { recursive: true, force: true });
    await rootd.stop();
    rmSync(work, { recursive: true, force: true });
    rmSync(agent.dir, { recursive: true, force: true });
    rmSync(plugins, { recursive: true, force: true });
    rmSync(keys.dir, { recursive: true, force: true });
    rmSync(path.join(USERS_DIR, String(process.pid)), { force: true });
    const others = readdirSync(USERS_DIR).filter((p) => existsSync(`/proc/${p}`));
    if (others.length === 0) must('/usr/sbin/usermod', ['--shell', before === SHELL_UNDER_TEST ? '/usr/sbin/nologin' : before, '--', 'tuxsec']);
  };
  try {
    started.push(await startSshd(keyedConf));
    started.push(await startSshd(caConf));
  } catch (e) {
    await cleanup();
    throw e;
  }
  const [keyed, ca] = started as [SshdHandle, SshdHandle];
  return {
    rootd,
    writeMarker: marker,
    countFile,
    agent,
    keys,
    readOnlyKey: path.join(keys.dir, 'ro-key'),
    keyed,
    ca,
    work,
    stop: cleanup,
  };
}
