/**
 * Turns one request line into one response line. Never throws: every failure
 * becomes an error response in the compatible shape with a stable code.
 */
import { ErrorCodes, TuxsecError, isTuxsecError, type ErrorCode } from '../protocol/errors.ts';
import { findPoisonKey, isPlainObject, nestingDepth } from '../protocol/json.ts';
import { ACTION_NAME_RE, MODULE_NAME_RE } from '../protocol/messages.ts';
import type { ActionContext, Logger, PeerIdentity } from '../sdk/action.ts';
import { quote } from '../sdk/schema.ts';
import type { AuditLog, AuditRecord } from './audit.ts';
import { redact } from './audit.ts';
import type { ModuleRegistry } from './registry.ts';
import type { RateLimiter } from './rate-limit.ts';

export interface DispatcherLimits {
  maxDepth: number;
  requestTimeoutMs: number;
}

export interface DispatcherDeps {
  registry: ModuleRegistry;
  log: Logger;
  audit: AuditLog;
  limiter: RateLimiter;
  limits: () => DispatcherLimits;
  /** Aborted when the daemon stops: in-flight actions see it through ctx.signal. */
  stopping: AbortSignal;
}

/** An AbortController made only when someone asks for its signal (they cost a few µs each). */
class LazyAbort {
  private ac: AbortController | null = null;
  private reason: unknown = undefined;
  private aborted = false;

  get signal(): AbortSignal {
    if (!this.ac) {
      this.ac = new AbortController();
      if (this.aborted) this.ac.abort(this.reason);
    }
    return this.ac.signal;
  }

  abort(reason: unknown): void {
    if (this.aborted) return;
    this.aborted = true;
    this.reason = reason;
    this.ac?.abort(reason);
  }
}

type Handler = (data: Record<string, unknown>, ctx: ActionContext, rec: AuditRecord) => Promise<Record<string, unknown>>;

function errorLine(requestId: string, code: ErrorCode, message: string, extra?: Record<string, unknown>): string {
  return JSON.stringify({ type: 'error', request_id: requestId, data: { error: message, code, ...extra } }) + '\n';
}

/** A request id safe to echo: a string of bounded length, else "unknown". */
function requestIdOf(msg: Record<string, unknown>): string {
  const id = msg.request_id;
  if (typeof id === 'string' && id.length <= 256) return id;
  if (typeof id === 'number' && Number.isFinite(id)) return String(id);
  return 'unknown';
}

/**
 * The module name of a request, checked against the one pattern registered names follow,
 * before it is looked up, logged or audited: a name of a million characters is refused, quoted short.
 */
function moduleNameOf(m: unknown): string {
  if (m === undefined || m === null || m === '') throw new TuxsecError(ErrorCodes.invalidRequest, 'Module name is required');
  if (typeof m !== 'string' || !MODULE_NAME_RE.test(m)) {
    throw new TuxsecError(
      ErrorCodes.invalidRequest,
      `cannot run request: invalid module name ${quote(m, 66)}: a lowercase letter, then at most 63 lowercase letters, digits or "_"`,
    );
  }
  return m;
}

function actionNameOf(a: unknown): string {
  if (a === undefined || a === null || a === '') throw new TuxsecError(ErrorCodes.invalidRequest, 'Missing action name');
  if (typeof a !== 'string' || !ACTION_NAME_RE.test(a)) {
    throw new TuxsecError(
      ErrorCodes.invalidRequest,
      `cannot run request: invalid action name ${quote(a, 66)}: a letter or "_", then at most 63 letters, digits or "_"`,
    );
  }
  return a;
}

export interface Dispatcher {
  /**
   * Handles one request line from `peer`; gives the response line (newline included),
   * synchronously for stateless requests.
   */
  handle(line: Buffer, peer: PeerIdentity): string | Promise<string>;
}

interface DispatcherImpl extends Dispatcher {
  slow(msg: Record<string, unknown>, type: unknown, requestId: string, rec: AuditRecord, peer: PeerIdentity, started: number, limits: DispatcherLimits): Promise<string>;
}

export function createDispatcher(deps: DispatcherDeps): Dispatcher {
  const impl: DispatcherImpl = build(deps);
  return { handle: (line, peer) => impl.handle(line, peer) };
}

