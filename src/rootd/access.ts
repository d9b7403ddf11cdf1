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
