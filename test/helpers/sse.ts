/**
 * A reader of tuxsec-server's live events (`GET /api/v1/events`, server-sent events) over real
 * TLS with the admin token: collects events as they come and waits for one that matches.
 */
import { readFileSync } from 'node:fs';
import { Agent, request } from 'undici';

export interface SseEvent {
  event: string;
  data: unknown;
}

export interface SseReader {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  events: SseEvent[];
  /** Comment lines seen (heartbeats). */
  comments: string[];
  /** Resolves with the first event (seen so far or to come) `match` accepts. */
  waitFor(what: string, match: (e: SseEvent) => boolean, timeoutMs?: number): Promise<SseEvent>;
  /** Resolves when the server ends the stream. */
  ended: Promise<void>;
  close(): Promise<void>;
}

export async function openEvents(srv: { url: string; certs: { ca: string } }, token: string): Promise<SseReader> {
  const dispatcher = new Agent({ connect: { ca: readFileSync(srv.certs.ca) }, bodyTimeout: 0 });
  const res = await request(`${srv.url}/api/v1/events`, { dispatcher, headers: { authorization: `Bearer ${token}` }, bodyTimeout: 0 });
  const events: SseEvent[] = [];
  const comments: string[] = [];
  const waiters = new Set<() => void>();
  let buf = '';
  const parse = (): void => {
    let i: number;
    while ((i = buf.indexOf('\n\n')) >= 0) {
      const block = buf.slice(0, i);
      buf = buf.slice(i + 2);
      let event = 'message';
      const data: string[] = [];
      for (const line of block.split('\n')) {
        if (line.startsWith(':')) comments.push(line.slice(1).trim());
        else if (line.startsWith('event: ')) event = line.slice(7);
        else if (line.startsWith('data: ')) data.push(line.slice(6));
      }
      if (data.length > 0) events.push({ event, data: JSON.parse(data.join('\n')) });
    }
    for (const w of [...waiters]) w();
  };
  const ended = (async () => {
    if (res.statusCode !== 200) {
      const text = await res.body.text();
      buf = '';
      events.push({ event: 'refused', data: JSON.parse(text) });
      return;
    }
    try {
      for await (const chunk of res.body) {
        buf += (chunk as Buffer).toString('utf8');
        parse();
      }
    } catch {
      // closed by us
    }
  })();
  return {
    status: res.statusCode,
    headers: res.headers,
    events,
    comments,
    ended,
    waitFor(what, match, timeoutMs = 15_000) {
      return new Promise((resolve, reject) => {
        const check = (): void => {
          const e = events.find(match);
          if (!e) return;
          waiters.delete(check);
          clearTimeout(timer);
          resolve(e);
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}; events: ${JSON.stringify(events.map((e) => [e.event, (e.data as { status?: string; state?: string }).status ?? (e.data as { state?: string }).state]))}`));
        }, timeoutMs);
        waiters.add(check);
        check();
      });
    },
    async close() {
      res.body.destroy();
      await dispatcher.destroy();
    },
  };
}
