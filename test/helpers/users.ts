/**
 * Real system users for tests: created once (idempotent), never removed, since other
 * tests and later runs reuse them. Requires root.
 */
import { run } from '../../src/os/exec.ts';
import { lookupGroup, lookupUser, type UserEntry } from '../../src/os/users.ts';

export const TUXSEC_USER = 'tuxsec';
/** In the tuxsec group but not in allowed_users. */
export const GROUP_MEMBER_USER = 'tuxsec-test-member';
/** In no tuxsec group at all. */
export const OUTSIDER_USER = 'tuxsec-test-outsider';

async function must(file: string, args: string[]): Promise<void> {
  const r = await run(file, args, { timeoutMs: 30_000 });
  if (r.code !== 0) throw new Error(`${file} ${args.join(' ')} failed: ${r.stderr.trim()}`);
}

export async function ensureGroup(name: string): Promise<number> {
  const g = await lookupGroup(name);
  if (g) return g.gid;
  await must('/usr/sbin/groupadd', ['--system', '--', name]);
  return (await lookupGroup(name))!.gid;
}

/** Ensures a system user exists, with the given supplementary groups added. */
export async function ensureUser(name: string, opts: { groups?: string[]; home?: string } = {}): Promise<UserEntry> {
  let u = await lookupUser(name);
  if (!u) {
    const own = await lookupGroup(name);
    const args = ['--system', ...(own ? ['--gid', name] : ['--user-group']), '--shell', '/usr/sbin/nologin', '--no-create-home'];
    if (opts.home) args.push('--home-dir', opts.home);
    await must('/usr/sbin/useradd', [...args, '--', name]);
    u = (await lookupUser(name))!;
  }
  for (const g of opts.groups ?? []) {
    await ensureGroup(g);
    const grp = await lookupGroup(g);
    if (!grp?.members.includes(name) && grp?.gid !== u.gid) await must('/usr/sbin/usermod', ['--append', '--groups', g, '--', name]);
  }
  return u;
}

/** The three test identities: tuxsec (allowed), a group member (not allowed), an outsider. */
export async function ensureTestUsers(): Promise<{ tuxsec: UserEntry; member: UserEntry; outsider: UserEntry; tuxsecGid: number }> {
  const tuxsecGid = await ensureGroup('tuxsec');
  const tuxsec = await ensureUser(TUXSEC_USER, { home: '/var/lib/tuxsec' });
  const member = await ensureUser(GROUP_MEMBER_USER, { groups: ['tuxsec'] });
  const outsider = await ensureUser(OUTSIDER_USER);
  return { tuxsec, member, outsider, tuxsecGid };
}

/**
 * Runs a program as another user with that user's groups (initgroups), through
 * util-linux setpriv: absolute path, argument array, no shell.
 */
export function asUser(user: UserEntry, file: string, args: string[]): [string, string[]] {
  return ['/usr/bin/setpriv', [`--reuid=${user.uid}`, `--regid=${user.gid}`, '--init-groups', '--reset-env', '--', file, ...args]];
}
