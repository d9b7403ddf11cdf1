/**
 * SSH mode's transport: tuxsec-server runs one job on an agent through the OpenSSH client, as
 * tuxsec-shell's job form (src/protocol/ssh-job.ts), and reads the result envelope it prints.
 *
 * ssh reads no config file and no agent: `-F /dev/null`, BatchMode, only the server's identity
 * (config `ssh_identity`), and the agent's host key pinned: a known_hosts file this transport
 * writes in a private directory, holding only the pinned key under a fixed alias (HostKeyAlias),
 * so neither ~/.ssh/known_hosts nor /etc/ssh/ssh_known_hosts can vouch for another key and a key
 * is never learned on first use. No forwarding of any kind, no TTY.
 *
 * Failures map onto DeliveryError: a changed host key or a refused login is not retried (sending
 * again cannot help and the operator must look); a connection that could not be made, a timeout
 * or an agent busy with another SSH-mode job is (the agent's journal keeps a job sent twice from
 * running twice).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { run, type RunResult } from '../../os/exec.ts';
import { ensureDir, writeFileAtomic } from '../../os/durable-files.ts';
import { terminalSafe, terminalSafeJson } from '../../common/terminal-text.ts';
import { isTuxsecError } from '../../protocol/errors.ts';
import { checkMessage, quote, ResultEnvelope, type JobEnvelope } from '../../protocol/jobs.ts';
import { nestingDepth } from '../../protocol/json.ts';
import { SHELL_EXIT } from '../../protocol/ssh-command.ts';
import { jobCommandLine } from '../../protocol/ssh-job.ts';
import type { IncomingResult } from '../storage/storage.ts';
import { DeliveryError, type SshEndpoint, type Transport } from './transport.ts';

export const SSH_CLIENT = '/usr/bin/ssh';
/** The name the pinned key is filed under; ssh checks the host's key against it alone. */
const HOST_KEY_ALIAS = 'tuxsec-agent';
/** Results are at most 512 KiB of JSON on the agent (the executor's bound); room for the envelope. */
const MAX_ANSWER_BYTES = 1024 * 1024;
const MAX_ANSWER_DEPTH = 64;

const KEY_TYPE = /^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)|sk-ssh-ed25519@openssh\.com|sk-ecdsa-sha2-nistp256@openssh\.com)$/;
const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;
const HOST = /^(?!-)[A-Za-z0-9.:_-]{1,253}$/;
const USER = /^[A-Za-z_][A-Za-z0-9_.-]{0,31}$/;

export interface SshTransportOptions {
  /** The server's private key (config `ssh_identity`); ssh refuses it when others can read it. */
  identityFile: string;
  /** A directory only the server can enter; the transport keeps its files in a new private directory under it. Default: the system's temp directory. */
  stateDir?: string;
  /** Seconds to set up the connection (ConnectTimeout). Default 10. */
  connectTimeoutSeconds?: number;
  /** Milliseconds for the whole call, connection and job. Default 10 minutes. */
  timeoutMs?: number;
  /**
   * Keep the connection open this many seconds after a call (ControlMaster, ControlPersist) so the
   * next call skips the key exchange and login. 0 (the default): a new connection per call.
   */
  keepAliveSeconds?: number;
  /** The OpenSSH client (tests only). Default /usr/bin/ssh. */
  sshPath?: string;
}

/** The key of a known_hosts line (`[host]:port type base64 [comment]` or `type base64`); throws naming what is wrong. */
export function pinnedKey(line: string): { type: string; key: string } {
  const words = line.trim().split(/\s+/);
  if (words[0]?.startsWith('@')) throw new Error(`cannot pin host key ${quote(line)}: markers (${quote(words[0])}) are not accepted, only one key`);
  const at = words.findIndex((w) => KEY_TYPE.test(w));
  if (at < 0 || at > 1) throw new Error(`cannot pin host key ${quote(line)}: expected "[host]:port <key type> <base64 key>" with a known key type`);
  const [type, key] = [words[at]!, words[at + 1] ?? ''];
  if (!BASE64.test(key)) throw new Error(`cannot pin host key ${quote(line)}: the key is not base64`);
  // The blob names its own type first (uint32 length, then the name): a key pasted under the
  // wrong type would never match and would read as a changed key.
  const blob = Buffer.from(key, 'base64');
  const n = blob.length >= 4 ? blob.readUInt32BE(0) : -1;
  if (n < 0 || 4 + n > blob.length || blob.subarray(4, 4 + n).toString('latin1') !== type) {
    throw new Error(`cannot pin host key ${quote(line)}: the base64 key is not a ${type} key`);
  }
  return { type, key };
}

/**
 * The checks the transport makes of an SSH endpoint (host, port, user, pinned key), for the
 * server to make the same ones before it stores the endpoint; throws naming what is wrong.
 */
