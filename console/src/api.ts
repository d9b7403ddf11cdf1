/**
 * The operator API as the console calls it: same-origin fetch with the session cookie, the CSRF
 * token on every change, errors as ApiError with the server's message and stable code.
 */

import { FINAL_JOB_STATUSES, type JobView } from '../../src/protocol/operator-api.ts';

export class ApiError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly code: string | null,
  ) {
    super(message);
  }
}

let csrf: string | null = null;
const loggedOut = new Set<() => void>();

/** The CSRF token of the session (from the login or session reply). */
export function setCsrf(token: string | null): void {
  csrf = token;
}

/** Called when the server says the session is gone (401): the console shows the login page. */
export function onLoggedOut(fn: () => void): () => void {
  loggedOut.add(fn);
  return () => loggedOut.delete(fn);
}

/** GETs started before the page that reads them rendered (prefetch), by path, with when they started. */
const early = new Map<string, { at: number; reply: Promise<unknown>; value?: unknown }>();
/** How long a prefetched answer may wait for its page: it is for the first render, not a cache. */
const EARLY_MS = 10_000;

/**
 * Starts `GET /api/v1${path}` now, beside the session check, instead of after it: the page that
 * renders next takes this answer in its first api('GET', path) call (once). A first load then waits
 * for one round trip instead of two in a row.
 */
export function prefetch(path: string): Promise<unknown> {
  const had = early.get(path);
  if (had !== undefined) return had.reply;
  const e: { at: number; reply: Promise<unknown>; value?: unknown } = { at: Date.now(), reply: request('GET', path, undefined, false) };
  // A page that never asks for it (a lost session) needs no error.
  e.reply.then(
    (v) => (e.value = v),
    () => undefined,
  );
  early.set(path, e);
  return e.reply;
}

/**
 * The prefetched answer of `GET path` if it has arrived (taken once): the page renders with it at
 * once, without a render of "Loading…" and a request from an effect after the next frame.
 */
export function takePrefetched<T>(path: string): T | undefined {
  const e = early.get(path);
  if (e === undefined || e.value === undefined || Date.now() - e.at >= EARLY_MS) return undefined;
  early.delete(path);
  return e.value as T;
}

/** Forgets prefetched answers (another session: after a login or a logout). */
export function dropPrefetched(): void {
  early.clear();
}

/** Calls `/api/v1${path}`; resolves with the JSON body of a 2xx reply, rejects with ApiError. */
export async function api<T = Record<string, unknown>>(method: 'GET' | 'POST' | 'PUT' | 'DELETE', path: string, body?: unknown): Promise<T> {
  const e = method === 'GET' ? early.get(path) : undefined;
  if (e !== undefined) {
    early.delete(path);
    if (Date.now() - e.at < EARLY_MS) {
      return (e.reply as Promise<T>).catch((err: unknown) => {
        if (err instanceof ApiError && err.status === 401 && path !== '/session') for (const fn of loggedOut) fn();
        throw err;
      });
    }
  }
  return request<T>(method, path, body);
}

/**
 * How long a request may go without its whole answer, beyond the `wait` of a long poll: a request
 * on a connection that died silently would otherwise hang for minutes, and the page with it.
 */
export const REQUEST_DEADLINE_MS = 60_000;

/** The request itself; `signal401` false: a 401 is only this call's error, not yet a logout. */
async function request<T = Record<string, unknown>>(method: 'GET' | 'POST' | 'PUT' | 'DELETE', path: string, body?: unknown, signal401 = true): Promise<T> {
  // A POST always carries a JSON body ({} for "no options"); GET and DELETE never do.
  const payload = body !== undefined ? body : method === 'POST' || method === 'PUT' ? {} : undefined;
  const headers: Record<string, string> = { accept: 'application/json' };
  if (payload !== undefined) headers['content-type'] = 'application/json';
  if (method !== 'GET' && csrf !== null) headers['x-csrf-token'] = csrf;
  const wait = Number(new URLSearchParams(path.split('?')[1] ?? '').get('wait') ?? 0) || 0;
  const deadlineMs = REQUEST_DEADLINE_MS + Math.min(wait, 300) * 1000;
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), deadlineMs);
  const failed = (e: unknown): ApiError =>
    abort.signal.aborted ? new ApiError(`no answer from the server within ${deadlineMs / 1000} s`, 0, null) : new ApiError(`cannot reach the server: ${(e as Error).message}`, 0, null);
  let res: Response;
  let text: string;
  try {
    // The page's policy is no-referrer, under which the Fetch standard sends `Origin: null` with a
    // POST (Firefox does); the server checks the Origin of a change, so these requests say same-origin.
    res = await fetch(`/api/v1${path}`, { method, headers, credentials: 'same-origin', referrerPolicy: 'same-origin', signal: abort.signal, ...(payload === undefined ? {} : { body: JSON.stringify(payload) }) });
    text = await res.text();
  } catch (e) {
    throw failed(e);
  } finally {
    clearTimeout(timer);
  }
  let data: Record<string, unknown> = {};
  if (text !== '') {
    try {
      data = JSON.parse(text) as Record<string, unknown>;
    } catch {
      data = { error: text.slice(0, 200) };
    }
  }
  if (!res.ok) {
    if (res.status === 401 && signal401 && path !== '/session') for (const fn of loggedOut) fn();
    const msg = typeof data.error === 'string' ? data.error : `${method} ${path}: HTTP ${res.status}`;
    throw new ApiError(msg, res.status, typeof data.code === 'string' ? data.code : null);
  }
  return data as T;
}

/** A query string from the values given (empty ones left out; arrays repeat the key). */
export function query(q: Record<string, string | number | undefined | null | string[]>): string {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(q)) {
    if (v === undefined || v === null || v === '') continue;
    if (Array.isArray(v)) for (const x of v) p.append(k, x);
    else p.set(k, String(v));
  }
  const s = p.toString();
  return s === '' ? '' : `?${s}`;
}

/**
 * Queues a job and waits (in 25 s long-polls, `maxSeconds` in all) until it ends or time is up.
 * The job expires when the page stops waiting: a host that comes back later does not run a read
 * nobody looks at, or a change nobody is there to confirm.
 */
export async function runJob(agentId: string, module: string, action: string, params: Record<string, unknown> = {}, maxSeconds = 120): Promise<JobView> {
  const { job } = await api<{ job: JobView }>('POST', '/jobs', { agent_id: agentId, module, action, params, expires_in: maxSeconds });
  return waitJob(job, maxSeconds);
}

export async function waitJob(job: JobView, maxSeconds = 120): Promise<JobView> {
  const until = Date.now() + maxSeconds * 1000;
  let j = job;
  while (!FINAL_JOB_STATUSES.has(j.status) && Date.now() < until) {
    const wait = Math.max(1, Math.min(25, Math.round((until - Date.now()) / 1000)));
    j = (await api<{ job: JobView }>('GET', `/jobs/${encodeURIComponent(j.id)}${query({ wait })}`)).job;
  }
  return j;
}

/** The output of a completed job; an ApiError naming the job's state or error otherwise. */
export function jobOutput<T = Record<string, unknown>>(job: JobView): T {
  if (job.status === 'completed' && job.result?.success !== false) return (job.result?.output ?? {}) as T;
  const why = job.result?.error ?? (FINAL_JOB_STATUSES.has(job.status) ? `job ${job.status}` : `job still ${job.status}: the agent has not answered yet`);
  throw new ApiError(`${job.module}.${job.action}: ${why}`, 0, job.result?.code ?? null);
}
