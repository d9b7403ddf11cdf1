/**
 * The socket side of rootd: accepts connections, reads peer credentials once,
 * frames lines with a hard cap, and writes each response as soon as it is ready.
 */
import net from 'node:net';
import { ErrorCodes } from '../protocol/errors.ts';
import { LineFramer } from '../protocol/framing.ts';
import type { Logger, PeerIdentity } from '../sdk/action.ts';
import type { AccessRules } from './access.ts';
import { peerAllowed } from './access.ts';
import type { AuditLog } from './audit.ts';
import type { Dispatcher } from './dispatcher.ts';

export interface ConnectionLimits {
  maxMessageBytes: number;
  maxConnections: number;
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
}

export interface RootdServer {
  server: net.Server;
  /** Resolves when every in-flight request has been answered. */
  drain(): Promise<void>;
  readonly connections: number;
  readonly inflight: number;
}

function errorLine(code: string, message: string): string {
  return JSON.stringify({ type: 'error', request_id: 'unknown', data: { error: message, code } }) + '\n';
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

  const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: false }, (sock) => {
    const limits = deps.limits();
    if (connections >= limits.maxConnections) {
      deps.log.warn({ max: limits.maxConnections }, 'connection refused: too many connections');
      // A peer that already hung up makes this write fail (EPIPE): never an unhandled 'error'.
      sock.on('error', () => {});
      sock.end(errorLine(ErrorCodes.rateLimited, `too many connections (max_connections ${limits.maxConnections}); retry later`));
      sock.destroySoon?.();
      return;
    }
    const cred = deps.peerCred(sock);
    const peer: PeerIdentity | null = cred ? { ...cred, user: deps.userName?.(cred.uid) } : null;
    if (!peer || !peerAllowed(deps.rules(), peer)) {
      const who = peer ? `uid ${peer.uid}` : 'an unknown peer';
      deps.audit.write({
        time: new Date().toISOString(),
        uid: peer?.uid ?? -1,
        pid: peer?.pid ?? -1,
        ...(peer?.user ? { user: peer.user } : {}),
        request_id: 'unknown',
        type: 'connect',
        outcome: 'denied',
        code: ErrorCodes.permissionDenied,
        duration_ms: 0,
      });
      deps.log.warn({ uid: peer?.uid, pid: peer?.pid }, 'connection refused: peer not allowed');
      sock.on('error', () => {});
      sock.end(errorLine(ErrorCodes.permissionDenied, `permission denied: ${who} may not use tuxsec-rootd (add the user to allowed_users in rootd.yaml)`));
      return;
    }
    connections++;
    let mine = 0;
    let paused = false;
    let ended = false;
    const maybeClose = () => {
      if (ended && mine === 0 && !sock.destroyed) sock.end();
    };
    // Answers produced while one chunk is processed go out in a single write.
    let batch: string[] | null = null;
    let closing: string | null = null;
    const send = (line: string) => {
      if (batch) batch.push(line);
      else if (!sock.destroyed && sock.writable) sock.write(line);
    };
    const done = () => {
      mine--;
      settle();
      if (paused && mine < limits.maxInflightPerConnection && sock.writableLength < limits.maxMessageBytes) {
        paused = false;
        sock.resume();
      }
      maybeClose();
    };
    const handleLine = (line: Buffer): void => {
        if (line.length === 0) return;
        if (line[line.length - 1] === 13) line = line.subarray(0, line.length - 1);
        let out: string | Promise<string>;
        try {
          out = deps.dispatcher.handle(line, peer);
        } catch (err) {
          // The dispatcher answers every failure itself; this is the last line of defence.
          deps.log.error({ err: err instanceof Error ? err.stack : 'non-error thrown' }, 'dispatcher threw');
          out = errorLine(ErrorCodes.internal, 'internal error');
        }
        if (typeof out === 'string') return send(out);
        mine++;
        inflight++;
        out.then(send, (err) => deps.log.error({ err: String(err) }, 'dispatcher failed')).finally(done);
        if (mine >= limits.maxInflightPerConnection && !paused) {
          paused = true;
          sock.pause();
        }
    };
    const framer = new LineFramer(limits.maxMessageBytes, {
      line: handleLine,
      overflow() {
        deps.log.warn({ uid: peer.uid, pid: peer.pid, max: limits.maxMessageBytes }, 'request line over max_message_bytes');
        // Answered after whatever this chunk already produced; then the connection ends.
        closing = errorLine(ErrorCodes.messageTooLarge, `Invalid message: line longer than ${limits.maxMessageBytes} bytes`);
        ended = true;
      },
    });
    sock.on('data', (chunk: Buffer) => {
      batch = [];
      framer.push(chunk);
      const out = batch;
      batch = null;
      if (out.length > 0 && !sock.destroyed && sock.writable) sock.write(out.length === 1 ? out[0]! : out.join(''));
      if (closing !== null) {
        sock.end(closing);
        closing = null;
      }
      // Backpressure: a peer that does not read its answers stops being read.
      if (!paused && sock.writableLength > limits.maxMessageBytes) {
        paused = true;
        sock.pause();
      }
    });
    sock.on('drain', () => {
      if (paused && mine < limits.maxInflightPerConnection) {
        paused = false;
        sock.resume();
      }
    });
    sock.on('end', () => {
      // A client that half-closes after an unterminated request still gets its answer.
      const rest = framer.takeRest();
      if (rest) handleLine(rest);
      ended = true;
      maybeClose();
    });
    sock.on('error', (err) => deps.log.debug({ err: err.message }, 'connection error'));
    sock.on('close', () => {
      connections--;
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
