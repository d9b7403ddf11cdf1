/**
 * The file of changes awaiting confirmation. rootd replays its snapshots as root after a crash
 * or restart, so what it reads back is checked against a schema first: a file that does not
 * match (tampered with, truncated, from another program) is refused as a whole, never replayed.
 */
import { Type, type Static } from '@sinclair/typebox';
import { ErrorCodes, TuxsecError } from '../../../protocol/errors.ts';
import { SnapshotSchema, scopeKey, type Snapshot } from './snapshot.ts';
import { compiled } from '../../../protocol/compiled.ts';
import { describe } from './signature.ts';

const Timestamp = Type.String({ minLength: 1, maxLength: 64 });

const SavedChange = Type.Object(
  {
    id: Type.String({ pattern: '^[0-9a-f]{16}$' }),
    what: Type.String({ maxLength: 4096 }),
    keys: Type.Array(Type.String({ maxLength: 256 })),
    created_at: Timestamp,
    confirm_by: Timestamp,
    snapshots: Type.Array(SnapshotSchema),
  },
  { additionalProperties: false },
);

const PendingFile = Type.Object({ version: Type.Literal(1), pending: Type.Array(SavedChange) }, { additionalProperties: false });

/** A change awaiting confirmation, as saved. */
export type SavedChange = Omit<Static<typeof SavedChange>, 'snapshots'> & { snapshots: Snapshot[] };

/** The document written to the file. */
export function pendingDocument(list: SavedChange[]): string {
  return JSON.stringify({ version: 1, pending: list });
}

/** Why a parsed document is not a pending-changes file, or null when it is one. */
function fault(doc: unknown): string | null {
  const check = compiled(PendingFile);
  if (!check.Check(doc)) {
    const first = check.Errors(doc).First();
    return `unexpected value at ${first?.path || '/'}: ${describe(first?.value)} (${first?.message ?? 'invalid'})`;
  }
  for (const [i, p] of doc.pending.entries()) {
    if (Number.isNaN(Date.parse(p.confirm_by))) return `unexpected value at /pending/${i}/confirm_by: ${describe(p.confirm_by)} (not a date)`;
    // The keys lock what the snapshots restore; a key for anything else would be a forgery.
    const keys = p.snapshots.map((s) => scopeKey(s.scope as Snapshot['scope']));
    if (p.keys.length !== keys.length || p.keys.some((k, j) => k !== keys[j])) return `unexpected value at /pending/${i}/keys: ${describe(p.keys)} (not the keys of its snapshots)`;
  }
  return null;
}

/**
 * The changes saved in `raw`, the text of `file`; `invalid-params` naming the first fault when
 * the text is not a pending-changes file.
 */
export function parsePendingFile(file: string, raw: string): SavedChange[] {
  let doc: unknown;
  try {
    doc = JSON.parse(raw);
  } catch (e) {
    throw new TuxsecError(ErrorCodes.invalidParams, `cannot replay pending firewalld changes from "${file}": not JSON (${e instanceof Error ? e.message : String(e)})`);
  }
  const why = fault(doc);
  if (why) throw new TuxsecError(ErrorCodes.invalidParams, `cannot replay pending firewalld changes from "${file}": ${why}`);
  return (doc as { pending: SavedChange[] }).pending;
}
