/**
 * clamd over its Unix socket. Commands and replies in the `z` form end with a NUL, which no path
 * holds, so a file name with a newline cannot split or fake a reply: `<path>: <signature> FOUND`,
 * `<path>: OK`, `<path>: <why> ERROR`. The path is everything before the last ": " (signature
 * names have no ": ").
 */
import net from 'node:net';
import type { Infected } from './clamscan-output.ts';

/** Most bytes of replies read from one command (a reply per infected file or error). */
const MAX_REPLY_BYTES = 16 * 1024 * 1024;

/** Sends one command, gives the NUL-ended replies; null when clamd does not answer. */
function ask(socket: string, command: string, signal: AbortSignal, timeoutMs: number): Promise<{ replies: string[]; truncated: boolean } | null> {
  return new Promise((resolve) => {
    const conn = net.createConnection(socket);
    const chunks: Buffer[] = [];
    let size = 0;
    let truncated = false;
    let done = false;
    const finish = (v: { replies: string[]; truncated: boolean } | null) => {
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
      if (size + c.length > MAX_REPLY_BYTES) {
        truncated = true;
        chunks.push(c.subarray(0, MAX_REPLY_BYTES - size));
        size = MAX_REPLY_BYTES;
        conn.destroy();
        return;
      }
      chunks.push(c);
      size += c.length;
    });
    conn.on('error', () => finish(null));
    conn.on('close', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      finish({ replies: text.split('\0').filter((r) => r !== ''), truncated });
    });
  });
}

/** clamd's version line ("ClamAV 1.4.6/27000/..."), or null when its socket does not answer. */
export async function clamdVersion(socket: string, signal: AbortSignal): Promise<string | null> {
  const r = await ask(socket, 'VERSION', signal, 3000);
  return r?.replies[0]?.trim() || null;
}

/** Scans each path (recursively) with CONTSCAN: every infected file and every error. */
export async function clamdScan(socket: string, paths: string[], signal: AbortSignal, timeoutMs: number): Promise<{ infected: Infected[]; errors: string[]; truncated: boolean }> {
  const infected: Infected[] = [];
  const errors: string[] = [];
  let truncated = false;
  const deadline = Date.now() + timeoutMs;
  for (const p of paths) {
    if (signal.aborted) break;
    const r = await ask(socket, `CONTSCAN ${p}`, signal, Math.max(1, deadline - Date.now()));
    if (r === null) {
      if (!signal.aborted) errors.push(`${p}: clamd did not answer`);
      continue;
    }
    truncated ||= r.truncated;
    for (const reply of r.replies) {
      const i = reply.lastIndexOf(': ');
      const what = i < 0 ? reply : reply.slice(i + 2);
      if (what.endsWith(' FOUND')) infected.push({ path: reply.slice(0, i), signature: what.slice(0, -' FOUND'.length) });
      else if (what !== 'OK') errors.push(reply.slice(0, 1000));
    }
  }
  return { infected, errors, truncated };
}
