/**
 * Audit log: one JSON line per request, written through an asynchronous buffered
 * stream so requests never wait on the disk. Secrets in parameters are redacted.
 */
import pino from 'pino';
import { openAppendSafe } from '../os/secure-files.ts';
import { SECRET_KEY } from '../sdk/schema.ts';

export interface AuditRecord {
  time: string;
  uid: number;
  pid: number;
  user?: string;
  request_id: string;
  type: string;
  module?: string;
  action?: string;
  parameters?: unknown;
  outcome: 'success' | 'error' | 'denied';
  code?: string;
  error?: string;
  /** Set on a summary record: how many refusals or records it stands for. */
  count?: number;
  duration_ms: number;
}

export interface AuditLog {
  write(rec: AuditRecord): void;
  reopen(): void;
  flush(): Promise<void>;
  /** Stops writing; what is buffered is written first. */
  close?(): void;
}

const MAX_STRING = 256;
const MAX_KEY = 64;
const MAX_ITEMS = 64;
const MAX_KEYS = 64;
/**
 * Characters of parameters one record may hold: a request line of max_message_bytes
 * could otherwise become an audit record of the same size, once per request.
 */
const MAX_AUDITED_CHARS = 4096;

function clip(s: string, max: number): string {
  return s.length > max ? `${s.slice(0, max)}…(${s.length} chars)` : s;
}

/**
 * Copy of a parameters value for the audit log: secret-looking keys masked, strings and keys
 * cut, at most 64 keys per object and 64 items per array, and about {@link MAX_AUDITED_CHARS}
 * characters in all; what is left out is counted.
 */
export function redact(value: unknown): unknown {
  return cut(value, 0, { left: MAX_AUDITED_CHARS });
}

function cut(value: unknown, depth: number, budget: { left: number }): unknown {
  if (depth > 8) return '[deep]';
  if (typeof value === 'string') {
    const s = clip(value, Math.max(16, Math.min(MAX_STRING, budget.left)));
    budget.left -= s.length + 3;
    return s;
  }
  if (Array.isArray(value)) {
    const out: unknown[] = [];
    for (const v of value) {
      if (out.length >= MAX_ITEMS || budget.left <= 0) {
        out.push(`…(${value.length - out.length} more items)`);
        break;
      }
      out.push(cut(v, depth + 1, budget));
    }
    budget.left -= 2;
    return out;
  }
  if (value && typeof value === 'object') {
    // No prototype: a key is only ever data here.
    const out = Object.create(null) as Record<string, unknown>;
    const keys = Object.keys(value);
    let n = 0;
    for (const k of keys) {
      if (n >= MAX_KEYS || budget.left <= 0) {
        out['…'] = `${keys.length - n} more keys`;
        break;
      }
      const key = clip(k, MAX_KEY);
      budget.left -= key.length + 4;
      out[key] = SECRET_KEY.test(k) ? '[redacted]' : cut((value as Record<string, unknown>)[k], depth + 1, budget);
      n++;
    }
    budget.left -= 2;
    return out;
  }
  budget.left -= 8;
  return value;
}

export const nullAudit: AuditLog = { write() {}, reopen() {}, async flush() {} };

/** After a failed write, how long records are dropped before the file is opened again. */
const RETRY_OPEN_MS = 5000;
/**
 * Bytes of records waiting for a slow disk. Past this, records are dropped and counted rather
 * than held in memory without bound; the count is written as a record once the disk catches up.
 */
const AUDIT_MAX_PENDING_BYTES = 4 * 1024 * 1024;

type Destination = ReturnType<typeof pino.destination>;

export interface AuditLogOptions {
  onError?: (err: Error) => void;
  /** Called once per run of dropped records, when the first one is dropped. */
  onDrop?: (why: string) => void;
  maxPendingBytes?: number;
}