export function checkSshEndpoint(endpoint: SshEndpoint): { type: string; key: string } {
  if (!HOST.test(endpoint.host)) throw new Error(`cannot use SSH host ${quote(endpoint.host)}: expected a host name or an IP address (an IPv6 address without brackets)`);
  if (!Number.isInteger(endpoint.port) || endpoint.port < 1 || endpoint.port > 65535) throw new Error(`cannot use SSH port ${quote(endpoint.port)}: expected 1 to 65535`);
  if (!USER.test(endpoint.user)) throw new Error(`cannot use SSH user ${quote(endpoint.user)}: expected a login name`);
  return pinnedKey(endpoint.knownHost);
}

/**
 * What ssh or tuxsec-shell said on stderr, safe to store and print, bounded. tuxsec-shell's own
 * lines, when there are any, without what sshd adds (a missing home directory, a banner).
 */
function said(stderr: string): string {
  const all = stderr
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '');
  const shell = all.filter((l) => l.startsWith('tuxsec-shell: ')).map((l) => l.slice('tuxsec-shell: '.length));
  const text = terminalSafe((shell.length > 0 ? shell : all).slice(0, 3).join(' / '));
  return text.length > 500 ? `${text.slice(0, 497)}...` : text || '(nothing on stderr)';
}

const HOST_KEY_CHANGED = /Host key verification failed|REMOTE HOST IDENTIFICATION HAS CHANGED|host key .*(?:has changed|differs)|No \S+ host key is known/i;
const LOGIN_REFUSED = /Permission denied|Too many authentication failures|no mutual signature/i;

function resultOf(r: ResultEnvelope): IncomingResult {
  const out: IncomingResult = { commandId: r.command_id, success: r.success, status: r.status };
  if (r.output !== undefined) out.output = r.output;
  if (r.error !== undefined) out.error = r.error;
  if (r.code !== undefined) out.code = r.code;
  out.started_at = r.started_at;
  out.finished_at = r.finished_at;
  out.duration_ms = r.duration_ms;
  return out;
}

/** One SSH-mode agent. Calls may overlap; the agent runs its SSH-mode jobs one at a time. */
export class SshTransport implements Transport {
  private readonly endpoint: SshEndpoint;
  private readonly o: Required<Omit<SshTransportOptions, 'stateDir'>>;
  /** Private (0700): the pinned known_hosts file and the control socket. */
  private readonly dir: string;
  private readonly where: string;

