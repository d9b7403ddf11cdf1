/**
 * rootd's log destination: stderr (the journal), or a file opened with the same checks as
 * the audit log and reopened on SIGHUP for rotation.
 */
import pino from 'pino';
import { openAppendSafe } from '../os/secure-files.ts';

type Boom = ReturnType<typeof pino.destination>;

export class LogDestination {
  private cur: Boom;

  constructor(private file: string | null) {
    this.cur = file ? this.open(file) : pino.destination({ fd: 2, sync: true });
  }

  /**
   * A failed write (disk full) switches to stderr until the next reopen: unhandled, the error
   * would stop the daemon, and pino's exit flush would retry the write forever.
   */
  private open(file: string): Boom {
    const d = pino.destination({ fd: openAppendSafe(file), sync: false });
    d.on('error', (err: Error) => {
      if (d !== this.cur) return;
      d.destroy();
      this.cur = pino.destination({ fd: 2, sync: true });
      this.cur.write(JSON.stringify({ level: 50, time: Date.now(), msg: `cannot write log file ${file}: ${err.message}; logging to stderr until SIGHUP` }) + '\n');
    });
    return d;
  }

  write(s: string): boolean {
    return this.cur.write(s);
  }

  /** Opens the path again (after rotation); keeps the old file if the new one is refused. */
  reopen(): void {
    if (!this.file) return;
    try {
      const next = this.open(this.file);
      const old = this.cur;
      this.cur = next;
      old.flush(() => old.end());
    } catch (e) {
      this.cur.write(JSON.stringify({ level: 50, time: Date.now(), msg: `cannot reopen log file ${this.file}: ${(e as Error).message}` }) + '\n');
    }
  }

  /**
   * Moves logging to another file (or stderr for null), with the same checks as at start.
   * Throws, still writing where it did, when the new file is refused.
   */
  switchTo(file: string | null): void {
    if (file === this.file) return this.reopen();
    const next = file ? this.open(file) : pino.destination({ fd: 2, sync: true });
    const old = this.cur;
    const oldFile = this.file;
    this.cur = next;
    this.file = file;
    if (oldFile) old.flush(() => old.end());
  }

  flushSync(): void {
    try {
      this.cur.flushSync();
    } catch {
      // nothing buffered, or stderr
    }
  }
}