function build(deps: DispatcherDeps): DispatcherImpl {
  const { registry, audit } = deps;

  const PONG = JSON.stringify({ pong: true });
  const listModules = (): string =>
    JSON.stringify({
      modules: registry.available(),
      // Extension: why the others are not available.
      unavailable: registry
        .statuses()
        .filter((s) => s.state !== 'available')
        .map((s) => ({ name: s.name, state: s.state, reason: s.reason })),
    });

  const handlers = new Map<string, Handler>([
    [
      'module_info',
      async (data, _ctx, rec) => {
        const m = moduleNameOf(data.module);
        rec.module = m;
        return { module_info: registry.info(m) };
      },
    ],
    [
      'system_info',
      async (_data, ctx, rec) => {
        rec.module = 'systeminfo';
        rec.action = 'get_info';
        const info = await registry.execute('systeminfo', 'get_info', {}, ctx);
        return { success: true, data: info };
      },
    ],
    [
      'execute_command',
      async (data, ctx, rec) => {
        const module = moduleNameOf(data.module);
        const action = actionNameOf(data.action);
        const parameters = data.parameters ?? {};
        rec.module = module;
        rec.action = action;
        rec.parameters = redact(parameters);
        if (!isPlainObject(parameters)) throw new TuxsecError(ErrorCodes.invalidParams, `${module} ${action}: parameters must be an object`);
        // Extension: `coerce: true` asks for string-typed CLI values to be converted to the declared types.
        const result = await registry.execute(module, action, parameters, ctx, data.coerce === true);
        return { success: true, data: result };
      },
    ],
  ]);

  /** Runs a handler against the request timeout; aborts the action's signal when it fires. */
  function run(handler: Handler, data: Record<string, unknown>, ctx: ActionContext, rec: AuditRecord, timeoutMs: number, ac: LazyAbort) {
    return new Promise<Record<string, unknown>>((resolve, reject) => {
      const timer = setTimeout(() => {
        const e = new TuxsecError(ErrorCodes.timeout, `request did not finish within ${timeoutMs / 1000} s`);
        ac.abort(e);
        reject(e);
      }, timeoutMs);
      handler(data, ctx, rec).then(
        (v) => {
          clearTimeout(timer);
          resolve(v);
        },
        (e) => {
          clearTimeout(timer);
          reject(e);
        },
      );
    });
  }

  // In-flight actions see the daemon stopping through their own signal; one listener
  // on the stop signal serves them all.
  const inflight = new Set<LazyAbort>();
  deps.stopping.addEventListener(
    'abort',
    () => {
      for (const ac of inflight) ac.abort(new TuxsecError(ErrorCodes.shuttingDown, 'tuxsec-rootd is stopping'));
    },
    { once: true },
  );

  const record = (peer: PeerIdentity, requestId: string, type: unknown): AuditRecord => {
    const rec: AuditRecord = {
      time: new Date().toISOString(),
      uid: peer.uid,
      pid: peer.pid,
      request_id: requestId,
      // Never String() a hostile value: {"toString": 0} would throw.
      type: typeof type === 'string' ? type.slice(0, 64) : `(${type === null ? 'null' : typeof type})`,
      outcome: 'success',
      duration_ms: 0,
    };
    if (peer.user) rec.user = peer.user;
    return rec;
  };

  /** The rate-limited answer; the first refusal of a run is audited, the rest counted (onRefusalsEnded). */
  const limited = (peer: PeerIdentity, requestId: string, type: unknown): string => {
    const rec = record(peer, requestId, type);
    const out = deny(requestId, rec, new TuxsecError(ErrorCodes.rateLimited, `too many requests from uid ${peer.uid}; retry later`), type);
    if (deps.limiter.refusedInARow(peer.uid) === 1) audit.write(rec);
    return out;
  };

  deps.limiter.onRefusalsEnded = (uid, n) => {
    if (n < 2) return;
    audit.write({
      time: new Date().toISOString(),
      uid,
      pid: -1,
      request_id: 'unknown',
      type: 'rate-limited',
      outcome: 'denied',
      code: ErrorCodes.rateLimited,
      error: `${n} requests from uid ${uid} refused in a row by the rate limit; only the first was audited`,
      count: n,
      duration_ms: 0,
    });
  };

  const deny = (requestId: string, rec: AuditRecord, e: TuxsecError, type: unknown): string => {
    rec.outcome = e.code === ErrorCodes.permissionDenied ? 'denied' : 'error';
    rec.code = e.code;
    rec.error = e.message.slice(0, 512);
    const extra: Record<string, unknown> = {};
    if (type === 'execute_command' || type === 'system_info') extra.success = false;
    if (e.details) extra.details = e.details;
    return errorLine(requestId, e.code, e.message, extra);
  };

  return {
    handle(line, peer) {
      const started = performance.now();
      const limits = deps.limits();
      // Every line costs a token, refused or not: refusals cost parsing and audit records too.
      const allowed = deps.limiter.take(peer.uid);
      const early = (code: ErrorCode, message: string) => (allowed ? errorLine('unknown', code, message) : limited(peer, 'unknown', undefined));
      if (nestingDepth(line, limits.maxDepth) > limits.maxDepth) {
        return early(ErrorCodes.invalidRequest, `Invalid message: nesting deeper than ${limits.maxDepth} levels`);
      }
      let msg: unknown;
      try {
        msg = JSON.parse(line.toString('utf8'));
      } catch {
        return early(ErrorCodes.invalidJson, 'Invalid JSON');
      }
      if (!isPlainObject(msg)) return early(ErrorCodes.invalidRequest, 'Invalid message: not a JSON object');
      const requestId = requestIdOf(msg);
      const type = msg.type;
      if (!allowed) return limited(peer, requestId, type);
      // Fast path: stateless requests answer synchronously and are not audited on success.
      if ((type === 'ping' || type === 'list_modules') && !deps.stopping.aborted && findPoisonKey(msg) === null) {
        const data = type === 'ping' ? PONG : listModules();
        return `{"type":"success","request_id":${JSON.stringify(requestId)},"data":${data}}\n`;
      }
      return this.slow(msg, type, requestId, record(peer, requestId, type), peer, started, limits);
    },

    async slow(msg: Record<string, unknown>, type: unknown, requestId: string, rec: AuditRecord, peer: PeerIdentity, started: number, limits: DispatcherLimits): Promise<string> {
      const ac = new LazyAbort();
      inflight.add(ac);
      let out: string;
      try {
        if (deps.stopping.aborted) throw new TuxsecError(ErrorCodes.shuttingDown, 'tuxsec-rootd is stopping');
        const poison = findPoisonKey(msg);
        if (poison !== null) throw new TuxsecError(ErrorCodes.invalidRequest, `Invalid message: forbidden key "${poison}"`);
        const data = msg.data ?? {};
        if (!isPlainObject(data)) throw new TuxsecError(ErrorCodes.invalidRequest, 'Invalid message: data must be an object');
        if (typeof type !== 'string') throw new TuxsecError(ErrorCodes.invalidRequest, 'Invalid message: missing type');
        const handler = handlers.get(type);
        if (!handler) throw new TuxsecError(ErrorCodes.unknownType, `Unknown message type: ${type.slice(0, 64)}`);
        const ctx: ActionContext = {
          peer,
          // Most actions never look at their signal; create it only for those that do.
          get signal() {
            return ac.signal;
          },
          log: deps.log,
          requestId,
        };
        const result = await run(handler, data, ctx, rec, limits.requestTimeoutMs, ac);
        out = JSON.stringify({ type: 'success', request_id: requestId, data: result }) + '\n';
      } catch (err) {
        const e = isTuxsecError(err)
          ? err
          : new TuxsecError(ErrorCodes.internal, `internal error: ${err instanceof Error ? err.message : String(err)}`);
        if (!isTuxsecError(err)) deps.log.error({ err: err instanceof Error ? err.stack : String(err), request_id: requestId }, 'request failed');
        out = deny(requestId, rec, e, type);
      } finally {
        inflight.delete(ac);
      }
      rec.duration_ms = Math.round((performance.now() - started) * 1000) / 1000;
      audit.write(rec);
      return out;
    },
  };
}
