/**
 * rootd's log destination: stderr (the journal), or a file opened with the same checks as
 * the audit log and reopened on SIGHUP for rotation.
 */
import pino from 'pino';
import { openAppendSafe } from '../os/secure-files.ts';

type Boom = ReturnType<typeof pino.destination>;

export class LogDestination {
  private cur: Boom;

  constructor(private readonly file: string | null) {
    this.cur = file ? pino.destination({ fd: openAppendSafe(file), sync: false }) : pino.destination({ fd: 2, sync: true });
  }

  write(s: string): boolean {
    return this.cur.write(s);
  }

  /** Opens the path again (after rotation); keeps the old file if the new one is refused. */
  reopen(): void {
    if (!this.file) return;
    try {
      const next = pino.destination({ fd: openAppendSafe(this.file), sync: false });
      const old = this.cur;
      this.cur = next;
      old.flush(() => old.end());
    } catch (e) {
      this.cur.write(JSON.stringify({ level: 50, time: Date.now(), msg: `cannot reopen log file ${this.file}: ${(e as Error).message}` }) + '\n');
    }
  }

  flushSync(): void {
    try {
      this.cur.flushSync();
    } catch {
      // nothing buffered, or stderr
    }
  }
}
