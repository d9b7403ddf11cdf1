/**
 * Process harness for the agent tests: the real tuxsec-agent as the real `tuxsec` user, the real
 * tuxsec-server over TLS with test-made certificates, and helpers to wait on their output.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import YAML from 'yaml';
import { run } from '../../src/os/exec.ts';
import { FINAL_JOB_STATUSES, type JobView } from '../../src/protocol/operator-api.ts';
import { OperatorClient } from '../../src/server/operator-client.ts';
import { makeCerts, type CertPaths, type MakeCertsOptions } from '../helpers/certs.ts';
import { ROOT } from '../helpers/rootd.ts';
import { ensureTestUsers } from '../helpers/users.ts';

/**
 * Private copies of the built programs: scripts/build.mjs empties dist/ on every build, and other
 * people's test runs build while ours run. Under ROOT/tmp (git-ignored) so node_modules resolves.
 */
function snapshot(name: string): string {
  const dir = path.join(ROOT, 'tmp', `agent-test-${process.pid}`);
  fs.mkdirSync(dir, { recursive: true, mode: 0o755 });
  fs.chmodSync(path.join(ROOT, 'tmp'), 0o755);
  const dst = path.join(dir, name);
  const src = path.join(ROOT, 'dist', name);
  for (let i = 0; !fs.existsSync(dst); i++) {
    try {
      fs.copyFileSync(src, dst + '.part');
      fs.renameSync(dst + '.part', dst);
    } catch (e) {
      if (i > 600) throw e;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 100);
    }
  }
  fs.chmodSync(dst, 0o644);
  process.once('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
  return dst;
}

export const AGENT_JS = snapshot('tuxsec-agent.js');
export const SERVER_JS = snapshot('tuxsec-server.js');
// `serve` imports the server from this bundle beside tuxsec-server.js.
snapshot('tuxsec-server-serve.js');

export function tempDir(prefix: string): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  fs.chmodSync(d, 0o755);
  return d;
}

export async function certsIn(dir: string, opts: MakeCertsOptions = {}): Promise<CertPaths> {
  const c = await makeCerts(dir, opts);
  fs.chmodSync(dir, 0o755);
  fs.chmodSync(c.ca, 0o644);
  return c;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

export async function until<T>(what: string, fn: () => T | Promise<T>, timeoutMs = 15_000, stepMs = 20): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, stepMs));
  }
}

