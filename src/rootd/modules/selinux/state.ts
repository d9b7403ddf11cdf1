/**
 * What the kernel says about SELinux (selinuxfs) and what /etc/selinux/config asks for at boot,
 * read fresh on every call: the mode changes at runtime, the file under any editor.
 */
import fs from 'node:fs';
import path from 'node:path';
import { ErrorCodes, TuxsecError } from '../../../protocol/errors.ts';
import { quote } from '../../../sdk/schema.ts';
import { writeFileAtomic } from '../../../os/durable-files.ts';

export type Mode = 'enforcing' | 'permissive' | 'disabled';

export interface KernelState {
  enabled: boolean;
  /** Runtime mode; `disabled` when the kernel runs without SELinux. */
  mode: Mode;
  /** Policy version the kernel loaded (selinuxfs policyvers). */
  policyVersion: number | null;
  mls: boolean | null;
  /** Why SELinux is not enabled, or null. */
  reason: string | null;
}

/** Where the kernel's files are; tests point them at a directory they write (no SELinux kernel here). */
export interface HostPaths {
  selinuxfs: string;
  proc: string;
}

/** Reads a small file, or null when it is missing or unreadable. */
function readSmall(file: string, max = 64 * 1024): string | null {
  let fd: number;
  try {
    fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
  } catch {
    return null;
  }
  try {
    const buf = Buffer.alloc(max);
    const n = fs.readSync(fd, buf, 0, max, null);
    return buf.subarray(0, n).toString('utf8');
  } catch {
    return null;
  } finally {
    fs.closeSync(fd);
  }
}

/** Why the kernel has no SELinux, from what /proc shows. */
function whyDisabled(p: HostPaths): string {
  const cmdline = readSmall(path.join(p.proc, 'cmdline')) ?? '';
  if (/(^|\s)selinux=0(\s|$)/.test(cmdline)) return 'SELinux is disabled in the kernel (selinux=0 on the kernel command line)';
  const filesystems = readSmall(path.join(p.proc, 'filesystems')) ?? '';
  if (!/\sselinuxfs\s*$/m.test(filesystems)) {
    return 'SELinux is disabled in the kernel (no selinuxfs in /proc/filesystems: the kernel was built without SELinux or it is not among the security modules enabled at boot, see lsm= and security= on the kernel command line)';
  }
  return `SELinux is disabled in the kernel (selinuxfs is not mounted at ${p.selinuxfs}: no policy is loaded)`;
}

export function kernelState(p: HostPaths): KernelState {
  const enforce = readSmall(path.join(p.selinuxfs, 'enforce'), 16);
  if (enforce === null) return { enabled: false, mode: 'disabled', policyVersion: null, mls: null, reason: whyDisabled(p) };
  const vers = Number.parseInt(readSmall(path.join(p.selinuxfs, 'policyvers'), 16) ?? '', 10);
  const mls = readSmall(path.join(p.selinuxfs, 'mls'), 16);
  return {
    enabled: true,
    mode: enforce.trim() === '1' ? 'enforcing' : 'permissive',
    policyVersion: Number.isFinite(vers) ? vers : null,
    mls: mls === null ? null : mls.trim() === '1',
    reason: null,
  };
}

/** The refusal of an action that needs SELinux in the kernel. */
export function needsKernel(k: KernelState, what: string): void {
  if (!k.enabled) throw new TuxsecError(ErrorCodes.serviceUnavailable, `cannot ${what}: ${k.reason}`);
}

/** Sets the runtime mode through selinuxfs (what setenforce does). */
export function writeEnforce(p: HostPaths, mode: 'enforcing' | 'permissive'): void {
  // A kernel file: written in place, never renamed over.
  const fd = fs.openSync(path.join(p.selinuxfs, 'enforce'), fs.constants.O_WRONLY | fs.constants.O_NOFOLLOW);
  try {
    fs.writeSync(fd, mode === 'enforcing' ? '1' : '0');
  } finally {
    fs.closeSync(fd);
  }
}

export interface ConfigFile {
  path: string;
  exists: boolean;
  /** SELINUX= of the file. */
  mode: string | null;
  /** SELINUXTYPE= of the file. */
  policyType: string | null;
}

const MAX_CONFIG = 64 * 1024;
const KEY_LINE = (key: string) => new RegExp(`^[ \\t]*${key}[ \\t]*=[ \\t]*(.*?)[ \\t]*$`, 'm');

export function readConfig(file: string): ConfigFile {
  const text = readSmall(file, MAX_CONFIG);
  if (text === null) return { path: file, exists: false, mode: null, policyType: null };
  return { path: file, exists: true, mode: KEY_LINE('SELINUX').exec(text)?.[1] ?? null, policyType: KEY_LINE('SELINUXTYPE').exec(text)?.[1] ?? null };
}

/**
 * Sets SELINUX= in the config file: every uncommented SELINUX= line is rewritten (one is added
 * when there is none), every other byte is kept, and the file is replaced atomically with its
 * mode and owner. Gives the previous value and content, for a caller that must undo; nothing is
 * written when the file already says so.
 */
export function writeConfigMode(file: string, mode: Mode): { changed: boolean; before: string | null; previous: string } {
  const what = `cannot set SELINUX in ${quote(file)}`;
  let st: fs.Stats;
  try {
    st = fs.lstatSync(file);
  } catch {
    throw new TuxsecError(ErrorCodes.notFound, `${what}: the file does not exist (is SELinux installed?)`);
  }
  // Renaming over a symlink would replace the link, not the file it names.
  if (!st.isFile()) throw new TuxsecError(ErrorCodes.conflict, `${what}: not a regular file`);
  if (st.size > MAX_CONFIG) throw new TuxsecError(ErrorCodes.conflict, `${what}: larger than ${MAX_CONFIG} bytes`);
  const text = fs.readFileSync(file, 'utf8');
  const before = KEY_LINE('SELINUX').exec(text)?.[1] ?? null;
  const lines = text.split('\n');
  let found = false;
  const out = lines.map((l) => {
    if (!/^[ \t]*SELINUX[ \t]*=/.test(l)) return l;
    found = true;
    return `SELINUX=${mode}${l.endsWith('\r') ? '\r' : ''}`;
  });
  let next = out.join('\n');
  if (!found) next = `${text}${text === '' || text.endsWith('\n') ? '' : '\n'}SELINUX=${mode}\n`;
  if (next === text) return { changed: false, before, previous: text };
  writeConfigText(file, next, st);
  return { changed: true, before, previous: text };
}

/** Replaces the config file's content atomically, keeping its mode and owner. */
export function writeConfigText(file: string, text: string, st: fs.Stats = fs.lstatSync(file)): void {
  writeFileAtomic(file, text, { mode: st.mode & 0o7777, uid: st.uid, gid: st.gid });
}