  constructor(endpoint: SshEndpoint, opts: SshTransportOptions) {
    const pin = checkSshEndpoint(endpoint);
    if (!path.isAbsolute(opts.identityFile)) throw new Error(`cannot use ssh_identity ${quote(opts.identityFile)}: not an absolute path`);
    try {
      fs.accessSync(opts.identityFile, fs.constants.R_OK);
    } catch (e) {
      throw new Error(`cannot use ssh_identity ${quote(opts.identityFile)}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { cause: e });
    }
    this.endpoint = endpoint;
    this.o = {
      identityFile: opts.identityFile,
      connectTimeoutSeconds: opts.connectTimeoutSeconds ?? 10,
      timeoutMs: opts.timeoutMs ?? 10 * 60_000,
      keepAliveSeconds: opts.keepAliveSeconds ?? 0,
      sshPath: opts.sshPath ?? SSH_CLIENT,
    };
    const base = opts.stateDir ?? os.tmpdir();
    if (opts.stateDir !== undefined) ensureDir(base, 0o700);
    // mkdtemp makes it 0700 with a name no one could have prepared.
    this.dir = fs.mkdtempSync(path.join(base, 'ssh-'));
    writeFileAtomic(path.join(this.dir, 'known_hosts'), `${HOST_KEY_ALIAS} ${pin.type} ${pin.key}\n`, { mode: 0o600 });
    this.where = `${endpoint.user}@${endpoint.host}:${endpoint.port}`;
  }

  /** ssh's words up to the host; the remote command follows. */
  private args(): string[] {
    const o = this.o;
    const opt = (kv: string) => ['-o', kv];
    const reuse =
      o.keepAliveSeconds > 0
        ? [...opt('ControlMaster=auto'), ...opt(`ControlPath=${path.join(this.dir, 'cm')}`), ...opt(`ControlPersist=${o.keepAliveSeconds}`)]
        : opt('ControlMaster=no');
    return [
      '-F', '/dev/null',
      ...opt('BatchMode=yes'),
      ...opt('StrictHostKeyChecking=yes'),
      ...opt(`UserKnownHostsFile=${path.join(this.dir, 'known_hosts')}`),
      ...opt('GlobalKnownHostsFile=/dev/null'),
      ...opt(`HostKeyAlias=${HOST_KEY_ALIAS}`),
      ...opt('CheckHostIP=no'),
      ...opt('UpdateHostKeys=no'),
      ...opt('IdentitiesOnly=yes'),
      ...opt('IdentityAgent=none'),
      '-i', o.identityFile,
      ...opt('ForwardAgent=no'),
      ...opt('ForwardX11=no'),
      ...opt('ClearAllForwardings=yes'),
      ...opt('PermitLocalCommand=no'),
      ...opt(`ConnectTimeout=${o.connectTimeoutSeconds}`),
      ...opt('ServerAliveInterval=15'),
      ...opt('ServerAliveCountMax=4'),
      ...opt('LogLevel=ERROR'),
      ...reuse,
      '-T',
      '-p', String(this.endpoint.port),
      '-l', this.endpoint.user,
      '--', this.endpoint.host,
    ];
  }

  async execute(job: JobEnvelope, signal: AbortSignal): Promise<IncomingResult> {
    const what = `cannot run job ${quote(job.id)} on ${this.where} over SSH`;
    let line: string;
    try {
      line = jobCommandLine(job);
    } catch (e) {
      throw new DeliveryError(`${what}: ${terminalSafeJson((e as Error).message)}`, false);
    }
    let r: RunResult;
    try {
      r = await run(this.o.sshPath, [...this.args(), line], { timeoutMs: this.o.timeoutMs, maxOutputBytes: MAX_ANSWER_BYTES, signal });
    } catch (e) {
      if (signal.aborted) throw new DeliveryError(`${what}: stopped before the answer came; the job may have run (sending it again returns its result)`, true);
      throw new DeliveryError(`${what}: ${isTuxsecError(e) ? e.message : String(e)}`, false);
    }
    if (r.timedOut) {
      throw new DeliveryError(`${what}: no answer within ${Math.round(this.o.timeoutMs / 1000)} s; the job may have run (sending it again returns its result)`, true);
    }
    if (r.code === 0) return this.answer(job, r, what);
    if (r.code === 255) {
      if (HOST_KEY_CHANGED.test(r.stderr)) {
        throw new DeliveryError(
          `${what}: the host's key does not match the pinned key (another host, or its key was changed); not retried: check the host, then pin its key again (${said(r.stderr)})`,
          false,
        );
      }
      if (LOGIN_REFUSED.test(r.stderr)) {
        throw new DeliveryError(`${what}: the login was refused (is the server's key installed for ${this.endpoint.user}? see tuxsec-agent ssh-setup); not retried (${said(r.stderr)})`, false);
      }
      throw new DeliveryError(`${what}: cannot connect: ${said(r.stderr)}`, true);
    }
    if (r.code === SHELL_EXIT.tryLater) throw new DeliveryError(`${what}: ${said(r.stderr)}`, true);
    if (r.code === SHELL_EXIT.refused) throw new DeliveryError(`${what}: refused by tuxsec-shell: ${said(r.stderr)}`, false);
    const how = r.code === null ? `ssh was killed by ${r.signal}` : `exit status ${r.code}`;
    throw new DeliveryError(`${what}: ${how}: ${said(r.stderr)} (does the agent run tuxsec-shell with the job form?)`, false);
  }

  /** The result envelope tuxsec-shell printed, checked: anything else is refused, not stored. */
  private answer(job: JobEnvelope, r: RunResult, what: string): IncomingResult {
    if (r.truncated) throw new DeliveryError(`${what}: the answer is larger than ${MAX_ANSWER_BYTES} bytes`, false);
    const text = r.stdout.trimEnd();
    if (text.includes('\n') || nestingDepth(Buffer.from(text), MAX_ANSWER_DEPTH) > MAX_ANSWER_DEPTH) {
      throw new DeliveryError(`${what}: the answer is not one JSON result (${terminalSafeJson(quote(text))})`, false);
    }
    let v: unknown;
    try {
      v = JSON.parse(text);
    } catch {
      throw new DeliveryError(`${what}: the answer is not JSON (${terminalSafeJson(quote(text))})`, false);
    }
    let result: ResultEnvelope;
    try {
      result = checkMessage(ResultEnvelope, v, 'read the result');
    } catch (e) {
      throw new DeliveryError(`${what}: ${terminalSafeJson((e as Error).message)}`, false);
    }
    if (result.command_id !== job.id) throw new DeliveryError(`${what}: the answer is the result of another job (${terminalSafeJson(quote(result.command_id))})`, false);
    return resultOf(result);
  }

  /** Ends a kept-open connection and removes the private directory. */
  async close(): Promise<void> {
    if (this.o.keepAliveSeconds > 0 && fs.existsSync(path.join(this.dir, 'cm'))) {
      await run(this.o.sshPath, [...this.args().slice(0, -2), '-O', 'exit', '--', this.endpoint.host], { timeoutMs: 10_000, maxOutputBytes: 4096 }).catch(() => undefined);
    }
    fs.rmSync(this.dir, { recursive: true, force: true });
  }

  /** The private directory's name, for tests that check what is in it. */
  get privateDir(): string {
    return this.dir;
  }

}
