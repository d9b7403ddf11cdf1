/**
 * The job journal: an append-only file in state_dir, one JSON line per event. `start` is
 * written BEFORE a job runs, so an id in the journal never runs again, also after a restart; a
 * start without a `finish` at load time is a job interrupted by a crash. A torn last line (crash
 * mid-append) is cut off at load; any other bad line stops the agent (fail closed: guessing
 * could run a job twice).
 *
 * What must reach the disk before the call returns, and what may follow (push mode's
 * throughput rests on it; an fdatasync costs 5-20 ms on a plain disk):
 * - a start is fdatasync'd unless the caller says the job only reads (`durable: false`): the
 *   record is still written before the job runs, so a crashed process reports it interrupted;
 *   only a power cut can lose it, and then running a read again is harmless;
 * - a finish is fdatasync'd unless `lazy`: push mode's finish carries the job's result (kept
 *   here, no second file) and is made durable by the next durable start or within FLUSH_MS by
 *   a background fdatasync (group commit). A power cut before that loses only the result: the
 *   durable start makes the job `interrupted` at the next start, never run again.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { ResultEnvelope } from '../protocol/jobs.ts';
import { fsyncDir, writeFileAtomic } from '../os/durable-files.ts';

export interface JournalEntry {
  id: string;
  module: string;
  action: string;
  started_at: string;
  finished: boolean;
  /** The hash of the job's module, action and params (envelopeHash); absent in older journals. */
  hash?: string;
  /** The result, when results are kept here (push mode) and it is among the newest kept. */
  result?: ResultEnvelope;
}

export interface JournalOptions {
  /** Finished ids remembered (oldest forgotten at compaction). Default 100,000. */
  maxFinished?: number;
  /** Push mode: results kept with their finish records, the newest within these bounds. */
  keepResults?: { maxEntries: number; maxBytes: number };
}

/** A lazy finish becomes durable within this long (or at the next durable start). */
const FLUSH_MS = 50;
/** The file is compacted once this much larger than at its last compaction. */
const COMPACT_SLACK_BYTES = 32 * 1024 * 1024;

type Line = { s: string; m: string; a: string; t: string; h?: string } | { f: string; r?: ResultEnvelope };

export class Journal {
  readonly file: string;
  private fd: number;
  private readonly entries = new Map<string, JournalEntry>();
  private readonly maxFinished: number;
  private readonly keep: JournalOptions['keepResults'];
  /** Ids whose result is kept, oldest first, with the result's size. */
  private readonly kept = new Map<string, number>();
  private keptBytes = 0;
  private lines = 0;
  /** The file's size, and its size after the last compaction. */
  private bytes = 0;
  private compactedBytes = 0;
  /** Lines written and not yet fdatasync'd, and the timer that will. */
  private dirty = false;
  private flushTimer: NodeJS.Timeout | null = null;
  /** Where a torn append begins when cutting it back failed; cut before anything else is written. */
  private tornAt: number | null = null;

  private constructor(file: string, fd: number, opts: JournalOptions) {
    this.file = file;
    this.fd = fd;
    this.maxFinished = opts.maxFinished ?? 100_000;
    this.keep = opts.keepResults;
  }

  /** Opens (creating if missing) `dir/journal.log`, replaying it. */
  static open(dir: string, opts: JournalOptions = {}): Journal {
    const file = path.join(dir, 'journal.log');
    const fd = fs.openSync(file, fs.constants.O_RDWR | fs.constants.O_CREAT | fs.constants.O_APPEND | fs.constants.O_NOFOLLOW, 0o600);
    const j = new Journal(file, fd, opts);
    try {
      // A new file's directory entry must survive a power cut too, not only its content.
      fsyncDir(dir);
      j.replay();
    } catch (e) {
      fs.closeSync(fd);
      throw e;
    }
    return j;
  }

