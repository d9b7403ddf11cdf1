/**
 * Lockout safety for writes: dry-run, idempotence (`changed`), and confirm-or-rollback.
 * A write with `confirm_timeout` snapshots what it touches (runtime and permanent), applies,
 * and restores the snapshot unless `confirm` names its change id in time.
 */
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { readFileSafe, writeFileAtomicSafe } from '../../../os/secure-files.ts';
import { ErrorCodes, TuxsecError } from '../../../protocol/errors.ts';
import type { Logger } from '../../../sdk/action.ts';
import type { FirewalldClient } from './dbus.ts';
import { Snapshotter, scopeKey, type Scope, type Snapshot } from './snapshot.ts';
import { parsePendingFile, pendingDocument, type SavedChange } from './pending-file.ts';

export type { Scope } from './snapshot.ts';

/** Options every write accepts. */
export interface WriteOptions {
  dry_run?: boolean;
  confirm_timeout?: number;
}

/** A write as a check (would it change anything?) and an apply. */
export interface WriteSpec {
  /** Human description, e.g. `add service "http" to zone "public" (runtime)`. */
  what: string;
  /** What to snapshot for rollback; empty = this write cannot be rolled back. */
  scopes: Scope[];
  /** True when applying would change state. */
  check(): Promise<boolean>;
  /** Applies; returns false when firewalld reported it was already so. */
  apply(): Promise<boolean | void>;
  /**
   * A write of many steps: its scopes are snapshotted before apply even without confirm_timeout,
   * and put back when apply throws half-way, so the call changes all or nothing.
   */
  atomic?: boolean;
}

export interface WriteResult {
  changed: boolean;
  action: string;
  dry_run?: true;
  change_id?: string;
  confirm_by?: string;
}

interface Pending extends SavedChange {
  timer: NodeJS.Timeout;
}

export interface HistoryEntry {
  change_id: string;
  action: string;
  outcome: 'confirmed' | 'rolled-back' | 'rollback-failed';
  reason: string;
  at: string;
  error?: string;
}

const HISTORY_MAX = 100;
const RETRY_MS = 5000;

/**
 * Runs writes and keeps the pending confirmations and their history. One pending change per
 * scope: a second write to a scope awaiting confirmation is refused with `conflict`.
 */
export class ChangeGuard {
  private readonly pending = new Map<string, Pending>();
  private readonly history: HistoryEntry[] = [];
  private readonly snapshotter: Snapshotter;
  /** Where pending changes are kept so a crashed rootd still rolls them back; null = memory only. */
  private stateFile: string | null = null;
  private closing = false;

  constructor(
    fw: FirewalldClient,
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
  ) {
    this.snapshotter = new Snapshotter(fw);
  }

  private arm(p: SavedChange): void {
    const ms = Math.max(0, Date.parse(p.confirm_by) - this.now());
    const timer = setTimeout(() => void this.rollback(p.id, 'confirmation timed out').catch(() => undefined), ms);
    this.pending.set(p.id, { ...p, timer });
  }

  /** Writes the pending changes (atomically, mode 0600). */
  private persist(): void {
    if (!this.stateFile) return;
    const list = [...this.pending.values()].map(({ timer: _t, ...rest }) => rest);
    try {
      if (list.length === 0) {
        rmSync(this.stateFile, { force: true });
        return;
      }
      // Root later rolls the firewall back to what this file says: only root may write it.
      writeFileAtomicSafe(this.stateFile, pendingDocument(list));
    } catch (e) {
      this.log.error({ file: this.stateFile, err: e instanceof Error ? e.message : String(e) }, 'cannot save pending firewalld changes');
    }
  }

  /**
   * Uses `file` for pending changes and re-arms those a previous rootd left behind (it stopped
   * before their deadline or crashed): overdue ones are rolled back at once.
   */
  async restore(file: string): Promise<void> {
    this.stateFile = file;
    let raw: string | null;
    try {
      raw = readFileSafe(file);
    } catch (e) {
      this.log.error({ file, err: e instanceof Error ? e.message : String(e) }, 'refusing the pending firewalld changes file');
      return;
    }
    if (raw === null) return;
    let list: SavedChange[];
    try {
      list = parsePendingFile(file, raw);
    } catch (e) {
      // Replaying means writing these snapshots into the firewall as root: all or nothing.
      this.log.error({ file, err: e instanceof Error ? e.message : String(e), audit: true }, 'refusing the pending firewalld changes file');
      return;
    }
    for (const p of list) {
      this.arm(p);
      this.log.warn({ change_id: p.id, change: p.what, confirm_by: p.confirm_by, audit: true }, 'firewalld change from before the restart awaits confirmation');
    }
  }

