/**
 * The listening socket and the directory that holds it.
 *
 * Whoever can write the socket's directory can replace the socket (and answer root's clients)
 * or swap a symlink in for it between bind() and a chown/chmod of the path, making root chown
 * the link's target. So the directory may be written by root alone (0750 root:group: clients
 * need only search permission to connect), and so may every directory above it; the socket is
 * bound in a fresh 0700 directory inside it, given its owner and mode there, and renamed into
 * place: no path root acts on can be swapped by anyone else. A directory that is not rootd's
 * own (it did not create it, or it holds more than the socket) is never chmodded or chowned.
 */
import { chmodSync, lchownSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, renameSync, rmdirSync, unlinkSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { assertTrustedPath, UnsafePathError } from '../os/secure-files.ts';
import { boundSocketPath } from '../os/sockname.ts';
import { SOCKET_DIR_MODE, SOCKET_MODE } from '../protocol/messages.ts';

export class SocketSetupError extends Error {}

const S_ISVTX = 0o1000;
/** sun_path holds 108 bytes with the terminating NUL. */
const MAX_SOCKET_PATH = 107;

function lstatOrNull(p: string) {
  try {
    return lstatSync(p);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
}

function myUid(): number {
  return process.getuid?.() ?? 0;
}

const octal = (mode: number) => `0${(mode & 0o7777).toString(8)}`;

/** True when something accepts connections on the socket (another daemon is running). */
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

/**
 * The first fd systemd handed over (always 3, SD_LISTEN_FDS_START; rootd's unit passes one), or
 * null when LISTEN_PID/LISTEN_FDS hand none to this process.
 */
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
  /** Told what was repaired (a directory of rootd's own that others could write). */
  warn?: (msg: string) => void;
}

/** mkdtemp's names for the private directories rootd binds in (listenOnPath); a crash can leave one. */
const PRIVATE_BIND_DIR = /^\.[A-Za-z0-9]{6}$/;

/**
 * The first entry of `dir` that rootd did not put there, or null when it holds nothing but the
 * socket and rootd's own private bind directories (owned by root).
 */
function foreignEntry(dir: string, socketName: string): string | null {
  for (const name of readdirSync(dir)) {
    if (name === socketName) continue;
    if (PRIVATE_BIND_DIR.test(name)) {
      const st = lstatOrNull(path.join(dir, name));
      if (st?.isDirectory() && st.uid === myUid()) continue;
    }
    return name;
  }
  return null;
}

/**
 * Makes sure only root (or, in dev mode, the user running rootd) can change the socket's
 * directory and every directory above it, changing a directory only when it is rootd's own.
 * rootd's own: one it created, or a root-owned, non-sticky directory that holds nothing but the
 * socket (the seed's 0770 /var/run/tuxsec); there group and others lose write permission, with
 * a warning. Any other directory is never chmodded or chowned: it is used as it is when only
 * root can write it, and refused, naming it, when others can (a shared sticky directory like
 * /tmp, one holding other files, one owned by another user).
 */
export function secureSocketDir(socketPath: string, { warn }: Pick<SocketOptions, 'warn'>): void {
  const dir = path.dirname(socketPath);
  const refuse = (why: string): never => {
    throw new SocketSetupError(`cannot use socket directory ${dir}: ${why}`);
  };
  checkParents(dir);
  const st = lstatOrNull(dir);
  if (st === null) return refuse('it does not exist');
  if (st.isSymbolicLink()) refuse('it is a symbolic link');
  if (!st.isDirectory()) refuse('not a directory');
  if (st.uid !== 0 && st.uid !== myUid()) refuse(`owned by uid ${st.uid}, not root (it must be 0750 root and the socket group)`);
  if (st.mode & 0o022) {
    if (st.mode & S_ISVTX) refuse(`a shared directory (mode ${octal(st.mode)}) that others can write; use a directory of its own`);
    const other = foreignEntry(dir, path.basename(socketPath));
    if (other !== null) {
      refuse(
        `group or others can write it (mode ${octal(st.mode)}) and it holds ${JSON.stringify(other.slice(0, 64))} besides the socket, so it is not rootd's own to change; make it 0750 or use a directory of its own`,
      );
    }
    const mode = st.mode & 0o7755;
    chmodSync(dir, mode);
    warn?.(`socket directory ${dir} was writable by group or others (mode ${octal(st.mode)}): now ${octal(mode)}`);
  }
}

/**
 * Whoever can rename a directory above the socket's can swap in a directory of their own. A
 * root-owned link on the way (the default /var/run/tuxsec passes /var/run -> /run) is followed.
 */
function checkParents(dir: string): void {
  try {
    assertTrustedPath(path.dirname(dir));
  } catch (e) {
    if (e instanceof UnsafePathError) throw new SocketSetupError(`cannot use socket directory ${dir}: ${e.message}, so others could replace the socket directory`);
    throw e;
  }
}

/**
 * Creates the socket directory if absent (0750 root:group), checks the directories above and,
 * when it is rootd's own, repairs it (secureSocketDir), and removes a stale socket a dead
 * daemon left behind.
 */
export async function prepareSocketPath({ socketPath, gid, warn }: SocketOptions): Promise<void> {
  const dir = path.dirname(socketPath);
  if (lstatOrNull(dir) === null) {
    mkdirSync(path.dirname(dir), { recursive: true, mode: 0o755 });
    // Checked before the new directory is made: nobody else can swap it before the chmod.
    checkParents(dir);
    mkdirSync(dir, { mode: 0o700 });
    if (gid !== null) lchownSync(dir, 0, gid);
    chmodSync(dir, SOCKET_DIR_MODE);
  }
  secureSocketDir(socketPath, { warn });
  const sst = lstatOrNull(socketPath);
  if (sst) {
    if (!sst.isSocket()) throw new SocketSetupError(`cannot listen on ${socketPath}: a file that is not a socket is in the way`);
    if (sst.uid !== 0 && sst.uid !== myUid()) {
      // Bound by another user while the directory was still open to them: an impostor that
      // would answer rootd's clients. The directory is root's now; they cannot bind again.
      unlinkSync(socketPath);
      warn?.(`removed ${socketPath}: a socket of uid ${sst.uid}, not of root`);
      return;
    }
    if (await answering(socketPath)) throw new SocketSetupError(`cannot listen on ${socketPath}: another tuxsec-rootd is answering there`);
    unlinkSync(socketPath); // stale socket of a daemon that died
  }
}

/**
 * Listens on the path, the socket 0660 root:group from its first moment there: it is bound in
 * a new 0700 directory beside the path, given owner and mode there, and renamed into place.
 */
export function listenOnPath(server: net.Server, { socketPath, gid }: SocketOptions): Promise<void> {
  const dir = path.dirname(socketPath);
  const priv = mkdtempSync(path.join(dir, '.'));
  const tmp = path.join(priv, 's');
  const cleanup = () => {
    try {
      unlinkSync(tmp);
    } catch {
      // renamed into place, or never bound
    }
    rmdirSync(priv);
  };
  if (Buffer.byteLength(tmp) > MAX_SOCKET_PATH) {
    cleanup();
    return Promise.reject(new SocketSetupError(`cannot listen on ${socketPath}: the directory name is too long to bind beside it (at most ${MAX_SOCKET_PATH - 10} bytes)`));
  }
  return new Promise((resolve, reject) => {
    const fail = (e: unknown) => {
      cleanup();
      reject(e);
    };
    const old = process.umask(0o177);
    const onError = (e: Error) => {
      process.umask(old);
      fail(e);
    };
    server.once('error', onError);
    // A deep accept queue: a peer connecting in a loop should not fill it before rootd drains it.
    server.listen({ path: tmp, backlog: 4096 }, () => {
      process.umask(old);
      server.off('error', onError);
      try {
        // Inside priv only root can reach the entry: lchown and chmod act on our socket.
        if (gid !== null) lchownSync(tmp, 0, gid);
        chmodSync(tmp, SOCKET_MODE);
        renameSync(tmp, socketPath);
        rmdirSync(priv);
        resolve();
      } catch (e) {
        server.close();
        fail(e);
      }
    });
  });
}

/**
 * Why the socket systemd handed over can no longer be reached at its path, or null when it can
 * (or has no path to check). A socket there that root did not create replaced ours: while the
 * directory was still group-writable (before an upgrade) a member could unlink systemd's socket
 * and bind their own, which would answer rootd's clients.
 */
export function handedSocketGone(fd: number): { path: string; why: string } | null {
  const where = boundSocketPath(fd);
  if (!where?.startsWith('/')) return null;
  const st = lstatOrNull(where);
  if (st?.isSocket() && (st.uid === 0 || st.uid === myUid())) return null;
  const why = st === null ? 'nothing is there any more' : st.isSocket() ? `a socket of uid ${st.uid}, not of root, is there` : 'a file that is not a socket is there';
  return { path: where, why };
}

/** Listens on the socket systemd handed over, after checking the directory it sits in. */
export function listenOnFd(server: net.Server, fd: number, opts: Pick<SocketOptions, 'warn'> = {}): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ fd }, () => {
      server.off('error', reject);
      try {
        const where = boundSocketPath(fd);
        if (where?.startsWith('/')) {
          secureSocketDir(where, opts);
          // Again now that only root can change the directory: until the chmod a member could
          // still have replaced systemd's socket (after main's check) with one that answers clients.
          const gone = handedSocketGone(fd);
          if (gone) throw new SocketSetupError(`cannot serve the socket systemd handed over: it is no longer reachable at ${gone.path} (${gone.why}); restart tuxsec-rootd to bind one there`);
        }
        resolve();
      } catch (e) {
        server.close();
        reject(e);
      }
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
