/**
 * Typed client of the rootd socket: one persistent connection, requests pipelined and
 * matched by request_id, reconnecting on the next request after a drop.
 */
import net from 'node:net';
import { LineFramer } from '../protocol/framing.ts';
import { ErrorCodes, TuxsecError, type ErrorCode } from '../protocol/errors.ts';
import {
  DEFAULT_MAX_MESSAGE_BYTES,
  DEFAULT_SOCKET,
  type ModuleInfo,
  type Response,
} from '../protocol/messages.ts';

export interface RootdClientOptions {
  socketPath?: string;
  /** Per-request timeout in ms (default 70 s: above rootd's own 60 s). */
  timeoutMs?: number;
  maxMessageBytes?: number;
}

export interface ExecuteOptions {
  /** Per-request timeout in ms (default: the client's). */
  timeoutMs?: number;
  /**
   * Extension: rootd converts the parameters to the types the action declares, for values
   * typed on a command line (`--param port=80` as a string).
   */
  coerce?: boolean;
}

interface Pending {
  resolve(data: Record<string, unknown>): void;
  reject(err: Error): void;
  timer: NodeJS.Timeout;
}

/** Turns a connect error into a message a user can act on. */
export function connectError(socketPath: string, err: NodeJS.ErrnoException): TuxsecError {
  const why: Record<string, string> = {
    ENOENT: 'the socket does not exist (is tuxsec-rootd running?)',
    ECONNREFUSED: 'connection refused (tuxsec-rootd is not running; the socket is stale)',
    EACCES: 'permission denied (is this user in the socket group, usually "tuxsec"?)',
    ENOTDIR: 'a path component is not a directory',
    ENOTSOCK: 'the path is not a socket',
  };
  const code = err.code ?? '';
  const reason = why[code] ?? err.message;
  return new TuxsecError(ErrorCodes.rootdUnavailable, `cannot connect to tuxsec-rootd at ${socketPath}: ${reason}`, {
    errno: code,
  });
}

/** Error of a rootd error response, keeping its stable code. */
export function responseError(res: Response): TuxsecError {
  const d = res.data as { error?: unknown; code?: unknown; details?: unknown };
  const msg = typeof d.error === 'string' ? d.error : 'unknown error';
  const code = (typeof d.code === 'string' ? d.code : ErrorCodes.actionFailed) as ErrorCode;
  return new TuxsecError(code, msg, (d.details as Record<string, unknown>) ?? undefined);
}

export class RootdClient {
  readonly socketPath: string;
  private readonly timeoutMs: number;
  private readonly maxBytes: number;
  private sock: net.Socket | null = null;
  private connecting: Promise<net.Socket> | null = null;
  private readonly pending = new Map<string, Pending>();
  private seq = 0;
  private readonly prefix = `${process.pid.toString(36)}-${Date.now().toString(36)}-`;

  constructor(opts: RootdClientOptions = {}) {
    this.socketPath = opts.socketPath ?? DEFAULT_SOCKET;
    this.timeoutMs = opts.timeoutMs ?? 70_000;
    this.maxBytes = opts.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES * 16;
  }

  private connect(): Promise<net.Socket> {
    if (this.sock) return Promise.resolve(this.sock);
    if (this.connecting) return this.connecting;
    this.connecting = new Promise<net.Socket>((resolve, reject) => {
      const s = net.createConnection(this.socketPath);
      const framer = new LineFramer(this.maxBytes, {
        line: (l) => this.onLine(l),
        overflow: () => {
          this.failAll(new TuxsecError(ErrorCodes.invalidRequest, 'rootd sent a line over the size limit'));
          s.destroy();
        },
      });
      s.once('connect', () => {
        this.sock = s;
        this.connecting = null;
        resolve(s);
      });
      s.on('data', (c: Buffer) => framer.push(c));
      s.on('error', (err: NodeJS.ErrnoException) => {
        if (this.connecting) {
          this.connecting = null;
          reject(connectError(this.socketPath, err));
        } else {
          this.failAll(new TuxsecError(ErrorCodes.rootdUnavailable, `connection to tuxsec-rootd lost: ${err.message}`));
        }
      });
      s.on('close', () => {
        if (this.sock === s) this.sock = null;
        this.failAll(new TuxsecError(ErrorCodes.rootdUnavailable, 'connection to tuxsec-rootd closed'));
      });
    });
    return this.connecting;
  }

  private onLine(line: Buffer): void {
    let res: Response;
    try {
      res = JSON.parse(line.toString('utf8')) as Response;
    } catch {
      return;
    }
    const p = this.pending.get(res.request_id);
    if (!p) {
      // A connection-level refusal (not allowed, too many connections) names no request.
      if (res.type === 'error' && res.request_id === 'unknown') this.failAll(responseError(res));
      return;
    }
    this.pending.delete(res.request_id);
    clearTimeout(p.timer);
    if (res.type === 'success') p.resolve(res.data);
    else p.reject(responseError(res));
  }

  private failAll(err: Error): void {
    for (const [id, p] of this.pending) {
      clearTimeout(p.timer);
      this.pending.delete(id);
      p.reject(err);
    }
  }

  /** Sends one request; resolves with the success `data`, rejects with a TuxsecError. */
  async request(type: string, data: Record<string, unknown> = {}, timeoutMs = this.timeoutMs): Promise<Record<string, unknown>> {
    const s = await this.connect();
    const id = this.prefix + (++this.seq).toString(36);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new TuxsecError(ErrorCodes.timeout, `tuxsec-rootd did not answer ${type} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, { resolve, reject, timer });
      s.write(JSON.stringify({ type, request_id: id, data }) + '\n');
    });
  }

  ping(): Promise<Record<string, unknown>> {
    return this.request('ping');
  }

  async listModules(): Promise<string[]> {
    return (await this.request('list_modules')).modules as string[];
  }

  async moduleInfo(module: string): Promise<ModuleInfo> {
    return (await this.request('module_info', { module })).module_info as ModuleInfo;
  }

  async systemInfo(): Promise<Record<string, unknown>> {
    return (await this.request('system_info')).data as Record<string, unknown>;
  }

  /** Runs a module action; resolves with the action's data. */
  async execute(module: string, action: string, parameters: Record<string, unknown> = {}, opts: ExecuteOptions = {}): Promise<unknown> {
    // `coerce` goes on the wire only when asked for, so the request stays the Python client's.
    const data = opts.coerce ? { module, action, parameters, coerce: true } : { module, action, parameters };
    const res = await this.request('execute_command', data, opts.timeoutMs);
    return res.data;
  }

  get connected(): boolean {
    return this.sock !== null;
  }

  close(): void {
    this.sock?.end();
    this.sock?.destroy();
    this.sock = null;
  }
}
