/**
 * The small part of SSH mode's command line that both tuxsec-server and tuxsec-shell's parser
 * need, kept apart from the job schemas so the shell's probes start without loading them
 * (./ssh-job.ts has the job form itself).
 */
import { ErrorCodes, TuxsecError } from './errors.ts';

/** Longest command line tuxsec-shell accepts, in bytes: a job's parameters fit easily. */
export const MAX_COMMAND_BYTES = 64 * 1024;

/** tuxsec-shell's exit statuses other than 0 (a result on stdout). */
export const SHELL_EXIT = {
  /** The command was refused (not allowed, malformed, a bad envelope): sending it again fails the same way. */
  refused: 126,
  /** The job did not start: another SSH-mode job holds the agent's journal. Send it again later. */
  tryLater: 75,
} as const;

/** What the shell's parser refuses inside quotes: control characters other than a tab. */
// eslint-disable-next-line no-control-regex
export const CONTROL_CHARACTER = /[\x00-\x08\x0a-\x1f\x7f]/;

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/**
 * One word for tuxsec-shell's command line: single-quoted, each `'` written as `'"'"'` (the
 * shell joins adjacent quoted parts as sh does). Throws for what no quoting can carry through
 * the shell: control characters (NUL, newline, ...) and unpaired surrogates (not UTF-8).
 */
export function quoteWord(s: string): string {
  const ctl = CONTROL_CHARACTER.exec(s);
  if (ctl) {
    const code = ctl[0].codePointAt(0)!.toString(16).padStart(2, '0');
    throw new TuxsecError(ErrorCodes.invalidRequest, `cannot quote ${shown(s)} for tuxsec-shell: it holds control character 0x${code}`);
  }
  if (LONE_SURROGATE.test(s)) throw new TuxsecError(ErrorCodes.invalidRequest, `cannot quote ${shown(s)} for tuxsec-shell: it holds an unpaired surrogate (not UTF-8)`);
  return `'${s.replaceAll("'", `'"'"'`)}'`;
}

function shown(s: string): string {
  const j = JSON.stringify(s);
  return j.length > 80 ? `${j.slice(0, 77)}...` : j;
}

/** True when tuxsec-cli's words (after `tuxsec-cli`) ask for the job form. */
export function isJobForm(args: readonly string[]): boolean {
  return args[0] === 'execute' && args.some((a) => a.startsWith('--job-id'));
}
