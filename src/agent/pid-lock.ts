/**
 * Who owns a state_dir's journal: state_dir/agent.pid names the running tuxsec-agent, and the
 * flock on state_dir/ssh-jobs.lock is held by that agent for its whole run or by tuxsec-shell for
 * one SSH-mode job; so neither starts while the other has the journal open.
 */
import fs from 'node:fs';
import path from 'node:path';
import { tryLockFile } from '../os/file-lock.ts';

export const PID_FILE = 'agent.pid';
export const JOURNAL_LOCK = 'ssh-jobs.lock';

/** Takes the journal lock for this process's life; false while an SSH-mode job holds it. */
export function holdJournalLock(stateDir: string): boolean {
  // The fd stays open until the process exits, and the lock with it.
  return tryLockFile(path.join(stateDir, JOURNAL_LOCK)) !== null;
}

/** The pid of a live tuxsec-agent named in `stateDir/agent.pid` (not this process), or null. */
export function agentHolding(stateDir: string): number | null {
  let old: number;
  try {
    old = Number(fs.readFileSync(path.join(stateDir, PID_FILE), 'utf8').trim());
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
  if (!Number.isInteger(old) || old <= 0 || old === process.pid) return null;
  try {
    process.kill(old, 0);
    // A pid reused by another program after the agent stopped does not hold the state_dir.
    return fs.readFileSync(`/proc/${old}/cmdline`, 'utf8').includes('tuxsec-agent') ? old : null;
  } catch {
    return null;
  }
}
