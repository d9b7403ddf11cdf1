/**
 * The agent's HTTPS client: undici with certificate verification always on (ca_cert, when set,
 * is the only trust anchor; otherwise the system store), an optional client certificate, the
 * X-API-Key header, timeouts and a response size cap. No option turns verification off.
 */
import fs from 'node:fs';
import type { Static, TSchema } from '@sinclair/typebox';
import { Agent, request, type Dispatcher } from 'undici';
import { HttpError } from '../protocol/errors.ts';
import { schemaError } from '../protocol/jobs.ts';
import { nestingDepth, findPoisonKey } from '../protocol/json.ts';

export { HttpError };

export interface HttpOptions {
  serverUrl: string;
  caCert?: string | null;
  sslCert?: string | null;
  sslKey?: string | null;
  apiKey?: string | null;
  /** Largest response body accepted, bytes. Default 4 MiB. */
  maxResponseBytes?: number;
  /** Connect timeout, ms. Default 10 s. */
  connectTimeoutMs?: number;
}

export interface PostOptions {
  /** Whole-request timeout in ms (headers and body). */
  timeoutMs: number;
  signal?: AbortSignal;
}

export interface HttpResponse {
  status: number;
  body: Record<string, unknown>;
  /** Seconds from a Retry-After header (delta or date), when present and sane. */
  retryAfter: number | null;
}

/**
 * The body of a 2xx answer checked against the message's schema (protocol/jobs.ts); else an
 * HttpError with the answer's status naming what was wrong.
 */
export function replyBody<T extends TSchema>(res: HttpResponse, schema: T, p: string): Static<T> {
  const why = schemaError(schema, res.body);
  if (why !== null) throw new HttpError(`cannot read answer of /${p.replace(/^\/+/, '')}: ${why}`, res.status, { retryAfter: res.retryAfter });
  return res.body as Static<T>;
}

function readPem(file: string, what: string): Buffer {
  try {
    return fs.readFileSync(file);
  } catch (e) {
    throw new Error(`cannot read ${what} ${JSON.stringify(file)}: ${(e as Error).message}`, { cause: e });
  }
}

/** Parses Retry-After (seconds or HTTP date) into seconds, capped at one hour. */
export function parseRetryAfter(v: string | string[] | undefined, now = Date.now()): number | null {
  const s = Array.isArray(v) ? v[0] : v;
  if (!s) return null;
  let secs: number;
  if (/^\d{1,9}$/.test(s.trim())) secs = Number(s.trim());
  else {
    const t = Date.parse(s);
    if (Number.isNaN(t)) return null;
    secs = Math.max(0, (t - now) / 1000);
  }
  return Math.min(secs, 3600);
}

export class HttpClient {
  private readonly base: URL;
  private readonly dispatcher: Dispatcher;
  private readonly apiKey: string | null;
  private readonly maxBytes: number;

  constructor(opts: HttpOptions) {
    const base = new URL(opts.serverUrl);
    if (base.protocol !== 'https:') throw new Error(`cannot use server_url ${JSON.stringify(opts.serverUrl)}: only https:// is allowed`);
    if (!base.pathname.endsWith('/')) base.pathname += '/';
    this.base = base;
    this.apiKey = opts.apiKey ?? null;
    this.maxBytes = opts.maxResponseBytes ?? 4 * 1024 * 1024;
    const tls: Record<string, unknown> = { rejectUnauthorized: true };
    if (opts.caCert) tls.ca = readPem(opts.caCert, 'ca_cert');
    if (opts.sslCert && opts.sslKey) {
      tls.cert = readPem(opts.sslCert, 'ssl_cert');
      tls.key = readPem(opts.sslKey, 'ssl_key');
    }
    this.dispatcher = new Agent({
      connect: { ...tls, timeout: opts.connectTimeoutMs ?? 10_000 },
      keepAliveTimeout: 60_000,
      connections: 4,
    });
  }

  url(p: string): URL {
    return new URL(p.replace(/^\/+/, ''), this.base);
  }

