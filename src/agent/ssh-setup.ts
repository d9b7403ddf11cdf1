/**
 * `tuxsec-agent ssh-setup`: SSH mode in one command (run as root). Either installs the server's
 * public key into a root-owned file outside the user's home (/etc/ssh/tuxsec/authorized_keys)
 * behind `restrict,command="<tuxsec-shell>"`, or trusts an OpenSSH user CA. Both write an sshd
 * drop-in `Match User tuxsec` (00-tuxsec.conf, first in the directory: sshd keeps the first value it
 * reads) that turns off forwarding and every other way in (passwords, other CAs, key commands), and
 * for the CA forces tuxsec-shell, so a key line without options still cannot open a tunnel to
 * rootd's socket. sshd itself then checks the result (`sshd -t`, `sshd -T`): unless our values are
 * the ones in effect for the user, everything written is put back as it was. It
 * also makes tuxsec-shell the user's login shell: sshd runs a forced command through the login
 * shell, so with nologin nothing would run, and with a real shell a key without `command=` would
 * be a full login.
 *
 * The key files are root-owned (sshd accepts root or the user as owner): the agent, running as
 * tuxsec, cannot add a key of its own. Nothing in the user's home is read or written: it belongs
 * to tuxsec, and a symlink there would make root read or write files of tuxsec's choosing.
 */
import fs from 'node:fs';
import path from 'node:path';
import { ensureDir, writeFileAtomic } from '../os/durable-files.ts';
import { run } from '../os/exec.ts';
import { assertTrustedDir } from '../os/secure-files.ts';
import { lookupUser } from '../os/users.ts';
import { DEFAULT_MAX_SESSIONS, DEFAULT_SESSIONS_DIR } from '../shell/sessions.ts';

export const DEFAULT_SHELL_PATH = '/usr/bin/tuxsec-shell';
export const DEFAULT_AUTHORIZED_KEYS_FILE = '/etc/ssh/tuxsec/authorized_keys';
export const DEFAULT_SSHD_CONFIG = '/etc/ssh/sshd_config';
const SSHD = '/usr/sbin/sshd';
/** Our drop-in: sshd reads a directory's files in order and keeps the first value of a keyword. */
export const DROP_IN = '00-tuxsec.conf';
/** The name earlier versions wrote, after any digit-named drop-in; removed when it is ours. */
const OLD_DROP_IN = 'tuxsec.conf';
const OUR_HEADER = '# Written by tuxsec-agent ssh-setup';

export interface SshSetupOptions {
  authorizedKey?: string;
  userCa?: string;
  user: string;
  /** Principals a CA-signed certificate must name (default: the user's name). */
  principal?: string[];
  readOnly?: boolean;
  shell: string;
  /** tuxsec-shell's config file, when not the default. */
  shellConfig?: string;
  /** Where sshd reads the user's keys (default /etc/ssh/tuxsec/authorized_keys, never the user's home). */
  authorizedKeysFile?: string;
  /** Where the drop-in goes (default /etc/ssh/sshd_config.d). */
  sshdDir: string;
  /** sshd's main config, which must include the drop-in (checked with sshd -T). */
  sshdConfig?: string;
  /** Leave the user's login shell as it is. */
  keepShell?: boolean;
  dryRun?: boolean;
}

/** One file the setup writes. */
export interface PlannedFile {
  file: string;
  mode: number;
  uid: number;
  gid: number;
  /** null: the file is removed (an older drop-in of ours). */
  text: string | null;
}

const KEY_TYPES = /^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)|sk-ssh-ed25519@openssh\.com|sk-ecdsa-sha2-nistp256@openssh\.com)$/;
const MAX_KEY_FILE = 64 * 1024;

/** The public keys of a .pub file, one `type base64 [comment]` each; options are refused. */
export function parsePublicKeys(text: string, file: string): string[] {
  const keys: string[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const [type, blob, ...comment] = line.split(/\s+/);
    if (!KEY_TYPES.test(type!) || !/^[A-Za-z0-9+/]+={0,2}$/.test(blob ?? '')) {
      throw new Error(`cannot use key file ${file}: ${JSON.stringify(line.slice(0, 60))} is not a public key (options such as command= are added by ssh-setup itself)`);
    }
    const c = comment.join(' ').replace(/[^A-Za-z0-9_@.:+-]/g, '_').slice(0, 100);
    keys.push(c ? `${type} ${blob} ${c}` : `${type} ${blob}`);
  }
  if (keys.length === 0) throw new Error(`cannot use key file ${file}: no public key in it`);
  return keys;
}

