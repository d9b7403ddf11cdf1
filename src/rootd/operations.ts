/**
 * Long-running operations: an action that declares itself long-running is started here and
 * answered at once with an operation id. It runs in the background, off the request timeout and
 * off the scheduler's slots, under its own timeout and limits; its caller (or root) follows it
 * with operation_status / operation_result / operation_cancel / operation_list. Every start and
 * end is recorded in operations_file, so a rootd that restarts, or comes back after a crash,
 * reports the operations it lost as `interrupted` instead of forgetting them.
 */
import { randomBytes } from 'node:crypto';
import { ErrorCodes, TuxsecError, isTuxsecError } from '../protocol/errors.ts';
import { OPERATION_ID_RE, type AccessClass, type OperationInfo, type OperationState } from '../protocol/messages.ts';
import type { ActionContext, Logger, PeerIdentity } from '../sdk/action.ts';
import { quote } from '../sdk/schema.ts';
import { readFileSafe, writeFileAtomicSafe } from '../os/secure-files.ts';
import type { AuditLog } from './audit.ts';
import { UidCounts } from './uid-counts.ts';

export interface OperationLimits {
  /** Operations running at once, all callers but root together. */
  maxRunning: number;
  /** Operations one uid may have running at once; root is not limited. */
  maxRunningPerUid: number;
  /** How long a finished operation and its result are kept. */
  resultTtlMs: number;
  /** Bytes (as JSON) of the results one uid's finished operations keep at most; the oldest go first. */
  resultMaxBytesPerUid: number;
}

/** rootd.yaml's defaults of the limits (max_operations, max_operations_per_uid, operation_result_ttl). */
export const OPERATION_DEFAULTS = { maxRunning: 8, maxRunningPerUid: 2, resultTtlSeconds: 3600, resultMaxBytesPerUid: 64 * 1024 * 1024 } as const;

/** Finished operations kept per uid, past which the oldest is forgotten before it expires. */
const MAX_FINISHED_PER_UID = 64;
/** Longest phase kept of what an action reports. */
const MAX_PHASE_CHARS = 200;
/** How long operation_cancel waits for the action to stop before it answers. */
const CANCEL_WAIT_MS = 5000;
/**
 * How long an aborted action (timed out, cancelled, daemon stopping) has to stop before its
 * operation is ended without it: one that ignores its signal must not keep its slot for ever.
 */
export const ABANDON_GRACE_MS = 2000;
/** How long a stopping daemon waits for its operations to stop. */
const STOP_WAIT_MS = 10_000;
/** Largest operations_file read (statuses only: tens of thousands of operations). */
const MAX_FILE_BYTES = 16 * 1024 * 1024;
/** Format version of operations_file. */
const FILE_VERSION = 1;

/** What an operation runs: the action, looked up, allowed and validated already. */
export interface OperationSpec {
  module: string;
  action: string;
  access: AccessClass;
  timeoutSeconds: number;
  run(ctx: ActionContext): Promise<unknown>;
}

interface Operation {
  info: OperationInfo;
  access: AccessClass;
  ac: AbortController | null;
  /** The action's data once it succeeded. */
  result?: unknown;
  /** A result that was lost with the daemon that had it. */
  resultLost?: boolean;
  /** Size of `result` as JSON, counted against the uid's resultMaxBytesPerUid. */
  resultBytes?: number;
  /** Size of a result dropped to keep within resultMaxBytesPerUid. */
  resultDropped?: number;
  /** Resolves when the operation has ended (its action stopped, or was abandoned after its abort). */
  settled: Promise<void>;
  ended?: () => void;
}

export interface OperationsDeps {
  /** Where operations are recorded; null: not recorded. */
  file: string | null;
  log: Logger;
  audit: AuditLog;
  limits: () => OperationLimits;
}

/** Bytes of `data` as JSON (what operation_result sends); an action's data is JSON by contract. */
function jsonBytes(data: unknown): number {
  try {
    return Buffer.byteLength(JSON.stringify(data) ?? 'null');
  } catch {
    return 0;
  }
}