  private replay(): void {
    const buf = fs.readFileSync(this.fd);
    const lastNl = buf.lastIndexOf(0x0a);
    const whole = lastNl < 0 ? 0 : lastNl + 1;
    if (whole < buf.length) {
      // A crash cut the last append: that event was never acknowledged to anyone.
      fs.ftruncateSync(this.fd, whole);
      fs.fsyncSync(this.fd);
    }
    this.bytes = whole;
    this.compactedBytes = whole;
    const text = buf.subarray(0, whole).toString('utf8');
    let n = 0;
    for (const line of text.split('\n')) {
      n++;
      if (line === '') continue;
      let ev: Line;
      try {
        ev = JSON.parse(line) as Line;
      } catch {
        throw new Error(`cannot load job journal ${this.file}: line ${n} is not JSON (move the file aside only if no job can be repeated safely)`);
      }
      this.apply(ev, n);
      this.lines++;
    }
  }

  private apply(ev: Line, n: number): void {
    if ('s' in ev && typeof ev.s === 'string') {
      this.entries.set(ev.s, { id: ev.s, module: String(ev.m), action: String(ev.a), started_at: String(ev.t), finished: false, ...(typeof ev.h === 'string' ? { hash: ev.h } : {}) });
    } else if ('f' in ev && typeof ev.f === 'string') {
      const e = this.entries.get(ev.f);
      if (e) {
        e.finished = true;
        if (ev.r !== undefined && typeof ev.r === 'object' && ev.r !== null) this.keepResult(e, ev.r);
      }
    } else {
      throw new Error(`cannot load job journal ${this.file}: line ${n} is not a journal event`);
    }
  }

  /** Keeps a result with its entry, letting go of the oldest kept ones past the bounds. */
  private keepResult(e: JournalEntry, r: ResultEnvelope): void {
    if (!this.keep) return;
    const size = Buffer.byteLength(JSON.stringify(r));
    e.result = r;
    this.kept.set(e.id, size);
    this.keptBytes += size;
    for (const [id, n] of this.kept) {
      if (this.kept.size <= this.keep.maxEntries && this.keptBytes <= this.keep.maxBytes) break;
      this.kept.delete(id);
      this.keptBytes -= n;
      const old = this.entries.get(id);
      if (old) delete old.result;
    }
  }

  /**
   * Appends one event, durably unless `lazy` (then within FLUSH_MS), or throws and leaves the
   * file as it was. On a full disk a write can be short: the torn line would sit between whole
   * ones (refused at the next start) and the event would count as written when it is not, so
   * the file is cut back instead.
   */
  private append(ev: Line, lazy = false): void {
    const line = Buffer.from(JSON.stringify(ev) + '\n');
    let size = -1;
    try {
      if (this.tornAt !== null) {
        // A torn line could not be cut before: nothing may follow it until it is.
        fs.ftruncateSync(this.fd, this.tornAt);
        this.tornAt = null;
      }
      // Asked of the file, not remembered: where a failed append must be cut back to is its real end.
      size = fs.fstatSync(this.fd).size;
      const n = fs.writeSync(this.fd, line);
      if (n !== line.length) throw Object.assign(new Error(`only ${n} of ${line.length} bytes written`), { code: 'ENOSPC' });
      this.dirty = true;
      if (!lazy) {
        // Also makes every lazy line before it durable: the group commit.
        fs.fdatasyncSync(this.fd);
        this.dirty = false;
      } else {
        this.flushSoon();
      }
    } catch (e) {
      if (size >= 0) {
        try {
          fs.ftruncateSync(this.fd, size);
        } catch {
          this.tornAt = size;
        }
      }
      const err = e as NodeJS.ErrnoException;
      throw Object.assign(new Error(`cannot write job journal ${this.file}: ${err.code === 'ENOSPC' ? 'no space left on the device' : err.message}`), {
        code: err.code,
      });
    }
    this.lines++;
    this.bytes = size + line.length;
  }

  /** fdatasync in the background, off the event loop; a failure leaves the lines dirty for the next try. */
  private flushSoon(): void {
    if (this.flushTimer !== null) return;
    this.flushTimer = setTimeout(() => {
      this.flushTimer = null;
      if (!this.dirty) return;
      this.dirty = false;
      const fd = this.fd;
      fs.fdatasync(fd, (e) => {
        if (e && fd === this.fd) {
          this.dirty = true;
          this.flushSoon();
        }
      });
    }, FLUSH_MS);
    this.flushTimer.unref();
  }