function readKeyFile(file: string): string {
  const st = fs.statSync(file);
  if (!st.isFile() || st.size > MAX_KEY_FILE) throw new Error(`cannot use key file ${file}: not a regular file of at most ${MAX_KEY_FILE} bytes`);
  return fs.readFileSync(file, 'utf8');
}

/**
 * A path that goes into sshd's config or a command= option, normalised. No `%`: sshd expands
 * `%h` (the user's home) and `%u` in AuthorizedKeysFile and TrustedUserCAKeys.
 */
function plainPath(what: string, p: string): string {
  if (!path.isAbsolute(p) || /[^A-Za-z0-9_@+=:,./-]/.test(p)) throw new Error(`cannot use ${what} ${JSON.stringify(p.slice(0, 200))}: not an absolute path of plain characters (letters, digits and _ @ + = : , . / -)`);
  return path.resolve(p);
}

/**
 * A directory root writes into for sshd: it, or the nearest part of it that exists, and every
 * directory above must be root's and not writable by group or others, with no symbolic link on
 * the way; else the user could swap a part of the path and make root write elsewhere.
 */
function assertRootDir(what: string, dir: string): void {
  let d = dir;
  while (!fs.existsSync(d) && path.dirname(d) !== d) {
    try {
      fs.lstatSync(d);
      break; // a dangling symlink: assertTrustedDir names it
    } catch {
      d = path.dirname(d);
    }
  }
  try {
    assertTrustedDir(d);
  } catch (e) {
    throw new Error(`cannot use ${what} ${JSON.stringify(dir)}: ${(e as Error).message} (every directory on the way must be root's and writable by root alone)`, { cause: e });
  }
}

function forcedCommand(o: SshSetupOptions): string {
  const words = [plainPath('shell', o.shell)];
  if (o.readOnly) words.push('--read-only');
  if (o.shellConfig) words.push('--config', plainPath('shell config', o.shellConfig));
  return words.join(' ');
}

/**
 * A file we write as it is now (to keep other keys, and to put it back if sshd refuses the
 * result): only a root-owned regular file, opened without following a symlink, so root never
 * copies a file of someone else's choosing. null: there is none.
 */
function readRootFile(file: string): string | null {
  let fd: number;
  try {
    fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new Error(`cannot read ${file}: ${(e as NodeJS.ErrnoException).code === 'ELOOP' ? 'it is a symlink' : (e as Error).message}`, { cause: e });
  }
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFile() || st.uid !== 0 || st.size > MAX_KEY_FILE) throw new Error(`cannot read ${file}: not a root-owned regular file of at most ${MAX_KEY_FILE} bytes`);
    return fs.readFileSync(fd, 'utf8');
  } finally {
    fs.closeSync(fd);
  }
}

