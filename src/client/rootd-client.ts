/**
 * Typed client of the rootd socket. Each request goes on a connection of its own, as the
 * Python client's did, so a daemon that closes after every answer (the Python rootd) serves it
 * as well as ours, and a connection that ends without an answer tells what became of the one
 * request on it: not written whole (EPIPE), or left unread in the daemon's socket when it
 * closed (the kernel then resets the connection: ECONNRESET), and the daemon never received
 * it, so it is sent again on a new connection; written whole and the connection closed
 * cleanly, and the daemon may have read it and started it, so it is reported `interrupted`
 * and never sent again (an action may not be safe to run twice).
 */
import net from 'node:net';
import { abortableSleep } from '../common/backoff.ts';
import { LineFramer } from '../protocol/framing.ts';
import { ErrorCodes, TuxsecError, type ErrorCode } from '../protocol/errors.ts';
import { isPlainObject } from '../protocol/json.ts';
import {
  DEFAULT_MAX_MESSAGE_BYTES,
  DEFAULT_SOCKET,
  type ModuleInfo,
  type OperationInfo,
  type Response,
} from '../protocol/messages.ts';

/** Connections open at once; more requests wait for one (rootd allows 32 per user by default). */
const MAX_CONNECTIONS = 16;
/** Sends of a request the daemon never received, before giving up. */
const MAX_SENDS = 3;
/**
 * How often a wait for an operation asks for its status: soon at first (a short operation ends
 * without waiting half a second for nothing), then twice a second: often enough for progress,
 * rarely enough to cost nothing.
 */
const OPERATION_POLL_FIRST_MS = 25;
const OPERATION_POLL_MS = 500;

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

