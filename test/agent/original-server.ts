/**
 * A small stand-in for the original Django server (INTEROP section 2, nothing more): registration
 * without a token, check-ins answered at once (no long-poll), commands handed out once and marked
 * sent, `command_results` stored, no `acknowledged`. Also used with bad certificates for TLS tests.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import https from 'node:https';
import type net from 'node:net';

export interface Checkin {
  at: number;
  headers: Record<string, string | string[] | undefined>;
  body: Record<string, unknown>;
}

export interface OriginalServer {
  url: string;
  /** Every HTTP request received (a TLS refusal leaves this empty). */
  requests: number;
  checkins: Checkin[];
  registrations: Array<Record<string, unknown>>;
  /** command_id -> results received for it. */
  results: Map<string, Array<Record<string, unknown>>>;
  syncInterval: number;
  /** Answers the next N check-ins with this status and Retry-After. */
  failNext: { count: number; status: number; retryAfter?: string };
  queue(cmd: { id: string; module: string; action: string; params?: Record<string, unknown> }): void;
  close(): Promise<void>;
}

export async function startOriginalServer(tls: { cert: string; key: string }): Promise<OriginalServer> {
  const agents = new Map<string, string>(); // agent_id -> api_key
  const pending: Array<{ id: string; module: string; action: string; params: Record<string, unknown> }> = [];
  const sockets = new Set<net.Socket>();
  const s: OriginalServer = {
    url: '',
    requests: 0,
    checkins: [],
    registrations: [],
    results: new Map(),
    syncInterval: 1,
    failNext: { count: 0, status: 503 },
    queue: (c) => pending.push({ params: {}, ...c }),
    close: () =>
      new Promise((resolve) => {
        for (const k of sockets) k.destroy();
        srv.close(() => resolve());
      }),
  };
  const send = (res: import('node:http').ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) => {
    res.writeHead(status, { 'content-type': 'application/json', ...headers });
    res.end(JSON.stringify(body));
  };
  const srv = https.createServer({ cert: fs.readFileSync(tls.cert), key: fs.readFileSync(tls.key) }, (req, res) => {
    s.requests++;
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      let body: Record<string, unknown>;
      try {
        body = JSON.parse(Buffer.concat(chunks).toString()) as Record<string, unknown>;
      } catch {
        return send(res, 400, { success: false, error: 'Invalid JSON' });
      }
      if (req.url === '/agents/api/register/') {
        s.registrations.push(body);
        const id = crypto.randomUUID();
        const key = crypto.randomBytes(24).toString('hex');
        agents.set(id, key);
        return send(res, 200, { success: true, agent_id: id, api_key: key, checkin_interval: 30 });
      }
      if (req.url === '/agents/api/checkin/') {
        s.checkins.push({ at: Date.now(), headers: req.headers, body });
        if (s.failNext.count > 0) {
          s.failNext.count--;
          const h: Record<string, string> = {};
          if (s.failNext.retryAfter !== undefined) h['retry-after'] = s.failNext.retryAfter;
          return send(res, s.failNext.status, { success: false, error: 'unavailable' }, h);
        }
        const { agent_id: id, api_key: key } = body;
        if (typeof id !== 'string' || typeof key !== 'string') return send(res, 400, { success: false, error: 'agent_id and api_key required' });
        if (agents.get(id) !== key) return send(res, 401, { success: false, error: 'Invalid credentials' });
        for (const r of (body.command_results as Array<Record<string, unknown>>) ?? []) {
          const cid = String(r.command_id);
          s.results.set(cid, [...(s.results.get(cid) ?? []), r]);
        }
        const commands = pending.splice(0, pending.length);
        return send(res, 200, { success: true, commands, sync_interval: s.syncInterval, server_time: new Date().toISOString() });
      }
      send(res, 404, { success: false, error: 'not found' });
    });
  });
  srv.on('connection', (k: net.Socket) => {
    sockets.add(k);
    k.on('close', () => sockets.delete(k));
  });
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  s.url = `https://127.0.0.1:${(srv.address() as net.AddressInfo).port}`;
  return s;
}
