/**
 * Push mode: tuxsec-server (or the original Django server) calls the agent over HTTPS
 * (INTEROP section 3): `POST /execute` and `GET /health`, header `X-API-Key`.
 *
 * node:https rather than fastify: two routes, and the agent bundle does not carry fastify.
 * Every request passes, in order and before its body is read (and before `100 Continue` is sent
 * to a client that asked for it): the per-client rate limit (429), no `Origin`/`Referer` (403: a
 * browser was made to send it), the per-client budget of wrong keys (429 without comparing, so a
 * guesser over it learns nothing), the api_key compared in constant time (401, one body whatever
 * was wrong). Only then is the body read, at most MAX_BODY_BYTES. A refused request's body is
 * never read: the answer closes the connection. A client is an IPv4 address or an IPv6 /64 (one
 * host is usually given a whole /64).
 * Jobs run through the one Executor and journal: a job id seen before is answered from the
 * result kept in the journal, never run again; the same id with another module, action or
 * params gets 409 (`job-id-reused`), not the other job's result.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import https from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type net from 'node:net';
import { ErrorCodes } from '../protocol/errors.ts';
import { executeReplyOf, parseExecuteBody, type ExecuteReply, type JobEnvelope } from '../protocol/jobs.ts';
import { assertPrivateFile } from './config.ts';
import { answerForRepeat, envelopeHash, idReused, type Executor } from './executor.ts';
import type { Journal } from './journal.ts';
import type { PushJobs } from './push-jobs.ts';

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
  /** Open connections per client (address or /64), and in all: well below, so 16 clients cannot take them all. */
  connectionsPerClient: number;
  maxConnections: number;
  /** Slow clients: TLS handshake, header block, whole request (ms). */
  handshakeTimeoutMs: number;
  headersTimeoutMs: number;
  requestTimeoutMs: number;
  /** An idle keep-alive connection is closed after this long (ms). */
  keepAliveTimeoutMs: number;
  /** Clients remembered for their budgets; past this the least recently seen idle ones are forgotten. */
  maxClients: number;
}

export const DEFAULT_LIMITS: PushLimits = {
  ratePerSec: 5000,
  authFailuresPerSec: 5,
  connectionsPerClient: 8,
  maxConnections: 256,
  handshakeTimeoutMs: 10_000,
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 30_000,
  keepAliveTimeoutMs: 65_000,
  maxClients: 4096,
};