/** What became of a request on one connection. */
type Outcome = { answer: Response } | { error: TuxsecError } | { unsent: string } | { interrupted: true };

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
  /** Connections open or being opened, and the requests waiting for one to close. */
  private active = 0;
  private readonly waiting: Array<() => void> = [];
  /** Requests in progress, aborted by close(). */
  private readonly inflight = new Set<AbortController>();
  private seq = 0;
  private readonly prefix = `${process.pid.toString(36)}-${Date.now().toString(36)}-`;

  constructor(opts: RootdClientOptions = {}) {
    this.socketPath = opts.socketPath ?? DEFAULT_SOCKET;
    this.timeoutMs = opts.timeoutMs ?? 70_000;
    this.maxBytes = opts.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES * 16;
  }

  private acquire(signal: AbortSignal): Promise<void> {
    if (signal.aborted) return Promise.reject(signal.reason as Error);
    if (this.active < MAX_CONNECTIONS) {
      this.active++;
      return Promise.resolve();
    }
    return new Promise((resolve, reject) => {
      const grant = () => {
        signal.removeEventListener('abort', onAbort);
        resolve();
      };
      const onAbort = () => {
        const i = this.waiting.indexOf(grant);
        if (i >= 0) this.waiting.splice(i, 1);
        reject(signal.reason as Error);
      };
      this.waiting.push(grant);
      signal.addEventListener('abort', onAbort, { once: true });
    });
  }

  private release(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.active--;
  }

  /** Sends one request line on a new connection (holding a slot until it closes). */
  private exchange(line: string, id: string, signal: AbortSignal): Promise<Outcome> {
    return new Promise((resolve) => {
      const s = net.createConnection(this.socketPath);
      let connected = false;
      // 'pending' at close would be a write whose fate is unknown: treated as received.
      let write: 'none' | 'pending' | 'ok' | 'failed' = 'none';
      let lastErr: NodeJS.ErrnoException | null = null;
      let settled = false;
      const settle = (o: Outcome) => {
        if (!settled) {
          settled = true;
          resolve(o);
        }
        s.destroy();
      };
      const onAbort = () => settle({ error: signal.reason as TuxsecError });
      signal.addEventListener('abort', onAbort, { once: true });
      const framer = new LineFramer(this.maxBytes, {
        line: (l) => {
          let parsed: unknown;
          try {
            parsed = JSON.parse(l.toString('utf8'));
          } catch {
            return;
          }
          // Whatever is at the socket path may send any JSON: only an answer's shape is read.
          if (!isPlainObject(parsed) || typeof parsed.type !== 'string' || !isPlainObject(parsed.data)) return;
          const res = parsed as unknown as Response;
          if (res.request_id === id) settle({ answer: res });
          // A connection-level refusal (not allowed, too many connections) names no request.
          else if (res.type === 'error' && res.request_id === 'unknown') settle({ error: responseError(res) });
        },
        overflow: () => settle({ error: new TuxsecError(ErrorCodes.invalidRequest, 'rootd sent a line over the size limit') }),
      });
      s.on('data', (c: Buffer) => framer.push(c));
      s.once('connect', () => {
        connected = true;
        write = 'pending';
        s.write(line, (e) => {
          write = e ? 'failed' : 'ok';
        });
      });
      s.on('error', (e: NodeJS.ErrnoException) => {
        lastErr = e;
      });
      s.once('close', () => {
        signal.removeEventListener('abort', onAbort);
        this.release();
        const err = lastErr as NodeJS.ErrnoException | null;
        if (!connected) settle({ error: connectError(this.socketPath, err ?? Object.assign(new Error('connection closed'), { code: 'ECONNRESET' })) });
        else if (write === 'failed' || err?.code === 'ECONNRESET') settle({ unsent: err?.message ?? 'connection closed' });
        else settle({ interrupted: true });
      });
    });
  }

  /** Sends one request; resolves with the success `data`, rejects with a TuxsecError. */
  async request(type: string, data: Record<string, unknown> = {}, timeoutMs = this.timeoutMs): Promise<Record<string, unknown>> {
    const id = this.prefix + (++this.seq).toString(36);
    const line = JSON.stringify({ type, request_id: id, data }) + '\n';
    const ac = new AbortController();
    this.inflight.add(ac);
    const timer = setTimeout(() => ac.abort(new TuxsecError(ErrorCodes.timeout, `tuxsec-rootd did not answer ${type} within ${timeoutMs} ms`)), timeoutMs);
    try {
      for (let sends = 1; ; sends++) {
        await this.acquire(ac.signal);
        const o = await this.exchange(line, id, ac.signal);
        if ('answer' in o) {
          if (o.answer.type === 'success') return o.answer.data;
          throw responseError(o.answer);
        }
        if ('error' in o) throw o.error;
        if ('interrupted' in o) {
          throw new TuxsecError(
            ErrorCodes.interrupted,
            `tuxsec-rootd closed the connection after ${type} was sent and before it answered: it may have run, so it was not sent again`,
          );
        }
        if (sends >= MAX_SENDS) {
          throw new TuxsecError(ErrorCodes.rootdUnavailable, `cannot send ${type} to tuxsec-rootd at ${this.socketPath}: the connection closed before the request reached it, ${sends} times (${o.unsent})`);
        }
      }
    } finally {
      clearTimeout(timer);
      this.inflight.delete(ac);
    }
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

  /**
   * Runs a module action; resolves with the action's data. A long-running one is waited for
   * (its own timeout bounds it, rootd side), so callers see its final result like any other's.
   */
  async execute(module: string, action: string, parameters: Record<string, unknown> = {}, opts: ExecuteOptions = {}): Promise<unknown> {
    const r = await this.start(module, action, parameters, opts);
    return 'data' in r ? r.data : this.waitForOperation(r.operation);
  }

  /**
   * Waits for an operation to finish, asking for its status after 25 ms, then ever less often
   * down to twice a second (`onProgress` sees each); gives its data, or rejects with its error, as execute does for an ordinary action.
   */
  async waitForOperation(op: OperationInfo, onProgress?: (info: OperationInfo) => void): Promise<unknown> {
    let info = op;
    let pause = OPERATION_POLL_FIRST_MS;
    while (info.state === 'running') {
      onProgress?.(info);
      // close() ends the wait as it ends a request.
      const ac = new AbortController();
      this.inflight.add(ac);
      await abortableSleep(pause, ac.signal);
      pause = Math.min(OPERATION_POLL_MS, pause * 2);
      this.inflight.delete(ac);
      if (ac.signal.aborted) throw ac.signal.reason as Error;
      info = await this.operationStatus(info.id);
    }
    return this.operationResult(info.id);
  }

  /**
   * Runs a module action, or starts it when it is long-running: gives the action's data, or the
   * operation now running in the background (follow it with operationStatus / operationResult).
   */
  async start(module: string, action: string, parameters: Record<string, unknown> = {}, opts: ExecuteOptions = {}): Promise<{ data: unknown } | { operation: OperationInfo }> {
    // `coerce` goes on the wire only when asked for, so the request stays the Python client's.
    const data = opts.coerce ? { module, action, parameters, coerce: true } : { module, action, parameters };
    const res = await this.request('execute_command', data, opts.timeoutMs);
    return isPlainObject(res.operation) ? { operation: res.operation as unknown as OperationInfo } : { data: res.data };
  }

  async operationStatus(id: string): Promise<OperationInfo> {
    return (await this.request('operation_status', { operation_id: id })).operation as OperationInfo;
  }

  /** The data of a succeeded operation; rejects with its error, or `operation-running`. */
  async operationResult(id: string): Promise<unknown> {
    return (await this.request('operation_result', { operation_id: id })).data;
  }

  /** Cancels an operation; gives its status once it stopped (or after rootd's short wait). */
  async operationCancel(id: string): Promise<OperationInfo> {
    return (await this.request('operation_cancel', { operation_id: id })).operation as OperationInfo;
  }

  /** The operations this user may see (root: all). */
  async operations(): Promise<OperationInfo[]> {
    return (await this.request('operation_list')).operations as OperationInfo[];
  }

  /** Ends every request in progress with `rootd-unavailable`; later requests connect again. */
  close(): void {
    for (const ac of this.inflight) ac.abort(new TuxsecError(ErrorCodes.rootdUnavailable, 'connection to tuxsec-rootd closed by the client'));
  }
}
