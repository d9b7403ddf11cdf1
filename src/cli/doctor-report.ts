/**
 * The checks of `tuxsec-cli doctor` and how they are printed: one line each for people, or
 * `{checks: [{name, ok, detail, fix}]}` with --json. `ok` is null for a check that could not
 * run (a file this user may not read): skipped is neither a pass nor a failure.
 */
import { userInfo } from 'node:os';

export interface Check {
  name: string;
  /** true: passed; false: failed (then `fix` says what to do); null: skipped. */
  ok: boolean | null;
  detail: string;
  fix: string | null;
}

export const pass = (name: string, detail: string): Check => ({ name, ok: true, detail, fix: null });
export const fail = (name: string, detail: string, fix: string): Check => ({ name, ok: false, detail, fix });
export const skip = (name: string, why: string): Check => ({ name, ok: null, detail: `skipped: ${why}`, fix: null });

/** Who runs the doctor, for messages and fixes. */
export function whoAmI(): { uid: number; name: string | null; text: string } {
  const uid = process.getuid?.() ?? 0;
  let name: string | null = null;
  try {
    name = userInfo().username;
  } catch {
    // a uid without a passwd entry (a container's arbitrary uid)
  }
  return { uid, name, text: name === null ? `uid ${uid}` : `uid ${uid} (${name})` };
}

/** The skip of a file this user may not read. */
export const unreadable = (name: string, file: string): Check => skip(name, `${file} cannot be read as ${whoAmI().text}; run tuxsec-cli doctor as root to check it`);

/** One line per check, the fix under each failure, and a count. */
export function renderText(checks: Check[]): string {
  const width = Math.max(...checks.map((c) => c.name.length));
  const lines = checks.map((c) => {
    const tag = c.ok === true ? 'ok  ' : c.ok === false ? 'FAIL' : 'skip';
    return `${tag}  ${c.name.padEnd(width)}  ${c.detail}${c.fix ? `\n      fix: ${c.fix}` : ''}`;
  });
  const n = (v: boolean | null) => checks.filter((c) => c.ok === v).length;
  return `${lines.join('\n')}\n\n${checks.length} checks: ${n(true)} passed, ${n(false)} failed, ${n(null)} skipped\n`;
}
