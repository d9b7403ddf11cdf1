/**
 * User and group lookups through NSS (`getent`), so LDAP/SSSD users resolve too.
 */
import { run } from './exec.ts';

export interface UserEntry {
  name: string;
  uid: number;
  gid: number;
  home: string;
}

export interface GroupEntry {
  name: string;
  gid: number;
  members: string[];
}

const GETENT = '/usr/bin/getent';

/** A lookup that could not be answered (NSS failing, timed out): not the same as "no such user". */
export class LookupError extends Error {}

async function getent(db: 'passwd' | 'group', key: string): Promise<string[] | null> {
  let r;
  try {
    r = await run(GETENT, ['--', db, key], { timeoutMs: 5000, maxOutputBytes: 64 * 1024 });
  } catch (e) {
    throw new LookupError(`cannot look up ${db} entry "${key}": ${(e as Error).message}`);
  }
  // getent(1): 2 is "key not found"; anything else that is not 0 is a failed lookup.
  if (r.code === 2) return null;
  if (r.code !== 0) {
    const why = r.timedOut ? 'timed out' : `getent exited with ${r.code ?? r.signal}: ${r.stderr.trim().slice(0, 200)}`;
    throw new LookupError(`cannot look up ${db} entry "${key}": ${why}`);
  }
  const line = r.stdout.split('\n')[0] ?? '';
  return line ? line.split(':') : null;
}

/** Looks a user up by name or numeric uid; null when unknown; throws LookupError when NSS cannot answer. */
export async function lookupUser(nameOrUid: string | number): Promise<UserEntry | null> {
  const f = await getent('passwd', String(nameOrUid));
  if (!f || f.length < 7) return null;
  return { name: f[0]!, uid: Number(f[2]), gid: Number(f[3]), home: f[5]! };
}

/** Looks a group up by name or numeric gid; null when unknown; throws LookupError when NSS cannot answer. */
export async function lookupGroup(nameOrGid: string | number): Promise<GroupEntry | null> {
  const f = await getent('group', String(nameOrGid));
  if (!f || f.length < 4) return null;
  return { name: f[0]!, gid: Number(f[2]), members: f[3] ? f[3].split(',') : [] };
}
