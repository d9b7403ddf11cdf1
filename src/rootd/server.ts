/**
 * The socket side of rootd: accepts connections, reads peer credentials once, and admits or
 * refuses each one (access rules, connection limits); an admitted one is served by Connection.
 */
import net from 'node:net';
import { ErrorCodes, type ErrorCode } from '../protocol/errors.ts';
import type { Logger, PeerIdentity } from '../sdk/action.ts';
import type { AccessRules } from './access.ts';
import { peerAllowed } from './access.ts';
import type { AuditLog } from './audit.ts';
import { Connection, errorLine, InflightRequests, REFUSED_LINGER_MS, type ConnectionLimits } from './connection.ts';
import type { Dispatcher } from './dispatcher.ts';
import { RateLimiter } from '../common/rate-limit.ts';
import { UidCounts } from './uid-counts.ts';

/** Refused connections lingering at once (to deliver their error line), in all and per uid. */
const MAX_LINGERING = 256;
const MAX_LINGERING_PER_UID = 16;
/** Refused connections logged and audited per uid: a steady rate and a burst. */
const REFUSAL_RECORDS_PER_SECOND = 5;
const REFUSAL_RECORDS_BURST = 20;

export interface RootdServerDeps {
  dispatcher: Dispatcher;
  log: Logger;
  audit: AuditLog;
  limits: () => ConnectionLimits;
  rules: () => AccessRules;
  /** Reads the kernel's peer credentials of a connection; null = unknown = no access. */
  peerCred: (sock: net.Socket) => { uid: number; gid: number; pid: number } | null;
  /** Names a uid for the audit log (cached by the caller). */
  userName?: (uid: number) => string | undefined;
  /**
   * The per-uid request limiter: a refused connection takes a token too, and past the limit
   * its refusal is no longer logged or audited, so connecting in a loop cannot flood either.
   */
  limiter?: RateLimiter;
}

export interface RootdServer {
  server: net.Server;
  /** Resolves when every in-flight request has been answered. */
  drain(): Promise<void>;
  readonly connections: number;
  readonly inflight: number;
}

/** Why a connection is refused: the error line's code and message, and what is logged. */
interface Refusal {
  code: ErrorCode;
  message: string;
  logFields: Record<string, unknown>;
  logMsg: string;
}

/** The refusal of a peer the access rules do not let in (or whose credentials are unknown). */
function notAllowed(peer: PeerIdentity | null): Refusal {
  const who = peer ? `uid ${peer.uid}` : 'an unknown peer';
  return {
    code: ErrorCodes.permissionDenied,
    message: `permission denied: ${who} may not use tuxsec-rootd (add the user to allowed_users in rootd.yaml)`,
    logFields: {},
    logMsg: 'connection refused: peer not allowed',
  };
}

/** The first connection limit a new connection of this allowed peer breaks, or null when it may be served. */
function overLimit(peer: PeerIdentity, rules: AccessRules, limits: ConnectionLimits, held: UidCounts): Refusal | null {
  const connections = held.total;
  if (connections >= limits.maxConnections) {
    return {
      code: ErrorCodes.rateLimited,
      message: `too many connections (max_connections ${limits.maxConnections}); retry later`,
      logFields: { max: limits.maxConnections },
      logMsg: 'connection refused: too many connections',
    };
  }
  // The last few slots are kept for root and the allowed users (the agent): read-only
  // users cannot lock them out by holding connections open.
  const privileged = peer.uid === 0 || rules.allowedUids.has(peer.uid);
  const reserve = Math.min(limits.reservedConnections, limits.maxConnections - 1);
  if (!privileged && connections >= limits.maxConnections - reserve) {
    return {
      code: ErrorCodes.rateLimited,
      message: `too many connections: the last ${reserve} of max_connections ${limits.maxConnections} are reserved for root and allowed_users (reserved_connections); retry later`,
      logFields: { max: limits.maxConnections, reserved: reserve },
      logMsg: 'connection refused: only reserved connections left',
    };
  }
  if (peer.uid !== 0 && held.get(peer.uid) >= limits.maxConnectionsPerUid) {
    return {
      code: ErrorCodes.rateLimited,
      message: `too many connections from uid ${peer.uid} (max_connections_per_uid ${limits.maxConnectionsPerUid}); close some or retry later`,
      logFields: { max_per_uid: limits.maxConnectionsPerUid },
      logMsg: 'connection refused: too many connections from this uid',
    };
  }
  return null;
}

