/**
 * The result outbox: one file per result in `state_dir/outbox/`, written temp + fsync + rename +
 * directory fsync, deleted only once the server acknowledged the result. A result is never dropped:
 * the bound (entries, bytes) stops the agent from taking new jobs while the outbox is full; the one
 * job already running may still add its result past the bound.
 *
 * A result that cannot be written (disk full) is kept in memory, sent from there, and written
 * when `persistPending` succeeds; `add` still throws so its job is not marked finished in the
 * journal: after a crash before delivery the job is reported interrupted, never lost.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { ensureDir, fsyncDir, TMP_PREFIX, writeFileAtomic } from '../os/durable-files.ts';
import type { ResultEnvelope } from './executor.ts';

interface Stored {
  seq: number;
  file: string;
  /** False while the result is only in memory (its write failed). */
  saved: boolean;
  bytes: number;
  result: ResultEnvelope;
}

export interface OutboxOptions {
  maxEntries: number;
  maxBytes: number;
  /** Called with a message when an entry cannot be read (it is moved to outbox/corrupt/). */
  warn?: (msg: string) => void;
}

function fileName(commandId: string): string {
  return crypto.createHash('sha256').update(commandId).digest('hex').slice(0, 40) + '.json';
}

export class Outbox {
  readonly dir: string;
  private readonly items = new Map<string, Stored>();
  private seq = 0;
  private bytes = 0;
  private readonly opts: OutboxOptions;

  private constructor(dir: string, opts: OutboxOptions) {
    this.dir = dir;
    this.opts = opts;
  }

  /** Opens `stateDir/outbox`, loading what a previous run left. */
  static open(stateDir: string, opts: OutboxOptions): Outbox {
    const dir = path.join(stateDir, 'outbox');
    ensureDir(dir, 0o700);
    fsyncDir(stateDir);
    const ob = new Outbox(dir, opts);
    ob.load();
    return ob;
  }

  private load(): void {
    const loaded: Stored[] = [];
    for (const name of fs.readdirSync(this.dir)) {
      const p = path.join(this.dir, name);
      if (name.startsWith(TMP_PREFIX)) {
        // Never renamed into place: its result is either in a complete file or its job is
        // still unfinished in the journal (and will be reported interrupted).
        fs.rmSync(p, { force: true });
        continue;
      }
      if (!name.endsWith('.json')) continue;
      try {
        const text = fs.readFileSync(p, 'utf8');
        const v = JSON.parse(text) as { seq: number; result: ResultEnvelope };
        if (typeof v.seq !== 'number' || typeof v.result?.command_id !== 'string') throw new Error('not an outbox entry');
        loaded.push({ seq: v.seq, file: p, saved: true, bytes: Buffer.byteLength(text), result: v.result });
      } catch (e) {
        const bad = path.join(this.dir, 'corrupt');
        ensureDir(bad, 0o700);
        fs.renameSync(p, path.join(bad, name));
        this.opts.warn?.(`cannot read outbox entry ${p}: ${(e as Error).message}; moved to ${bad}`);
      }
    }
    loaded.sort((a, b) => a.seq - b.seq);
    for (const s of loaded) {
      this.items.set(s.result.command_id, s);
      this.bytes += s.bytes;
      this.seq = Math.max(this.seq, s.seq);
    }
  }

  has(commandId: string): boolean {
    return this.items.has(commandId);
  }

  get(commandId: string): ResultEnvelope | undefined {
    return this.items.get(commandId)?.result;
  }

  /**
   * Stores a result durably; a second result for the same id is ignored. When the write fails
   * the result is kept in memory (see the module comment) and the error is thrown.
   */
  add(result: ResultEnvelope): void {
    if (this.items.has(result.command_id)) return;
    const seq = ++this.seq;
    const text = JSON.stringify({ seq, result });
    const file = path.join(this.dir, fileName(result.command_id));
    const bytes = Buffer.byteLength(text);
    const s: Stored = { seq, file, saved: false, bytes, result };
    this.items.set(result.command_id, s);
    this.bytes += bytes;
    this.save(s);
  }

  private save(s: Stored): void {
    try {
      writeFileAtomic(s.file, JSON.stringify({ seq: s.seq, result: s.result }), { mode: 0o600 });
      s.saved = true;
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      const why = err.code === 'ENOSPC' ? 'no space left on the device' : err.message;
      throw Object.assign(
        new Error(`cannot store the result of job "${s.result.command_id}" in the outbox ${this.dir}: ${why}; it is kept in memory and sent from there`),
        { code: err.code },
      );
    }
  }

  /** Writes results kept only in memory; returns how many are still unwritten. */
  persistPending(): number {
    let left = 0;
    for (const s of this.items.values()) {
      if (s.saved) continue;
      try {
        this.save(s);
      } catch {
        left++;
      }
    }
    return left;
  }

  /** Deletes acknowledged results. A deletion lost to a crash only resends an acknowledged result, which servers ignore. */
  remove(commandIds: Iterable<string>): number {
    let n = 0;
    for (const id of commandIds) {
      const s = this.items.get(id);
      if (!s) continue;
      if (s.saved) fs.rmSync(s.file, { force: true });
      this.items.delete(id);
      this.bytes -= s.bytes;
      n++;
    }
    return n;
  }

  /** The oldest results, at most `maxCount` and about `maxBytes` of JSON (always at least one). */
  batch(maxCount: number, maxBytes: number): ResultEnvelope[] {
    const out: ResultEnvelope[] = [];
    let bytes = 0;
    for (const s of this.items.values()) {
      if (out.length >= maxCount) break;
      if (out.length > 0 && bytes + s.bytes > maxBytes) break;
      out.push(s.result);
      bytes += s.bytes;
    }
    return out;
  }

  /** True when a new job may be taken (see the module comment). */
  get hasRoom(): boolean {
    return this.items.size < this.opts.maxEntries && this.bytes < this.opts.maxBytes;
  }

  get size(): number {
    return this.items.size;
  }

  get totalBytes(): number {
    return this.bytes;
  }
}
