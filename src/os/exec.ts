/**
 * The only way this project runs a program: absolute path, argument array, no shell,
 * a timeout, capped output and a clean environment.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { ErrorCodes, TuxsecError } from '../protocol/errors.ts';

export interface RunOptions {
  /** Milliseconds before the child is killed (SIGKILL). Default 30 s. */
  timeoutMs?: number;
  /** Most bytes kept of stdout and of stderr each. Default 4 MiB. */
  maxOutputBytes?: number;
  /** Extra environment; the base is only PATH and LANG=C. */
  env?: Record<string, string>;
  input?: string | Buffer;
  uid?: number;
  gid?: number;
  cwd?: string;
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
      signal: opts.signal,
      killSignal: 'SIGKILL',
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let outLen = 0;
    let errLen = 0;
    let truncated = false;
    let timedOut = false;
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
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(new TuxsecError(ErrorCodes.serviceUnavailable, `cannot run ${file}: ${e.message}`));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({
        code,
        signal,
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
        truncated,
        timedOut,
      });
    });
    if (opts.input !== undefined) child.stdin!.end(opts.input);
  });
}
