/**
 * An exclusive flock(2) on a file, through libc with koffi: Node has no API for it. The lock goes
 * with the open file: the kernel drops it when the process dies, so a crash never leaves it held.
 */
import fs from 'node:fs';
import koffi from 'koffi';

const LOCK_EX = 2;
const LOCK_NB = 4;
const EWOULDBLOCK = 11;

type Flock = (fd: number, op: number) => number;
let flock: Flock | null = null;

function libc(): Flock {
  flock ??= koffi.load('libc.so.6').func('int flock(int fd, int op)') as Flock;
  return flock;
}

/**
 * Takes the lock on `file` (created 0600 if missing, never through a symlink) without waiting;
 * returns its fd (close it to let go), or null while another process holds it.
 */
export function tryLockFile(file: string): number | null {
  const fd = fs.openSync(file, fs.constants.O_RDWR | fs.constants.O_CREAT | fs.constants.O_NOFOLLOW, 0o600);
  if (libc()(fd, LOCK_EX | LOCK_NB) === 0) return fd;
  const e = koffi.errno();
  fs.closeSync(fd);
  if (e === EWOULDBLOCK) return null;
  throw new Error(`cannot lock ${file}: errno ${e}`);
}

/** Takes the lock, trying again every `pollMs` until `timeoutMs`; null when it stayed taken. */
export async function lockFile(file: string, timeoutMs: number, pollMs = 50): Promise<number | null> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const fd = tryLockFile(file);
    if (fd !== null || Date.now() >= deadline) return fd;
    await new Promise((r) => setTimeout(r, pollMs));
  }
}
