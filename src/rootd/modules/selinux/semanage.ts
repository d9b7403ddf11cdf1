/**
 * The SELinux programs this module runs (semanage, setsebool, restorecon), through the one runner
 * (src/os/exec.ts), and the parsers of semanage's listings. Changes to the policy store run one at
 * a time: semanage takes the store's transaction lock and a second writer would fail, not wait.
 */
import type { RunOptions, RunResult } from '../../../os/exec.ts';
import { ErrorCodes, TuxsecError, type ErrorCode } from '../../../protocol/errors.ts';
import { FTYPES, type FtypeLetter } from './validate.ts';

/** src/os/exec.ts's run; unit tests pass one that records the argument arrays. */
export type Runner = (file: string, args: readonly string[], opts?: RunOptions) => Promise<RunResult>;

export interface Programs {
  semanage: string;
  setsebool: string;
  restorecon: string;
}

export const DEFAULT_PROGRAMS: Programs = { semanage: '/usr/sbin/semanage', setsebool: '/usr/sbin/setsebool', restorecon: '/usr/sbin/restorecon' };

/** Where each program comes from on Debian, for the "not installed" answer. */
const PACKAGE_OF: Record<keyof Programs, string> = { semanage: 'policycoreutils-python-utils', setsebool: 'selinux-utils', restorecon: 'policycoreutils' };

/** Listings are a few hundred KiB (every file context of the policy); past this something is wrong. */
const LIST_CAP = 16 * 1024 * 1024;
/** A store change rebuilds the policy: seconds on an idle host, more on a busy one. */
const CHANGE_TIMEOUT_MS = 300_000;
const LIST_TIMEOUT_MS = 120_000;

export interface ToolsDeps {
  run: Runner;
  programs: Programs;
  exists: (file: string) => boolean;
  /** The policy store semanage manages (`-S`), or null for semanage's default (SELINUXTYPE). */
  store: () => string | null;
}

/** The most telling line of a failed program's output: semanage's "ValueError: ..." or the last line. */
export function failureLine(r: RunResult): string {
  const lines = `${r.stderr}\n${r.stdout}`.split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('libsemanage.add_user'));
  const line = lines.find((l) => /^(ValueError|OSError|RuntimeError|KeyError):/.test(l)) ?? lines.at(-1) ?? `exit status ${r.code ?? r.signal}`;
  return line.replace(/^ValueError: /, '').slice(0, 300);
}

/** The error code of a program's refusal, from its message. */
function codeOf(line: string): ErrorCode {
  if (/is not defined|does not exist|not found|No such file or directory/i.test(line)) return ErrorCodes.notFound;
  if (/already defined|already exists|is defined in policy, cannot be deleted/i.test(line)) return ErrorCodes.conflict;
  if (/^Type .* is invalid/.test(line)) return ErrorCodes.invalidParams;
  if (/policy is not managed|store cannot be accessed|could not (open|connect|access)/i.test(line)) return ErrorCodes.serviceUnavailable;
  return ErrorCodes.actionFailed;
}

export class Tools {
  private queue: Promise<unknown> = Promise.resolve();

  constructor(private readonly d: ToolsDeps) {}

  programPath(name: keyof Programs): string {
    return this.d.programs[name];
  }

  /** The program's path, or service-unavailable naming the package that has it. */
  program(name: keyof Programs, what: string): string {
    const file = this.d.programs[name];
    if (!this.d.exists(file)) {
      throw new TuxsecError(ErrorCodes.serviceUnavailable, `cannot ${what}: ${name} is not installed (${file}; Debian package ${PACKAGE_OF[name]})`);
    }
    return file;
  }

  /** semanage's arguments for subcommand `sub`, with the configured store. */
  semanageArgs(sub: string, rest: readonly string[]): string[] {
    const store = this.d.store();
    return [sub, ...(store ? ['-S', store] : []), ...rest];
  }

  /** Runs a program; a failure becomes a TuxsecError saying `cannot <what>: <program's reason>`. */
  async exec(name: keyof Programs, args: readonly string[], what: string, opts: RunOptions = {}): Promise<RunResult> {
    const file = this.program(name, what);
    const cancelled = () => {
      const why = opts.signal?.reason;
      return why instanceof TuxsecError ? why : new TuxsecError(ErrorCodes.interrupted, `cannot ${what}: cancelled`);
    };
    let r: RunResult;
    try {
      r = await this.d.run(file, args, { timeoutMs: LIST_TIMEOUT_MS, maxOutputBytes: LIST_CAP, ...opts });
    } catch (e) {
      // The runner answers an abort as a failure to run; the caller asked for it, so say that.
      if (opts.signal?.aborted) throw cancelled();
      throw e;
    }
    if (r.timedOut) throw new TuxsecError(ErrorCodes.timeout, `cannot ${what}: ${name} did not finish in time`);
    if (opts.signal?.aborted) throw cancelled();
    if (r.code !== 0) {
      const line = failureLine(r);
      const code = codeOf(line);
      throw new TuxsecError(code, `cannot ${what}: ${line}`, code === ErrorCodes.invalidParams ? { parameter: 'type' } : undefined);
    }
    return r;
  }

