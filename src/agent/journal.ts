/**
 * The job journal: an append-only file in state_dir, one JSON line per event, fdatasync'd
 * before the call returns. `start` is written BEFORE a job runs, so an id in the journal
 * never runs again, also after a restart; a start without a `finish` at load time is a job
 * interrupted by a crash. A torn last line (crash mid-append) is cut off at load; any other
 * bad line stops the agent (fail closed: guessing could run a job twice).
 */
import fs from 'node:fs';
import path from 'node:path';
import { fsyncDir, writeFileAtomic } from '../os/durable-files.ts';

export interface JournalEntry {
  id: string;
  module: string;
  action: string;
  started_at: string;
  finished: boolean;
}

export interface JournalOptions {
  /** Finished ids remembered (oldest forgotten at compaction). Default 100,000. */
  maxFinished?: number;
}

type Line = { s: string; m: string; a: string; t: string } | { f: string };

export class Journal {
  readonly file: string;
  private fd: number;
  private readonly entries = new Map<string, JournalEntry>();
  private readonly maxFinished: number;
  private lines = 0;
  /** Where a torn append begins when cutting it back failed; cut before anything else is written. */
  private tornAt: number | null = null;

  private constructor(file: string, fd: number, maxFinished: number) {
    this.file = file;
    this.fd = fd;
    this.maxFinished = maxFinished;
  }

  /** Opens (creating if missing) `dir/journal.log`, replaying it. */
  static open(dir: string, opts: JournalOptions = {}): Journal {
    const file = path.join(dir, 'journal.log');
    const fd = fs.openSync(file, fs.constants.O_RDWR | fs.constants.O_CREAT | fs.constants.O_APPEND | fs.constants.O_NOFOLLOW, 0o600);
    const j = new Journal(file, fd, opts.maxFinished ?? 100_000);
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
      this.entries.set(ev.s, { id: ev.s, module: String(ev.m), action: String(ev.a), started_at: String(ev.t), finished: false });
    } else if ('f' in ev && typeof ev.f === 'string') {
      const e = this.entries.get(ev.f);
      if (e) e.finished = true;
    } else {
      throw new Error(`cannot load job journal ${this.file}: line ${n} is not a journal event`);
    }
  }

  /**
   * Appends one event, durably, or throws and leaves the file as it was. On a full disk a
   * write can be short: the torn line would sit between whole ones (refused at the next start)
   * and the event would count as written when it is not, so the file is cut back instead.
   */
  private append(ev: Line): void {
    const line = Buffer.from(JSON.stringify(ev) + '\n');
    let size = -1;
    try {
      if (this.tornAt !== null) {
        // A torn line could not be cut before: nothing may follow it until it is.
        fs.ftruncateSync(this.fd, this.tornAt);
        this.tornAt = null;
      }
      size = fs.fstatSync(this.fd).size;
      const n = fs.writeSync(this.fd, line);
      if (n !== line.length) throw Object.assign(new Error(`only ${n} of ${line.length} bytes written`), { code: 'ENOSPC' });
      fs.fdatasyncSync(this.fd);
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
  }

  has(id: string): boolean {
    return this.entries.has(id);
  }

  get(id: string): JournalEntry | undefined {
    return this.entries.get(id);
  }

  /** Records that the job is about to run. Durable when this returns. */
  start(id: string, module: string, action: string, startedAt: string): void {
    if (this.entries.has(id)) throw new Error(`cannot start job "${id}": already in the journal`);
    this.append({ s: id, m: module, a: action, t: startedAt });
    this.entries.set(id, { id, module, action, started_at: startedAt, finished: false });
  }

  /** Records that the job's result is safely in the outbox. */
  finish(id: string): void {
    const e = this.entries.get(id);
    if (!e || e.finished) return;
    this.append({ f: id });
    e.finished = true;
    if (this.lines > 2 * this.maxFinished + 1000) this.compact();
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
      .map((e) => JSON.stringify({ s: e.id, m: e.module, a: e.action, t: e.started_at }) + '\n' + (e.finished ? JSON.stringify({ f: e.id }) + '\n' : ''))
      .join('');
    writeFileAtomic(this.file, text, { mode: 0o600, noDirSync: true });
    fsyncDir(path.dirname(this.file));
    fs.closeSync(this.fd);
    this.fd = fs.openSync(this.file, fs.constants.O_RDWR | fs.constants.O_APPEND | fs.constants.O_NOFOLLOW);
    this.tornAt = null;
    for (const id of drop) this.entries.delete(id);
    this.lines = keep.reduce((n, e) => n + (e.finished ? 2 : 1), 0);
  }

  close(): void {
    fs.closeSync(this.fd);
  }
}
