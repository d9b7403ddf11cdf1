/**
 * The listening socket: a private directory (0770 root:group, never through a symlink),
 * the socket 0660 root:group, a stale socket replaced, or one handed over by systemd.
 */
import { chmodSync, chownSync, lstatSync, mkdirSync, unlinkSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';

export class SocketSetupError extends Error {}

function lstatOrNull(p: string) {
  try {
    return lstatSync(p);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
}

/** True when something answers on the socket (another daemon is running). */
function answering(p: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createConnection(p);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/** The fd systemd handed over (LISTEN_FDS/LISTEN_PID), or null. */
export function systemdListenFd(env = process.env): number | null {
  if (env.LISTEN_PID !== String(process.pid)) return null;
  const n = Number(env.LISTEN_FDS);
  if (!Number.isInteger(n) || n < 1) return null;
  return 3; // SD_LISTEN_FDS_START
}

export interface SocketOptions {
  socketPath: string;
  /** Group owning the directory and socket; null leaves ownership as created (dev mode). */
  gid: number | null;
}

/** Prepares the directory and path; returns a function that removes the socket if still ours. */
export async function prepareSocketPath({ socketPath, gid }: SocketOptions): Promise<void> {
  const dir = path.dirname(socketPath);
  const st = lstatOrNull(dir);
  if (st === null) {
    mkdirSync(path.dirname(dir), { recursive: true, mode: 0o755 });
    mkdirSync(dir, { mode: 0o770 });
  } else if (st.isSymbolicLink()) {
    throw new SocketSetupError(`cannot use socket directory ${dir}: it is a symbolic link`);
  } else if (!st.isDirectory()) {
    throw new SocketSetupError(`cannot use socket directory ${dir}: not a directory`);
  }
  if (gid !== null) {
    chownSync(dir, 0, gid);
    chmodSync(dir, 0o770);
  }
  const sst = lstatOrNull(socketPath);
  if (sst) {
    if (!sst.isSocket()) throw new SocketSetupError(`cannot listen on ${socketPath}: a file that is not a socket is in the way`);
    if (await answering(socketPath)) throw new SocketSetupError(`cannot listen on ${socketPath}: another tuxsec-rootd is answering there`);
    unlinkSync(socketPath); // stale socket of a daemon that died
  }
}

/** Listens on the path with 0660 root:group, never briefly wider. */
export function listenOnPath(server: net.Server, { socketPath, gid }: SocketOptions): Promise<void> {
  return new Promise((resolve, reject) => {
    const old = process.umask(0o117);
    server.once('error', reject);
    server.listen(socketPath, () => {
      process.umask(old);
      server.off('error', reject);
      try {
        if (gid !== null) chownSync(socketPath, 0, gid);
        chmodSync(socketPath, 0o660);
        resolve();
      } catch (e) {
        reject(e);
      }
    });
  });
}

export function listenOnFd(server: net.Server, fd: number): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ fd }, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

/** Removes the socket file on a clean stop, if it is still a socket at that path. */
export function removeSocket(socketPath: string): void {
  try {
    if (lstatSync(socketPath).isSocket()) unlinkSync(socketPath);
  } catch {
    // already gone
  }
}