/** A child process with its output collected and a kill-by-pid stop. */
export interface Proc {
  proc: ChildProcess;
  out(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  kill(sig?: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export function startProc(file: string, args: string[], opts: { uid?: number; gid?: number; env?: Record<string, string> } = {}): Proc {
  const proc = spawn(file, args, {
    stdio: ['ignore', 'pipe', 'pipe'],
    uid: opts.uid,
    gid: opts.gid,
    cwd: '/',
    env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', LANG: 'C', ...opts.env },
  });
  let out = '';
  const take = (c: Buffer) => {
    out += c.toString();
    if (out.length > 8 * 1024 * 1024) out = out.slice(-4 * 1024 * 1024);
  };
  proc.stdout!.on('data', take);
  proc.stderr!.on('data', take);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    proc.once('exit', (code, signal) => resolve({ code, signal })),
  );
  return {
    proc,
    out: () => out,
    exited,
    async kill(sig: NodeJS.Signals = 'SIGTERM') {
      if (proc.exitCode === null && proc.signalCode === null) process.kill(proc.pid!, sig);
      const t = setTimeout(() => proc.exitCode === null && proc.signalCode === null && process.kill(proc.pid!, 'SIGKILL'), 10_000);
      const r = await exited;
      clearTimeout(t);
      return r;
    },
  };
}

// ---------------------------------------------------------------- server

export interface ServerHandle {
  url: string;
  port: number;
  dir: string;
  configPath: string;
  certs: CertPaths;
  proc: Proc;
  /** Runs an operator subcommand with --json; returns parsed stdout and the exit code. */
  cli(args: string[], timeoutMs?: number): Promise<{ code: number | null; json: Record<string, unknown> | null; stderr: string }>;
  /** In-process operator API client (admin token from the config). */
  op: OperatorClient;
  /** Polls a job until it is final (without the server-side wait). */
  waitJob(id: string, timeoutMs?: number): Promise<JobView>;
  restart(): Promise<void>;
  stop(sig?: NodeJS.Signals): Promise<void>;
}

export async function startServer(opts: { dir: string; certs: CertPaths; config?: Record<string, unknown> }): Promise<ServerHandle> {
  const port = await freePort();
  const configPath = path.join(opts.dir, 'server.yaml');
  const cfg: Record<string, unknown> = {
    listen: `127.0.0.1:${port}`,
    database: path.join(opts.dir, 'server.db'),
    tls_cert: opts.certs.serverCert,
    tls_key: opts.certs.serverKey,
    admin_token: 'test-admin-token-0123456789abcdef',
    ca_cert: opts.certs.ca,
    server_url: `https://127.0.0.1:${port}`,
    log_level: 'warn',
    ...opts.config,
  };
  fs.writeFileSync(configPath, YAML.stringify(cfg), { mode: 0o600 });
  const url = `https://127.0.0.1:${port}`;
  const newOp = () =>
    new OperatorClient({
      url,
      adminToken: cfg.admin_token as string,
      ca: fs.readFileSync(opts.certs.ca),
      ...(typeof cfg.client_cert === 'string' && typeof cfg.client_key === 'string'
        ? { cert: fs.readFileSync(cfg.client_cert), key: fs.readFileSync(cfg.client_key) }
        : {}),
    });
  const launch = async (): Promise<Proc> => {
    const p = startProc(process.execPath, [SERVER_JS, 'serve', '--config', configPath]);
    await until(`tuxsec-server on port ${port}`, async () => {
      if (p.proc.exitCode !== null) throw new Error(`tuxsec-server exited: ${p.out()}`);
      return new Promise<boolean>((resolve) => {
        const s = net.connect(port, '127.0.0.1', () => {
          s.destroy();
          resolve(true);
        });
        s.on('error', () => resolve(false));
      });
    }, 60_000); // starting is not timed here: a loaded machine starts node slowly
    return p;
  };
  const h: ServerHandle = {
    url,
    port,
    dir: opts.dir,
    configPath,
    certs: opts.certs,
    proc: await launch(),
    async cli(args, timeoutMs = 60_000) {
      const r = await run(process.execPath, [SERVER_JS, ...args, '--config', configPath, '--json'], { timeoutMs });
      let json: Record<string, unknown> | null;
      try {
        json = JSON.parse(r.stdout) as Record<string, unknown>;
      } catch {
        json = null;
      }
      return { code: r.code, json, stderr: r.stderr };
    },
    op: newOp(),
    async waitJob(id, timeoutMs = 20_000) {
      let last: JobView | null = null;
      await until(`job ${id} to finish`, async () => {
        try {
          last = await h.op.getJob(id);
        } catch {
          return false; // server restarting
        }
        return FINAL_JOB_STATUSES.has(last.status);
      }, timeoutMs, 5);
      return last!;
    },
    async restart() {
      h.proc = await launch();
      h.op = newOp();
    },
    async stop(sig = 'SIGTERM') {
      await h.op.close();
      await h.proc.kill(sig);
    },
  };
  return h;
}

export async function createToken(server: ServerHandle, uses = 1, ttl = 3600): Promise<string> {
  const r = await server.cli(['token', 'create', '--uses', String(uses), '--ttl', String(ttl)]);
  if (r.code !== 0 || typeof r.json?.token !== 'string') throw new Error(`cannot create token: ${r.stderr}`);
  return r.json.token;
}

// ---------------------------------------------------------------- agent

export interface AgentEnv {
  dir: string;
  configPath: string;
  stateDir: string;
  uid: number;
  gid: number;
}

/** A config dir like /etc/tuxsec: agent.yaml 0640 root:tuxsec; a state_dir owned by tuxsec. */
export async function makeAgentEnv(config: Record<string, unknown>, header = '# test agent config\n'): Promise<AgentEnv> {
  const { tuxsec, tuxsecGid } = await ensureTestUsers();
  const dir = tempDir('tsa-');
  const stateDir = path.join(dir, 'state');
  fs.mkdirSync(stateDir, { mode: 0o700 });
  fs.chownSync(stateDir, tuxsec.uid, tuxsec.gid);
  const configPath = path.join(dir, 'agent.yaml');
  fs.writeFileSync(configPath, header + YAML.stringify({ mode: 'pull', state_dir: stateDir, log_level: 'DEBUG', ...config }), { mode: 0o640 });
  fs.chownSync(configPath, 0, tuxsecGid);
  return { dir, configPath, stateDir, uid: tuxsec.uid, gid: tuxsecGid };
}

/** Starts the real agent as the tuxsec user. */
export function startAgent(env: AgentEnv, args: string[] = [], extraEnv: Record<string, string> = {}): Proc {
  return startProc(process.execPath, [AGENT_JS, '--config', env.configPath, ...args], { uid: env.uid, gid: env.gid, env: extraEnv });
}

/** `tuxsec-agent register` as root. */
export async function registerAgent(env: AgentEnv, server: string, token?: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const args = [AGENT_JS, 'register', '--server', server, '--config', env.configPath];
  if (token !== undefined) args.push('--token', token);
  const r = await run(process.execPath, args, { timeoutMs: 30_000 });
  return { code: r.code, stdout: r.stdout, stderr: r.stderr };
}

/** The registered agent_id and api_key: from the credentials file register wrote, else agent.yaml. */
export function readCredentials(env: AgentEnv): { agent_id: string; api_key: string } {
  const cfg = YAML.parse(fs.readFileSync(env.configPath, 'utf8')) as Record<string, unknown>;
  const key = typeof cfg.api_key_file === 'string' ? fs.readFileSync(cfg.api_key_file, 'utf8').trim() : String(cfg.api_key);
  return { agent_id: String(cfg.agent_id), api_key: key };
}

export function readJournal(env: AgentEnv): Array<Record<string, string>> {
  const p = path.join(env.stateDir, 'journal.log');
  if (!fs.existsSync(p)) return [];
  return fs
    .readFileSync(p, 'utf8')
    .split('\n')
    .filter((l) => l.endsWith('}'))
    .map((l) => JSON.parse(l) as Record<string, string>);
}

// ---------------------------------------------------------------- counting proxy in front of rootd

export interface CountingProxy {
  socketPath: string;
  /** Executions that reached rootd, by the job's `test_marker` parameter. */
  counts: Map<string, number>;
  close(): Promise<void>;
}

/**
 * A unix socket the agent uses as its rootd_socket: forwards every line to the real rootd and
 * counts execute_command requests by a `test_marker` parameter, which it strips (systeminfo
 * actions refuse unknown parameters). Each request is held back 0..maxDelayMs, so a SIGKILL
 * lands while a job runs as often as between jobs.
 */
export async function startCountingProxy(target: string, dir: string, maxDelayMs = 40): Promise<CountingProxy> {
  const socketPath = path.join(dir, 'proxy.sock');
  const counts = new Map<string, number>();
  const conns = new Set<net.Socket>();
  const server = net.createServer((client) => {
    conns.add(client);
    const upstream = net.createConnection(target);
    conns.add(upstream);
    let buf = '';
    let chain: Promise<void> = Promise.resolve();
    client.on('data', (c: Buffer) => {
      buf += c.toString();
      let i: number;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        chain = chain.then(async () => {
          let out = line;
          try {
            const req = JSON.parse(line) as { type: string; data: { parameters?: Record<string, unknown> } };
            const marker = req.data?.parameters?.test_marker;
            if (req.type === 'execute_command' && typeof marker === 'string') {
              counts.set(marker, (counts.get(marker) ?? 0) + 1);
              delete req.data.parameters!.test_marker;
              out = JSON.stringify(req);
              await new Promise((r) => setTimeout(r, Math.floor(Math.random() * maxDelayMs)));
            }
          } catch {
            // not JSON: forwarded as is
          }
          if (!upstream.destroyed) upstream.write(out + '\n');
        });
      }
    });
    upstream.on('data', (c: Buffer) => !client.destroyed && client.write(c));
    const end = () => {
      client.destroy();
      upstream.destroy();
      conns.delete(client);
      conns.delete(upstream);
    };
    client.on('close', end);
    client.on('error', end);
    upstream.on('close', end);
    upstream.on('error', end);
  });
  await new Promise<void>((resolve) => server.listen(socketPath, resolve));
  fs.chmodSync(socketPath, 0o666);
  return {
    socketPath,
    counts,
    close: () =>
      new Promise<void>((resolve) => {
        for (const c of conns) c.destroy();
        server.close(() => resolve());
      }),
  };
}
