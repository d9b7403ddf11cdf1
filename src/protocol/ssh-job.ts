/**
 * SSH mode's job form, shared by tuxsec-server (which writes it) and tuxsec-shell (which reads
 * it): one job envelope as the command line
 *
 *     tuxsec-cli execute <module> <action> --json-params <params> --job-id <id>
 *
 * every word quoted by `quoteWord`, which tuxsec-shell's parser (src/shell/words.ts) undoes
 * exactly. tuxsec-shell answers with the job's result envelope as one JSON line on stdout and
 * exit status 0, whatever the job's outcome; any other exit status means no result (SHELL_EXIT).
 * The words are those of INTEROP section 4's `execute` plus `--job-id`, so an agent that does not
 * know the form (the Python tuxsec-cli) refuses the unknown option rather than running the job
 * without the journal.
 */
import { ErrorCodes, TuxsecError } from './errors.ts';
import { parseJob, quote, type JobEnvelope } from './jobs.ts';
import { isPlainObject, nestingDepth } from './json.ts';
import { MAX_COMMAND_BYTES, quoteWord } from './ssh-command.ts';

/** Deepest JSON nesting accepted in `--json-params` (rootd accepts no deeper parameters). */
const MAX_PARAMS_DEPTH = 32;


/**
 * The command line for one job; throws a TuxsecError when it cannot be sent (a control character
 * in the module or action name, longer than MAX_COMMAND_BYTES).
 */
export function jobCommandLine(job: JobEnvelope): string {
  // JSON.stringify escapes every control character in strings but DEL; the shell refuses it raw.
  const params = JSON.stringify(job.params).replaceAll('\x7f', '\\u007f');
  const line = ['tuxsec-cli', 'execute', job.module, job.action, '--json-params', params, '--job-id', job.id].map(quoteWord).join(' ');
  const bytes = Buffer.byteLength(line);
  if (bytes > MAX_COMMAND_BYTES) {
    throw new TuxsecError(ErrorCodes.messageTooLarge, `cannot send job ${quote(job.id)} over SSH: its command line is ${bytes} bytes, more than ${MAX_COMMAND_BYTES}`);
  }
  return line;
}

/**
 * The envelope from the job form's words (after `tuxsec-cli`), exactly as `jobCommandLine` writes
 * them; throws a TuxsecError (`invalid-request`) naming what was wrong.
 */
export function parseJobWords(args: readonly string[]): JobEnvelope {
  const usage = 'expected tuxsec-cli execute <module> <action> --json-params <object> --job-id <id>';
  if (args.length !== 7 || args[0] !== 'execute' || args[3] !== '--json-params' || args[5] !== '--job-id') {
    throw new TuxsecError(ErrorCodes.invalidRequest, `cannot run job: ${usage}`);
  }
  const [, module, action, , text, , id] = args as [string, string, string, string, string, string, string];
  if (nestingDepth(Buffer.from(text), MAX_PARAMS_DEPTH) > MAX_PARAMS_DEPTH) {
    throw new TuxsecError(ErrorCodes.invalidRequest, `cannot run job ${quote(id)}: --json-params is nested deeper than ${MAX_PARAMS_DEPTH} levels`);
  }
  let params: unknown;
  try {
    params = JSON.parse(text);
  } catch {
    throw new TuxsecError(ErrorCodes.invalidRequest, `cannot run job ${quote(id)}: --json-params is not JSON: ${quote(text)}`);
  }
  if (!isPlainObject(params)) throw new TuxsecError(ErrorCodes.invalidRequest, `cannot run job ${quote(id)}: --json-params must be a JSON object, got ${quote(params)}`);
  const checked = parseJob({ id, module, action, params });
  if (!('job' in checked)) throw new TuxsecError(ErrorCodes.invalidRequest, checked.error);
  return checked.job;
}
