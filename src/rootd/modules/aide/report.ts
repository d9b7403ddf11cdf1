/**
 * aide's JSON report (`report_format=json`, aide 0.18) turned into the check result: the
 * report names every file exactly (JSON strings), where the plain text report could be fooled
 * by a file name holding a newline.
 */
import { ErrorCodes, TuxsecError } from '../../../protocol/errors.ts';

/** One attribute that changed, old and new value as aide reports them (long values cut). */
export interface AttributeChange {
  old: unknown;
  new: unknown;
}

export interface ChangedFile {
  path: string;
  /** Names of the attributes that changed (aide's: size, mtime, sha256, perm, ...). */
  attributes: string[];
  details: Record<string, AttributeChange>;
}

export interface AideReport {
  /** No file added, removed or changed. */
  clean: boolean;
  /** Counts as aide reports them (before any cut of the lists below). */
  summary: { total: number | null; added: number; removed: number; changed: number };
  added: string[];
  removed: string[];
  changed: ChangedFile[];
  /** True when a list was cut at max_entries; summary still has the full counts. */
  truncated: boolean;
  aide_version: string | null;
  start_time: string | null;
  end_time: string | null;
  run_time_seconds: number | null;
}

const MAX_VALUE_CHARS = 1024;

function bounded(v: unknown): unknown {
  if (v === null || typeof v === 'number' || typeof v === 'boolean') return v;
  const s = typeof v === 'string' ? v : JSON.stringify(v);
  if (s.length <= MAX_VALUE_CHARS) return v;
  return `${s.slice(0, MAX_VALUE_CHARS)}…(${s.length} chars)`;
}

function record(v: unknown, what: string): Record<string, unknown> {
  if (v === undefined || v === null) return {};
  if (typeof v !== 'object' || Array.isArray(v)) throw bad(`"${what}" is not an object`);
  return v as Record<string, unknown>;
}

function bad(why: string): TuxsecError {
  return new TuxsecError(ErrorCodes.actionFailed, `cannot read aide's report: ${why}`);
}

const str = (v: unknown): string | null => (typeof v === 'string' ? v : null);
const num = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);

/** Parses the JSON report text; `maxEntries` bounds each list. */
export function parseAideReport(text: string, maxEntries: number): AideReport {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw bad(`not JSON (${(e as Error).message.slice(0, 100)})`);
  }
  const top = record(doc, 'report');
  const added = Object.keys(record(top.added, 'added'));
  const removed = Object.keys(record(top.removed, 'removed'));
  const changedPaths = Object.keys(record(top.changed, 'changed'));
  const details = record(top.details, 'details');
  const counts = record(top.number_of_entries, 'number_of_entries');
  const changed = changedPaths.slice(0, maxEntries).map((path): ChangedFile => {
    const attrs = record(details[path], `details of ${JSON.stringify(path).slice(0, 200)}`);
    const d: Record<string, AttributeChange> = {};
    for (const [name, v] of Object.entries(attrs)) {
      const c = record(v, `attribute ${name}`);
      d[name] = { old: bounded(c.old ?? null), new: bounded(c.new ?? null) };
    }
    return { path, attributes: Object.keys(d), details: d };
  });
  const summary = {
    total: num(counts.total),
    added: num(counts.added) ?? added.length,
    removed: num(counts.removed) ?? removed.length,
    changed: num(counts.changed) ?? changedPaths.length,
  };
  return {
    clean: summary.added + summary.removed + summary.changed === 0,
    summary,
    added: added.slice(0, maxEntries),
    removed: removed.slice(0, maxEntries),
    changed,
    truncated: Math.max(added.length, removed.length, changedPaths.length) > maxEntries,
    aide_version: str(top.aide_version),
    start_time: str(top.start_time),
    end_time: str(top.end_time),
    run_time_seconds: num(top.run_time_seconds),
  };
}
