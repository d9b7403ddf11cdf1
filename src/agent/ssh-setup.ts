/**
 * `tuxsec-agent ssh-setup`: SSH mode in one command (run as root). Either installs the server's
 * public key into a root-owned file outside the user's home (/etc/ssh/tuxsec/authorized_keys)
 * behind `restrict,command="<tuxsec-shell>"`, or trusts an OpenSSH user CA. Both write an sshd
 * drop-in `Match User tuxsec` that turns off forwarding (and, for the CA, forces tuxsec-shell), so a key line
 * without options still cannot open a tunnel to rootd's socket. It
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
import { lookupUser } from '../os/users.ts';

export const DEFAULT_SHELL_PATH = '/usr/bin/tuxsec-shell';
export const DEFAULT_AUTHORIZED_KEYS_FILE = '/etc/ssh/tuxsec/authorized_keys';

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
  text: string;
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

/** A path that goes into sshd's config or a command= option as it is. */
function plainPath(what: string, p: string): string {
  if (!path.isAbsolute(p) || /[^A-Za-z0-9_@%+=:,./-]/.test(p)) throw new Error(`cannot use ${what} ${JSON.stringify(p.slice(0, 200))}: not an absolute path of plain characters`);
  return p;
}

function forcedCommand(o: SshSetupOptions): string {
  const words = [plainPath('shell', o.shell)];
  if (o.readOnly) words.push('--read-only');
  if (o.shellConfig) words.push('--config', plainPath('shell config', o.shellConfig));
  return words.join(' ');
}

/**
 * The keys file as it is, to keep other keys: only a root-owned regular file, opened without
 * following a symlink, so root never copies a file of someone else's choosing into it.
 */
function readOwnKeysFile(file: string): string {
  let fd: number;
  try {
    fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return '';
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
  plainPath('sshd directory', o.sshdDir);
  const files: PlannedFile[] = [];
  let auth: string;
  if (o.authorizedKey) {
    const keys = parsePublicKeys(readKeyFile(o.authorizedKey), o.authorizedKey);
    const file = plainPath('authorized keys file', o.authorizedKeysFile ?? DEFAULT_AUTHORIZED_KEYS_FILE);
    if (file === u.home || file.startsWith(u.home.replace(/\/*$/, '/'))) throw new Error(`cannot use authorized keys file ${file}: it is inside the home of ${o.user}, which ${o.user} controls`);
    const blobs = new Set(keys.map((k) => k.split(' ')[1]));
    // Other keys stay; a key given again is replaced, so its options are ours.
    // A line someone added without our options gets them: no key in this file runs anything else.
    const kept = readOwnKeysFile(file)
      .split('\n')
      .filter((l) => l.trim() && !l.trim().startsWith('#') && !l.split(/\s+/).some((w) => blobs.has(w)))
      .map((l) => (l.startsWith('restrict,command="') ? l : `restrict,command="${command}" ${l.trim()}`));
    const ours = keys.map((k) => `restrict,command="${command}" ${k}`);
    files.push({ file, mode: 0o644, uid: 0, gid: 0, text: [...kept, ...ours].join('\n') + '\n' });
    // No ForceCommand here: it would override each key's command=, which carries --read-only per key.
    auth = `    AuthorizedKeysFile ${file}\n`;
  } else {
    const ca = parsePublicKeys(readKeyFile(o.userCa!), o.userCa!);
    const principals = o.principal?.length ? o.principal : [o.user];
    for (const p of principals) if (!/^[A-Za-z0-9_.@-]{1,64}$/.test(p)) throw new Error(`cannot use principal ${JSON.stringify(p.slice(0, 80))}: letters, digits and _ . @ - only`);
    const caFile = path.join(o.sshdDir, 'tuxsec-user-ca.pub');
    const principalsFile = path.join(o.sshdDir, 'tuxsec-principals');
    files.push({ file: caFile, mode: 0o644, uid: 0, gid: 0, text: ca.join('\n') + '\n' });
    files.push({ file: principalsFile, mode: 0o644, uid: 0, gid: 0, text: principals.join('\n') + '\n' });
    auth = `    TrustedUserCAKeys ${caFile}\n    AuthorizedPrincipalsFile ${principalsFile}\n    ForceCommand ${command}\n`;
  }
  // Whatever a key line says: only tuxsec-shell runs, and no tunnel (e.g. to rootd's socket) opens.
  // PermitUserEnvironment is refused by sshd inside Match; its default (no) holds globally.
  const conf = `# Written by tuxsec-agent ssh-setup: the TuxSec server logs in as ${o.user} (${o.authorizedKey ? 'keys in the file below' : 'a certificate signed by the CA below'});
# only tuxsec-shell runs, whatever the client asks for, and nothing is forwarded.
Match User ${o.user}
${auth}    DisableForwarding yes
    PermitTTY no
    PermitUserRC no
`;
  files.push({ file: path.join(o.sshdDir, 'tuxsec.conf'), mode: 0o644, uid: 0, gid: 0, text: conf });
  return files;
}

/** Writes the planned files (or prints them with dryRun) and sets the login shell. */
export async function sshSetup(o: SshSetupOptions, out: (s: string) => void): Promise<void> {
  const files = await planSshSetup(o);
  const setShell = !o.keepShell;
  if (o.dryRun) {
    for (const f of files) out(`# ${f.file} (mode ${f.mode.toString(8)}, owner root)\n${f.text}\n`);
    if (setShell) out(`# login shell of ${o.user}: ${o.shell}\n`);
    return;
  }
  for (const f of files) {
    ensureDir(path.dirname(f.file), 0o755);
    writeFileAtomic(f.file, f.text, { mode: f.mode, uid: f.uid, gid: f.gid });
    out(`wrote ${f.file}\n`);
  }
  if (setShell) {
    const r = await run('/usr/sbin/usermod', ['--shell', o.shell, '--', o.user], { timeoutMs: 30_000 });
    if (r.code !== 0) throw new Error(`cannot set the login shell of ${o.user}: ${r.stderr.trim().slice(0, 200)}`);
    out(`login shell of ${o.user}: ${o.shell}\n`);
  }
  out('reload sshd to apply: systemctl reload ssh\n');
}
