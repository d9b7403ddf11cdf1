/**
 * Push mode: tuxsec-server (or the original Django server) calls the agent over HTTPS
 * (INTEROP section 3): `POST /execute` and `GET /health`, header `X-API-Key`.
 *
 * node:https rather than fastify: two routes, and the agent bundle does not carry fastify.
 * Every request passes, in order and before its body is read: the per-client rate limit (429),
 * no `Origin`/`Referer` (403: a browser was made to send it), the api_key compared in constant
 * time (401, one body whatever was wrong). Only then is the body read, at most MAX_BODY_BYTES.
 * A refused request's body is never read: the answer closes the connection.
 * Jobs run through the one Executor and journal: a job id seen before is answered from the
 * stored result, never run again.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import https from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type net from 'node:net';
import { ErrorCodes } from '../protocol/errors.ts';
import { executeReplyOf, parseExecuteBody, type ExecuteReply, type JobEnvelope } from '../protocol/jobs.ts';
import { assertPrivateFile } from './config.ts';
import type { Executor } from './executor.ts';
import type { Journal } from './journal.ts';
import type { Outbox } from './outbox.ts';

export const MAX_BODY_BYTES = 1024 * 1024;
/** Longer X-API-Key values are refused unread (as wrong); the header block as a whole is capped by MAX_HEADER_BYTES. */
const MAX_KEY_CHARS = 1024;
const MAX_HEADER_BYTES = 32 * 1024;

/** The one answer to every request whose key is missing, empty, malformed, oversized or wrong. */
export const UNAUTHORIZED_BODY = JSON.stringify({ success: false, result: {}, error: 'cannot accept request: missing or invalid X-API-Key', code: ErrorCodes.unauthorized });

export interface PushLimits {
  /** Requests per second per client address (burst the same). */
  ratePerSec: number;
  /** Refused keys per second per client address (burst 10x): guessing is slow. */
  authFailuresPerSec: number;
  /** Open connections per client address, and in all. */
  connectionsPerClient: number;
  maxConnections: number;
  /** Slow clients: TLS handshake, header block, whole request (ms). */
  handshakeTimeoutMs: number;
  headersTimeoutMs: number;
  requestTimeoutMs: number;
  /** An idle keep-alive connection is closed after this long (ms). */
  keepAliveTimeoutMs: number;
}

export const DEFAULT_LIMITS: PushLimits = {
  ratePerSec: 5000,
  authFailuresPerSec: 5,
  connectionsPerClient: 16,
  maxConnections: 256,
  handshakeTimeoutMs: 10_000,
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 30_000,
  keepAliveTimeoutMs: 65_000,
};

export interface TlsFiles {
  cert: string;
  key: string;
  /** With a CA, a client certificate it signed is required. */
  ca: string | null;
}

export interface PushOptions {
  host: string;
  port: number;
  tls: TlsFiles;
  version: string;
  limits?: Partial<PushLimits>;
}

export interface PushDeps {
  executor: Executor;
  journal: Journal;
  /** The executor's sink in push mode: results kept for a repeated id (Outbox with dirName push-results). */
  results: Outbox;
  rootd: { listModules(): Promise<string[]> };
  /** The current api_key (re-read on SIGHUP). */
  apiKey: () => string;
  log: { info(o: object, m: string): void; warn(o: object, m: string): void; error(o: object, m: string): void };
}

