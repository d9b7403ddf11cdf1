/**
 * One connection rootd admitted: line framing with a hard cap, dispatch, answers written as
 * soon as they are ready, and reading paused while the connection is at its limits.
 */
import type net from 'node:net';
import { ErrorCodes, type ErrorCode } from '../protocol/errors.ts';
import { LineFramer } from '../protocol/framing.ts';
import { responseLine } from '../protocol/messages.ts';
import type { Logger, PeerIdentity } from '../sdk/action.ts';
import type { Dispatcher } from './dispatcher.ts';

/** How long a refused (or message-too-large) connection waits for its peer to close before it is cut. */
export const REFUSED_LINGER_MS = 2000;
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

/** The answer to a connection refused, or cut, before any request of it could be read. */
export function errorLine(code: ErrorCode, message: string): string {
  return responseLine({ type: 'error', request_id: 'unknown', data: { error: message, code } });
}

/** Requests in progress over all connections, and who waits for them all to be answered. */
export class InflightRequests {
  count = 0;
  private waiters: Array<() => void> = [];

  start(): void {
    this.count++;
  }

  settle(): void {
    this.count--;
    if (this.count === 0 && this.waiters.length > 0) {
      const w = this.waiters;
      this.waiters = [];
      for (const f of w) f();
    }
  }

  drain(): Promise<void> {
    if (this.count === 0) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }
}
/**
 * One admitted connection: frames its lines, hands them to the dispatcher, writes the answers
 * and stops reading while it has too much in progress or its peer does not read.
 */
export class Connection {
  /** Requests of this connection in progress. */
  private mine = 0;
  private paused = false;
  private ended = false;
  // The line that ends the connection (message-too-large): written once every answer before it is out.
  private closing: string | null = null;
  // Answers produced while one chunk is processed go out in a single write.
  private batch: string[] | null = null;
  private readonly framer: LineFramer;

  constructor(
    private readonly sock: net.Socket,
    private readonly peer: PeerIdentity,
    private readonly limits: ConnectionLimits,
    private readonly deps: { dispatcher: Dispatcher; log: Logger },
    private readonly inflight: InflightRequests,
  ) {
    this.framer = new LineFramer(limits.maxMessageBytes, {
      line: (line) => this.handleLine(line),
      overflow: () => this.overflow(),
    });
    sock.on('data', (chunk: Buffer) => this.onData(chunk));
    sock.on('drain', () => this.maybeResume());
    sock.on('end', () => {
      // A client that half-closes after an unterminated request still gets its answer.
      const rest = this.framer.takeRest();
      if (rest) this.handleLine(rest);
      this.ended = true;
      this.finish();
    });
    sock.on('error', (err) => deps.log.debug({ err: err.message }, 'connection error'));
    if (limits.idleTimeoutMs > 0) this.closeWhenIdle();
  }

  private closeWhenIdle(): void {
    const { sock, peer, limits } = this;
    // Node's socket timeout restarts on every read and write; it fires again only after more activity.
    sock.setTimeout(limits.idleTimeoutMs);
    sock.on('timeout', () => {
      // A long action keeps its connection: its answer restarts the timer.
      if (this.mine > 0 || sock.destroyed) return;
      this.deps.log.debug({ uid: peer.uid, pid: peer.pid, idle_timeout_s: limits.idleTimeoutMs / 1000 }, 'closing an idle connection');
      sock.destroy();
    });
  }

  private onData(chunk: Buffer): void {
    this.batch = [];
    this.framer.push(chunk);
    this.flush();
    this.finish();
    // Backpressure: a peer that does not read its answers stops being read.
    if (!this.paused && this.sock.writableLength > this.limits.maxMessageBytes) this.pause();
  }

  private pause(): void {
    this.paused = true;
    this.sock.pause();
  }

  private finish(): void {
    const { sock } = this;
    if (!this.ended || this.mine > 0 || this.framer.holding || sock.destroyed) return;
    if (this.closing !== null) {
      // What the peer still sends is read and dropped (closing a socket with unread input resets
      // it, and the peer would lose the answers); a peer that never closes is cut off soon.
      sock.end(this.closing);
      this.closing = null;
      sock.setTimeout(REFUSED_LINGER_MS, () => sock.destroy());
    } else sock.end();
  }

  private send(line: string): void {
    if (this.batch) this.batch.push(line);
    else if (!this.sock.destroyed && this.sock.writable) this.sock.write(line);
  }

  private flush(): void {
    const out = this.batch!;
    this.batch = null;
    if (out.length > 0 && !this.sock.destroyed && this.sock.writable) this.sock.write(out.length === 1 ? out[0]! : out.join(''));
  }

  /** Reads on only while this connection has room for more work and its peer reads its answers. */
  private maybeResume(): void {
    if (!this.paused || this.ended || this.mine >= this.limits.maxInflightPerConnection || this.sock.writableLength >= this.limits.maxMessageBytes) return;
    this.batch = [];
    this.framer.resume();
    this.flush();
    if (this.framer.holding) return;
    this.paused = false;
    this.sock.resume();
  }

  private done(): void {
    this.mine--;
    this.inflight.settle();
    this.maybeResume();
    this.finish();
  }

  private handleLine(line: Buffer): boolean {
    // A blank line is skipped, CRLF-terminated ones too.
    if (line.length > 0 && line[line.length - 1] === 13) line = line.subarray(0, line.length - 1);
    if (line.length === 0) return true;
    let out: string | Promise<string>;
    try {
      out = this.deps.dispatcher.handle(line, this.peer);
    } catch (err) {
      // The dispatcher answers every failure itself; this is the last line of defence.
      this.deps.log.error({ err: err instanceof Error ? err.stack : 'non-error thrown' }, 'dispatcher threw');
      out = errorLine(ErrorCodes.internal, 'internal error');
    }
    if (typeof out === 'string') {
      this.send(out);
      return true;
    }
    this.mine++;
    this.inflight.start();
    out
      .then(
        (answer) => this.send(answer),
        (err) => this.deps.log.error({ err: String(err) }, 'dispatcher failed'),
      )
      .finally(() => this.done());
    // At the cap the framer holds the rest of the chunk unparsed and the socket stops being
    // read: a pipelining peer has at most max_inflight_per_connection requests in progress.
    if (this.mine >= this.limits.maxInflightPerConnection) {
      if (!this.paused) this.pause();
      return false;
    }
    return true;
  }

  private overflow(): void {
    const { peer, limits } = this;
    this.deps.log.warn({ uid: peer.uid, pid: peer.pid, max: limits.maxMessageBytes }, 'request line over max_message_bytes');
    // Answered after every request before it (those in progress included); then the connection ends.
    this.closing = errorLine(ErrorCodes.messageTooLarge, `Invalid message: line longer than ${limits.maxMessageBytes} bytes`);
    this.ended = true;
    // The framer now drops all input: keep reading it, so the peer is not reset.
    if (this.paused) {
      this.paused = false;
      this.sock.resume();
    }
  }
}