  /** A semanage listing (`-l -n`), whole or refused: a cut listing would be read as the truth. */
  async list(sub: string, rest: readonly string[], what: string, signal?: AbortSignal): Promise<string> {
    const r = await this.exec('semanage', this.semanageArgs(sub, ['-l', '-n', ...rest]), what, { signal });
    if (r.truncated) throw new TuxsecError(ErrorCodes.actionFailed, `cannot ${what}: semanage printed more than ${LIST_CAP} bytes`);
    return r.stdout;
  }

  /** A change of the policy store, after every change before it. */
  change(sub: string, rest: readonly string[], what: string, signal?: AbortSignal): Promise<void> {
    const next = this.queue.then(async () => {
      await this.exec('semanage', this.semanageArgs(sub, rest), what, { signal, timeoutMs: CHANGE_TIMEOUT_MS, maxOutputBytes: 1024 * 1024 });
    });
    this.queue = next.catch(() => undefined);
    return next;
  }
}

export interface BooleanEntry {
  name: string;
  /** Current value: the kernel's when SELinux runs, else the store's. */
  state: boolean;
  /** Value in the policy store (what the next boot gets). */
  default: boolean;
  description: string;
}

export function parseBooleans(text: string): BooleanEntry[] {
  const out: BooleanEntry[] = [];
  for (const line of text.split('\n')) {
    const m = /^(\S+)\s+\(\s*(on|off)\s*,\s*(on|off)\s*\)\s*(.*)$/.exec(line);
    if (m) out.push({ name: m[1]!, state: m[2] === 'on', default: m[3] === 'on', description: m[4]!.trim() });
  }
  return out;
}

export interface FcontextEntry {
  spec: string;
  ftype: FtypeLetter;
  ftype_name: string;
  /** Full context, or null for `<<None>>` (files that must not be labeled). */
  context: string | null;
  type: string | null;
}

export interface FcontextEquivalence {
  spec: string;
  equal: string;
}

const FTYPE_BY_NAME = new Map<string, FtypeLetter>(Object.entries(FTYPES).map(([k, v]) => [v, k as FtypeLetter]));
const FCONTEXT_LINE = new RegExp(`^(\\S+)\\s+(${Object.values(FTYPES).join('|')})\\s+(\\S+)\\s*$`);

export function parseFcontexts(text: string): { entries: FcontextEntry[]; equivalences: FcontextEquivalence[] } {
  const entries: FcontextEntry[] = [];
  const equivalences: FcontextEquivalence[] = [];
  for (const line of text.split('\n')) {
    const eq = /^(\S+) = (\S+)\s*$/.exec(line);
    if (eq) {
      equivalences.push({ spec: eq[1]!, equal: eq[2]! });
      continue;
    }
    const m = FCONTEXT_LINE.exec(line);
    if (!m) continue;
    const context = m[3] === '<<None>>' ? null : m[3]!;
    entries.push({ spec: m[1]!, ftype: FTYPE_BY_NAME.get(m[2]!)!, ftype_name: m[2]!, context, type: context?.split(':')[2] ?? null });
  }
  return { entries, equivalences };
}

export interface PortEntry {
  type: string;
  protocol: string;
  /** Ports and ranges ("80", "8000-8010"). */
  ports: string[];
}

export function parsePorts(text: string): PortEntry[] {
  const out: PortEntry[] = [];
  for (const line of text.split('\n')) {
    const m = /^(\S+)\s+(tcp|udp|dccp|sctp)\s+(\S.*?)\s*$/.exec(line);
    if (m) out.push({ type: m[1]!, protocol: m[2]!, ports: m[3]!.split(',').map((p) => p.trim()).filter(Boolean) });
  }
  return out;
}

/** Keeps the first `limit` entries whose rendering contains `filter`; says how many matched. */
export function page<T>(items: T[], filter: string | undefined, limit: number | undefined, text: (t: T) => string): { items: T[]; total: number; truncated: boolean } {
  const matched = filter ? items.filter((i) => text(i).includes(filter)) : items;
  const n = limit ?? 1000;
  return { items: matched.slice(0, n), total: matched.length, truncated: matched.length > n };
}
