/**
 * Finds processes by their command line in /proc, for tests that must show a process is gone
 * (a cancelled action's grandchild). Give the program an argument nothing else uses.
 */
import { readdirSync, readFileSync } from 'node:fs';

/** pids whose command line, arguments joined by spaces, equals `cmdline`. */
export function pidsWithCmdline(cmdline: string): number[] {
  const out: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^[0-9]+$/.test(name)) continue;
    let raw: string;
    try {
      raw = readFileSync(`/proc/${name}/cmdline`, 'utf8');
    } catch {
      continue; // gone meanwhile
    }
    if (raw.split('\0').filter(Boolean).join(' ') === cmdline) out.push(Number(name));
  }
  return out;
}

/** A sleep duration nobody else uses, as `sleep` accepts it ("100000.123456789"). */
export function uniqueSleepSeconds(): string {
  return `${100000 + Math.floor(Math.random() * 900000)}.${String(process.pid).padStart(6, '0')}${Math.floor(Math.random() * 1000)}`;
}

/** Resolves when `check` holds, polling; rejects with `what` after `timeoutMs`. */
export async function waitFor(check: () => boolean | Promise<boolean>, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
