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

async function getent(db: 'passwd' | 'group', key: string): Promise<string[] | null> {
  const r = await run(GETENT, ['--', db, key], { timeoutMs: 5000, maxOutputBytes: 64 * 1024 });
  if (r.code !== 0) return null;
  const line = r.stdout.split('\n')[0] ?? '';
  return line ? line.split(':') : null;
}

/** Looks a user up by name or numeric uid; null when unknown. */
export async function lookupUser(nameOrUid: string | number): Promise<UserEntry | null> {
  const f = await getent('passwd', String(nameOrUid));
  if (!f || f.length < 7) return null;
  return { name: f[0]!, uid: Number(f[2]), gid: Number(f[3]), home: f[5]! };
}

/** Looks a group up by name or numeric gid; null when unknown. */
export async function lookupGroup(nameOrGid: string | number): Promise<GroupEntry | null> {
  const f = await getent('group', String(nameOrGid));
  if (!f || f.length < 4) return null;
  return { name: f[0]!, gid: Number(f[2]), members: f[3] ? f[3].split(',') : [] };
}
