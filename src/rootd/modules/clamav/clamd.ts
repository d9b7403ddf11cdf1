/**
 * clamd over its Unix socket. Commands and replies in the `z` form end with a NUL, which no path
 * holds, so a file name with a newline cannot split or fake a reply: `<path>: <signature> FOUND`,
 * `<path>: OK`, `<path>: <why> ERROR`. The path is everything before the last ": " (signature
 * names have no ": ").
 */
import net from 'node:net';
import type { Infected } from './clamscan-output.ts';

/** Most bytes of replies read from clamd for one scan, all paths together. */
export const MAX_REPLY_BYTES = 16 * 1024 * 1024;
/** Longest single reply kept (a path is at most 4096 bytes, then a signature or a reason). */
const MAX_ONE_REPLY = 64 * 1024;

interface Asked {
  /** Bytes read, to charge against a budget. */
  bytes: number;
  truncated: boolean;
}

/**
 * Sends one command and hands each NUL-ended reply to `onReply` as it arrives, so nothing but one
 * partial reply is buffered; stops after `budget` bytes. null when clamd does not answer.
 */
function ask(socket: string, command: string, signal: AbortSignal, timeoutMs: number, onReply: (r: string) => void, budget = MAX_REPLY_BYTES): Promise<Asked | null> {
  return new Promise((resolve) => {
    const conn = net.createConnection(socket);
    let partial = Buffer.alloc(0);
    let bytes = 0;
    let truncated = false;
    let done = false;
    const finish = (v: Asked | null) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      conn.destroy();
      resolve(v);
    };
    const onAbort = () => finish(null);
    const timer = setTimeout(() => finish(null), timeoutMs);
    signal.addEventListener('abort', onAbort, { once: true });
    conn.on('connect', () => conn.write(`z${command}\0`));
    conn.on('data', (c: Buffer) => {
      if (done || truncated) return;
      if (bytes + c.length > budget) {
        truncated = true;
        c = c.subarray(0, budget - bytes);
      }
      bytes += c.length;
      let data = partial.length === 0 ? c : Buffer.concat([partial, c]);
      for (let i = data.indexOf(0); i >= 0; i = data.indexOf(0)) {
        if (i > 0) onReply(data.subarray(0, i).toString('utf8'));
        data = data.subarray(i + 1);
      }
      if (data.length > MAX_ONE_REPLY) {
        truncated = true;
        data = Buffer.alloc(0);
      }
      partial = Buffer.from(data);
      if (truncated) conn.destroy();
    });
    conn.on('error', () => finish(null));
    conn.on('close', () => {
      if (partial.length > 0 && !truncated) onReply(partial.toString('utf8'));
      finish({ bytes, truncated });
    });
  });
}

/** clamd's version line ("ClamAV 1.4.6/27000/..."), or null when its socket does not answer. */
export async function clamdVersion(socket: string, signal: AbortSignal): Promise<string | null> {
  let first: string | null = null;
  await ask(socket, 'VERSION', signal, 3000, (r) => (first ??= r), MAX_ONE_REPLY);
  return first === null ? null : (first as string).trim() || null;
}

export interface ClamdScan {
  infected: Infected[];
  errors: string[];
  /** Infected files and errors found, including those past `max`. */
  infected_count: number;
  error_count: number;
  /** True when a list was cut at `max` or the replies at MAX_REPLY_BYTES. */
  truncated: boolean;
}

/**
 * Scans each path (recursively, each once) with CONTSCAN: at most `max` infected files and `max`
 * errors are kept, the rest only counted, and all replies together are read up to MAX_REPLY_BYTES.
 */
export async function clamdScan(socket: string, paths: string[], signal: AbortSignal, timeoutMs: number, max: number): Promise<ClamdScan> {
  const out: ClamdScan = { infected: [], errors: [], infected_count: 0, error_count: 0, truncated: false };
  const error = (e: string) => {
    if (++out.error_count <= max) out.errors.push(e.slice(0, 1000));
  };
  const deadline = Date.now() + timeoutMs;
  let budget = MAX_REPLY_BYTES;
  for (const p of new Set(paths)) {
    if (signal.aborted) break;
    if (budget <= 0) {
      out.truncated = true;
      break;
    }
    const r = await ask(socket, `CONTSCAN ${p}`, signal, Math.max(1, deadline - Date.now()), (reply) => {
      const i = reply.lastIndexOf(': ');
      const what = i < 0 ? reply : reply.slice(i + 2);
      if (what.endsWith(' FOUND')) {
        if (++out.infected_count <= max) out.infected.push({ path: reply.slice(0, i), signature: what.slice(0, -' FOUND'.length) });
      } else if (what !== 'OK') error(reply);
    }, budget);
    if (r === null) {
      if (!signal.aborted) error(`${p}: clamd did not answer`);
      continue;
    }
    budget -= r.bytes;
    out.truncated ||= r.truncated;
  }
  out.truncated ||= out.infected_count > max || out.error_count > max;
  return out;
}