  /** Scopes of confirm-writes in flight (snapshot taken, not yet registered). */
  private readonly reserved = new Set<string>();

  private blocking(keys: string[]): Pending | undefined {
    for (const p of this.pending.values()) if (p.keys.some((k) => keys.includes(k))) return p;
    return undefined;
  }

  /** Throws `conflict` when a pending or in-flight confirm-change holds one of the scopes. */
  private ensureFree(keys: string[], what: string): void {
    const blocker = this.blocking(keys);
    if (blocker) {
      throw new TuxsecError(ErrorCodes.conflict, `cannot ${what}: change ${blocker.id} ("${blocker.what}") awaits confirmation until ${blocker.confirm_by}`, {
        change_id: blocker.id,
      });
    }
    if (keys.some((k) => this.reserved.has(k))) {
      throw new TuxsecError(ErrorCodes.conflict, `cannot ${what}: another change to the same object that can be rolled back is being applied`);
    }
  }

  async run(spec: WriteSpec, opts: WriteOptions): Promise<WriteResult> {
    const keys = spec.scopes.map(scopeKey);
    if (!opts.dry_run) this.ensureFree(keys, spec.what);
    if (opts.confirm_timeout !== undefined && spec.scopes.length === 0) {
      throw new TuxsecError(ErrorCodes.invalidParams, `invalid value ${opts.confirm_timeout} for parameter "confirm_timeout": this action cannot be rolled back`, {
        parameter: 'confirm_timeout',
      });
    }
    const would = await spec.check();
    if (opts.dry_run) return { changed: would, action: spec.what, dry_run: true };
    if (!would) return { changed: false, action: spec.what };
    // Checked again after the await, synchronously with what follows: no confirm-change may
    // take the scope between this check and the apply (or, below, the reservation).
    this.ensureFree(keys, spec.what);
    if (opts.confirm_timeout === undefined && !spec.atomic) {
      const applied = await spec.apply();
      return { changed: applied !== false, action: spec.what };
    }
    for (const k of keys) this.reserved.add(k);
    try {
      if (opts.confirm_timeout !== undefined) return await this.applyWithConfirm(spec, keys, opts.confirm_timeout);
      const snapshots = await this.snapshot(spec.scopes);
      const applied = await this.applyOrUndo(spec, snapshots);
      return { changed: applied !== false, action: spec.what };
    } finally {
      for (const k of keys) this.reserved.delete(k);
    }
  }

  private async snapshot(scopes: Scope[]): Promise<Snapshot[]> {
    const snapshots: Snapshot[] = [];
    for (const s of scopes) snapshots.push(await this.snapshotter.take(s));
    return snapshots;
  }

  /** Applies; an atomic write that throws half-way has its snapshots put back before the error goes on. */
  private async applyOrUndo(spec: WriteSpec, snapshots: Snapshot[]): Promise<boolean | void> {
    try {
      return await spec.apply();
    } catch (e) {
      if (!spec.atomic) throw e;
      try {
        for (const s of [...snapshots].reverse()) await this.snapshotter.restore(s);
      } catch (undo) {
        const m = (x: unknown) => (x instanceof Error ? x.message : String(x));
        this.log.error({ change: spec.what, err: m(e), undo: m(undo), audit: true }, 'firewalld write failed half-way and could not be undone');
        throw new TuxsecError(ErrorCodes.actionFailed, `cannot ${spec.what}: ${m(e)}; putting back what it had changed failed too: ${m(undo)}`);
      }
      this.log.warn({ change: spec.what, err: e instanceof Error ? e.message : String(e) }, 'firewalld write failed half-way; what it had changed was put back');
      if (e instanceof TuxsecError) throw new TuxsecError(e.code, `${e.message} (nothing was changed: what this call had changed was put back)`, e.details);
      throw e;
    }
  }