/** The error of an id nobody may see: unknown, expired, or another user's (never told apart). */
function notFound(id: string): TuxsecError {
  return new TuxsecError(ErrorCodes.notFound, `operation ${quote(id, 40)} not found (unknown, expired, or started by another user)`);
}

/** The state an aborted operation ends in, by why it was aborted. */
function abortedState(err: TuxsecError): OperationState {
  if (err.code === ErrorCodes.cancelled) return 'cancelled';
  if (err.code === ErrorCodes.timeout) return 'timed_out';
  return 'interrupted';
}

export class Operations {
  private readonly ops = new Map<string, Operation>();
  private readonly running = new UidCounts();
  private sweeper: NodeJS.Timeout | null = null;
  private persistFailed = false;

  constructor(private readonly deps: OperationsDeps) {}

  /**
   * Reads operations_file: what was running when the daemon that wrote it stopped is
   * `interrupted` now; finished operations keep their state, not their result.
   */
  load(): void {
    const { file, log } = this.deps;
    if (!file) return;
    let raw: string | null;
    try {
      // A link, another owner's or a group-writable file could feed rootd made-up operations.
      raw = readFileSafe(file, MAX_FILE_BYTES);
    } catch (e) {
      log.error({ file, err: (e as Error).message }, 'cannot read operations_file; earlier operations are not reported');
      return;
    }
    if (raw === null) return;
    let list: unknown;
    try {
      list = (JSON.parse(raw) as { operations?: unknown }).operations;
    } catch {
      list = undefined;
    }
    if (!Array.isArray(list)) {
      log.error({ file }, 'cannot read operations_file: not a list of operations; earlier operations are not reported');
      return;
    }
    const now = Date.now();
    let lost = 0;
    for (const item of list as Array<OperationInfo & { access?: AccessClass }>) {
      if (typeof item?.id !== 'string' || !OPERATION_ID_RE.test(item.id) || typeof item.uid !== 'number') continue;
      const { access, ...rest } = item;
      const info: OperationInfo = rest;
      if (info.state === 'running') {
        lost++;
        info.state = 'interrupted';
        info.code = ErrorCodes.interrupted;
        info.error = `operation ${info.id} (${info.module} ${info.action}) was interrupted: tuxsec-rootd stopped while it ran`;
        info.finished_at = new Date(now).toISOString();
        info.expires_at = new Date(now + this.deps.limits().resultTtlMs).toISOString();
        delete info.cancel_requested;
      }
      if (info.expires_at && Date.parse(info.expires_at) <= now) continue;
      // An unknown class is taken as the strictest one a caller could have run.
      const cls: AccessClass = access === 'read' || access === 'write' ? access : 'dangerous';
      this.ops.set(info.id, { info, access: cls, ac: null, resultLost: info.state === 'succeeded', settled: Promise.resolve() });
    }
    if (lost > 0) log.warn({ interrupted: lost }, 'operations that were running when tuxsec-rootd last stopped are reported as interrupted');
    this.persist();
    this.scheduleSweep();
  }