/**
 * Opens the audit log for appending. The file and its directory must be root's alone
 * (see secure-files.ts): refused otherwise, so a link planted by another user is never followed.
 * A write that fails (disk full) drops that destination and reports it through `onError`;
 * records are then dropped until the file can be opened again. Unhandled, the error would
 * stop the daemon, and pino's exit flush would retry the write forever.
 * Records dropped (failed disk, or more than `maxPendingBytes` waiting for a slow one) are
 * counted, and the count is written as an `audit-dropped` record before the next record that fits.
 */
export function openAuditLog(file: string, opts: AuditLogOptions = {}): AuditLog {
  const maxPending = opts.maxPendingBytes ?? AUDIT_MAX_PENDING_BYTES;
  let dest: Destination | null = null;
  // Bytes handed to the current destination that the disk has not taken yet.
  let pending = 0;
  let retryAt = 0;
  let dropped = 0;
  let droppedSince = '';
  // Records a note stands for until the disk has taken it: a write that fails puts them back.
  let noteUnconfirmed = 0;
  const drop = (why: string) => {
    if (dropped === 0) {
      droppedSince = new Date().toISOString();
      opts.onDrop?.(why);
    }
    dropped++;
  };
  const open = (): Destination => {
    // sonic-boom's own cap is a backstop above ours (it counts characters, we count bytes).
    const d = pino.destination({ fd: openAppendSafe(file), sync: false, maxLength: maxPending + 64 * 1024 });
    d.on('drop', () => drop('slow'));
    d.on('write', (n: number) => {
      if (d !== dest) return;
      pending = Math.max(0, pending - n);
      noteUnconfirmed = 0;
    });
    d.on('error', (err: Error) => {
      if (d !== dest) return; // a destination already dropped
      if (noteUnconfirmed > 0) {
        if (dropped === 0) droppedSince = new Date().toISOString();
        dropped += noteUnconfirmed;
        noteUnconfirmed = 0;
      }
      dest = null;
      retryAt = Date.now() + RETRY_OPEN_MS;
      d.destroy(); // also keeps pino's exit hook from flushing it
      opts.onError?.(err);
    });
    pending = 0;
    return d;
  };
  const put = (d: Destination, line: string) => {
    pending += Buffer.byteLength(line);
    d.write(line);
  };
  dest = open();
  return {
    write(rec) {
      if (!dest) {
        if (Date.now() < retryAt) return drop('failed');
        try {
          dest = open();
        } catch {
          retryAt = Date.now() + RETRY_OPEN_MS;
          return drop('failed');
        }
      }
      if (dropped > 0) {
        // Only once the backlog has mostly drained: a note squeezed into every gap would say little.
        if (pending > maxPending / 2) return drop('slow');
        const note: AuditRecord = {
          time: new Date().toISOString(),
          uid: -1,
          pid: process.pid,
          request_id: 'unknown',
          type: 'audit-dropped',
          outcome: 'error',
          error: `${dropped} audit records dropped since ${droppedSince} (the audit log could not be written fast enough, or not at all)`,
          count: dropped,
          duration_ms: 0,
        };
        put(dest, JSON.stringify(note) + '\n');
        noteUnconfirmed += dropped;
        dropped = 0;
      }
      const line = JSON.stringify(rec) + '\n';
      if (pending + Buffer.byteLength(line) > maxPending) return drop('slow');
      put(dest, line);
    },
    reopen() {
      // Log rotation: a new file at the same path, with the same checks.
      try {
        const old = dest;
        dest = open();
        old?.flush(() => old.end());
      } catch {
        // keep writing to the old file rather than lose records
      }
    },
    flush() {
      return new Promise((resolve) => {
        if (!dest) return resolve();
        try {
          dest.flush(() => resolve());
        } catch {
          resolve();
        }
      });
    },
    close() {
      const old = dest;
      dest = null;
      retryAt = Infinity;
      try {
        old?.flush(() => old.end());
      } catch {
        old?.end();
      }
    },
  };
}
