/**
 * A daemon written for the tests that serves rootd's socket the way the Python rootd does: it
 * reads one request line per connection, answers it, and closes the connection a moment after
 * the answer (the Python rootd logs the request in between). Anything else a client sends on
 * that connection is read and ignored. Other behaviours, per connection, model a daemon that
 * dies: closing after reading a request without answering, or closing before reading it.
 */
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';

/** What the daemon does with its n-th connection (0-based). */
export type Behaviour = 'answer' | 'read-and-close' | 'close-unread';

export interface OneShotDaemon {
  socketPath: string;
  /** Requests read, by request type, and execute_command by its `marker` parameter. */
  received: Map<string, number>;
  connections: number;
  /** Most requests read and not yet answered at once (each holds its client's connection). */
  maxWaiting: number;
  close(): Promise<void>;
}

export interface OneShotOptions {
  behaviour?: (n: number) => Behaviour;
  /** How long an answer takes (so that concurrent requests overlap). */
  answerDelayMs?: number;
  /** How long after its answer the daemon closes the connection. */
  closeDelayMs?: number;
}

export async function startOneShotDaemon(dir: string, opts: OneShotOptions = {}): Promise<OneShotDaemon> {
  const socketPath = path.join(dir, 'oneshot.sock');
  const received = new Map<string, number>();
  const count = (k: string) => received.set(k, (received.get(k) ?? 0) + 1);
  const socks = new Set<net.Socket>();
  let waiting = 0;
  const d: OneShotDaemon = { socketPath, received, connections: 0, maxWaiting: 0, close: () => Promise.resolve() };
  const server = net.createServer({ pauseOnConnect: true }, (c) => {
    const behaviour = opts.behaviour?.(d.connections) ?? 'answer';
    d.connections++;
    socks.add(c);
    c.on('close', () => socks.delete(c));
    c.on('error', () => {});
    if (behaviour === 'close-unread') {
      // Whatever the client wrote stays unread in this socket when it closes.
      setTimeout(() => c.destroy(), 50);
      return;
    }
    let buf = '';
    let got = false;
    c.on('data', (chunk: Buffer) => {
      if (got) return;
      buf += chunk.toString('utf8');
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      got = true;
      const req = JSON.parse(buf.slice(0, nl)) as { type: string; request_id: string; data: { parameters?: { marker?: string } } };
      count(req.type);
      const marker = req.data?.parameters?.marker;
      if (typeof marker === 'string') count(marker);
      if (behaviour === 'read-and-close') {
        c.destroy();
        return;
      }
      const data =
        req.type === 'ping'
          ? { pong: true }
          : req.type === 'list_modules'
            ? { modules: ['systeminfo', 'resil'] }
            : { success: true, data: { marker: marker ?? null } };
      d.maxWaiting = Math.max(d.maxWaiting, ++waiting);
      setTimeout(() => {
        waiting--;
        c.write(JSON.stringify({ type: 'success', request_id: req.request_id, data }) + '\n');
        setTimeout(() => c.end(), opts.closeDelayMs ?? 20);
      }, opts.answerDelayMs ?? 0);
    });
    c.resume();
  });
  await new Promise<void>((resolve) => server.listen(socketPath, resolve));
  // The agent runs as the tuxsec user.
  fs.chmodSync(socketPath, 0o666);
  d.close = () =>
    new Promise<void>((resolve) => {
      for (const c of socks) c.destroy();
      server.close(() => resolve());
    });
  return d;
}
