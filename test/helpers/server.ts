/**
 * Starts a real tuxsec-server process (dist/tuxsec-server.js, built by scripts/test.mjs) on
 * 127.0.0.1 with a random port, certificates from makeCerts and a temp database; plus a small
 * simulated pull-mode agent over undici for tests that need one.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { appendFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Agent, request, type Dispatcher } from 'undici';
import { makeCerts, type CertPaths } from './certs.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');
export const SERVER_JS = path.join(ROOT, 'dist/tuxsec-server.js');

export interface TestServerOptions {
  /** Extra config keys (override the defaults written by the helper). */
  config?: Record<string, unknown>;
  /** Reuse certificates (e.g. from a previous server); made fresh in the temp dir otherwise. */
  certs?: CertPaths;
  /** Reuse a temp dir (restart with the same database). */
  dir?: string;
}

export interface TestServer {
  url: string;
  port: number;
  dir: string;
  configPath: string;
  certs: CertPaths;
  adminToken: string;
  proc: ChildProcess;
  /** Everything the server wrote to stdout/stderr so far. */
  log(): string;
  /** SIGTERM and wait for exit; resolves with the exit code. */
  stop(): Promise<number | null>;
  /** SIGKILL and wait for exit. */
  kill(): Promise<void>;
  /** Runs `tuxsec-server <args> --config <configPath>`; resolves with code and output. */
  cli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }>;
  /** Removes the temp dir, also one passed in as `dir` (after stop/kill). */
  cleanup(): void;
}

/**
 * scripts/build.mjs deletes and rewrites dist/; when someone else builds while our tests run, the
 * bundle is briefly missing. Wait for it rather than fail.
 */
async function bundleReady(): Promise<void> {
  const serveJs = path.join(path.dirname(SERVER_JS), 'tuxsec-server-serve.js');
  for (let i = 0; i < 200 && !(existsSync(SERVER_JS) && existsSync(serveJs)); i++) await new Promise((r) => setTimeout(r, 50));
}

function waitExit(p: ChildProcess): Promise<number | null> {
  if (p.exitCode !== null || p.signalCode !== null) return Promise.resolve(p.exitCode);
  return new Promise((resolve) => p.once('exit', (code) => resolve(code)));
}

