/**
 * Live events of the operator API (`GET /api/v1/events`, server-sent events): jobs as they change
 * state (`event: job`, data a jobView) and agents as their state changes (`event: agent`, data
 * `{id, state, last_seen}`), each stream seeing only the hosts its operator reaches.
 *
 * Fed by JobDispatch (jobsChanged, jobFinished, agentChanged) and by a timer that notices agents
 * going stale and offline, which no request announces. Nothing is read from the database while
 * nobody listens. Every stream has a bounded buffer: a reader that falls behind by more than
 * `bufferBytes` is dropped (it reconnects and reloads), so one slow console never makes the server
 * hold an unbounded backlog. Streams are limited per operator and in all.
 */
import type { ServerResponse } from 'node:http';
import { ErrorCodes, HttpError } from '../protocol/errors.ts';
import { iso, jobView } from './context.ts';
import { canReach, type Operator } from './operators.ts';
import { agentState, type AgentState, type StateWindows } from './storage/fleet-store.ts';
import type { Storage } from './storage/storage.ts';

export interface EventLimits {
  /** Most streams open at once, all operators together. */
  maxStreams: number;
  /** Most streams one operator (one user, or the admin token) holds at once. */
  maxPerOperator: number;
  /** Bytes written but not yet taken by the reader beyond which its stream is dropped. */
  bufferBytes: number;
  /** How often a comment line keeps an idle stream (and the proxies on its way) alive, ms. */
  heartbeatMs: number;
  /** How often agents' states are looked at for online -> stale -> offline, ms. */
  stateCheckMs: number;
}

export const DEFAULT_EVENT_LIMITS: EventLimits = { maxStreams: 256, maxPerOperator: 8, bufferBytes: 1024 * 1024, heartbeatMs: 15_000, stateCheckMs: 5_000 };

export interface EventHubDeps {
  storage: Storage;
  windows: () => StateWindows;
  /** An agent's last_seen, counting check-ins not yet written. */
  lastSeen: (id: string, stored: number | null) => number | null;
  log: { info(o: object, msg: string): void; warn(o: object, msg: string): void };
  limits: EventLimits;
  /** Whether the login session a stream was opened with still holds (absent: never checked). */
  sessionLive?: (op: Operator) => boolean;
}

interface Stream {
  op: Operator;
  key: string;
  res: ServerResponse;
}

const operatorKey = (op: Operator): string => `${op.kind}:${op.name}`;

/** A job event larger than this goes without params and result (`truncated: true`): GET the job. */
export const MAX_JOB_EVENT_BYTES = 16 * 1024;
/** More job changes than this in one turn of the event loop are told per batch, not per job. */
const MAX_JOB_EVENTS_PER_TURN = 200;

export class EventHub {
  private readonly streams = new Set<Stream>();
  private readonly perOperator = new Map<string, number>();
  /** Each agent's state as last published (filled when the first stream opens). */
  private readonly states = new Map<string, AgentState>();
  private timers: NodeJS.Timeout[] = [];
  private closed = false;
  /** Streams dropped for reading too slowly, since start (for tests and the log). */
  dropped = 0;

  constructor(private readonly d: EventHubDeps) {}

  get size(): number {
    return this.streams.size;
  }

  /**
   * Starts a stream on `res` for `op` (after the route checked the role); throws rate-limited when
   * the operator or the server holds too many. The caller must have hijacked the reply.
   */
  checkRoom(op: Operator): void {
    if (this.closed) throw HttpError.of(ErrorCodes.shuttingDown, 'cannot open events stream: the server is shutting down');
    const mine = this.perOperator.get(operatorKey(op)) ?? 0;
    if (mine >= this.d.limits.maxPerOperator) {
      throw HttpError.of(ErrorCodes.rateLimited, `cannot open events stream: ${op.kind} "${op.name}" already holds ${mine} (at most ${this.d.limits.maxPerOperator}); close one`, { retryAfter: 5 });
    }
    if (this.streams.size >= this.d.limits.maxStreams) {
      throw HttpError.of(ErrorCodes.rateLimited, `cannot open events stream: the server holds ${this.streams.size} (at most ${this.d.limits.maxStreams})`, { retryAfter: 5 });
    }
  }

