/**
 * Starts the real tuxsec-rootd (dist/tuxsec-rootd.js, built by `npm test`) as a process
 * on a temporary socket, with a config the test chooses, and stops it by its pid.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, chmodSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { stringify } from 'yaml';
import { RootdClient } from '../../src/client/rootd-client.ts';
import { ensureTestUsers } from './users.ts';

export const ROOT = path.resolve(import.meta.dirname, '../..');
export const ROOTD_JS = path.join(ROOT, 'dist/tuxsec-rootd.js');
export const CLI_JS = path.join(ROOT, 'dist/tuxsec-cli.cjs');

export interface RootdHandle {
  dir: string;
  socketPath: string;
  configPath: string;
  auditPath: string;
  proc: ChildProcess;
  /** A connected client (created lazily, closed by stop()). */
  client: RootdClient;
  /** stderr of the daemon so far (its log). */
  log(): string;
  /** SIGTERM, wait for exit; returns the exit code. */
  stop(): Promise<number | null>;
  /** Sends a signal to the daemon's pid. */
  signal(sig: NodeJS.Signals): void;
}

/** How long rootd may take to answer its first ping: generous, a loaded machine starts node slowly. */
const START_TIMEOUT_MS = 60_000;

export interface StartOptions {
  /** rootd.yaml keys; socket, audit_log and operations_file default into the temp dir. */
  config?: Record<string, unknown>;
  /** Extra command line arguments. */
  args?: string[];
  /** Start with --dev (default true unless running as root). */
  dev?: boolean;
  env?: Record<string, string>;
  /** ms to wait for the socket. */
  timeoutMs?: number;
  /**
   * A program (absolute path and arguments) that execs the daemon's command line, such as
   * `unshare -m --`; it must exec, not fork, so the handle's pid stays the daemon's.
   */
  wrap?: string[];
}

export async function startRootd(opts: StartOptions = {}): Promise<RootdHandle> {
  if (!existsSync(ROOTD_JS)) throw new Error(`${ROOTD_JS} missing: run npm run build`);
  // Under /tmp with a short name: socket paths are limited to 107 bytes.
  const dir = mkdtempSync(path.join(tmpdir(), 'tsr-'));
  chmodSync(dir, 0o755);
  const socketPath = (opts.config?.socket as string | undefined) ?? path.join(dir, 'run', 'rootd.sock');
  const auditPath = path.join(dir, 'audit.log');
  const configPath = path.join(dir, 'rootd.yaml');
  // operations_file too: the default is the host's /var/lib/tuxsec-rootd.
  const cfg = { socket: socketPath, audit_log: auditPath, operations_file: path.join(dir, 'state', 'operations.json'), log_level: 'debug', ...opts.config };
  writeFileSync(configPath, stringify(cfg), { mode: 0o600 });
  const dev = opts.dev ?? process.getuid?.() !== 0;
  // As root the daemon needs its socket group and the default allowed user to exist.
  if (process.getuid?.() === 0) await ensureTestUsers();
  const args = [ROOTD_JS, '--config', configPath, ...(dev ? ['--dev'] : []), ...(opts.args ?? [])];
  const [file, ...pre] = [...(opts.wrap ?? []), process.execPath];
  const proc = spawn(file!, [...pre, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...opts.env } });
  let stderr = '';
  proc.stderr!.on('data', (c: Buffer) => {
    stderr += c.toString();
    if (stderr.length > 4 * 1024 * 1024) stderr = stderr.slice(-2 * 1024 * 1024);
  });
  proc.stdout!.resume();
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
  const deadline = Date.now() + (opts.timeoutMs ?? START_TIMEOUT_MS);
  let client: RootdClient | null = null;
  const handle: RootdHandle = {
    dir,
    socketPath,
    configPath,
    auditPath,
    proc,
    get client() {
      return (client ??= new RootdClient({ socketPath }));
    },
    log: () => stderr,
    signal: (sig) => {
      if (proc.exitCode === null && proc.signalCode === null) process.kill(proc.pid!, sig);
    },
    async stop() {
      client?.close();
      if (proc.exitCode === null && proc.signalCode === null) process.kill(proc.pid!, 'SIGTERM');
      const t = setTimeout(() => proc.exitCode === null && process.kill(proc.pid!, 'SIGKILL'), 20_000);
      const code = await exited;
      clearTimeout(t);
      rmSync(dir, { recursive: true, force: true });
      return code;
    },
  };
  // Ready when it answers a ping.
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`tuxsec-rootd exited with ${proc.exitCode}: ${stderr}`);
    if (existsSync(socketPath)) {
      const c = new RootdClient({ socketPath, timeoutMs: 2000 });
      try {
        await c.ping();
        c.close();
        break;
      } catch {
        c.close();
      }
    }
    if (Date.now() > deadline) {
      await handle.stop();
      throw new Error(`tuxsec-rootd did not come up within ${opts.timeoutMs ?? START_TIMEOUT_MS} ms: ${stderr}`);
    }
    await new Promise((r) => setTimeout(r, 25));
  }
  return handle;
}
