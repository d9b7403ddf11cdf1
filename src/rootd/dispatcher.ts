/**
 * Turns one request line into one response line. Never throws: every failure
 * becomes an error response in the compatible shape with a stable code.
 *
 * The request types are data (REQUEST_TABLE): what their data must hold, who may send
 * them, and what answers them. One lookup finds the row, one serializer writes the line.
 */
import { ErrorCodes, TuxsecError, isTuxsecError, type ErrorCode } from '../protocol/errors.ts';
import { findPoisonKey, isPlainObject, nestingDepth } from '../protocol/json.ts';
import {
  ACTION_NAME_RE,
  MODULE_NAME_RE,
  OPERATION_ID_RE,
  responseLine,
  type OperationInfo,
  type OperationStarted,
  type RequestId,
  type RequestType,
} from '../protocol/messages.ts';
import type { ActionContext, Logger, PeerIdentity } from '../sdk/action.ts';
import { quote } from '../sdk/schema.ts';
import type { AuditLog, AuditRecord } from './audit.ts';
import { redact } from './audit.ts';
import type { ModuleRegistry } from './registry.ts';
import type { RateLimiter } from '../common/rate-limit.ts';
import { OPERATION_DEFAULTS, Operations } from './operations.ts';

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
  /** Long-running operations; without it, they are kept in memory only, with default limits. */
  operations?: Operations;
}

