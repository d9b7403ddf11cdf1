/**
 * The audit log of the operator API: every change, by whom (a user or the admin token), on which
 * hosts, with its parameters (secrets redacted, size bounded) and its result. Written through the
 * group commit; exported as JSON, JSON lines or CSV (safe to open in a spreadsheet).
 */
import type { FastifyRequest } from 'fastify';
import type { GroupCommit } from './group-commit.ts';
import type { AuditRecord, AuthStore } from './storage/auth-store.ts';

export interface AuditEntry {
  /** What was done, e.g. `job.create`, `user.add`. */
  action: string;
  /** Ids of the agents it touched. */
  agents: string[];
  params: unknown;
  /** 'ok' or why it failed. */
  result: 'ok' | string;
}

/** Names of parameters whose values are never stored. */
const SECRET_NAME = /pass|secret|token|api[-_]?key|private|credential|cookie|session|csrf|auth|^key$|_key$|-key$/i;
export const REDACTED = '[redacted]';
const MAX_DEPTH = 6;
const MAX_ITEMS = 100;
const MAX_STRING = 1024;
/** Largest params JSON stored per entry. */
export const MAX_PARAMS_BYTES = 8192;
const MAX_AGENTS = 1000;
const MAX_TEXT = 1024;

/** A copy of `v` with secret-named values replaced, depth, arrays and strings cut short. */
export function redact(v: unknown, depth = 0): unknown {
  if (typeof v === 'string') return v.length > MAX_STRING ? `${v.slice(0, MAX_STRING)}...[${v.length} characters]` : v;
  if (v === null || typeof v !== 'object') return v;
  if (depth >= MAX_DEPTH) return '[too deep]';
  if (Array.isArray(v)) {
    const out = v.slice(0, MAX_ITEMS).map((x) => redact(x, depth + 1));
    if (v.length > MAX_ITEMS) out.push(`[${v.length - MAX_ITEMS} more]`);
    return out;
  }
  const out: Record<string, unknown> = {};
  let n = 0;
  for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
    if (n++ >= MAX_ITEMS) {
      out['[more]'] = Object.keys(v).length - MAX_ITEMS;
      break;
    }
    // defineProperty: a key "__proto__" stays an own property instead of reaching the prototype.
    Object.defineProperty(out, k, { value: SECRET_NAME.test(k) ? REDACTED : redact(x, depth + 1), enumerable: true, writable: true, configurable: true });
  }
  return out;
}

/** The stored form of params: redacted, and at most MAX_PARAMS_BYTES of JSON. */
export function boundedParams(params: unknown): unknown {
  const r = redact(params);
  const json = JSON.stringify(r) ?? 'null';
  if (Buffer.byteLength(json) <= MAX_PARAMS_BYTES) return r;
  return { truncated: true, bytes: Buffer.byteLength(json), preview: json.slice(0, 2048) };
}

const cut = (s: string, n: number): string => (s.length > n ? `${s.slice(0, n)}...` : s);

/** Makes ServerContext.audit: entries go through the group commit; a failure to write is logged. */
export function makeAudit(auth: AuthStore, group: GroupCommit, now: () => number) {
  return (req: FastifyRequest, e: AuditEntry): void => {
    const op = req.operator as FastifyRequest['operator'] | undefined;
    const rec: Omit<AuditRecord, 'id'> = {
      at: now(),
      actor: cut(op?.name ?? String((e.params as { name?: unknown } | null)?.name ?? 'anonymous'), 200),
      actorKind: op?.kind ?? 'anonymous',
      action: cut(e.action, 200),
      agents: e.agents.slice(0, MAX_AGENTS).map((a) => cut(String(a), 100)),
      params: boundedParams(e.params),
      result: cut(e.result, MAX_TEXT),
      ip: req.ip ?? null,
    };
    audited.add(req);
    group.run(() => auth.addAudit(rec)).catch((err: unknown) => req.log.error({ err }, 'cannot write audit entry'));
  };
}

/** Requests already audited by their handler (the fallback in operator-auth.ts skips them). */
export const audited = new WeakSet<FastifyRequest>();

/** The wire form of an entry. */
export function auditView(r: AuditRecord) {
  return { id: r.id, at: new Date(r.at).toISOString(), actor: r.actor, actor_kind: r.actorKind, action: r.action, agents: r.agents, params: r.params, result: r.result, ip: r.ip };
}

const CSV_COLUMNS = ['id', 'at', 'actor', 'actor_kind', 'action', 'agents', 'params', 'result', 'ip'] as const;

/**
 * What a spreadsheet may take for the start of a formula: = + - @, their full-width forms
 * (＝ ＋ － ＠, which some spreadsheets read as the ASCII ones), tab and carriage return.
 */
const FORMULA_START = /^[=+\-@\uFF1D\uFF0B\uFF0D\uFF20\t\r]/;

/**
 * One CSV cell, always quoted. A cell a spreadsheet would take for a formula gets a leading
 * apostrophe: an operator-chosen name or a parameter must not run in the auditor's spreadsheet.
 */
export function csvCell(v: unknown): string {
  let s = v === null || v === undefined ? '' : typeof v === 'string' ? v : JSON.stringify(v);
  if (FORMULA_START.test(s)) s = `'${s}`;
  return `"${s.replace(/"/g, '""')}"`;
}

/** Text of an export gathered before it is handed to the response (a write per entry would be slow). */
const EXPORT_CHUNK_BYTES = 64 * 1024;

export type AuditFormat = 'json' | 'jsonl' | 'csv';

/**
 * An export of `records` in `format` as chunks of text, made as the records are taken: a reader
 * pulling them (a response stream with backpressure) makes the server hold about one chunk, not the
 * whole export. `json` is the reply `{success: true, entries}` byte for byte.
 */
export function* auditExport(records: Iterable<AuditRecord>, format: AuditFormat): Generator<string> {
  let buf = format === 'csv' ? `${CSV_COLUMNS.join(',')}\r\n` : format === 'json' ? '{"success":true,"entries":[' : '';
  let first = true;
  for (const r of records) {
    const v = auditView(r);
    if (format === 'csv') buf += `${CSV_COLUMNS.map((c) => csvCell(c === 'agents' ? v.agents.join(' ') : v[c])).join(',')}\r\n`;
    else if (format === 'jsonl') buf += `${JSON.stringify(v)}\n`;
    else buf += `${first ? '' : ','}${JSON.stringify(v)}`;
    first = false;
    if (buf.length >= EXPORT_CHUNK_BYTES) {
      yield buf;
      buf = '';
    }
  }
  if (format === 'json') buf += ']}';
  if (buf !== '') yield buf;
}

/** A CSV export as one string (a short list). */
export function auditCsv(records: AuditRecord[]): string {
  return [...auditExport(records, 'csv')].join('');
}
