/**
 * A raw socket client for protocol tests: writes bytes, collects response lines.
 */
import net from 'node:net';

export interface RawConn {
  sock: net.Socket;
  /** Resolves with the next n response lines, parsed. */
  next(n?: number, timeoutMs?: number): Promise<Array<Record<string, unknown>>>;
  write(data: string | Buffer): void;
  /** Resolves when the daemon closes the connection. */
  closed: Promise<void>;
  close(): void;
}

export function connectRaw(socketPath: string): Promise<RawConn> {
  return new Promise((resolve, reject) => {
    const sock = net.createConnection(socketPath);
    let buf = '';
    const lines: string[] = [];
    let waiter: (() => void) | null = null;
    const closed = new Promise<void>((r) => sock.once('close', () => r()));
    sock.on('data', (c: Buffer) => {
      buf += c.toString('utf8');
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        lines.push(buf.slice(0, i));
        buf = buf.slice(i + 1);
      }
      waiter?.();
    });
    sock.on('close', () => waiter?.());
    sock.once('error', reject);
    sock.once('connect', () => {
      sock.off('error', reject);
      sock.on('error', () => {});
      resolve({
        sock,
        closed,
        write: (d) => void sock.write(d),
        close: () => sock.destroy(),
        async next(n = 1, timeoutMs = 10_000) {
          const deadline = Date.now() + timeoutMs;
          while (lines.length < n) {
            if (sock.destroyed && lines.length < n) throw new Error(`connection closed after ${lines.length} of ${n} lines`);
            if (Date.now() > deadline) throw new Error(`timed out waiting for ${n} lines (have ${lines.length})`);
            await new Promise<void>((r) => {
              waiter = r;
              setTimeout(r, 50);
            });
            waiter = null;
          }
          return lines.splice(0, n).map((l) => JSON.parse(l) as Record<string, unknown>);
        },
      });
    });
  });
}

/** One-shot, as the Python client does it: connect, one line, read to the first newline, close. */
export async function oneShot(socketPath: string, line: string): Promise<Record<string, unknown>> {
  const c = await connectRaw(socketPath);
  c.write(line + '\n');
  const [res] = await c.next(1);
  c.close();
  return res!;
}

/** Resident set size of a process in KiB, from /proc. */
export async function rssKiB(pid: number): Promise<number> {
  const { readFile } = await import('node:fs/promises');
  const s = await readFile(`/proc/${pid}/status`, 'utf8');
  return Number(/^VmRSS:\s+(\d+) kB/m.exec(s)?.[1] ?? 0);
}