  open(op: Operator, res: ServerResponse): void {
    this.checkRoom(op);
    if (this.streams.size === 0) this.start();
    const s: Stream = { op, key: operatorKey(op), res };
    this.streams.add(s);
    this.perOperator.set(s.key, (this.perOperator.get(s.key) ?? 0) + 1);
    res.once('close', () => this.forget(s));
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      'x-content-type-options': 'nosniff',
      // nginx and the like would hold events back to fill their buffers.
      'x-accel-buffering': 'no',
    });
    res.write('retry: 5000\n: connected\n\n');
  }

  /**
   * Jobs changed: collected for this turn of the event loop, then each read once and sent to the
   * streams that reach its host. Many at once (a batch queued, thousands of hosts taking their
   * jobs together, a mass expiry) are told as one `batch` event per batch, so a burst never
   * overflows a reader that keeps up.
   */
  jobs(ids: readonly string[]): void {
    if (this.streams.size === 0) return;
    for (const id of ids) this.pendingJobs.add(id);
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => this.flushJobs());
  }

  private readonly pendingJobs = new Set<string>();
  private flushScheduled = false;

  private flushJobs(): void {
    this.flushScheduled = false;
    const ids = [...this.pendingJobs];
    this.pendingJobs.clear();
    if (this.streams.size === 0 || ids.length === 0) return;
    try {
      let single = ids;
      if (ids.length <= MAX_JOB_EVENTS_PER_TURN) {
        const events = this.jobEvents(ids);
        const bytes = events.reduce((n, e) => n + e.text.length, 0);
        if (bytes <= this.d.limits.bufferBytes / 4) {
          for (const e of events) this.publish('job', e.text, e.labels);
          return;
        }
        single = events.filter((e) => e.batchId === null).map((e) => e.id);
      }
      const byBatch = this.d.storage.fleet.batchesOf(ids);
      if (ids.length > MAX_JOB_EVENTS_PER_TURN) single = ids.filter((id) => !byBatch.jobs.has(id));
      for (const batchId of byBatch.batches) this.publishBatch(batchId);
      for (const e of this.jobEvents(single)) this.publish('job', e.text, e.labels);
    } catch (err) {
      this.d.log.warn({ err }, 'cannot read changed jobs for events');
    }
  }

  private jobEvents(ids: readonly string[]): Array<{ id: string; batchId: string | null; text: string; labels: Record<string, string> | null }> {
    const out = [];
    for (const id of ids) {
      const job = this.d.storage.getJob(id);
      if (!job) continue;
      const view = jobView(job);
      let text = JSON.stringify(view);
      // A big result or params would fill a reader's buffer by itself.
      if (text.length > MAX_JOB_EVENT_BYTES) text = JSON.stringify({ ...view, params: null, result: null, truncated: true });
      out.push({ id, batchId: job.batchId ?? null, text, labels: this.d.storage.getAgent(job.agentId)?.labels ?? null });
    }
    return out;
  }

  /** `event: batch` {id}: its hosts changed, GET it again. Only to streams reaching one of its hosts. */
  private publishBatch(batchId: string): void {
    const text = `event: batch\ndata: ${JSON.stringify({ id: batchId })}\n\n`;
    const reach = new Map<string, boolean>();
    for (const s of [...this.streams]) {
      const sel = s.op.selector;
      if (sel !== null) {
        const key = JSON.stringify(sel);
        if (!reach.has(key)) reach.set(key, this.d.storage.fleet.batchReaches(batchId, sel));
        if (!reach.get(key)) continue;
      }
      this.send(s, text);
    }
  }

  /** An agent may have changed state: published when it did. */
  agent(id: string): void {
    if (this.streams.size === 0) return;
    const a = this.d.storage.getAgent(id);
    if (!a) return;
    this.publishAgent(id, agentState(a.status, this.d.lastSeen(id, a.lastSeen), this.d.windows()), this.d.lastSeen(id, a.lastSeen), a.labels);
  }

  /** Closes the streams `which` picks (e.g. those of a session that logged out). */
  closeWhere(which: (op: Operator) => boolean): number {
    let n = 0;
    for (const s of [...this.streams]) {
      if (!which(s.op)) continue;
      this.end(s);
      n++;
    }
    return n;
  }

  /**
   * Closes the streams whose login session ended (logout, revoke, password change, user removal,
   * expiry, a newer session pushing it out): a stream never outlives the session it was opened with.
   * Called when a route ends sessions, and on the state timer for those that end by time.
   */
  closeEndedSessions(): number {
    const live = this.d.sessionLive;
    if (live === undefined) return 0;
    return this.closeWhere((op) => op.sessionId !== undefined && !live(op));
  }

  /** Ends every stream (server closing); later opens are refused. */
  close(): void {
    this.closed = true;
    for (const s of [...this.streams]) this.end(s);
    this.stop();
  }

  private publishAgent(id: string, state: AgentState, lastSeen: number | null, labels: Record<string, string>): void {
    if (this.states.get(id) === state) return;
    this.states.set(id, state);
    this.publish('agent', JSON.stringify({ id, state, last_seen: iso(lastSeen) }), labels);
  }

  /** `labels` null: the host is gone; only operators reaching every host see it. */
  private publish(event: string, data: string, labels: Record<string, string> | null): void {
    const text = `event: ${event}\ndata: ${data}\n\n`;
    for (const s of [...this.streams]) {
      if (labels === null ? s.op.selector !== null : !canReach(s.op, { labels })) continue;
      this.send(s, text);
    }
  }

  private send(s: Stream, text: string): void {
    const { res } = s;
    if (res.destroyed) return;
    if (res.writableLength + Buffer.byteLength(text) > this.d.limits.bufferBytes) {
      this.dropped++;
      this.d.log.warn({ operator: s.op.name, buffered: res.writableLength }, `events stream dropped: the reader fell behind by more than ${this.d.limits.bufferBytes} bytes`);
      // Destroyed, not ended: an end would wait behind the backlog the reader does not take.
      res.destroy();
      this.forget(s);
      return;
    }
    res.write(text);
  }

  private end(s: Stream): void {
    this.forget(s);
    if (s.res.writableLength > 0) s.res.destroy();
    else s.res.end();
  }

  private forget(s: Stream): void {
    if (!this.streams.delete(s)) return;
    const left = (this.perOperator.get(s.key) ?? 1) - 1;
    if (left <= 0) this.perOperator.delete(s.key);
    else this.perOperator.set(s.key, left);
    if (this.streams.size === 0) this.stop();
  }

  private start(): void {
    // What every agent is now: only changes from here on are events.
    this.states.clear();
    const w = this.d.windows();
    for (const a of this.d.storage.fleet.agentStates()) this.states.set(a.id, agentState(a.status, this.d.lastSeen(a.id, a.lastSeen), w));
    this.timers = [
      setInterval(() => {
        for (const s of [...this.streams]) this.send(s, ': ping\n\n');
      }, this.d.limits.heartbeatMs).unref(),
      setInterval(() => {
        // A timer's throw would end the server: a database error here is logged, and tried again.
        try {
          this.closeEndedSessions();
          this.checkStates();
        } catch (err) {
          this.d.log.warn({ err }, 'cannot look at events streams\' sessions and agents\' states');
        }
      }, this.d.limits.stateCheckMs).unref(),
    ];
  }

  private stop(): void {
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
    this.states.clear();
  }

  private checkStates(): void {
    try {
      const w = this.d.windows();
      for (const a of this.d.storage.fleet.agentStates()) {
        const seen = this.d.lastSeen(a.id, a.lastSeen);
        this.publishAgent(a.id, agentState(a.status, seen, w), seen, a.labels);
      }
    } catch (err) {
      this.d.log.warn({ err }, 'cannot look at agents\' states for events');
    }
  }
}
