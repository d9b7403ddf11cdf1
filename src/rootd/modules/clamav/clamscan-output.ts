/**
 * clamscan's output, read as little as possible: run with `--infected`, its stdout holds only
 * `<path>: <signature> FOUND` lines and the summary, so a clean file's name (which could hold a
 * newline or ": ") is never printed. An infected file's name still could, and so name another
 * file: output is trusted only when it is plain (one line per infected file, each with a single
 * ": " and an absolute path that exists); otherwise every record is only a candidate, confirmed by
 * scanning that one path again (see index.ts).
 */
import { lstatSync } from 'node:fs';

export interface Infected {
  path: string;
  signature: string;
}

export interface ClamscanOutput {
  /** Records read; when `ambiguous`, candidates still to be confirmed, never absolute truth. */
  infected: Infected[];
  /** True when a name could have been split differently (a newline or ": " in a name, a count that differs). */
  ambiguous: boolean;
  /** The summary's figures (null when clamscan printed none, e.g. it stopped early). */
  files_scanned: number | null;
  directories_scanned: number | null;
  infected_count: number | null;
  engine_version: string | null;
  known_signatures: number | null;
  /** FOUND lines whose file could not be told apart (vanished since, or a crafted name). */
  unverified: string[];
}

const SUMMARY = '----------- SCAN SUMMARY -----------';
const FOUND = ' FOUND';

function exists(p: string): boolean {
  try {
    lstatSync(p);
    return true;
  } catch {
    return false;
  }
}

function split(record: string): Infected | null {
  const body = record.slice(0, -FOUND.length);
  const i = body.lastIndexOf(': ');
  if (i <= 0) return null;
  return { path: body.slice(0, i), signature: body.slice(i + 2) };
}

/** Parses clamscan's stdout (run with --infected); `fileExists` is replaceable for tests. */
export function parseClamscan(stdout: string, fileExists: (p: string) => boolean = exists): ClamscanOutput {
  // The last summary is clamscan's own: a file name cannot come after it.
  const at = stdout.lastIndexOf(`\n${SUMMARY}\n`);
  const start = stdout.startsWith(`${SUMMARY}\n`) ? 0 : at;
  const body = start < 0 ? stdout : stdout.slice(0, start);
  const summary = start < 0 ? '' : stdout.slice(start);
  const infected: Infected[] = [];
  const unverified: string[] = [];
  let pending: string[] = [];
  for (const line of body.split('\n')) {
    if (pending.length === 0 && line === '') continue;
    pending.push(line);
    if (!line.endsWith(FOUND)) continue;
    const rec = split(pending.join('\n'));
    if (rec && rec.path.startsWith('/') && fileExists(rec.path)) {
      infected.push(rec);
      pending = [];
    }
  }
  // What never matched an existing file: reported as unidentified, never as a path.
  for (const line of pending) if (line !== '') unverified.push(line.slice(0, 500));
  const fig = (key: string): string | null => {
    const m = new RegExp(`^${key}: (.*)$`, 'm').exec(summary);
    return m ? m[1]!.trim() : null;
  };
  const int = (key: string): number | null => {
    const v = fig(key);
    return v !== null && /^\d+$/.test(v) ? Number(v) : null;
  };
  const lines = body.split('\n').filter((l) => l !== '');
  const count = int('Infected files');
  const plain = count === lines.length && unverified.length === 0 && infected.every((r) => !r.path.includes('\n') && r.path.split(': ').length === 1 && !r.signature.includes(': '));
  return {
    infected,
    ambiguous: !plain,
    files_scanned: int('Scanned files'),
    directories_scanned: int('Scanned directories'),
    infected_count: count,
    engine_version: fig('Engine version'),
    known_signatures: int('Known viruses'),
    unverified,
  };
}
