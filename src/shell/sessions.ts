/**
 * The cap on SSH-mode sessions at once (shell.yaml `max_sessions`): each is a Node process of
 * about 43 MB, and a stolen server key could otherwise open them until memory runs out. A
 * session is a file named by its pid in `sessions_dir`, created with O_EXCL and removed at exit;
 * one whose pid is gone (a killed session) is removed by the next one that counts.
 *
 * Each session creates its file first and counts after, so sessions arriving at the same moment
 * can refuse each other, but more than the cap never run together.
 */
import fs from 'node:fs';
import path from 'node:path';
import { RefusedCommand } from './words.ts';

/** Sessions at once by default: ssh-setup's MaxSessions uses it too. */
export const DEFAULT_MAX_SESSIONS = 8;
/** tmpfiles.d makes it (0700 tuxsec), and so does ssh-setup. */
export const DEFAULT_SESSIONS_DIR = '/run/tuxsec-shell';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The directory, made 0700 if its parent lets us; it must be ours and writable by us alone. */
function sessionsDir(dir: string): void {
  try {
    fs.mkdirSync(dir, { mode: 0o700 });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== 'EEXIST') throw new RefusedCommand(`cannot start a session: cannot create ${dir}: ${code} (install.sh and ssh-setup create it, 0700 for the SSH-mode user)`);
  }
  const st = fs.lstatSync(dir);
  if (!st.isDirectory() || st.uid !== process.getuid!() || st.mode & 0o022) {
    throw new RefusedCommand(`cannot start a session: ${dir} must be a directory of uid ${process.getuid!()} that group and others cannot write`);
  }
}

/** Takes a session slot or throws RefusedCommand; the slot is freed when this process exits. */
export function claimSession(dir: string, max: number): void {
  sessionsDir(dir);
  const own = path.join(dir, String(process.pid));
  try {
    fs.closeSync(fs.openSync(own, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW, 0o600));
  } catch (e) {
    // EEXIST: a file left by a dead process that had our pid; it is ours now.
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
  }
  const release = () => fs.rmSync(own, { force: true });
  process.once('exit', release);
  let live = 0;
  for (const name of fs.readdirSync(dir)) {
    if (!/^[1-9][0-9]{0,9}$/.test(name)) continue;
    if (Number(name) === process.pid || alive(Number(name))) live++;
    else fs.rmSync(path.join(dir, name), { force: true });
  }
  if (live > max) {
    release();
    throw new RefusedCommand(`cannot start a session: too many SSH-mode sessions (max_sessions is ${max}); try again when one has ended`);
  }
}
