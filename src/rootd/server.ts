/**
 * The socket side of rootd: accepts connections, reads peer credentials once,
 * frames lines with a hard cap, and writes each response as soon as it is ready.
 */
import net from 'node:net';
import { ErrorCodes, type ErrorCode } from '../protocol/errors.ts';
import { LineFramer } from '../protocol/framing.ts';
import { responseLine } from '../protocol/messages.ts';
import type { Logger, PeerIdentity } from '../sdk/action.ts';
import type { AccessRules } from './access.ts';
import { peerAllowed } from './access.ts';
import type { AuditLog } from './audit.ts';
import type { Dispatcher } from './dispatcher.ts';
import { RateLimiter } from './rate-limit.ts';

/** How long a refused connection waits for its peer to close before it is cut. */
const REFUSED_LINGER_MS = 2000;
/** Refused connections lingering at once (to deliver their error line), in all and per uid. */
const MAX_LINGERING = 256;
const MAX_LINGERING_PER_UID = 16;
/** Refused connections logged and audited per uid: a steady rate and a burst. */
const REFUSAL_RECORDS_PER_SECOND = 5;
const REFUSAL_RECORDS_BURST = 20;

export interface ConnectionLimits {
  maxMessageBytes: number;
  maxConnections: number;
  /** Connections one uid may hold; root is not counted against it. */
  maxConnectionsPerUid: number;
  /** Of maxConnections, how many only root and allowed_users may take. */
  reservedConnections: number;
  /** A connection with nothing in flight and no input for this long is closed; 0 = never. */
  idleTimeoutMs: number;
  maxInflightPerConnection: number;
}

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

/** The answer to a connection refused, or cut, before any request of it could be read. */
function errorLine(code: ErrorCode, message: string): string {
  return responseLine({ type: 'error', request_id: 'unknown', data: { error: message, code } });
}