  private async applyWithConfirm(spec: WriteSpec, keys: string[], confirmTimeout: number): Promise<WriteResult> {
    const snapshots = await this.snapshot(spec.scopes);
    const applied = await this.applyOrUndo(spec, snapshots);
    if (applied === false) return { changed: false, action: spec.what };
    const id = randomBytes(8).toString('hex');
    const deadline = this.now() + confirmTimeout * 1000;
    const p = {
      id,
      what: spec.what,
      keys,
      created_at: new Date(this.now()).toISOString(),
      confirm_by: new Date(deadline).toISOString(),
      snapshots,
    };
    this.arm(p);
    this.persist();
    this.log.warn({ change_id: id, change: spec.what, confirm_by: p.confirm_by }, 'firewalld change applied; awaiting confirmation');
    return { changed: true, action: spec.what, change_id: id, confirm_by: p.confirm_by };
  }

  confirm(id: string): HistoryEntry {
    const p = this.pending.get(id);
    if (!p) throw new TuxsecError(ErrorCodes.notFound, `cannot confirm change "${id}": no such pending change (already confirmed, rolled back, or unknown)`);
    clearTimeout(p.timer);
    this.pending.delete(id);
    this.persist();
    const h: HistoryEntry = { change_id: id, action: p.what, outcome: 'confirmed', reason: 'confirmed', at: new Date(this.now()).toISOString() };
    this.record(h);
    this.log.info({ change_id: id, change: p.what }, 'firewalld change confirmed');
    return h;
  }

  /** Restores the snapshots of a pending change (on timeout or on request). */
  async rollback(id: string, reason: string): Promise<HistoryEntry> {
    const p = this.pending.get(id);
    if (!p) throw new TuxsecError(ErrorCodes.notFound, `cannot roll back change "${id}": no such pending change`);
    clearTimeout(p.timer);
    this.pending.delete(id);
    const h: HistoryEntry = { change_id: id, action: p.what, outcome: 'rolled-back', reason, at: new Date(this.now()).toISOString() };
    try {
      for (const s of p.snapshots) await this.snapshotter.restore(s);
      this.log.warn({ change_id: id, change: p.what, reason, audit: true }, 'firewalld change rolled back');
    } catch (e) {
      if (e instanceof TuxsecError && e.code === ErrorCodes.firewalldNotRunning && !this.closing) {
        // Nothing to restore against yet: keep the change pending and try again shortly.
        this.arm({ ...p, confirm_by: new Date(this.now() + RETRY_MS).toISOString() });
        this.persist();
        this.log.warn({ change_id: id, change: p.what, reason }, 'cannot roll back firewalld change yet: firewalld is not running; retrying');
        return { change_id: id, action: p.what, outcome: 'rollback-failed', reason, at: new Date(this.now()).toISOString(), error: 'firewalld is not running; will retry' };
      }
      h.outcome = 'rollback-failed';
      h.error = e instanceof Error ? e.message : String(e);
      this.log.error({ change_id: id, change: p.what, reason, err: h.error, audit: true }, 'firewalld rollback failed');
    }
    this.persist();
    this.record(h);
    return h;
  }

  private record(h: HistoryEntry): void {
    this.history.push(h);
    if (this.history.length > HISTORY_MAX) this.history.shift();
  }

  status(): { pending: Array<{ change_id: string; action: string; created_at: string; confirm_by: string; seconds_left: number }>; history: HistoryEntry[] } {
    const t = this.now();
    return {
      pending: [...this.pending.values()].map((p) => ({
        change_id: p.id,
        action: p.what,
        created_at: p.created_at,
        confirm_by: p.confirm_by,
        seconds_left: Math.max(0, Math.round((Date.parse(p.confirm_by) - t) / 1000)),
      })),
      history: [...this.history].reverse(),
    };
  }

  /** Daemon shutdown: pending changes are rolled back; one that cannot be stays in the state file. */
  async close(): Promise<void> {
    this.closing = true;
    for (const id of [...this.pending.keys()]) await this.rollback(id, 'rootd shutting down').catch(() => undefined);
    for (const p of this.pending.values()) clearTimeout(p.timer);
  }
}
