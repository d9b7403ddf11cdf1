/**
 * Crash-safe file primitives, the one atomic writer of rootd and the agent: a file is written to
 * a temp name in the same directory, fsync'd, renamed over its final name, and the directory
 * fsync'd, so after a crash either the old or the new content is there, never a torn one.
 */
import fs from 'node:fs';
import path from 'node:path';

/** fsyncs a directory so a rename or create in it survives a crash. */
export function fsyncDir(dir: string): void {
  const fd = fs.openSync(dir, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

export interface AtomicWriteOptions {
  mode?: number;
  uid?: number;
  gid?: number;
  /** Skip the directory fsync (the caller does one for a batch). */
  noDirSync?: boolean;
}

/** Temp prefix; start-up sweeps remove leftovers carrying it. */
export const TMP_PREFIX = '.tmp-';

/** Writes `data` to `file` atomically and durably (see the module comment). */
export function writeFileAtomic(file: string, data: string | Buffer, opts: AtomicWriteOptions = {}): void {
  const dir = path.dirname(file);
  const tmp = path.join(dir, `${TMP_PREFIX}${path.basename(file)}.${process.pid}.${Date.now().toString(36)}`);
  const fd = fs.openSync(tmp, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW, opts.mode ?? 0o600);
  try {
    if (opts.uid !== undefined && opts.gid !== undefined) fs.fchownSync(fd, opts.uid, opts.gid);
    // umask may have narrowed the mode at open; set it exactly.
    if (opts.mode !== undefined) fs.fchmodSync(fd, opts.mode);
    fs.writeFileSync(fd, data);
    fs.fsyncSync(fd);
  } catch (e) {
    fs.closeSync(fd);
    fs.rmSync(tmp, { force: true });
    throw e;
  }
  fs.closeSync(fd);
  try {
    fs.renameSync(tmp, file);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw e;
  }
  if (!opts.noDirSync) fsyncDir(dir);
}

/** Creates a directory (and parents) with `mode` if missing; refuses a symlink. */
export function ensureDir(dir: string, mode = 0o700): void {
  fs.mkdirSync(dir, { recursive: true, mode });
  const st = fs.lstatSync(dir);
  if (!st.isDirectory()) throw new Error(`cannot use directory ${JSON.stringify(dir)}: not a directory`);
}