/** Reads the TLS files, refusing a private key group or others can read. Throws a message naming the file. */
export function readTlsFiles(f: TlsFiles): { cert: Buffer; key: Buffer; ca?: Buffer } {
  assertPrivateFile(f.key, 'ssl_key');
  const read = (file: string, what: string) => {
    try {
      return fs.readFileSync(file);
    } catch (e) {
      throw new Error(`cannot read ${what} ${JSON.stringify(file)}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { cause: e });
    }
  };
  return { cert: read(f.cert, 'ssl_cert'), key: read(f.key, 'ssl_key'), ...(f.ca !== null ? { ca: read(f.ca, 'ca_cert') } : {}) };
}

class Bucket {
  private tokens: number;
  private at = Date.now();
  constructor(
    private readonly rate: number,
    private readonly burst: number,
  ) {
    this.tokens = burst;
  }
  take(): boolean {
    const now = Date.now();
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.at) / 1000) * this.rate);
    this.at = now;
    if (this.tokens < 1) return false;
    this.tokens--;
    return true;
  }
}

interface Client {
  conns: number;
  requests: Bucket;
  failures: Bucket;
  seen: number;
}

function send(res: ServerResponse, status: number, body: string, close = false, extra: Record<string, string> = {}): void {
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': String(Buffer.byteLength(body)),
    'cache-control': 'no-store',
    ...(close ? { connection: 'close' } : {}),
    ...extra,
  });
  res.end(body);
}

function sendJson(res: ServerResponse, status: number, v: unknown): void {
  send(res, status, JSON.stringify(v));
}

/** A refusal before the body is read: answered, then the connection closes (its body is never read). */
function refuse(res: ServerResponse, status: number, body: string, extra: Record<string, string> = {}): void {
  send(res, status, body, true, extra);
}

/** Reads a body up to `max` bytes; null when larger (the connection is then closed). */
function readBody(req: IncomingMessage, max: number): Promise<Buffer | null> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length'] ?? 0);
    if (declared > max) return resolve(null);
    const chunks: Buffer[] = [];
    let n = 0;
    req.on('data', (c: Buffer) => {
      n += c.length;
      if (n > max) {
        req.removeAllListeners('data');
        req.pause();
        resolve(null);
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

export class PushServer {
  readonly server: https.Server;
  private readonly o: PushOptions;
  private readonly d: PushDeps;
  private readonly limits: PushLimits;
  private readonly clients = new Map<string, Client>();
  /** Jobs running now, by id: a repeat arriving meanwhile waits for the same result. */
  private readonly running = new Map<string, Promise<ExecuteReply>>();
  private keyHash: Buffer;
  private readonly sweep: NodeJS.Timeout;

  constructor(opts: PushOptions, deps: PushDeps) {
    this.o = opts;
    this.d = deps;
    this.limits = { ...DEFAULT_LIMITS, ...opts.limits };
    this.keyHash = crypto.createHash('sha256').update(deps.apiKey()).digest();
    const files = readTlsFiles(opts.tls);
    this.server = https.createServer(
      {
        ...files,
        minVersion: 'TLSv1.2',
        requestCert: opts.tls.ca !== null,
        rejectUnauthorized: opts.tls.ca !== null,
        handshakeTimeout: this.limits.handshakeTimeoutMs,
        headersTimeout: this.limits.headersTimeoutMs,
        requestTimeout: this.limits.requestTimeoutMs,
        keepAliveTimeout: this.limits.keepAliveTimeoutMs,
        maxHeaderSize: MAX_HEADER_BYTES,
      },
      (req, res) => {
        this.handle(req, res).catch((e: Error) => {
          this.d.log.error({}, `cannot answer ${req.method} ${req.url?.slice(0, 100)}: ${e.message}`);
          if (!res.headersSent) refuse(res, 500, JSON.stringify({ success: false, result: {}, error: 'internal error', code: ErrorCodes.internal }));
          else res.destroy();
        });
      },
    );
    this.server.maxConnections = this.limits.maxConnections;
    this.server.maxRequestsPerSocket = 0;
    this.server.on('connection', (s: net.Socket) => this.onConnection(s));
    this.server.on('tlsClientError', (e: Error, s: net.Socket) => {
      this.d.log.warn({ client: s.remoteAddress }, `refused a TLS connection: ${e.message.slice(0, 200)}`);
    });
    // Idle clients are forgotten so the map stays bounded by the connections and rate windows.
    this.sweep = setInterval(() => {
      const old = Date.now() - 60_000;
      for (const [ip, c] of this.clients) if (c.conns === 0 && c.seen < old) this.clients.delete(ip);
    }, 30_000);
    this.sweep.unref();
  }

  private client(ip: string): Client {
    let c = this.clients.get(ip);
    if (!c) {
      const l = this.limits;
      c = { conns: 0, requests: new Bucket(l.ratePerSec, l.ratePerSec), failures: new Bucket(l.authFailuresPerSec, 10 * l.authFailuresPerSec), seen: Date.now() };
      this.clients.set(ip, c);
    }
    return c;
  }

  /** At TCP accept, before TLS: one client address cannot take every connection. */
  private onConnection(s: net.Socket): void {
    const ip = s.remoteAddress ?? '?';
    const c = this.client(ip);
    if (c.conns >= this.limits.connectionsPerClient) {
      this.d.log.warn({ client: ip, open: c.conns }, 'refused a connection: too many open connections from this client');
      s.destroy();
      return;
    }
    c.conns++;
    s.once('close', () => {
      c.conns--;
      c.seen = Date.now();
    });
  }

  /** Constant time whatever the value: both sides hashed to 32 bytes first. */
  private keyMatches(header: string | string[] | undefined): boolean {
    if (typeof header !== 'string' || header.length === 0 || header.length > MAX_KEY_CHARS) return false;
    return crypto.timingSafeEqual(crypto.createHash('sha256').update(header).digest(), this.keyHash);
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const ip = req.socket.remoteAddress ?? '?';
    const c = this.client(ip);
    c.seen = Date.now();
    if (!c.requests.take()) {
      refuse(res, 429, JSON.stringify({ success: false, result: {}, error: 'cannot accept request: too many requests from this client', code: ErrorCodes.rateLimited }), { 'retry-after': '1' });
      return;
    }
    if (req.headers.origin !== undefined || req.headers.referer !== undefined) {
      refuse(res, 403, JSON.stringify({ success: false, result: {}, error: 'cannot accept request: a request from a web page (Origin or Referer header) is never served', code: ErrorCodes.permissionDenied }));
      return;
    }
    if (!this.keyMatches(req.headers['x-api-key'])) {
      // Guessing is throttled; a client over its budget is told to wait, not told the key is wrong.
      if (!c.failures.take()) {
        refuse(res, 429, JSON.stringify({ success: false, result: {}, error: 'cannot accept request: too many requests from this client', code: ErrorCodes.rateLimited }), { 'retry-after': '1' });
        return;
      }
      this.d.log.warn({ client: ip, method: req.method, path: req.url?.slice(0, 100) }, 'refused a request: missing or invalid X-API-Key');
      refuse(res, 401, UNAUTHORIZED_BODY);
      return;
    }
    const url = (req.url ?? '').split('?')[0] ?? '';
    if (url === '/health' && req.method === 'GET') return this.health(res);
    if (url === '/execute' && req.method === 'POST') return this.execute(req, res);
    const known = url === '/health' || url === '/execute';
    refuse(
      res,
      known ? 405 : 404,
      JSON.stringify({ success: false, result: {}, error: known ? `cannot ${req.method} ${url}: method not allowed` : `cannot find ${JSON.stringify(url.slice(0, 100))}`, code: ErrorCodes.notFound }),
      known ? { allow: url === '/health' ? 'GET' : 'POST' } : {},
    );
  }

  private async health(res: ServerResponse): Promise<void> {
    let modules: string[] = [];
    let connected: boolean;
    try {
      modules = await this.d.rootd.listModules();
      connected = true;
    } catch {
      connected = false;
    }
    sendJson(res, 200, { status: connected ? 'healthy' : 'unhealthy', rootd_connected: connected, version: this.o.version, modules });
  }

  private async execute(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const buf = await readBody(req, MAX_BODY_BYTES);
    if (buf === null) {
      refuse(res, 413, JSON.stringify({ success: false, result: {}, error: `cannot run job: the body is larger than ${MAX_BODY_BYTES} bytes`, code: ErrorCodes.messageTooLarge }));
      return;
    }
    let raw: unknown;
    try {
      raw = JSON.parse(buf.toString('utf8'));
    } catch {
      sendJson(res, 400, { success: false, result: {}, error: 'cannot run job: the body is not JSON', code: ErrorCodes.invalidJson });
      return;
    }
    let job: JobEnvelope;
    try {
      job = parseExecuteBody(raw, () => `push-${crypto.randomUUID()}`);
    } catch (e) {
      sendJson(res, 400, { success: false, result: {}, error: (e as Error).message, code: ErrorCodes.invalidRequest });
      return;
    }
    const reply = await this.runOnce(job);
    sendJson(res, reply.code === ErrorCodes.invalidRequest && reply.id === undefined ? 400 : 200, reply);
  }

  /** Runs a job at most once: a repeated id gets the stored result (or waits for the running one). */
  private async runOnce(job: JobEnvelope): Promise<ExecuteReply> {
    const rawId = job.id;
    const id = typeof rawId === 'string' || typeof rawId === 'number' ? String(rawId) : null;
    if (id !== null) {
      const pending = this.running.get(id);
      if (pending) return pending;
      if (this.d.journal.has(id)) return this.stored(id);
    }
    const p = this.d.executor.run(job).then((out): ExecuteReply => {
      if (out.ran) return executeReplyOf(out.result);
      if (out.reason === 'duplicate' && id !== null) return this.stored(id);
      return { success: false, result: {}, error: 'cannot run job: missing or invalid "id"', code: ErrorCodes.invalidRequest };
    });
    if (id === null) return p;
    this.running.set(id, p);
    try {
      return await p;
    } finally {
      this.running.delete(id);
      this.d.results.trim();
    }
  }

  private stored(id: string): ExecuteReply {
    const r = this.d.results.get(id);
    if (r) return executeReplyOf(r);
    return {
      success: false,
      result: {},
      error: `cannot run job "${id.slice(0, 200)}": it already ran and its result is no longer kept; it was not run again`,
      id,
      status: 'failed',
      code: ErrorCodes.conflict,
    };
  }

  /** Re-reads the certificate, key and CA (SIGHUP) and the api_key; on any error keeps the old ones. */
  reload(apiKey: string): void {
    const files = readTlsFiles(this.o.tls);
    this.server.setSecureContext({ ...files, minVersion: 'TLSv1.2' });
    this.keyHash = crypto.createHash('sha256').update(apiKey).digest();
  }

  listen(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.o.port, this.o.host, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
  }

  /** Stops taking connections, lets running jobs finish, then closes what is left. */
  async close(): Promise<void> {
    clearInterval(this.sweep);
    const done = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeIdleConnections();
    await Promise.allSettled([...this.running.values()]);
    this.server.closeAllConnections();
    await done;
  }
}