/** How often Node looks for connections past headersTimeout/requestTimeout (its default, 30 s, lets them overstay). */
const TIMEOUT_CHECK_MS = 1000;

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
  /** With `sink: 'journal'`: the journal keeps the results answered, for a repeated id. */
  executor: Executor;
  journal: Journal;
  rootd: { listModules(): Promise<string[]> };
  /** Long-running jobs' progress and cancel (`/jobs/<id>`, extensions); the executor's watcher. */
  jobs?: PushJobs;
  /** The api_key at start (SIGHUP sets a new one with setApiKey). */
  apiKey: string;
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
  private refill(): void {
    const now = Date.now();
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.at) / 1000) * this.rate);
    this.at = now;
  }
  /** True while a token is left, without taking it. */
  has(): boolean {
    this.refill();
    return this.tokens >= 1;
  }
  take(): boolean {
    this.refill();
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

/** Expands an IPv6 address's text to its 8 groups (null when it is not one). */
function ipv6Groups(addr: string): string[] | null {
  const halves = addr.split('::');
  if (halves.length > 2) return null;
  const part = (t: string | undefined) => (t ? t.split(':') : []);
  const head = part(halves[0]);
  const tail = part(halves[1]);
  const last = tail.length > 0 ? tail : head;
  // A trailing dotted quad (::ffff:1.2.3.4) is two groups.
  if (last.length > 0 && last[last.length - 1]!.includes('.')) last.splice(last.length - 1, 1, '0', '0');
  const fill = halves.length === 2 ? 8 - head.length - tail.length : 0;
  const groups = [...head, ...Array<string>(Math.max(0, fill)).fill('0'), ...tail];
  return groups.length === 8 ? groups.map((g) => g.toLowerCase().replace(/^0+(?=.)/, '')) : null;
}

/**
 * The client a connection counts against: an IPv4 address (also IPv4-mapped IPv6), or an IPv6
 * address's /64, which one host usually holds whole: per address it could take every slot.
 */
export function clientKey(remote: string | undefined): string {
  if (remote === undefined) return '?';
  const addr = remote.split('%')[0]!;
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(addr);
  if (mapped) return mapped[1]!;
  if (!addr.includes(':')) return addr;
  const g = ipv6Groups(addr);
  return g ? `${g.slice(0, 4).join(':')}::/64` : addr;
}

function remoteId(s: net.Socket): string {
  return `${s.remoteAddress ?? '?'}|${s.remotePort ?? 0}`;
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
  /** Jobs running now, by id, with their envelopeHash: a repeat arriving meanwhile waits for the same result. */
  private readonly running = new Map<string, { hash: string; reply: Promise<ExecuteReply> }>();
  private keyHash: Buffer;
  private readonly sweep: NodeJS.Timeout;
  /** Bumped by each TLS reload; a connection accepted before it was verified against the old context. */
  private generation = 0;
  /** The generation each open connection was accepted in (by remote address and port). */
  private readonly acceptedIn = new Map<string, number>();

  constructor(opts: PushOptions, deps: PushDeps) {
    this.o = opts;
    this.d = deps;
    this.limits = { ...DEFAULT_LIMITS, ...opts.limits };
    this.keyHash = crypto.createHash('sha256').update(deps.apiKey).digest();
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
        connectionsCheckingInterval: TIMEOUT_CHECK_MS,
        maxHeaderSize: MAX_HEADER_BYTES,
      },
      (req, res) => this.serve(req, res, false),
    );
    // Without this listener Node answers `100 Continue` itself, before the key is looked at.
    this.server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => this.serve(req, res, true));
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

  private serve(req: IncomingMessage, res: ServerResponse, expectsContinue: boolean): void {
    this.handle(req, res, expectsContinue).catch((e: Error) => {
      this.d.log.error({}, `cannot answer ${req.method} ${req.url?.slice(0, 100)}: ${e.message}`);
      if (!res.headersSent) this.refuse(res, 500, JSON.stringify({ success: false, result: {}, error: 'internal error', code: ErrorCodes.internal }));
      else res.destroy();
    });
  }

  /**
   * The client's record, most recently seen last. The map is bounded: clients with open
   * connections are at most maxConnections, and past maxClients the least recently seen idle
   * ones are forgotten (with their budgets: an attacker able to cycle through that many clients
   * has fresh budgets anyway).
   */
  private client(key: string): Client {
    let c = this.clients.get(key);
    if (c) {
      this.clients.delete(key);
    } else {
      const l = this.limits;
      c = { conns: 0, requests: new Bucket(l.ratePerSec, l.ratePerSec), failures: new Bucket(l.authFailuresPerSec, 10 * l.authFailuresPerSec), seen: Date.now() };
      for (const [k, old] of this.clients) {
        if (this.clients.size < l.maxClients) break;
        if (old.conns === 0) this.clients.delete(k);
      }
    }
    this.clients.set(key, c);
    c.seen = Date.now();
    return c;
  }

  /** Clients remembered now (bounded, see `client`). */
  get clientCount(): number {
    return this.clients.size;
  }

  /** At TCP accept, before TLS: one client cannot take every connection. */
  private onConnection(s: net.Socket): void {
    const key = clientKey(s.remoteAddress);
    const c = this.client(key);
    if (c.conns >= this.limits.connectionsPerClient) {
      this.d.log.warn({ client: key, open: c.conns }, 'refused a connection: too many open connections from this client');
      s.destroy();
      return;
    }
    c.conns++;
    const id = remoteId(s);
    this.acceptedIn.set(id, this.generation);
    s.once('close', () => {
      c.conns--;
      c.seen = Date.now();
      this.acceptedIn.delete(id);
    });
  }

  /** True for a connection accepted before the last TLS reload: it trusts the old CA and certificate. */
  private stale(s: net.Socket): boolean {
    return this.acceptedIn.get(remoteId(s)) !== this.generation;
  }

  /** Answers; a connection from before a TLS reload is closed after its answer. */
  private send(res: ServerResponse, status: number, body: string, close = false, extra: Record<string, string> = {}): void {
    send(res, status, body, close || this.stale(res.req.socket), extra);
  }

  private sendJson(res: ServerResponse, status: number, v: unknown): void {
    this.send(res, status, JSON.stringify(v));
  }

  /** A refusal before the body is read: answered, then the connection closes (its body is never read). */
  private refuse(res: ServerResponse, status: number, body: string, extra: Record<string, string> = {}): void {
    this.send(res, status, body, true, extra);
  }

  /** Constant time whatever the value: both sides hashed to 32 bytes first. */
  private keyMatches(header: string | string[] | undefined): boolean {
    if (typeof header !== 'string' || header.length === 0 || header.length > MAX_KEY_CHARS) return false;
    return crypto.timingSafeEqual(crypto.createHash('sha256').update(header).digest(), this.keyHash);
  }

  private async handle(req: IncomingMessage, res: ServerResponse, expectsContinue: boolean): Promise<void> {
    if (this.stale(req.socket)) {
      // Accepted before a TLS reload (its handshake raced the reload) and idle until now: closed
      // unanswered, as the reload's closeIdleConnections would have; the client connects again.
      req.socket.destroy();
      return;
    }
    const key = clientKey(req.socket.remoteAddress);
    const c = this.client(key);
    const tooMany = () =>
      this.refuse(res, 429, JSON.stringify({ success: false, result: {}, error: 'cannot accept request: too many requests from this client', code: ErrorCodes.rateLimited }), { 'retry-after': '1' });
    if (!c.requests.take()) return tooMany();
    if (req.headers.origin !== undefined || req.headers.referer !== undefined) {
      this.refuse(res, 403, JSON.stringify({ success: false, result: {}, error: 'cannot accept request: a request from a web page (Origin or Referer header) is never served', code: ErrorCodes.permissionDenied }));
      return;
    }
    // Over its budget of wrong keys a client is told to wait BEFORE the comparison: were it
    // compared, a 429 for wrong and a 200 for right would still tell a guesser each answer.
    if (!c.failures.has()) return tooMany();
    if (!this.keyMatches(req.headers['x-api-key'])) {
      c.failures.take();
      this.d.log.warn({ client: key, method: req.method, path: req.url?.slice(0, 100) }, 'refused a request: missing or invalid X-API-Key');
      this.refuse(res, 401, UNAUTHORIZED_BODY);
      return;
    }
    const url = (req.url ?? '').split('?')[0] ?? '';
    if (url === '/health' && req.method === 'GET') return this.health(res);
    if (url === '/execute' && req.method === 'POST') {
      if (expectsContinue) res.writeContinue();
      return this.execute(req, res);
    }
    const jobPath = /^\/jobs\/([^/]{1,400})(\/cancel)?$/.exec(url);
    if (jobPath && this.d.jobs) return this.job(req, res, jobPath[1]!, jobPath[2] !== undefined, this.d.jobs);
    const known = url === '/health' || url === '/execute';
    this.refuse(
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
    this.sendJson(res, 200, { status: connected ? 'healthy' : 'unhealthy', rootd_connected: connected, version: this.o.version, modules });
  }

  /** `GET /jobs/<id>` and `POST /jobs/<id>/cancel`: authenticated like /execute, no body read. */
  private async job(req: IncomingMessage, res: ServerResponse, rawId: string, cancel: boolean, jobs: PushJobs): Promise<void> {
    const method = cancel ? 'POST' : 'GET';
    if (req.method !== method) {
      this.refuse(res, 405, JSON.stringify({ success: false, result: {}, error: `cannot ${req.method} ${cancel ? 'a job\'s cancel' : 'a job'}: method not allowed`, code: ErrorCodes.notFound }), { allow: method });
      return;
    }
    let id: string;
    try {
      id = decodeURIComponent(rawId);
    } catch {
      id = '';
    }
    if (id === '' || id.length > 128) {
      this.refuse(res, 400, JSON.stringify({ success: false, result: {}, error: `cannot look up job ${JSON.stringify(rawId.slice(0, 100))}: not a job id`, code: ErrorCodes.invalidRequest }));
      return;
    }
    if (cancel) return this.sendJson(res, 200, { cancelled: await jobs.cancel(id) });
    this.sendJson(res, 200, jobs.state(id, this.running.has(id), this.d.journal.has(id)));
  }

  private async execute(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const buf = await readBody(req, MAX_BODY_BYTES);
    if (buf === null) {
      this.refuse(res, 413, JSON.stringify({ success: false, result: {}, error: `cannot run job: the body is larger than ${MAX_BODY_BYTES} bytes`, code: ErrorCodes.messageTooLarge }));
      return;
    }
    let raw: unknown;
    try {
      raw = JSON.parse(buf.toString('utf8'));
    } catch {
      this.sendJson(res, 400, { success: false, result: {}, error: 'cannot run job: the body is not JSON', code: ErrorCodes.invalidJson });
      return;
    }
    let job: JobEnvelope;
    try {
      job = parseExecuteBody(raw, () => `push-${crypto.randomUUID()}`);
    } catch (e) {
      this.sendJson(res, 400, { success: false, result: {}, error: (e as Error).message, code: ErrorCodes.invalidRequest });
      return;
    }
    const reply = await this.runOnce(job);
    const status = reply.code === ErrorCodes.jobIdReused ? 409 : reply.code === ErrorCodes.invalidRequest && reply.id === undefined ? 400 : 200;
    this.sendJson(res, status, reply);
  }

  /**
   * Runs a job at most once: a repeated id gets the kept result (or waits for the running one),
   * unless it asks for something else than the first time.
   */
  private async runOnce(job: JobEnvelope): Promise<ExecuteReply> {
    const rawId = job.id;
    const id = typeof rawId === 'string' || typeof rawId === 'number' ? String(rawId) : null;
    const hash = envelopeHash(job);
    if (id !== null) {
      const pending = this.running.get(id);
      if (pending) return pending.hash === hash ? pending.reply : executeReplyOf(idReused(id));
      const earlier = answerForRepeat(this.d.journal, id, job);
      if (earlier) return executeReplyOf(earlier);
    }
    const p = this.d.executor.run(job).then((out): ExecuteReply => {
      if (out.ran) return executeReplyOf(out.result);
      if (out.reason === 'duplicate' && id !== null) return executeReplyOf(answerForRepeat(this.d.journal, id, job)!);
      return { success: false, result: {}, error: 'cannot run job: missing or invalid "id"', code: ErrorCodes.invalidRequest };
    });
    if (id === null) return p;
    this.running.set(id, { hash, reply: p });
    try {
      return await p;
    } finally {
      this.running.delete(id);
    }
  }


  /**
   * Re-reads the certificate, key and CA (SIGHUP); throws, keeping the old ones, when a file
   * cannot be used. A kept-alive connection would otherwise go on trusting the old CA and
   * serving the old certificate for as long as its client keeps it busy: idle ones are closed
   * now, busy ones after their answer, so the next request handshakes against the new context.
   */
  reloadTls(): void {
    const files = readTlsFiles(this.o.tls);
    this.server.setSecureContext({ ...files, minVersion: 'TLSv1.2' });
    this.generation++;
    this.server.closeIdleConnections();
  }

  /** The api_key from now on (SIGHUP), whether or not the TLS files could be re-read. */
  setApiKey(apiKey: string): void {
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

  /**
   * Stops taking connections and lets running jobs finish, for `graceMs` at most; then calls
   * `graceOver` (the caller aborts what still runs: those end interrupted, journaled) and waits
   * for their answers before it closes what is left.
   */
  async close(graceMs = 0, graceOver: () => void = () => {}): Promise<void> {
    clearInterval(this.sweep);
    const done = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeIdleConnections();
    const answered = Promise.allSettled([...this.running.values()].map((r) => r.reply));
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([answered, new Promise((resolve) => (timer = setTimeout(resolve, graceMs)))]);
    clearTimeout(timer);
    graceOver();
    await answered;
    this.server.closeAllConnections();
    await done;
  }
}
