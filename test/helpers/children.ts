/** Finding this test process's children in /proc, to check that a cancelled action left none. */
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';

/** The pid of a child of this process whose command line contains `marker`, if one runs. */
export function childWith(marker: string): number | undefined {
  for (const task of readdirSync(`/proc/${process.pid}/task`)) {
    let kids: string;
    try {
      kids = readFileSync(`/proc/${process.pid}/task/${task}/children`, 'utf8');
    } catch {
      continue;
    }
    for (const pid of kids.split(/\s+/).filter(Boolean)) {
      try {
        if (readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(marker)) return Number(pid);
      } catch {
        // Gone already.
      }
    }
  }
  return undefined;
}

/** Polls `fn` until it gives a value (not undefined or false); fails after `timeoutMs`. */
export async function waitFor<T>(fn: () => T | undefined, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = fn();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) assert.fail('condition not met in time');
    await new Promise((r) => setTimeout(r, 50));
  }
}