/** Starts the server and resolves once it listens. */
export async function startServer(opts: TestServerOptions = {}): Promise<TestServer> {
  const dir = opts.dir ?? mkdtempSync(path.join(tmpdir(), 'tuxsec-server-test-'));
  const certs = opts.certs ?? (await makeCerts(path.join(dir, 'certs')));
  const adminToken = 'test-admin-token-0123456789abcdef';
  const configPath = path.join(dir, 'server.yaml');
  const cfg: Record<string, unknown> = {
    listen: '127.0.0.1:0',
    database: path.join(dir, 'server.db'),
    tls_cert: certs.serverCert,
    tls_key: certs.serverKey,
    admin_token: adminToken,
    ca_cert: certs.ca,
    log_level: 'info',
    ...opts.config,
  };
  await bundleReady();
  writeFileSync(configPath, Object.entries(cfg).map(([k, v]) => `${k}: ${JSON.stringify(v)}`).join('\n') + '\n');
  const proc = spawn(process.execPath, [SERVER_JS, 'serve', '--config', configPath], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const logFile = path.join(dir, 'server.log');
  const collect = (c: Buffer): void => {
    output += c.toString();
    appendFileSync(logFile, c);
  };
  proc.stdout!.on('data', collect);
  proc.stderr!.on('data', collect);
  const port = await new Promise<number>((resolve, reject) => {
    // Generous: starting node with a 3 MB bundle took 3.6 s with --help alone at load 19 on 2 cores,
    // and a restarted server said nothing for 15 s under two busy loops more. Start is not timed here.
    const timer = setTimeout(() => reject(new Error(`server did not start within 60 s:\n${output}`)), 60_000);
    const check = (): void => {
      const m = /listening at https:\/\/127\.0\.0\.1:(\d+)/i.exec(output);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    };
    proc.stdout!.on('data', check);
    proc.stderr!.on('data', check);
    proc.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`server exited with ${code}:\n${output}`));
    });
  }).catch((e: unknown) => {
    proc.kill('SIGKILL');
    throw e;
  });
  // Never leave a server behind when the test process dies.
  const reap = (): void => void proc.kill('SIGKILL');
  process.once('exit', reap);
  proc.once('exit', () => process.off('exit', reap));
  const url = `https://127.0.0.1:${port}`;
  return {
    url,
    port,
    dir,
    configPath,
    certs,
    adminToken,
    proc,
    log: () => output,
    async stop() {
      proc.kill('SIGTERM');
      return waitExit(proc);
    },
    async kill() {
      proc.kill('SIGKILL');
      await waitExit(proc);
    },
    async cli(args) {
      await bundleReady();
      return new Promise((resolve) => {
        const c = spawn(process.execPath, [SERVER_JS, ...args, '--config', configPath, '--server', url], { stdio: ['ignore', 'pipe', 'pipe'] });
        let stdout = '';
        let stderr = '';
        c.stdout!.on('data', (b: Buffer) => (stdout += b.toString()));
        c.stderr!.on('data', (b: Buffer) => (stderr += b.toString()));
        c.on('exit', (code) => resolve({ code, stdout, stderr }));
      });
    },
    cleanup() {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface HttpReply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Record<string, unknown>;
}

/** A reply's body as JSON, or `{raw: TEXT}` when it is not JSON (a proxy's page, a truncated body). */
export function jsonOrRaw(text: string): Record<string, unknown> {
  try {
    return JSON.parse(text) as Record<string, unknown>;
  } catch {
    return { raw: text };
  }
}

/** An undici reply read whole: its status, headers and body (jsonOrRaw). */
export async function readReply(res: Dispatcher.ResponseData): Promise<HttpReply> {
  return { status: res.statusCode, headers: res.headers, body: jsonOrRaw(await res.body.text()) };
}

/** A simulated pull-mode agent: just the wire protocol, no journal. */
export class SimAgent {
  readonly dispatcher: Agent;
  agentId = '';
  apiKey = '';

  constructor(
    readonly url: string,
    ca: string | Buffer,
    tls: { cert?: Buffer; key?: Buffer; connections?: number } = {},
  ) {
    this.dispatcher = new Agent({ connect: { ca, cert: tls.cert, key: tls.key }, connections: tls.connections ?? 4, keepAliveTimeout: 60_000 });
  }

  static fromFiles(url: string, caFile: string): SimAgent {
    return new SimAgent(url, readFileSync(caFile));
  }

  async post(p: string, body: unknown, headers: Record<string, string> = {}): Promise<HttpReply> {
    const res = await request(`${this.url}${p}`, {
      method: 'POST',
      dispatcher: this.dispatcher,
      headers: { 'content-type': 'application/json', ...headers },
      body: typeof body === 'string' ? body : JSON.stringify(body),
      headersTimeout: 120_000,
      bodyTimeout: 120_000,
    });
    return readReply(res);
  }

  async register(extra: Record<string, unknown> = {}): Promise<HttpReply> {
    const r = await this.post('/agents/api/register/', { hostname: 'sim-host', ip_address: '127.0.0.1', os_info: 'Linux', ...extra });
    if (typeof r.body.agent_id === 'string') {
      this.agentId = r.body.agent_id;
      this.apiKey = String(r.body.api_key);
    }
    return r;
  }

  checkin(extra: Record<string, unknown> = {}): Promise<HttpReply> {
    return this.post(
      '/agents/api/checkin/',
      { agent_id: this.agentId, api_key: this.apiKey, status: 'online', ...extra },
      { 'x-api-key': this.apiKey },
    );
  }

  results(results: unknown[]): Promise<HttpReply> {
    return this.post('/agents/api/results/', { agent_id: this.agentId, api_key: this.apiKey, command_results: results }, { 'x-api-key': this.apiKey });
  }

  close(): Promise<void> {
    return this.dispatcher.close();
  }
}

/** Calls the operator API directly (tests that do not go through the CLI). */
export async function adminCall(srv: TestServer, method: 'GET' | 'POST' | 'PUT' | 'DELETE', p: string, body?: unknown): Promise<HttpReply> {
  const d = new Agent({ connect: { ca: readFileSync(srv.certs.ca) } });
  try {
    const res = await request(`${srv.url}/api/v1${p}`, {
      method,
      dispatcher: d,
      headers: { authorization: `Bearer ${srv.adminToken}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
      headersTimeout: 120_000,
      bodyTimeout: 120_000,
    });
    return await readReply(res);
  } finally {
    await d.close();
  }
}