  /** Starts an operation for `peer`; throws rate-limited past the limits. */
  start(peer: PeerIdentity, spec: OperationSpec, log: Logger): OperationInfo {
    this.sweep();
    const limits = this.deps.limits();
    // Root neither counts against max_operations nor is refused by it: users filling the slots must
    // not lock the administrator out of an integrity check or a scan.
    const others = this.running.total - this.running.get(0);
    if (peer.uid !== 0 && others >= limits.maxRunning) {
      throw new TuxsecError(ErrorCodes.rateLimited, `cannot start ${spec.module} ${spec.action}: ${others} operations are running (max_operations ${limits.maxRunning}); retry later`);
    }
    const mine = this.running.get(peer.uid);
    if (peer.uid !== 0 && mine >= limits.maxRunningPerUid) {
      throw new TuxsecError(
        ErrorCodes.rateLimited,
        `cannot start ${spec.module} ${spec.action}: uid ${peer.uid} has ${mine} operations running (max_operations_per_uid ${limits.maxRunningPerUid}); wait for one to finish or cancel it`,
      );
    }
    const id = `op-${randomBytes(16).toString('hex')}`;
    const info: OperationInfo = {
      id,
      module: spec.module,
      action: spec.action,
      uid: peer.uid,
      state: 'running',
      phase: null,
      fraction: null,
      timeout_seconds: spec.timeoutSeconds,
      started_at: new Date().toISOString(),
      finished_at: null,
      expires_at: null,
    };
    const ac = new AbortController();
    const op: Operation = { info, access: spec.access, ac, settled: Promise.resolve() };
    op.settled = new Promise<void>((resolve) => (op.ended = resolve));
    const started = performance.now();
    this.ops.set(id, op);
    this.running.add(peer.uid);
    this.persist();
    const ctx: ActionContext = {
      peer,
      signal: ac.signal,
      log,
      requestId: id,
      progress: (phase, fraction) => {
        if (info.state !== 'running') return;
        info.phase = typeof phase === 'string' ? phase.slice(0, MAX_PHASE_CHARS) : null;
        info.fraction = typeof fraction === 'number' && Number.isFinite(fraction) ? Math.min(1, Math.max(0, fraction)) : null;
      },
    };
    const timer = setTimeout(() => {
      ac.abort(new TuxsecError(ErrorCodes.timeout, `operation ${id} (${spec.module} ${spec.action}) did not finish within ${spec.timeoutSeconds} s`));
    }, spec.timeoutSeconds * 1000);
    // An action that ignores its abort is ended without it after a grace: its slot is freed, and
    // what it returns later is discarded (finish ignores an operation that has ended).
    let abandon: NodeJS.Timeout | undefined;
    ac.signal.addEventListener(
      'abort',
      () => {
        abandon = setTimeout(() => {
          clearTimeout(timer);
          if (info.state !== 'running') return;
          this.deps.log.warn({ operation: id, module: spec.module, action: spec.action, grace_ms: ABANDON_GRACE_MS }, 'operation did not stop when aborted; ended without it, its slot freed');
          this.finish(op, peer, ac.signal.reason, undefined, started);
        }, ABANDON_GRACE_MS);
        abandon.unref();
      },
      { once: true },
    );
    // The action runs on from here; its caller's request is answered with the id.
    void Promise.resolve()
      .then(() => spec.run(ctx))
      .then(
        (data) => this.finish(op, peer, ac.signal.aborted ? ac.signal.reason : null, data, started),
        (err: unknown) => this.finish(op, peer, ac.signal.aborted ? ac.signal.reason : err, undefined, started),
      )
      .finally(() => {
        clearTimeout(timer);
        clearTimeout(abandon);
      });
    this.scheduleSweep();
    return { ...info };
  }

  /**
   * Records how an operation ended. An aborted one ends as its abort says (cancelled, timed
   * out, interrupted) even when the action returned a result after all.
   */
  private finish(op: Operation, peer: PeerIdentity, err: unknown, data: unknown, started: number): void {
    const { info } = op;
    if (info.state !== 'running') {
      // Ended without the action (it ignored its abort): what it returns now is discarded.
      this.deps.log.warn(
        { operation: info.id, module: info.module, action: info.action, state: info.state, outcome: err === null ? 'success' : 'error' },
        'an operation that was ended without its action returned late; its result is discarded',
      );
      return;
    }
    if (err === null) {
      info.state = 'succeeded';
      op.result = data;
      op.resultBytes = jsonBytes(data);
    } else {
      let e: TuxsecError;
      if (isTuxsecError(err)) e = err;
      else {
        this.deps.log.error({ operation: info.id, err: err instanceof Error ? err.stack : String(err) }, 'operation failed');
        e = new TuxsecError(ErrorCodes.internal, `internal error: ${err instanceof Error ? err.message : String(err)}`);
      }
      info.state = op.ac?.signal.aborted ? abortedState(e) : 'failed';
      info.code = e.code;
      info.error = e.message.slice(0, 4096);
    }
    delete info.cancel_requested;
    const now = Date.now();
    info.finished_at = new Date(now).toISOString();
    info.expires_at = new Date(now + this.deps.limits().resultTtlMs).toISOString();
    op.ac = null;
    this.running.remove(info.uid);
    this.deps.audit.write({
      time: info.finished_at,
      uid: peer.uid,
      pid: peer.pid,
      ...(peer.user ? { user: peer.user } : {}),
      request_id: info.id,
      type: 'operation',
      module: info.module,
      action: info.action,
      outcome: info.state === 'succeeded' ? 'success' : 'error',
      ...(info.code ? { code: info.code, error: info.error!.slice(0, 512) } : {}),
      duration_ms: Math.round(performance.now() - started),
    });
    this.trimFinished(info.uid);
    this.trimResultBytes(info.uid);
    this.persist();
    op.ended?.();
  }

