/** state_dir/agent.pid: which running tuxsec-agent uses a state_dir (its journal must have one owner). */
import fs from 'node:fs';
import path from 'node:path';

export const PID_FILE = 'agent.pid';

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