export function createRootdServer(deps: RootdServerDeps): RootdServer {
  let connections = 0;
  let inflight = 0;
  let drainWaiters: Array<() => void> = [];

  const settle = () => {
    inflight--;
    if (inflight === 0 && drainWaiters.length > 0) {
      const w = drainWaiters;
      drainWaiters = [];
      for (const f of w) f();
    }
  };

  const perUid = new Map<number, number>();
  // Refused connections still cost a descriptor while they linger and a record when audited: a
  // peer connecting in a loop gets few of either, so it cannot crowd out root or fill the disk.
  const refusalRecords = new RateLimiter(REFUSAL_RECORDS_PER_SECOND, REFUSAL_RECORDS_BURST);
  let lingering = 0;
  const lingeringByUid = new Map<number, number>();
  /** Refuses a connection with one error line; logs and audits it unless the uid is over its rates. */
  const refuse = (sock: net.Socket, peer: PeerIdentity | null, code: ErrorCode, message: string, logFields: Record<string, unknown>, logMsg: string) => {
    sock.on('error', () => {});
    const uid = peer?.uid ?? -1;
    const mine = lingeringByUid.get(uid) ?? 0;
    if (lingering >= MAX_LINGERING || mine >= MAX_LINGERING_PER_UID) {
      // Past the caps: closed at once, unanswered and unrecorded.
      sock.destroy();
      return;
    }
    lingering++;
    lingeringByUid.set(uid, mine + 1);
    sock.once('close', () => {
      lingering--;
      const n = (lingeringByUid.get(uid) ?? 1) - 1;
      if (n <= 0) lingeringByUid.delete(uid);
      else lingeringByUid.set(uid, n);
    });
    const quiet = peer !== null && ((deps.limiter !== undefined && !deps.limiter.take(peer.uid)) || !refusalRecords.take(peer.uid));
    if (!quiet) {
      deps.audit.write({
        time: new Date().toISOString(),
        uid: peer?.uid ?? -1,
        pid: peer?.pid ?? -1,
        ...(peer?.user ? { user: peer.user } : {}),
        request_id: 'unknown',
        type: 'connect',
        outcome: 'denied',
        code,
        error: message,
        duration_ms: 0,
      });
      deps.log.warn({ uid: peer?.uid, pid: peer?.pid, ...logFields }, logMsg);
    }
    // A peer that already hung up makes this write fail (EPIPE): the 'error' listener above.
    sock.end(errorLine(code, message));
    // What the peer already sent is read and dropped: closing with it unread would reset the
    // connection and lose the error line. A peer that never closes its side is cut off after
    // a moment, so refused connections cannot pile up holding descriptors.
    sock.resume();
    sock.setTimeout(REFUSED_LINGER_MS, () => sock.destroy());
  };

  const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: false }, (sock) => {
    const limits = deps.limits();
    const cred = deps.peerCred(sock);
    const peer: PeerIdentity | null = cred ? { ...cred, user: deps.userName?.(cred.uid) } : null;
    const rules = deps.rules();
    if (!peer || !peerAllowed(rules, peer)) {
      const who = peer ? `uid ${peer.uid}` : 'an unknown peer';
      return refuse(
        sock,
        peer,
        ErrorCodes.permissionDenied,
        `permission denied: ${who} may not use tuxsec-rootd (add the user to allowed_users in rootd.yaml)`,
        {},
        'connection refused: peer not allowed',
      );
    }
    if (connections >= limits.maxConnections) {
      return refuse(sock, peer, ErrorCodes.rateLimited, `too many connections (max_connections ${limits.maxConnections}); retry later`, { max: limits.maxConnections }, 'connection refused: too many connections');
    }
    // The last few slots are kept for root and the allowed users (the agent): read-only
    // users cannot lock them out by holding connections open.
    const privileged = peer.uid === 0 || rules.allowedUids.has(peer.uid);
    const reserve = Math.min(limits.reservedConnections, limits.maxConnections - 1);
    if (!privileged && connections >= limits.maxConnections - reserve) {
      return refuse(
        sock,
        peer,
        ErrorCodes.rateLimited,
        `too many connections: the last ${reserve} of max_connections ${limits.maxConnections} are reserved for root and allowed_users (reserved_connections); retry later`,
        { max: limits.maxConnections, reserved: reserve },
        'connection refused: only reserved connections left',
      );
    }
    const held = perUid.get(peer.uid) ?? 0;
    if (peer.uid !== 0 && held >= limits.maxConnectionsPerUid) {
      return refuse(
        sock,
        peer,
        ErrorCodes.rateLimited,
        `too many connections from uid ${peer.uid} (max_connections_per_uid ${limits.maxConnectionsPerUid}); close some or retry later`,
        { max_per_uid: limits.maxConnectionsPerUid },
        'connection refused: too many connections from this uid',
      );
    }
    perUid.set(peer.uid, held + 1);
    connections++;
    let mine = 0;
    let paused = false;
    let ended = false;
    // The line that ends the connection (message-too-large): written once every answer before it is out.
    let closing: string | null = null;
    const finish = () => {
      if (!ended || mine > 0 || framer.holding || sock.destroyed) return;
      if (closing !== null) {
        // What the peer still sends is read and dropped (closing a socket with unread input resets
        // it, and the peer would lose the answers); a peer that never closes is cut off soon.
        sock.end(closing);
        closing = null;
        sock.setTimeout(REFUSED_LINGER_MS, () => sock.destroy());
      } else sock.end();
    };
    // Answers produced while one chunk is processed go out in a single write.
    let batch: string[] | null = null;
    const send = (line: string) => {
      if (batch) batch.push(line);
      else if (!sock.destroyed && sock.writable) sock.write(line);
    };
    const flush = () => {
      const out = batch!;
      batch = null;
      if (out.length > 0 && !sock.destroyed && sock.writable) sock.write(out.length === 1 ? out[0]! : out.join(''));
    };
    /** Reads on only while this connection has room for more work and its peer reads its answers. */
    const maybeResume = () => {
      if (!paused || ended || mine >= limits.maxInflightPerConnection || sock.writableLength >= limits.maxMessageBytes) return;
      batch = [];
      framer.resume();
      flush();
      if (framer.holding) return;
      paused = false;
      sock.resume();
    };
    const done = () => {
      mine--;
      settle();
      maybeResume();
      finish();
    };
    const handleLine = (line: Buffer): boolean => {
      // A blank line is skipped, CRLF-terminated ones too.
      if (line.length > 0 && line[line.length - 1] === 13) line = line.subarray(0, line.length - 1);
      if (line.length === 0) return true;
      let out: string | Promise<string>;
      try {
        out = deps.dispatcher.handle(line, peer);
      } catch (err) {
        // The dispatcher answers every failure itself; this is the last line of defence.
        deps.log.error({ err: err instanceof Error ? err.stack : 'non-error thrown' }, 'dispatcher threw');
        out = errorLine(ErrorCodes.internal, 'internal error');
      }
      if (typeof out === 'string') {
        send(out);
        return true;
      }
      mine++;
      inflight++;
      out.then(send, (err) => deps.log.error({ err: String(err) }, 'dispatcher failed')).finally(done);
      // At the cap the framer holds the rest of the chunk unparsed and the socket stops being
      // read: a pipelining peer has at most max_inflight_per_connection requests in progress.
      if (mine >= limits.maxInflightPerConnection) {
        if (!paused) {
          paused = true;
          sock.pause();
        }
        return false;
      }
      return true;
    };
    const framer = new LineFramer(limits.maxMessageBytes, {
      line: handleLine,
      overflow() {
        deps.log.warn({ uid: peer.uid, pid: peer.pid, max: limits.maxMessageBytes }, 'request line over max_message_bytes');
        // Answered after every request before it (those in progress included); then the connection ends.
        closing = errorLine(ErrorCodes.messageTooLarge, `Invalid message: line longer than ${limits.maxMessageBytes} bytes`);
        ended = true;
        // The framer now drops all input: keep reading it, so the peer is not reset.
        if (paused) {
          paused = false;
          sock.resume();
        }
      },
    });
    sock.on('data', (chunk: Buffer) => {
      batch = [];
      framer.push(chunk);
      flush();
      finish();
      // Backpressure: a peer that does not read its answers stops being read.
      if (!paused && sock.writableLength > limits.maxMessageBytes) {
        paused = true;
        sock.pause();
      }
    });
    sock.on('drain', maybeResume);
    sock.on('end', () => {
      // A client that half-closes after an unterminated request still gets its answer.
      const rest = framer.takeRest();
      if (rest) handleLine(rest);
      ended = true;
      finish();
    });
    sock.on('error', (err) => deps.log.debug({ err: err.message }, 'connection error'));
    if (limits.idleTimeoutMs > 0) {
      // Node's socket timeout restarts on every read and write; it fires again only after more activity.
      sock.setTimeout(limits.idleTimeoutMs);
      sock.on('timeout', () => {
        // A long action keeps its connection: its answer restarts the timer.
        if (mine > 0 || sock.destroyed) return;
        deps.log.debug({ uid: peer.uid, pid: peer.pid, idle_timeout_s: limits.idleTimeoutMs / 1000 }, 'closing an idle connection');
        sock.destroy();
      });
    }
    sock.on('close', () => {
      connections--;
      const n = (perUid.get(peer.uid) ?? 1) - 1;
      if (n <= 0) perUid.delete(peer.uid);
      else perUid.set(peer.uid, n);
    });
  });

  return {
    server,
    drain() {
      if (inflight === 0) return Promise.resolve();
      return new Promise((resolve) => drainWaiters.push(resolve));
    },
    get connections() {
      return connections;
    },
    get inflight() {
      return inflight;
    },
  };
}