  /**
   * The operation `id` if `peer` may see it: its own, or any for root. The access class of its
   * action is checked by `authorize` too (a user moved to read_only_users loses a write one).
   */
  find(peer: PeerIdentity, id: string, authorize: (module: string, action: string, access: AccessClass) => void): Operation {
    this.sweep();
    const op = this.ops.get(id);
    if (!op || (peer.uid !== 0 && op.info.uid !== peer.uid)) throw notFound(id);
    authorize(op.info.module, op.info.action, op.access);
    return op;
  }

  status(op: Operation): OperationInfo {
    return { ...op.info };
  }

  /** The action's data of a succeeded operation; throws its error otherwise, or operation-running. */
  result(op: Operation): unknown {
    const { info } = op;
    if (info.state === 'running') {
      throw new TuxsecError(ErrorCodes.operationRunning, `operation ${info.id} (${info.module} ${info.action}) is still running; ask again when it has finished`, {
        operation: { ...info },
      });
    }
    if (info.state === 'succeeded') {
      if (op.resultLost) {
        throw new TuxsecError(ErrorCodes.interrupted, `operation ${info.id} (${info.module} ${info.action}) succeeded, but its result was lost when tuxsec-rootd restarted`, {
          operation: { ...info },
        });
      }
      if (op.resultDropped !== undefined) {
        throw new TuxsecError(
          ErrorCodes.notFound,
          `operation ${info.id} (${info.module} ${info.action}) succeeded, but its result (${op.resultDropped} bytes) was dropped to keep uid ${info.uid}'s kept results within operation_result_max_bytes ${this.deps.limits().resultMaxBytesPerUid}`,
          { operation: { ...info } },
        );
      }
      return op.result;
    }
    throw new TuxsecError(info.code ?? ErrorCodes.actionFailed, info.error ?? `operation ${info.id} ${info.state}`, { operation: { ...info } });
  }

  /** Aborts a running operation's action and waits a moment for it to stop; a finished one is left as it is. */
  async cancel(op: Operation, peer: PeerIdentity): Promise<OperationInfo> {
    const { info, ac } = op;
    if (info.state === 'running' && ac && !ac.signal.aborted) {
      info.cancel_requested = true;
      ac.abort(new TuxsecError(ErrorCodes.cancelled, `operation ${info.id} (${info.module} ${info.action}) was cancelled by uid ${peer.uid}`));
    }
    let t: NodeJS.Timeout | undefined;
    await Promise.race([op.settled, new Promise((r) => (t = setTimeout(r, CANCEL_WAIT_MS)))]).finally(() => clearTimeout(t));
    return { ...info };
  }

  /** The operations `peer` may see, oldest first. */
  list(peer: PeerIdentity): OperationInfo[] {
    this.sweep();
    return [...this.ops.values()].filter((op) => peer.uid === 0 || op.info.uid === peer.uid).map((op) => ({ ...op.info }));
  }

