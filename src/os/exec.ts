/**
 * The only way this project runs a program: absolute path, argument array, no shell,
 * a timeout, capped output and a clean environment. The child leads a process group of its own,
 * and a timeout or an abort ends the whole group (SIGTERM, then SIGKILL): whatever it started in
 * turn (a shell's background job, a scanner's workers) goes with it.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { ErrorCodes, TuxsecError } from '../protocol/errors.ts';

export interface RunOptions {
  /** Milliseconds before the child's process group is ended. Default 30 s. */
  timeoutMs?: number;
  /** Milliseconds between SIGTERM and SIGKILL to the group when it is ended. Default 2 s. */
  killGraceMs?: number;
  /** Most bytes kept of stdout and of stderr each. Default 4 MiB. */
  maxOutputBytes?: number;
  /** Extra environment; the base is only PATH and LANG=C. */
  env?: Record<string, string>;
  input?: string | Buffer;
  uid?: number;
  gid?: number;
  cwd?: string;
  /** Ends the child's process group like a timeout; run() then rejects with the signal's reason. */
  signal?: AbortSignal;
}

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** True when output was cut at maxOutputBytes. */
  truncated: boolean;
  timedOut: boolean;
}

const CLEAN_PATH = '/usr/sbin:/usr/bin:/sbin:/bin';

export function run(file: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  if (!path.isAbsolute(file)) {
    return Promise.reject(new TuxsecError(ErrorCodes.internal, `cannot run "${file}": program path must be absolute`));
  }
  const { signal } = opts;
  if (signal?.aborted) return Promise.reject(abortReason(file, signal));
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const cap = opts.maxOutputBytes ?? 4 * 1024 * 1024;
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, {
      shell: false,
      env: { PATH: CLEAN_PATH, LANG: 'C', LC_ALL: 'C', ...opts.env },
      stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
      uid: opts.uid,
      gid: opts.gid,
      cwd: opts.cwd ?? '/',
      // Its own session and process group (setsid): the group can be ended as one.
      detached: true,
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let outLen = 0;
    let errLen = 0;
    let truncated = false;
    let timedOut = false;
    let ending = false;
    child.stdout!.on('data', (c: Buffer) => {
      if (outLen >= cap) return void (truncated = true);
      const take = c.subarray(0, cap - outLen);
      if (take.length < c.length) truncated = true;
      out.push(take);
      outLen += take.length;
    });
    child.stderr!.on('data', (c: Buffer) => {
      if (errLen >= cap) return void (truncated = true);
      const take = c.subarray(0, cap - errLen);
      if (take.length < c.length) truncated = true;
      err.push(take);
      errLen += take.length;
    });
    let killTimer: NodeJS.Timeout | undefined;
    const killGroup = (sig: NodeJS.Signals | 0) => {
      try {
        // The group id is the child's pid: it leads the group it was started in.
        if (child.pid !== undefined) process.kill(-child.pid, sig);
        return true;
      } catch {
        // ESRCH: the group is gone already.
        return false;
      }
    };
    /** Ends the group: SIGTERM lets a program clean up, SIGKILL follows for one that does not stop. */
    const end = () => {
      if (ending) return;
      ending = true;
      killGroup('SIGTERM');
      // Left running past 'close': a member that closed its pipes and ignores SIGTERM still goes.
      killTimer = setTimeout(() => killGroup('SIGKILL'), opts.killGraceMs ?? 2000).unref();
    };
    const timer = setTimeout(() => {
      timedOut = true;
      end();
    }, timeoutMs);
    signal?.addEventListener('abort', end, { once: true });
    const settled = () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', end);
    };
    child.on('error', (e) => {
      settled();
      reject(new TuxsecError(ErrorCodes.serviceUnavailable, `cannot run ${file}: ${e.message}`));
    });
    child.on('close', (code, sig) => {
      settled();
      // A group that is gone may have its id reused by an unrelated process: no SIGKILL for that one.
      if (killTimer && !killGroup(0)) clearTimeout(killTimer);
      if (signal?.aborted) return reject(abortReason(file, signal));
      resolve({
        code,
        signal: sig,
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
        truncated,
        timedOut,
      });
    });
    if (opts.input !== undefined) child.stdin!.end(opts.input);
  });
}

/** Why a run was aborted: the signal's own reason when it is one of ours. */
function abortReason(file: string, signal: AbortSignal): TuxsecError {
  const r: unknown = signal.reason;
  return r instanceof TuxsecError ? r : new TuxsecError(ErrorCodes.interrupted, `cannot run ${file}: stopped (${r instanceof Error ? r.message : String(r)})`);
}