  /** Makes every line written so far durable now. */
  flush(): void {
    if (this.flushTimer !== null) clearTimeout(this.flushTimer);
    this.flushTimer = null;
    if (!this.dirty) return;
    fs.fdatasyncSync(this.fd);
    this.dirty = false;
  }

  has(id: string): boolean {
    return this.entries.has(id);
  }

  get(id: string): JournalEntry | undefined {
    return this.entries.get(id);
  }

  /**
   * Records that the job is about to run: durable when this returns, unless `durable: false`
   * (a job that only reads, see the module comment). `hash` is envelopeHash of the job.
   */
  start(id: string, module: string, action: string, startedAt: string, opts: { hash?: string; durable?: boolean } = {}): void {
    if (this.entries.has(id)) throw new Error(`cannot start job "${id}": already in the journal`);
    this.append({ s: id, m: module, a: action, t: startedAt, ...(opts.hash !== undefined ? { h: opts.hash } : {}) }, opts.durable === false);
    this.entries.set(id, { id, module, action, started_at: startedAt, finished: false, ...(opts.hash !== undefined ? { hash: opts.hash } : {}) });
  }

  /**
   * Records that the job's result is safe: in the outbox (pull mode, durable when this returns),
   * or, with `result`, in this record itself (push mode, lazy: see the module comment).
   */
  finish(id: string, result?: ResultEnvelope): void {
    const e = this.entries.get(id);
    if (!e || e.finished) return;
    const keep = result !== undefined && this.keep !== undefined;
    this.append(keep ? { f: id, r: result } : { f: id }, keep);
    e.finished = true;
    if (keep) this.keepResult(e, result);
    if (this.lines > 2 * this.maxFinished + 1000 || this.bytes > 2 * this.compactedBytes + COMPACT_SLACK_BYTES) this.compact();
  }

  /** Jobs started but never finished: interrupted by a crash. */
  unfinished(): JournalEntry[] {
    return [...this.entries.values()].filter((e) => !e.finished);
  }

  get size(): number {
    return this.entries.size;
  }

  /** Rewrites the journal keeping unfinished jobs and the newest `maxFinished` finished ones. */
  compact(): void {
    const all = [...this.entries.values()];
    const finished = all.filter((e) => e.finished);
    const drop = new Set(finished.slice(0, Math.max(0, finished.length - this.maxFinished)).map((e) => e.id));
    const keep = all.filter((e) => !drop.has(e.id));
    const text = keep
      .map((e) => {
        const start = JSON.stringify({ s: e.id, m: e.module, a: e.action, t: e.started_at, ...(e.hash !== undefined ? { h: e.hash } : {}) }) + '\n';
        if (!e.finished) return start;
        return start + JSON.stringify(e.result !== undefined ? { f: e.id, r: e.result } : { f: e.id }) + '\n';
      })
      .join('');
    writeFileAtomic(this.file, text, { mode: 0o600, noDirSync: true });
    fsyncDir(path.dirname(this.file));
    fs.closeSync(this.fd);
    this.fd = fs.openSync(this.file, fs.constants.O_RDWR | fs.constants.O_APPEND | fs.constants.O_NOFOLLOW);
    this.tornAt = null;
    this.dirty = false;
    for (const id of drop) {
      this.entries.delete(id);
      const n = this.kept.get(id);
      if (n !== undefined) {
        this.kept.delete(id);
        this.keptBytes -= n;
      }
    }
    this.lines = keep.reduce((n, e) => n + (e.finished ? 2 : 1), 0);
    this.bytes = Buffer.byteLength(text);
    this.compactedBytes = this.bytes;
  }

  /** Makes the lazy lines durable and closes the file. */
  close(): void {
    try {
      this.flush();
    } finally {
      fs.closeSync(this.fd);
    }
  }
}
