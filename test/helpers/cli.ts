/** Runs the real tuxsec-cli (dist/tuxsec-cli.cjs) against a rootd socket, as a user or root. */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import type { UserEntry } from '../../src/os/users.ts';
import { CLI_JS } from './rootd.ts';
import { asUser } from './users.ts';

export interface CliResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** The real tuxsec-cli, as `user` (root when null), without blocking this process while it runs. */
export function cli(socketPath: string, user: UserEntry | null, ...args: string[]): Promise<CliResult> {
  const full = [CLI_JS, '--socket', socketPath, ...args];
  const [file, argv] = user ? asUser(user, process.execPath, full) : [process.execPath, full];
  return new Promise((resolve, reject) => {
    const p = spawn(file, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    p.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const t = setTimeout(() => p.kill('SIGKILL'), 60_000);
    p.on('error', reject);
    p.on('close', (status) => {
      clearTimeout(t);
      resolve({ status, stdout, stderr });
    });
  });
}

/** Starts an operation through tuxsec-cli --no-wait; gives its id. */
export async function startNoWait(socketPath: string, user: UserEntry | null, module: string, action: string, ...params: string[]): Promise<string> {
  const r = await cli(socketPath, user, 'execute', module, action, '--no-wait', ...params.flatMap((p) => ['--param', p]));
  assert.equal(r.status, 0, r.stderr);
  const id = r.stdout.trim();
  assert.match(id, /^op-[0-9a-f]{32}$/);
  return id;
}
