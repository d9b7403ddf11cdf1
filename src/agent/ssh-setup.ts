/**
 * `tuxsec-agent ssh-setup`: SSH mode in one command (run as root). Either installs the server's
 * public key into ~tuxsec/.ssh/authorized_keys behind `restrict,command="<tuxsec-shell>"`, or
 * trusts an OpenSSH user CA through an sshd drop-in that forces tuxsec-shell for the user. It
 * also makes tuxsec-shell the user's login shell: sshd runs a forced command through the login
 * shell, so with nologin nothing would run, and with a real shell a key without `command=` would
 * be a full login.
 *
 * The key files are root-owned (sshd accepts root or the user as owner): the agent, running as
 * tuxsec, cannot add a key of its own.
 */
import fs from 'node:fs';
import path from 'node:path';
import { ensureDir, writeFileAtomic } from '../os/durable-files.ts';
import { run } from '../os/exec.ts';
import { lookupUser } from '../os/users.ts';

export const DEFAULT_SHELL_PATH = '/usr/bin/tuxsec-shell';

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
  /** Where sshd reads the user's keys (default ~USER/.ssh/authorized_keys). */
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

/** The files SSH mode needs, without writing anything. */
export async function planSshSetup(o: SshSetupOptions): Promise<PlannedFile[]> {
  if (!o.authorizedKey === !o.userCa) throw new Error('cannot set up SSH mode: give exactly one of --authorized-key FILE and --user-ca FILE');
  const u = await lookupUser(o.user);
  if (!u) throw new Error(`cannot set up SSH mode: no user ${JSON.stringify(o.user)} (install.sh creates tuxsec)`);
  const command = forcedCommand(o);
  if (o.authorizedKey) {
    const keys = parsePublicKeys(readKeyFile(o.authorizedKey), o.authorizedKey);
    const file = o.authorizedKeysFile ?? path.join(u.home, '.ssh', 'authorized_keys');
    const blobs = new Set(keys.map((k) => k.split(' ')[1]));
    // Other keys stay; a key given again is replaced, so its options are ours.
    const kept = (fs.existsSync(file) ? fs.readFileSync(file, 'utf8').split('\n') : []).filter((l) => l.trim() && !l.split(/\s+/).some((w) => blobs.has(w)));
    const ours = keys.map((k) => `restrict,command="${command}" ${k}`);
    return [{ file, mode: 0o644, uid: 0, gid: 0, text: [...kept, ...ours].join('\n') + '\n' }];
  }
  const ca = parsePublicKeys(readKeyFile(o.userCa!), o.userCa!);
  const principals = o.principal?.length ? o.principal : [o.user];
  for (const p of principals) if (!/^[A-Za-z0-9_.@-]{1,64}$/.test(p)) throw new Error(`cannot use principal ${JSON.stringify(p.slice(0, 80))}: letters, digits and _ . @ - only`);
  plainPath('sshd directory', o.sshdDir);
  const caFile = path.join(o.sshdDir, 'tuxsec-user-ca.pub');
  const principalsFile = path.join(o.sshdDir, 'tuxsec-principals');
  const conf = `# Written by tuxsec-agent ssh-setup: the TuxSec server logs in as ${o.user} with a certificate
# signed by the CA below; only tuxsec-shell runs, whatever the client asks for.
Match User ${o.user}
    TrustedUserCAKeys ${caFile}
    AuthorizedPrincipalsFile ${principalsFile}
    ForceCommand ${command}
    DisableForwarding yes
    PermitTTY no
    PermitUserRC no
`;
  return [
    { file: caFile, mode: 0o644, uid: 0, gid: 0, text: ca.join('\n') + '\n' },
    { file: principalsFile, mode: 0o644, uid: 0, gid: 0, text: principals.join('\n') + '\n' },
    { file: path.join(o.sshdDir, 'tuxsec.conf'), mode: 0o644, uid: 0, gid: 0, text: conf },
  ];
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
  if (o.userCa) out('reload sshd to apply: systemctl reload ssh\n');
}
