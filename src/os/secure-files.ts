/**
 * Files that root writes or trusts: never through a symbolic link or a hard link, never in
 * a directory another user could change. A file root appends to in a directory the
 * `tuxsec` user owns could be swapped for a link to /etc/cron.d; these checks refuse that.
 */
import { constants, closeSync, fstatSync, lstatSync, mkdirSync, openSync, readlinkSync, readSync, type Stats } from 'node:fs';
import path from 'node:path';
import { writeFileAtomic } from './durable-files.ts';

const { O_WRONLY, O_RDONLY, O_APPEND, O_CREAT, O_NOFOLLOW } = constants;
const S_ISVTX = 0o1000;

export class UnsafePathError extends Error {}

function myUid(): number {
  return process.getuid?.() ?? 0;
}

/**
 * Checks that `dir` and every directory above it can be changed only by root or by us:
 * owned by one of them, and not writable by group or others unless sticky (like /tmp).
 */
export function assertTrustedDir(dir: string): void {
  let d = path.resolve(dir);
  for (;;) {
    const st = lstatSync(d);
    if (st.isSymbolicLink()) throw new UnsafePathError(`${d} is a symbolic link`);
    checkTrustedDir(d, st);
    const up = path.dirname(d);
    if (up === d) return;
    d = up;
  }
}

function checkTrustedDir(d: string, st: Stats): void {
  const uid = myUid();
  if (!st.isDirectory()) throw new UnsafePathError(`${d} is not a directory`);
  if (st.uid !== 0 && st.uid !== uid) throw new UnsafePathError(`${d} is owned by uid ${st.uid}, not root`);
  if (st.mode & 0o022 && !(st.mode & S_ISVTX)) throw new UnsafePathError(`${d} is writable by group or others`);
}

/**
 * Like assertTrustedDir, but a symbolic link on the way (the distribution's /var/run -> /run)
 * is followed when root or we own it: every directory the lookup passes through, the link's
 * target included, must pass the same check. Returns the directory's real path.
 */
export function assertTrustedPath(dir: string): string {
  let links = 0;
  const walk = (abs: string): string => {
    let cur = '/';
    checkTrustedDir(cur, lstatSync(cur));
    for (const name of path.resolve(abs).split('/').filter(Boolean)) {
      const next = path.join(cur, name);
      const st = lstatSync(next);
      if (st.isSymbolicLink()) {
        if (++links > 40) throw new UnsafePathError(`${abs} has too many levels of symbolic links`);
        if (st.uid !== 0 && st.uid !== myUid()) throw new UnsafePathError(`${next} is a symbolic link owned by uid ${st.uid}, not root`);
        cur = walk(path.resolve(cur, readlinkSync(next)));
      } else {
        checkTrustedDir(next, st);
        cur = next;
      }
    }
    return cur;
  };
  return walk(dir);
}

/** Creates `dir` (and missing parents, 0755) with `mode` if absent, then checks it is trusted. */
export function ensureTrustedDir(dir: string, mode = 0o750): void {
  try {
    lstatSync(dir);
  } catch {
    mkdirSync(path.dirname(dir), { recursive: true, mode: 0o755 });
    mkdirSync(dir, { mode });
  }
  assertTrustedDir(dir);
}

function checkOpened(fd: number, file: string, writableByOthers = true): void {
  const st = fstatSync(fd);
  if (!st.isFile()) throw new UnsafePathError(`${file} is not a regular file`);
  if (st.uid !== myUid()) throw new UnsafePathError(`${file} is owned by uid ${st.uid}`);
  if (st.nlink !== 1) throw new UnsafePathError(`${file} has ${st.nlink} hard links`);
  if (!writableByOthers && st.mode & 0o022) throw new UnsafePathError(`${file} is writable by group or others (mode ${(st.mode & 0o7777).toString(8).padStart(4, '0')})`);
}

/** Opens a log file for appending (created 0600), in a trusted directory; returns the fd. */
export function openAppendSafe(file: string, dirMode = 0o750): number {
  ensureTrustedDir(path.dirname(file), dirMode);
  let fd: number;
  try {
    fd = openSync(file, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW, 0o600);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ELOOP') throw new UnsafePathError(`${file} is a symbolic link`);
    throw e;
  }
  try {
    checkOpened(fd, file);
  } catch (e) {
    closeSync(fd);
    throw e;
  }
  return fd;
}

/**
 * Reads a file root trusts (state it wrote itself): never through a link, owned by us, writable
 * by nobody else, at most `maxBytes`; null when absent.
 */
export function readFileSafe(file: string, maxBytes = 16 * 1024 * 1024): string | null {
  try {
    assertTrustedDir(path.dirname(file));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
  let fd: number;
  try {
    fd = openSync(file, O_RDONLY | O_NOFOLLOW);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return null;
    if (code === 'ELOOP') throw new UnsafePathError(`${file} is a symbolic link`);
    throw e;
  }
  try {
    checkOpened(fd, file, false);
    const size = fstatSync(fd).size;
    if (size > maxBytes) throw new UnsafePathError(`${file} is larger than ${maxBytes} bytes`);
    const buf = Buffer.alloc(size);
    let off = 0;
    while (off < size) {
      const n = readSync(fd, buf, off, size - off, off);
      if (n === 0) break;
      off += n;
    }
    return buf.subarray(0, off).toString('utf8');
  } finally {
    closeSync(fd);
  }
}

/** Replaces a file in a trusted directory atomically (see durable-files.ts), mode 0600. */
export function writeFileAtomicSafe(file: string, data: string, dirMode = 0o700): void {
  ensureTrustedDir(path.dirname(file), dirMode);
  writeFileAtomic(file, data, { mode: 0o600 });
}
