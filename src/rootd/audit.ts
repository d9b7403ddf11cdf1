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
  duration_ms: number;
}

export interface AuditLog {
  write(rec: AuditRecord): void;
  reopen(): void;
  flush(): Promise<void>;
}

const MAX_STRING = 256;

/** Copy of a parameters value with secret-looking keys masked and long strings cut. */
export function redact(value: unknown, depth = 0): unknown {
  if (depth > 8) return '[deep]';
  if (typeof value === 'string') return value.length > MAX_STRING ? `${value.slice(0, MAX_STRING)}…(${value.length} chars)` : value;
  if (Array.isArray(value)) return value.slice(0, 64).map((v) => redact(v, depth + 1));
  if (value && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = SECRET_KEY.test(k) ? '[redacted]' : redact(v, depth + 1);
    return out;
  }
  return value;
}

export const nullAudit: AuditLog = { write() {}, reopen() {}, async flush() {} };

/** After a failed write, how long records are dropped before the file is opened again. */
const RETRY_OPEN_MS = 5000;

type Destination = ReturnType<typeof pino.destination>;

/**
 * Opens the audit log for appending. The file and its directory must be root's alone
 * (see secure-files.ts): refused otherwise, so a link planted by another user is never followed.
 * A write that fails (disk full) drops that destination and reports it through `onError`;
 * records are then dropped until the file can be opened again. Unhandled, the error would
 * stop the daemon, and pino's exit flush would retry the write forever.
 */
export function openAuditLog(file: string, onError?: (err: Error) => void): AuditLog {
  let dest: Destination | null = null;
  let retryAt = 0;
  const open = (): Destination => {
    const d = pino.destination({ fd: openAppendSafe(file), sync: false });
    d.on('error', (err: Error) => {
      if (d !== dest) return; // a destination already dropped
      dest = null;
      retryAt = Date.now() + RETRY_OPEN_MS;
      d.destroy(); // also keeps pino's exit hook from flushing it
      onError?.(err);
    });
    return d;
  };
  dest = open();
  return {
    write(rec) {
      if (!dest) {
        if (Date.now() < retryAt) return;
        try {
          dest = open();
        } catch {
          retryAt = Date.now() + RETRY_OPEN_MS;
          return;
        }
      }
      dest.write(JSON.stringify(rec) + '\n');
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
  };
}
