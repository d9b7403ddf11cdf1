/**
 * Who may do what. The peer identity comes from SO_PEERCRED at accept time only.
 */
import type { AccessClass } from '../protocol/messages.ts';
import { ErrorCodes, TuxsecError } from '../protocol/errors.ts';
import type { PeerIdentity } from '../sdk/action.ts';

export interface AccessPolicy {
  /** Throws permission-denied when the peer may not run this action. */
  check(peer: PeerIdentity, module: string, action: string, access: AccessClass): void;
}

export interface AccessRules {
  /** uids served besides root (read, write, and dangerous where the module allows it). */
  allowedUids: ReadonlySet<number>;
  /** uids served for `read` actions only. */
  readOnlyUids: ReadonlySet<number>;
}

/** True when the peer may use the socket at all. */
export function peerAllowed(rules: AccessRules, peer: PeerIdentity): boolean {
  return peer.uid === 0 || rules.allowedUids.has(peer.uid) || rules.readOnlyUids.has(peer.uid);
}

export function makeAccessPolicy(getRules: () => AccessRules): AccessPolicy {
  return {
    check(peer, module, action, access) {
      const rules = getRules();
      if (peer.uid === 0 || rules.allowedUids.has(peer.uid)) return;
      if (rules.readOnlyUids.has(peer.uid) && access === 'read') return;
      throw new TuxsecError(
        ErrorCodes.permissionDenied,
        `cannot run ${module} ${action}: uid ${peer.uid} may not run ${access} actions`,
      );
    },
  };
}

/** uids of the names in one config key, by name, so a later reload can fall back on them. */
export type ResolvedUsers = ReadonlyMap<string, number>;

/**
 * Resolves user names (or numeric uids) to uids. A user that does not exist is left out and
 * warned about; a lookup that fails (NSS down, timed out) keeps the uid the name had before
 * (`previous`, from the last load) and is logged as an error, so a reload during an LDAP
 * outage never silently drops a user nor serves a stale one without saying so.
 */
export async function resolveUsers(
  names: readonly string[],
  key: string,
  o: {
    lookup: (name: string) => Promise<{ uid: number } | null>;
    log: { warn(obj: object, msg: string): void; error(obj: object, msg: string): void };
    previous?: ResolvedUsers;
  },
): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const n of names) {
    if (/^[0-9]+$/.test(n)) {
      out.set(n, Number(n));
      continue;
    }
    let u: { uid: number } | null;
    try {
      u = await o.lookup(n);
    } catch (e) {
      const before = o.previous?.get(n);
      if (before !== undefined) {
        out.set(n, before);
        o.log.error({ user: n, key, uid: before, err: (e as Error).message }, 'cannot look up user; keeping the uid it had before');
      } else {
        o.log.error({ user: n, key, err: (e as Error).message }, 'cannot look up user; not served until a reload can look it up');
      }
      continue;
    }
    if (u) out.set(n, u.uid);
    else o.log.warn({ user: n, key }, 'unknown user in config; ignored until it exists (SIGHUP re-reads)');
  }
  return out;
}
