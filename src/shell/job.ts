/**
 * The job form of SSH mode on the agent (src/protocol/ssh-job.ts): the envelope goes through THE
 * executor and the journal in agent.yaml's state_dir, the ones pull and push mode use, so a job id
 * runs once whichever way it came; the result is kept in the journal as push mode keeps it, so a
 * repeated id, sent over SSH or pushed, gets the stored result back (or job-id-reused when it asked
 * for something else).
 *
 * Journal and results are files a running tuxsec-agent keeps in memory: it holds the flock on
 * state_dir/ssh-jobs.lock for its whole run, and while it does (agent.pid names it) the job is
 * refused. SSH-mode jobs on one agent run one at a time under the same lock; a job that cannot
 * take it in time is not started (SHELL_EXIT.tryLater). Under the lock no other job can be running, so a job the journal shows
 * started and unfinished was cut short (the shell killed): it is reported interrupted, as the
 * agent does at start, and never run again.
 */
import fs from 'node:fs';
import path from 'node:path';
import { agentHolding, JOURNAL_LOCK } from '../agent/pid-lock.ts';
import { DEFAULT_CONFIG_PATH, DEFAULTS, parseConfigText, type AgentConfig } from '../agent/config.ts';
import { accessClasses, answerForRepeat, Executor, idReused, type RootdExecutor } from '../agent/executor.ts';
import { Journal } from '../agent/journal.ts';
import { assertReadAction } from '../client/read-only.ts';
import { RootdClient } from '../client/rootd-client.ts';
import { readConfigText } from '../common/config-file.ts';
import { ensureDir } from '../os/durable-files.ts';
import { lockFile } from '../os/file-lock.ts';
import { isTuxsecError } from '../protocol/errors.ts';
import { quote, type JobEnvelope, type ResultEnvelope } from '../protocol/jobs.ts';
import { SHELL_EXIT } from '../protocol/ssh-command.ts';
import { parseJobWords } from '../protocol/ssh-job.ts';
import { RefusedCommand } from './words.ts';

/** How long a job waits for the one running before it (then SHELL_EXIT.tryLater). */
const LOCK_WAIT_MS = 30_000;

export interface JobFormOptions {
  socket: string;
  readOnly: boolean;
  /** agent.yaml (default /etc/tuxsec/agent.yaml). */
  agentConfig?: string;
  lockWaitMs?: number;
}

/** A failure of the job form before the job could start: the message and the exit status. */
class NotStarted extends Error {
  constructor(
    message: string,
    readonly exit: number,
  ) {
    super(message);
  }
}

function agentConfig(file: string): AgentConfig {
  const text = readConfigText(file, { optional: true });
  return text === null ? DEFAULTS : parseConfigText(text, file);
}

/** A tuxsec-agent in pull or push mode holds the journal: refused, it will not let go by itself. */
function refuseIfAgentRuns(job: JobEnvelope, stateDir: string): void {
  const holder = agentHolding(stateDir);
  if (holder !== null) {
    throw new NotStarted(
      `cannot run job ${quote(job.id)}: tuxsec-agent (pid ${holder}) uses state_dir ${stateDir} in pull or push mode; stop it for SSH mode (one mode at a time, so a job id runs once)`,
      SHELL_EXIT.refused,
    );
  }
}

async function runLocked(job: JobEnvelope, cfg: AgentConfig, o: JobFormOptions): Promise<ResultEnvelope> {
  // Push mode's journal: answered results are kept in its finish records, within the outbox bounds.
  const journal = Journal.open(cfg.state_dir, { keepResults: { maxEntries: cfg.outbox_max_entries, maxBytes: cfg.outbox_max_bytes } });
  const rootd = new RootdClient({ socketPath: o.socket });
  try {
    // Read-only: the refusal is the job's result, journaled like any other.
    const guarded: RootdExecutor = o.readOnly
      ? {
          execute: async (module, action, params, opts) => {
            await assertReadAction(rootd, module, action);
            return rootd.execute(module, action, params, opts);
          },
        }
      : rootd;
    const executor = new Executor({ rootd: guarded, journal, sink: 'journal', accessOf: accessClasses(rootd), policy: cfg.policy });
    // Under the lock nothing else runs: a started, unfinished job was cut short (interrupted).
    await executor.recover(() => false);
    const earlier = answerForRepeat(journal, job.id, job);
    if (earlier) return earlier;
    const out = await executor.run(job);
    return out.ran ? out.result : (answerForRepeat(journal, job.id, job) ?? idReused(job.id));
  } finally {
    rootd.close();
    journal.close();
  }
}

/**
 * Runs the job form's words (after `tuxsec-cli`): the result envelope as one JSON line on stdout
 * and 0, or a message on stderr and a SHELL_EXIT status when the job did not start.
 */
export async function runJobForm(args: string[], o: JobFormOptions): Promise<number> {
  let job: JobEnvelope;
  try {
    job = parseJobWords(args);
  } catch (e) {
    throw new RefusedCommand(isTuxsecError(e) ? e.message : String(e));
  }
  // The client hanging up does not stop a job half way: it finishes and its result is kept.
  process.on('SIGHUP', () => {});
  process.stdout.on('error', () => {});
  try {
    let cfg: AgentConfig;
    try {
      cfg = agentConfig(o.agentConfig ?? DEFAULT_CONFIG_PATH);
      ensureDir(cfg.state_dir, 0o700);
    } catch (e) {
      throw new NotStarted(`cannot run job ${quote(job.id)}: ${(e as Error).message}`, SHELL_EXIT.refused);
    }
    // A running agent holds the lock and never lets go: said at once, not after the wait.
    refuseIfAgentRuns(job, cfg.state_dir);
    const fd = await lockFile(path.join(cfg.state_dir, JOURNAL_LOCK), o.lockWaitMs ?? LOCK_WAIT_MS);
    if (fd === null) {
      refuseIfAgentRuns(job, cfg.state_dir);
      throw new NotStarted(`cannot run job ${quote(job.id)}: another SSH-mode job is still running on this agent; send it again later`, SHELL_EXIT.tryLater);
    }
    let result: ResultEnvelope;
    try {
      result = await runLocked(job, cfg, o);
    } finally {
      fs.closeSync(fd);
    }
    process.stdout.write(JSON.stringify(result) + '\n');
    return 0;
  } catch (e) {
    if (e instanceof NotStarted) {
      process.stderr.write(`tuxsec-shell: ${e.message}\n`);
      return e.exit;
    }
    // The journal or the results cannot be written (disk full): sending the job again is safe,
    // since the journal keeps it from running twice.
    process.stderr.write(`tuxsec-shell: cannot run job ${quote(job.id)}: ${(e as Error).message}\n`);
    return SHELL_EXIT.tryLater;
  }
}