  /** POSTs JSON; resolves for 2xx with a JSON object body, rejects with HttpError otherwise. */
  async post(p: string, body: unknown, opts: PostOptions): Promise<HttpResponse> {
    const url = this.url(p);
    const ac = new AbortController();
    const timer = setTimeout(() => ac.abort(new Error(`no answer within ${opts.timeoutMs} ms`)), opts.timeoutMs);
    const onAbort = () => ac.abort(opts.signal?.reason);
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    const headers: Record<string, string> = { 'content-type': 'application/json', accept: 'application/json' };
    if (this.apiKey) headers['x-api-key'] = this.apiKey;
    try {
      let res: Dispatcher.ResponseData;
      try {
        res = await request(url, {
          method: 'POST',
          headers,
          body: JSON.stringify(body),
          dispatcher: this.dispatcher,
          signal: ac.signal,
          headersTimeout: opts.timeoutMs,
          bodyTimeout: opts.timeoutMs,
        });
      } catch (e) {
        throw new HttpError(`cannot reach ${url.origin}${url.pathname}: ${describe(e, ac.signal)}`, 0);
      }
      const retryAfter = parseRetryAfter(res.headers['retry-after']);
      const len = Number(res.headers['content-length'] ?? 0);
      if (len > this.maxBytes) {
        res.body.destroy();
        throw new HttpError(`cannot read answer of ${url.pathname}: ${len} bytes is over the ${this.maxBytes}-byte limit`, res.statusCode, { retryAfter });
      }
      const chunks: Buffer[] = [];
      let total = 0;
      try {
        for await (const c of res.body) {
          total += (c as Buffer).length;
          if (total > this.maxBytes) {
            res.body.destroy();
            throw new HttpError(`cannot read answer of ${url.pathname}: over the ${this.maxBytes}-byte limit`, res.statusCode, { retryAfter });
          }
          chunks.push(c as Buffer);
        }
      } catch (e) {
        if (e instanceof HttpError) throw e;
        throw new HttpError(`cannot read answer of ${url.pathname}: ${describe(e, ac.signal)}`, 0);
      }
      const buf = Buffer.concat(chunks);
      let parsed: unknown = null;
      if (buf.length > 0 && nestingDepth(buf, 64) <= 64) {
        try {
          parsed = JSON.parse(buf.toString('utf8'));
        } catch {
          parsed = null;
        }
      }
      const obj = parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed) && !findPoisonKey(parsed) ? (parsed as Record<string, unknown>) : null;
      if (res.statusCode < 200 || res.statusCode >= 300) {
        const msg = typeof obj?.error === 'string' ? obj.error.slice(0, 300) : `HTTP ${res.statusCode}`;
        throw new HttpError(`server refused ${url.pathname}: ${res.statusCode} ${msg}`, res.statusCode, { retryAfter, body: obj });
      }
      if (!obj) throw new HttpError(`cannot read answer of ${url.pathname}: not a JSON object`, res.statusCode, { retryAfter });
      return { status: res.statusCode, body: obj, retryAfter };
    } finally {
      clearTimeout(timer);
      opts.signal?.removeEventListener('abort', onAbort);
    }
  }

  /**
   * GETs a path without the api_key and accepts any status: what `tuxsec-cli doctor` needs to
   * see that the server answers over verified TLS, and its Date header. The body is discarded.
   */
  async probe(p: string, timeoutMs: number): Promise<{ status: number; headers: Record<string, string | string[] | undefined> }> {
    const url = this.url(p);
    const ac = new AbortController();
    const timer = setTimeout(() => ac.abort(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
    try {
      const res = await request(url, { method: 'GET', dispatcher: this.dispatcher, signal: ac.signal, headersTimeout: timeoutMs, bodyTimeout: timeoutMs });
      // dump() reads and discards at most 128 KiB, then closes the connection.
      await res.body.dump();
      return { status: res.statusCode, headers: res.headers };
    } catch (e) {
      throw new HttpError(`cannot reach ${url.origin}${url.pathname}: ${describe(e, ac.signal)}`, 0);
    } finally {
      clearTimeout(timer);
    }
  }

  async close(): Promise<void> {
    await this.dispatcher.destroy();
  }
}

function describe(e: unknown, signal: AbortSignal): string {
  if (signal.aborted && signal.reason instanceof Error) return signal.reason.message;
  const err = e as { code?: string; message?: string; cause?: { code?: string; message?: string } };
  const inner = err.cause ?? err;
  const code = inner.code ?? err.code;
  const tlsWhy: Record<string, string> = {
    UNABLE_TO_VERIFY_LEAF_SIGNATURE: 'the server certificate is not signed by a trusted CA',
    SELF_SIGNED_CERT_IN_CHAIN: 'the server certificate chain ends in an untrusted CA',
    DEPTH_ZERO_SELF_SIGNED_CERT: 'the server certificate is self-signed and not trusted',
    CERT_HAS_EXPIRED: 'the server certificate has expired',
    CERT_NOT_YET_VALID: 'the server certificate is not valid yet',
    ERR_TLS_CERT_ALTNAME_INVALID: 'the server certificate is for another host',
  };
  if (code && tlsWhy[code]) return `${tlsWhy[code]} (${code})`;
  return `${inner.message ?? String(e)}${code ? ` (${code})` : ''}`;
}