/**
 * Answers refused connections with one error line. Refused connections still cost a descriptor
 * while they linger and a record when audited: a peer connecting in a loop gets few of either,
 * so it cannot crowd out root or fill the disk.
 */
class Refuser {
  private readonly lingering = new UidCounts();
  private readonly records = new RateLimiter(REFUSAL_RECORDS_PER_SECOND, REFUSAL_RECORDS_BURST);

  constructor(private readonly deps: Pick<RootdServerDeps, 'audit' | 'log' | 'limiter'>) {}

  /** Refuses a connection with one error line; logs and audits it unless the uid is over its rates. */
  refuse(sock: net.Socket, peer: PeerIdentity | null, why: Refusal): void {
    sock.on('error', () => {});
    const uid = peer?.uid ?? -1;
    if (this.lingering.total >= MAX_LINGERING || this.lingering.get(uid) >= MAX_LINGERING_PER_UID) {
      // Past the caps: closed at once, unanswered and unrecorded.
      sock.destroy();
      return;
    }
    this.lingering.add(uid);
    sock.once('close', () => this.lingering.remove(uid));
    const { limiter } = this.deps;
    const quiet = peer !== null && ((limiter !== undefined && !limiter.take(peer.uid)) || !this.records.take(peer.uid));
    if (!quiet) this.record(peer, why);
    // A peer that already hung up makes this write fail (EPIPE): the 'error' listener above.
    sock.end(errorLine(why.code, why.message));
    // What the peer already sent is read and dropped: closing with it unread would reset the
    // connection and lose the error line. A peer that never closes its side is cut off after
    // a moment, so refused connections cannot pile up holding descriptors.
    sock.resume();
    sock.setTimeout(REFUSED_LINGER_MS, () => sock.destroy());
  }

  private record(peer: PeerIdentity | null, why: Refusal): void {
    this.deps.audit.write({
      time: new Date().toISOString(),
      uid: peer?.uid ?? -1,
      pid: peer?.pid ?? -1,
      ...(peer?.user ? { user: peer.user } : {}),
      request_id: 'unknown',
      type: 'connect',
      outcome: 'denied',
      code: why.code,
      error: why.message,
      duration_ms: 0,
    });
    this.deps.log.warn({ uid: peer?.uid, pid: peer?.pid, ...why.logFields }, why.logMsg);
  }
}

export function createRootdServer(deps: RootdServerDeps): RootdServer {
  const inflight = new InflightRequests();
  const held = new UidCounts();
  const refuser = new Refuser(deps);

  const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: false }, (sock) => {
    const limits = deps.limits();
    const cred = deps.peerCred(sock);
    const peer: PeerIdentity | null = cred ? { ...cred, user: deps.userName?.(cred.uid) } : null;
    const rules = deps.rules();
    if (!peer || !peerAllowed(rules, peer)) return refuser.refuse(sock, peer, notAllowed(peer));
    const refusal = overLimit(peer, rules, limits, held);
    if (refusal) return refuser.refuse(sock, peer, refusal);
    held.add(peer.uid);
    new Connection(sock, peer, limits, deps, inflight);
    sock.on('close', () => held.remove(peer.uid));
  });

  return {
    server,
    drain: () => inflight.drain(),
    get connections() {
      return held.total;
    },
    get inflight() {
      return inflight.count;
    },
  };
}
