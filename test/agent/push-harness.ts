/**
 * The real tuxsec-agent in push mode as the real `tuxsec` user, in front of the real rootd, with
 * certificates the test makes; node:https and curl as its clients.
 */
import fs from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import path from 'node:path';
import { run } from '../../src/os/exec.ts';
import type { CertPaths } from '../helpers/certs.ts';
import { startRootd, type RootdHandle, type StartOptions } from '../helpers/rootd.ts';
import { certsIn, freePort, makeAgentEnv, startAgent, tempDir, until, type AgentEnv, type Proc } from './harness.ts';

export const CURL = '/usr/bin/curl';
export const API_KEY = 'push-test-key-0123456789abcdef0123456789';

export interface PushAgent {
  env: AgentEnv;
  certs: CertPaths;
  dir: string;
  port: number;
  /** The agent's api_key_file (0600 tuxsec). */
  apiKeyFile: string;
  rootd: RootdHandle;
  agent: Proc;
  /** A request with the client certificate (unless `noCert`) and the right key (unless `headers` say otherwise). */
  request(method: string, p: string, o?: RequestOptions): Promise<Reply>;
  /** curl with the CA and client certificate; returns the exit code, body and status. */
  curl(args: string[]): Promise<{ code: number | null; body: string; status: number; stderr: string }>;
  /** Stops the agent with `sig` (SIGKILL: a crash) and starts it again on the same state_dir. */
  restart(sig: NodeJS.Signals): Promise<void>;
  /** rootd's audit records of the agent's executions of `action`. */
  executions(action: string): Array<Record<string, unknown>>;
  stop(): Promise<void>;
}

export interface RequestOptions {
  headers?: Record<string, string>;
  body?: string;
  noCert?: boolean;
  agent?: https.Agent;
  ca?: Buffer[];
  /** The client's source address (any 127.x.y.z): another client as the agent counts them. */
  localAddress?: string;
  /** Client certificate and key files other than the test CA's. */
  clientCert?: { cert: string; key: string };
}

export interface Reply {
  status: number;
  body: string;
  json: Record<string, unknown>;
  headers: Record<string, unknown>;
  /** The client side's port: the same on two requests means the same connection. */
  localPort: number;
  /** The SHA-256 fingerprint of the certificate the agent served. */
  fingerprint: string;
}

/** Starts rootd (with `rootd` options) and the agent in push mode; `ca: false` leaves client certificates off. */
export async function startPushAgent(
  opts: { ca?: boolean; config?: Record<string, unknown>; extraEnv?: Record<string, string>; rootd?: StartOptions } = {},
): Promise<PushAgent> {
  const dir = tempDir('tsa-push-');
  const certs = await certsIn(path.join(dir, 'certs'));
  const rootd = await startRootd(opts.rootd);
  const port = await freePort();
  const env = await makeAgentEnv({
    mode: 'push',
    listen_host: '127.0.0.1',
    listen_port: port,
    ssl_cert: certs.serverCert,
    ssl_key: certs.serverKey,
    ca_cert: opts.ca === false ? null : certs.ca,
    rootd_socket: rootd.socketPath,
    ...opts.config,
  });
  // As installed: the key and the credentials file readable by the agent's user alone.
  fs.chownSync(certs.serverKey, env.uid, env.gid);
  fs.chmodSync(certs.serverKey, 0o600);
  const credDir = path.join(env.dir, 'credentials');
  fs.mkdirSync(credDir, { mode: 0o700 });
  fs.writeFileSync(path.join(credDir, 'api_key'), API_KEY + '\n', { mode: 0o600 });
  fs.chownSync(credDir, env.uid, env.gid);
  fs.chownSync(path.join(credDir, 'api_key'), env.uid, env.gid);
  const text = fs.readFileSync(env.configPath, 'utf8') + `api_key_file: ${path.join(credDir, 'api_key')}\n`;
  fs.writeFileSync(env.configPath, text);
  const listening = async (p: Proc) =>
    until('agent listening', async () => {
      if (p.proc.exitCode !== null) throw new Error(`agent exited: ${p.out()}`);
      return new Promise<boolean>((resolve) => {
        const s = net.connect(port, '127.0.0.1', () => {
          s.destroy();
          resolve(true);
        });
        s.on('error', () => resolve(false));
      });
    }, 20_000, 50);
  const agent = startAgent(env, [], opts.extraEnv);
  await listening(agent);
  const h: PushAgent = {
    env,
    certs,
    dir,
    port,
    apiKeyFile: path.join(credDir, 'api_key'),
    rootd,
    agent,
    request(method, p, o = {}) {
      return new Promise((resolve, reject) => {
        const req = https.request(
          {
            host: '127.0.0.1',
            port,
            method,
            path: p,
            ca: o.ca ?? fs.readFileSync(certs.ca),
            ...(o.noCert ? {} : { cert: fs.readFileSync(o.clientCert?.cert ?? certs.clientCert), key: fs.readFileSync(o.clientCert?.key ?? certs.clientKey) }),
            ...(o.localAddress ? { localAddress: o.localAddress } : {}),
            headers: { 'x-api-key': API_KEY, ...(o.body !== undefined ? { 'content-type': 'application/json' } : {}), ...o.headers },
            agent: o.agent ?? false,
            timeout: 30_000,
          },
          (res) => {
            const sock = res.socket as import('node:tls').TLSSocket;
            const fingerprint = sock.getPeerCertificate().fingerprint256;
            const localPort = sock.localPort ?? 0;
            let body = '';
            res.setEncoding('utf8');
            res.on('data', (c: string) => (body += c));
            res.on('end', () => {
              let json: Record<string, unknown>;
              try {
                json = JSON.parse(body) as Record<string, unknown>;
              } catch {
                json = {};
              }
              resolve({ status: res.statusCode ?? 0, body, json, headers: res.headers, localPort, fingerprint });
            });
          },
        );
        req.on('timeout', () => req.destroy(new Error('timeout')));
        req.on('error', reject);
        req.end(o.body);
      });
    },
    async curl(args) {
      const r = await run(
        CURL,
        ['-sS', '--max-time', '30', '--cacert', certs.ca, '--cert', certs.clientCert, '--key', certs.clientKey, '-o', '-', '-w', '\n%{http_code}', ...args],
        { timeoutMs: 40_000 },
      );
      const i = r.stdout.lastIndexOf('\n');
      return { code: r.code, body: r.stdout.slice(0, Math.max(0, i)), status: Number(r.stdout.slice(i + 1)) || 0, stderr: r.stderr };
    },
    async restart(sig) {
      await h.agent.kill(sig);
      h.agent = startAgent(env, [], opts.extraEnv);
      await listening(h.agent);
    },
    executions(action) {
      if (!fs.existsSync(rootd.auditPath)) return [];
      return fs
        .readFileSync(rootd.auditPath, 'utf8')
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as Record<string, unknown>)
        .filter((r) => r.uid === env.uid && r.action === action);
    },
    async stop() {
      await h.agent.kill();
      await rootd.stop();
      fs.rmSync(dir, { recursive: true, force: true });
      fs.rmSync(env.dir, { recursive: true, force: true });
    },
  };
  return h;
}