export interface Dispatcher {
  /**
   * Handles one request line from `peer`; gives the response line (newline included),
   * synchronously for stateless requests and for refusals.
   */
  handle(line: Buffer, peer: PeerIdentity): string | Promise<string>;
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

/** A request id safe to echo: a string of bounded length or a finite number, as sent; else "unknown". */
function requestIdOf(msg: Record<string, unknown>): RequestId {
  const id = msg.request_id;
  if (typeof id === 'string' && id.length <= 256) return id;
  if (typeof id === 'number' && Number.isFinite(id)) return id;
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

function operationIdOf(id: unknown): string {
  if (id === undefined || id === null || id === '') throw new TuxsecError(ErrorCodes.invalidRequest, 'cannot find operation: operation_id is required');
  if (typeof id !== 'string' || !OPERATION_ID_RE.test(id)) {
    throw new TuxsecError(ErrorCodes.invalidRequest, `cannot find operation: invalid operation_id ${quote(id, 40)}: "op-" and 32 hexadecimal digits`);
  }
  return id;
}

/** What handlers reach. */
interface Services {
  registry: ModuleRegistry;
  operations: Operations;
  log: Logger;
}

/** The operation `id` if `peer` may see it and may still run its action. */
function visibleOperation({ registry, operations }: Services, peer: PeerIdentity, id: string) {
  return operations.find(peer, id, (module, action, access) => registry.authorize(peer, module, action, access));
}

/** execute_command's answer for a long-running action: readable by a client that knows nothing of operations. */
function startedAnswer(info: OperationInfo): OperationStarted {
  return {
    success: true,
    data: {
      operation_id: info.id,
      state: 'running',
      message:
        `${info.module} ${info.action} is long-running: it was started as operation ${info.id} and runs in the background; ` +
        `follow it with operation_status and operation_result (tuxsec-cli operation status ${info.id})`,
    },
    operation: info,
  };
}

/** One request type of the socket protocol (INTEROP section 1). */
type RequestTypeDef<D> = {
  type: RequestType;
  /**
   * Checks the request's data object and gives what the handler needs; throws invalid-request
   * naming what is wrong. `rec` is the request's audit record, filled in as names are known.
   */
  schema(data: Record<string, unknown>, rec: AuditRecord | null): D;
  /**
   * Who may send it: `peer`, any peer the socket admitted; `action`, a peer the access policy
   * lets run the module action it names (checked by the registry before the module runs);
   * `operation`, the uid that started the operation it names, or root, while the access policy
   * still lets it run the operation's action.
   */
  access: 'peer' | 'action' | 'operation';
  /** Errors of this type carry `success: false`, as the Python rootd answered them. */
  failureHasSuccess?: boolean;
} & (
  | {
      /** Answered at once, changes nothing, audited only when refused. */
      mode: 'sync';
      handler(s: Services, data: D, peer: PeerIdentity): Record<string, unknown>;
    }
  | {
      /** Runs under the request timeout, sees the daemon stopping through ctx.signal; always audited. */
      mode: 'async';
      handler(s: Services, data: D, ctx: ActionContext): Promise<Record<string, unknown>>;
    }
);

const none = (): null => null;

/** Declares a row; the identity function exists to infer the handler's data type from its schema. */
const row = <D>(def: RequestTypeDef<D>): RequestTypeDef<D> => def;

const PONG = Object.freeze({ pong: true });

const REQUEST_TABLE: ReadonlyMap<string, RequestTypeDef<unknown>> = new Map(
  ([
    row({ type: 'ping', schema: none, access: 'peer', mode: 'sync', handler: () => PONG }),
    row({
      type: 'list_modules',
      schema: none,
      access: 'peer',
      mode: 'sync',
      handler: ({ registry }) => ({
        modules: registry.available(),
        // Extension: why the others are not available.
        unavailable: registry
          .statuses()
          .filter((s) => s.state !== 'available')
          .map((s) => ({ name: s.name, state: s.state, reason: s.reason })),
      }),
    }),
    row({
      type: 'module_info',
      schema: (data, rec) => {
        const module = moduleNameOf(data.module);
        if (rec) rec.module = module;
        return module;
      },
      access: 'peer',
      mode: 'async',
      handler: async ({ registry }, module) => ({ module_info: registry.info(module) }),
    }),
    row({
      type: 'system_info',
      schema: (_data, rec) => {
        if (rec) {
          rec.module = 'systeminfo';
          rec.action = 'get_info';
        }
        return null;
      },
      access: 'action',
      mode: 'async',
      failureHasSuccess: true,
      handler: async ({ registry }, _d, ctx) => ({ success: true, data: await registry.execute('systeminfo', 'get_info', {}, ctx) }),
    }),
    row({
      type: 'execute_command',
      schema: (data, rec) => {
        const module = moduleNameOf(data.module);
        const action = actionNameOf(data.action);
        const parameters = data.parameters ?? {};
        if (rec) {
          rec.module = module;
          rec.action = action;
          rec.parameters = redact(parameters);
        }
        if (!isPlainObject(parameters)) throw new TuxsecError(ErrorCodes.invalidParams, `${module} ${action}: parameters must be an object`);
        // Extension: `coerce: true` asks for string-typed CLI values to be converted to the declared types.
        return { module, action, parameters, coerce: data.coerce === true };
      },
      access: 'action',
      mode: 'async',
      failureHasSuccess: true,
      handler: async (s, d, ctx) => {
        const prepared = s.registry.prepare(d.module, d.action, d.parameters, ctx.peer, d.coerce);
        if (prepared.operationTimeout === null) return { success: true, data: await prepared.run(ctx) };
        const info = s.operations.start(ctx.peer, { ...prepared, timeoutSeconds: prepared.operationTimeout }, s.log);
        return startedAnswer(info) as unknown as Record<string, unknown>;
      },
    }),
    row({
      type: 'operation_status',
      schema: (data) => operationIdOf(data.operation_id),
      access: 'operation',
      mode: 'sync',
      handler: (s, id, peer) => ({ operation: s.operations.status(visibleOperation(s, peer, id)) }),
    }),
    row({
      type: 'operation_result',
      schema: (data) => operationIdOf(data.operation_id),
      access: 'operation',
      mode: 'async',
      failureHasSuccess: true,
      handler: async (s, id, ctx) => {
        const op = visibleOperation(s, ctx.peer, id);
        return { success: true, data: s.operations.result(op), operation: s.operations.status(op) };
      },
    }),
    row({
      type: 'operation_cancel',
      schema: (data) => operationIdOf(data.operation_id),
      access: 'operation',
      mode: 'async',
      handler: async (s, id, ctx) => ({ operation: await s.operations.cancel(visibleOperation(s, ctx.peer, id), ctx.peer) }),
    }),
    row({
      type: 'operation_list',
      schema: none,
      access: 'peer',
      mode: 'sync',
      handler: (s, _d, peer) => ({ operations: s.operations.list(peer) }),
    }),
  ] as RequestTypeDef<unknown>[]).map((d) => [d.type, d]),
);

/** The request types rootd answers, with who may send each (tests walk it). */
export function requestTypes(): Array<{ type: RequestType; access: 'peer' | 'action' | 'operation' }> {
  return [...REQUEST_TABLE.values()].map((d) => ({ type: d.type, access: d.access }));
}

export function createDispatcher(deps: DispatcherDeps): Dispatcher {
  return new RequestDispatcher(deps);
}

class RequestDispatcher implements Dispatcher {
  /** In-flight actions see the daemon stopping through their own signal; one listener serves them all. */
  private readonly inflight = new Set<LazyAbort>();
  private readonly services: Services;

  constructor(private readonly deps: DispatcherDeps) {
    const operations =
      deps.operations ??
      new Operations({ file: null, log: deps.log, audit: deps.audit, limits: () => ({ ...OPERATION_DEFAULTS, resultTtlMs: OPERATION_DEFAULTS.resultTtlSeconds * 1000 }),
      });
    this.services = { registry: deps.registry, operations, log: deps.log };
    deps.stopping.addEventListener(
      'abort',
      () => {
        for (const ac of this.inflight) ac.abort(new TuxsecError(ErrorCodes.shuttingDown, 'tuxsec-rootd is stopping'));
      },
      { once: true },
    );
    deps.limiter.onRefusalsEnded = (uid, n) => {
      if (n < 2) return;
      deps.audit.write({
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
  }

  handle(line: Buffer, peer: PeerIdentity): string | Promise<string> {
    const started = performance.now();
    const limits = this.deps.limits();
    // Every line costs a token, refused or not: refusals cost parsing and audit records too.
    const allowed = this.deps.limiter.take(peer.uid);
    const early = (code: ErrorCode, message: string) =>
      allowed ? responseLine({ type: 'error', request_id: 'unknown', data: { error: message, code } }) : this.limited(peer, 'unknown', undefined);
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
    if (!allowed) return this.limited(peer, requestId, type);

    const def = typeof type === 'string' ? REQUEST_TABLE.get(type) : undefined;
    // Stateless requests are not audited on success: their record is made only when one is refused.
    let rec = def?.mode === 'sync' ? null : this.record(peer, requestId, type);
    try {
      if (this.deps.stopping.aborted) throw new TuxsecError(ErrorCodes.shuttingDown, 'tuxsec-rootd is stopping');
      const poison = findPoisonKey(msg);
      if (poison !== null) throw new TuxsecError(ErrorCodes.invalidRequest, `Invalid message: forbidden key "${poison}"`);
      const raw = msg.data ?? {};
      if (!isPlainObject(raw)) throw new TuxsecError(ErrorCodes.invalidRequest, 'Invalid message: data must be an object');
      if (typeof type !== 'string') throw new TuxsecError(ErrorCodes.invalidRequest, 'Invalid message: missing type');
      if (!def) throw new TuxsecError(ErrorCodes.unknownType, `Unknown message type: ${type.slice(0, 64)}`);
      const data: unknown = def.schema(raw, rec);
      if (def.mode === 'sync') return responseLine({ type: 'success', request_id: requestId, data: def.handler(this.services, data, peer) });
      return this.run(def, data, peer, requestId, rec!, started, limits.requestTimeoutMs);
    } catch (err) {
      rec ??= this.record(peer, requestId, type);
      return this.finish(rec, started, this.failure(requestId, rec, err, def));
    }
  }

  /** Runs an async handler against the request timeout; aborts the action's signal when it fires. */
  private async run(
    def: Extract<RequestTypeDef<unknown>, { mode: 'async' }>,
    data: unknown,
    peer: PeerIdentity,
    requestId: RequestId,
    rec: AuditRecord,
    started: number,
    timeoutMs: number,
  ): Promise<string> {
    const ac = new LazyAbort();
    this.inflight.add(ac);
    const ctx: ActionContext = {
      peer,
      // Most actions never look at their signal; create it only for those that do.
      get signal() {
        return ac.signal;
      },
      log: this.deps.log,
      requestId: String(requestId),
      progress: () => {},
    };
    let timer: NodeJS.Timeout | undefined;
    let out: string;
    try {
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          const e = new TuxsecError(ErrorCodes.timeout, `request did not finish within ${timeoutMs / 1000} s`);
          ac.abort(e);
          reject(e);
        }, timeoutMs);
      });
      out = responseLine({ type: 'success', request_id: requestId, data: await Promise.race([def.handler(this.services, data, ctx), timeout]) });
    } catch (err) {
      out = this.failure(requestId, rec, err, def);
    } finally {
      clearTimeout(timer);
      this.inflight.delete(ac);
    }
    return this.finish(rec, started, out);
  }

  /** Audits a finished request; gives its answer. */
  private finish(rec: AuditRecord, started: number, out: string): string {
    rec.duration_ms = Math.round((performance.now() - started) * 1000) / 1000;
    this.deps.audit.write(rec);
    return out;
  }

  private record(peer: PeerIdentity, requestId: RequestId, type: unknown): AuditRecord {
    const rec: AuditRecord = {
      time: new Date().toISOString(),
      uid: peer.uid,
      pid: peer.pid,
      request_id: String(requestId),
      // Never String() a hostile value: {"toString": 0} would throw.
      type: typeof type === 'string' ? type.slice(0, 64) : `(${type === null ? 'null' : typeof type})`,
      outcome: 'success',
      duration_ms: 0,
    };
    if (peer.user) rec.user = peer.user;
    return rec;
  }

  /** The error answer of a request, its audit record marked; an unexpected error is logged with its stack. */
  private failure(requestId: RequestId, rec: AuditRecord, err: unknown, def: RequestTypeDef<unknown> | undefined): string {
    let e: TuxsecError;
    if (isTuxsecError(err)) e = err;
    else {
      this.deps.log.error({ err: err instanceof Error ? err.stack : String(err), request_id: requestId }, 'request failed');
      e = new TuxsecError(ErrorCodes.internal, `internal error: ${err instanceof Error ? err.message : String(err)}`);
    }
    rec.outcome = e.code === ErrorCodes.permissionDenied ? 'denied' : 'error';
    rec.code = e.code;
    rec.error = e.message.slice(0, 512);
    return responseLine({
      type: 'error',
      request_id: requestId,
      data: { error: e.message, code: e.code, ...(def?.failureHasSuccess ? { success: false as const } : {}), ...(e.details ? { details: e.details } : {}) },
    });
  }

  /** The rate-limited answer; the first refusal of a run is audited, the rest counted (onRefusalsEnded). */
  private limited(peer: PeerIdentity, requestId: RequestId, type: unknown): string {
    const rec = this.record(peer, requestId, type);
    const def = typeof type === 'string' ? REQUEST_TABLE.get(type) : undefined;
    const out = this.failure(requestId, rec, new TuxsecError(ErrorCodes.rateLimited, `too many requests from uid ${peer.uid}; retry later`), def);
    if (this.deps.limiter.refusedInARow(peer.uid) === 1) this.deps.audit.write(rec);
    return out;
  }
}