  /** The daemon is stopping: every running operation is aborted, waited for a moment, and recorded. */
  async stop(): Promise<void> {
    if (this.sweeper) clearTimeout(this.sweeper);
    this.sweeper = null;
    const running = [...this.ops.values()].filter((op) => op.ac !== null);
    for (const op of running) op.ac!.abort(new TuxsecError(ErrorCodes.shuttingDown, `operation ${op.info.id} (${op.info.module} ${op.info.action}) was interrupted: tuxsec-rootd is stopping`));
    let t: NodeJS.Timeout | undefined;
    await Promise.race([Promise.all(running.map((op) => op.settled)), new Promise((r) => (t = setTimeout(r, STOP_WAIT_MS)))]).finally(() => clearTimeout(t));
    // One that ignores its abort is ended as interrupted after ABANDON_GRACE_MS; should the daemon die
    // before, the file still says running and the next start reports it interrupted.
  }

  /** Forgets expired finished operations. */
  private sweep(): void {
    const now = Date.now();
    let changed = false;
    for (const [id, op] of this.ops) {
      if (op.info.expires_at !== null && Date.parse(op.info.expires_at) <= now) {
        this.ops.delete(id);
        changed = true;
      }
    }
    if (changed) this.persist();
  }

  /** Sweeps while any operation is kept, so expired results leave memory and the file unasked. */
  private scheduleSweep(): void {
    if (this.sweeper || this.ops.size === 0) return;
    this.sweeper = setTimeout(() => {
      this.sweeper = null;
      this.sweep();
      this.scheduleSweep();
    }, Math.min(60_000, this.deps.limits().resultTtlMs));
    this.sweeper.unref();
  }

  /** Keeps at most MAX_FINISHED_PER_UID finished operations of a uid: the oldest go first. */
  private trimFinished(uid: number): void {
    const finished = [...this.ops.values()].filter((op) => op.info.uid === uid && op.info.state !== 'running');
    for (const op of finished.slice(0, Math.max(0, finished.length - MAX_FINISHED_PER_UID))) this.ops.delete(op.info.id);
  }

  /**
   * Keeps the results of a uid's finished operations within resultMaxBytesPerUid: the oldest
   * results are dropped first (their status stays). Per uid, so one caller's large results never
   * push out another's; a result larger than the whole budget is not kept at all.
   */
  private trimResultBytes(uid: number): void {
    const max = this.deps.limits().resultMaxBytesPerUid;
    const kept = [...this.ops.values()].filter((op) => op.info.uid === uid && op.resultBytes !== undefined);
    const drop = (op: Operation) => {
      op.resultDropped = op.resultBytes;
      delete op.result;
      delete op.resultBytes;
      this.deps.log.info({ operation: op.info.id, uid, bytes: op.resultDropped, max }, 'operation result dropped: over operation_result_max_bytes');
    };
    // One too large on its own goes without pushing out the others.
    for (const op of kept) if (op.resultBytes! > max) drop(op);
    let total = kept.reduce((n, op) => n + (op.resultBytes ?? 0), 0);
    for (const op of kept) {
      if (total <= max) break;
      if (op.resultBytes === undefined) continue;
      total -= op.resultBytes;
      drop(op);
    }
  }

  /** Writes every operation's status (never parameters or results) to operations_file. */
  private persist(): void {
    const { file, log } = this.deps;
    if (!file) return;
    try {
      writeFileAtomicSafe(file, JSON.stringify({ version: FILE_VERSION, operations: [...this.ops.values()].map((op) => ({ ...op.info, access: op.access })) }) + '\n');
      if (this.persistFailed) log.info({ file }, 'operations_file written again');
      this.persistFailed = false;
    } catch (e) {
      // Logged once per failing run: operations still run, but a restart would not report them.
      if (!this.persistFailed) log.error({ file, err: (e as Error).message }, 'cannot write operations_file; a restart would not report the operations running now');
      this.persistFailed = true;
    }
  }
}