/** The files SSH mode needs, without writing anything. */
export async function planSshSetup(o: SshSetupOptions): Promise<PlannedFile[]> {
  if (!o.authorizedKey === !o.userCa) throw new Error('cannot set up SSH mode: give exactly one of --authorized-key FILE and --user-ca FILE');
  const u = await lookupUser(o.user);
  if (!u) throw new Error(`cannot set up SSH mode: no user ${JSON.stringify(o.user)} (install.sh creates tuxsec)`);
  const command = forcedCommand(o);
  const sshdDir = plainPath('sshd directory', o.sshdDir);
  assertRootDir('sshd directory', sshdDir);
  const home = path.resolve(u.home);
  const files: PlannedFile[] = [];
  // Whatever else sshd offers (a site-wide CA, a key command, passwords, GSSAPI, host-based)
  // would reach tuxsec-shell without this key's command= (and its --read-only).
  const closed = ['AuthorizedKeysCommand none', 'AuthorizedPrincipalsCommand none', 'AuthenticationMethods publickey', 'PasswordAuthentication no',
    'KbdInteractiveAuthentication no', 'GSSAPIAuthentication no', 'HostbasedAuthentication no'];
  let auth: string[];
  if (o.authorizedKey) {
    const keys = parsePublicKeys(readKeyFile(o.authorizedKey), o.authorizedKey);
    const file = plainPath('authorized keys file', o.authorizedKeysFile ?? DEFAULT_AUTHORIZED_KEYS_FILE);
    if (file === home || file.startsWith(home.replace(/\/*$/, '/'))) throw new Error(`cannot use authorized keys file ${file}: it is inside the home of ${o.user}, which ${o.user} controls`);
    assertRootDir('authorized keys file', path.dirname(file));
    const blobs = new Set(keys.map((k) => k.split(' ')[1]));
    // Other keys stay; a key given again is replaced, so its options are ours.
    // A line someone added without our options gets them: no key in this file runs anything else.
    const kept = (readRootFile(file) ?? '')
      .split('\n')
      .filter((l) => l.trim() && !l.trim().startsWith('#') && !l.split(/\s+/).some((w) => blobs.has(w)))
      .map((l) => (l.startsWith('restrict,command="') ? l : `restrict,command="${command}" ${l.trim()}`));
    const ours = keys.map((k) => `restrict,command="${command}" ${k}`);
    files.push({ file, mode: 0o644, uid: 0, gid: 0, text: [...kept, ...ours].join('\n') + '\n' });
    // No ForceCommand here: it would override each key's command=, which carries --read-only per key.
    auth = [`AuthorizedKeysFile ${file}`, 'TrustedUserCAKeys none'];
  } else {
    const ca = parsePublicKeys(readKeyFile(o.userCa!), o.userCa!);
    const principals = o.principal?.length ? o.principal : [o.user];
    for (const p of principals) if (!/^[A-Za-z0-9_.@-]{1,64}$/.test(p)) throw new Error(`cannot use principal ${JSON.stringify(p.slice(0, 80))}: letters, digits and _ . @ - only`);
    const caFile = path.join(sshdDir, 'tuxsec-user-ca.pub');
    const principalsFile = path.join(sshdDir, 'tuxsec-principals');
    files.push({ file: caFile, mode: 0o644, uid: 0, gid: 0, text: ca.join('\n') + '\n' });
    files.push({ file: principalsFile, mode: 0o644, uid: 0, gid: 0, text: principals.join('\n') + '\n' });
    // No keys at all: sshd's default reads ~/.ssh/authorized_keys, which tuxsec itself can write.
    auth = [`TrustedUserCAKeys ${caFile}`, `AuthorizedPrincipalsFile ${principalsFile}`, 'AuthorizedKeysFile none', `ForceCommand ${command}`];
  }
  // Whatever a key line says: only tuxsec-shell runs, and no tunnel (e.g. to rootd's socket) opens.
  // PermitUserEnvironment is refused by sshd inside Match; its default (no) holds globally, and
  // NODE_OPTIONS is emptied should PAM or AcceptEnv bring one. MaxSessions per connection; the
  // shell's own max_sessions caps them all.
  const lines = [...auth, ...closed, 'DisableForwarding yes', 'PermitTTY no', 'PermitUserRC no', `MaxSessions ${DEFAULT_MAX_SESSIONS}`, 'SetEnv NODE_OPTIONS='];
  const conf = `${OUR_HEADER}: the TuxSec server logs in as ${o.user} (${o.authorizedKey ? 'keys in the file below' : 'a certificate signed by the CA below'});
# only tuxsec-shell runs, whatever the client asks for, nothing is forwarded, and no other way in is open.
# The first file in this directory: sshd keeps the first value of each keyword it reads.
Match User ${o.user}
${lines.map((l) => `    ${l}\n`).join('')}`;
  files.push({ file: path.join(sshdDir, DROP_IN), mode: 0o644, uid: 0, gid: 0, text: conf });
  const old = path.join(sshdDir, OLD_DROP_IN);
  if (readRootFile(old)?.startsWith(OUR_HEADER)) files.push({ file: old, mode: 0o644, uid: 0, gid: 0, text: null });
  return files;
}

/** sshd -T's keyword and value for each line we wrote (lower case, as sshd prints them). */
function expectedSettings(conf: string): Array<[string, string]> {
  return conf
    .split('\n')
    .filter((l) => l.startsWith('    '))
    .map((l) => {
      const [k, ...v] = l.trim().split(' ');
      return [k!.toLowerCase(), v.join(' ')];
    });
}

/**
 * Asks sshd whether the config parses and our values are the ones in effect for the user;
 * throws naming the first one that is not (another drop-in set it first, or the main config
 * does not include the directory).
 */
async function checkSshd(o: SshSetupOptions, conf: string): Promise<void> {
  const main = o.sshdConfig ?? DEFAULT_SSHD_CONFIG;
  // sshd -t refuses to run without its privilege separation directory, which only the running
  // ssh service creates.
  if (!fs.existsSync('/run/sshd')) ensureDir('/run/sshd', 0o755);
  const t = await run(SSHD, ['-t', '-f', main], { timeoutMs: 30_000, maxOutputBytes: 64 * 1024 });
  if (t.code !== 0) throw new Error(`sshd -t refuses the config: ${(t.stderr || t.stdout).trim().slice(0, 500)}`);
  const r = await run(SSHD, ['-T', '-f', main, '-C', `user=${o.user},host=localhost,addr=127.0.0.1`], { timeoutMs: 30_000, maxOutputBytes: 1024 * 1024 });
  if (r.code !== 0) throw new Error(`sshd -T failed: ${r.stderr.trim().slice(0, 500)}`);
  const effective = new Map<string, string[]>();
  for (const line of r.stdout.split('\n')) {
    const [k, ...v] = line.split(' ');
    if (k) effective.set(k, [...(effective.get(k) ?? []), v.join(' ')]);
  }
  for (const [k, v] of expectedSettings(conf)) {
    const got = effective.get(k) ?? [];
    if (!got.includes(v)) {
      throw new Error(`sshd would use "${k} ${got.join(', ').slice(0, 200) || '(not set)'}" for ${o.user}, not "${k} ${v}": another drop-in sets it first, or ${main} does not include ${o.sshdDir}`);
    }
  }
}

/**
 * tuxsec-shell's session counter, which tmpfiles.d makes at boot: made now too, so SSH mode works
 * before the next boot. Never through a symlink, which would make root chown another directory.
 */
async function sessionsDir(user: string): Promise<void> {
  const u = (await lookupUser(user))!;
  try {
    fs.mkdirSync(DEFAULT_SESSIONS_DIR, { mode: 0o700 });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
  }
  if (!fs.lstatSync(DEFAULT_SESSIONS_DIR).isDirectory()) throw new Error(`cannot use ${DEFAULT_SESSIONS_DIR}: not a directory`);
  fs.lchownSync(DEFAULT_SESSIONS_DIR, u.uid, u.gid);
  fs.chmodSync(DEFAULT_SESSIONS_DIR, 0o700);
}

/** Writes the planned files (or prints them with dryRun) and sets the login shell. */
export async function sshSetup(o: SshSetupOptions, out: (s: string) => void): Promise<void> {
  const files = await planSshSetup(o);
  const setShell = !o.keepShell;
  if (o.dryRun) {
    for (const f of files) out(f.text === null ? `# ${f.file}: removed (written by an earlier version)\n` : `# ${f.file} (mode ${f.mode.toString(8)}, owner root)\n${f.text}\n`);
    if (setShell) out(`# login shell of ${o.user}: ${o.shell}\n`);
    return;
  }
  // Every directory made and checked before the first file is written: all or nothing.
  for (const f of files) {
    ensureDir(path.dirname(f.file), 0o755);
    assertRootDir('directory', path.dirname(f.file));
  }
  const before = files.map((f) => readRootFile(f.file));
  const put = (f: PlannedFile, text: string | null) => {
    if (text === null) fs.rmSync(f.file, { force: true });
    else writeFileAtomic(f.file, text, { mode: f.mode, uid: f.uid, gid: f.gid });
  };
  try {
    for (const f of files) put(f, f.text);
    await checkSshd(o, files.find((f) => f.file.endsWith(`/${DROP_IN}`))!.text!);
  } catch (e) {
    files.forEach((f, i) => put(f, before[i] ?? null));
    throw new Error(`cannot set up SSH mode: ${(e as Error).message}; the files are as they were`, { cause: e });
  }
  for (const f of files) out(f.text === null ? `removed ${f.file} (written by an earlier version)\n` : `wrote ${f.file}\n`);
  await sessionsDir(o.user);
  if (setShell) {
    const r = await run('/usr/sbin/usermod', ['--shell', o.shell, '--', o.user], { timeoutMs: 30_000 });
    if (r.code !== 0) throw new Error(`cannot set the login shell of ${o.user}: ${r.stderr.trim().slice(0, 200)}`);
    out(`login shell of ${o.user}: ${o.shell}\n`);
  }
  out('reload sshd to apply: systemctl reload ssh\n');
}
