/**
 * Live updates: one EventSource on /api/v1/events for the whole console, reopened with a growing
 * delay when it fails (a restarted server, a lost network). Pages subscribe to `job`, `agent` and
 * `batch` (many of a batch's jobs changed: read it again), and are told `opened` each time the
 * stream opens: pages read again then, as events may have been missed (while a page read its data
 * before the first open, or during a break).
 */
import { useEffect, useRef, useState } from 'preact/hooks';

export type LiveEvent =
  | { type: 'job'; data: Record<string, unknown> }
  | { type: 'agent'; data: Record<string, unknown> }
  | { type: 'batch'; data: Record<string, unknown> }
  | { type: 'opened'; data: Record<string, never> };
type Listener = (e: LiveEvent) => void;

const listeners = new Set<Listener>();
const stateListeners = new Set<(s: LiveState) => void>();
export type LiveState = 'connecting' | 'live' | 'offline';
let state: LiveState = 'offline';
let source: EventSource | null = null;
let retryMs = 1000;
let retryTimer: number | null = null;

function setState(s: LiveState): void {
  state = s;
  for (const fn of stateListeners) fn(s);
}

function tell(e: LiveEvent): void {
  for (const fn of listeners) fn(e);
}

function deliver(type: 'job' | 'agent' | 'batch', ev: MessageEvent): void {
  let data: unknown;
  try {
    data = JSON.parse(String(ev.data));
  } catch {
    return;
  }
  if (typeof data !== 'object' || data === null) return;
  tell({ type, data: data as Record<string, unknown> });
}

/** Opens the stream (after login); safe to call again. */
export function startEvents(): void {
  if (source !== null) return;
  setState('connecting');
  const es = new EventSource('/api/v1/events');
  source = es;
  es.addEventListener('open', () => {
    retryMs = 1000;
    setState('live');
    tell({ type: 'opened', data: {} });
  });
  es.addEventListener('job', (ev) => deliver('job', ev as MessageEvent));
  es.addEventListener('agent', (ev) => deliver('agent', ev as MessageEvent));
  es.addEventListener('batch', (ev) => deliver('batch', ev as MessageEvent));
  es.addEventListener('error', () => {
    // The browser retries by itself while the stream is CONNECTING; a CLOSED one (an HTTP error)
    // is ours to reopen, later each time up to a minute.
    if (es.readyState !== EventSource.CLOSED) {
      setState('connecting');
      return;
    }
    closeSource();
    setState('offline');
    retryTimer = window.setTimeout(() => {
      retryTimer = null;
      startEvents();
    }, retryMs);
    retryMs = Math.min(retryMs * 2, 60_000);
  });
}

function closeSource(): void {
  source?.close();
  source = null;
  if (retryTimer !== null) window.clearTimeout(retryTimer);
  retryTimer = null;
}

/** Closes the stream (at logout). */
export function stopEvents(): void {
  closeSource();
  setState('offline');
}

export function useLiveState(): LiveState {
  const [s, set] = useState(state);
  useEffect(() => {
    stateListeners.add(set);
    return () => void stateListeners.delete(set);
  }, []);
  return s;
}

/**
 * Calls `reload` after live events that `wanted` accepts, and each time the stream opens (events
 * may have been missed before), at most once a second: a fleet's burst of job events
 * becomes one request, not one per event. Subscribed once for the component's life, with the
 * latest `wanted` and `reload` of each render: a reload already due is never dropped because the
 * page's data changed in between (it used to be, when the events came while the page was reading).
 */
export function useLiveReload(wanted: (e: LiveEvent) => boolean, reload: () => void): void {
  const latest = useRef({ wanted, reload });
  latest.current = { wanted, reload };
  useEffect(() => {
    let timer: number | null = null;
    let last = Number.NEGATIVE_INFINITY;
    const fn: Listener = (e) => {
      if (timer !== null || (e.type !== 'opened' && !latest.current.wanted(e))) return;
      // The monotonic clock: a wall clock stepped back would hold every reload for as long.
      const wait = Math.max(0, last + 1000 - performance.now());
      timer = window.setTimeout(() => {
        timer = null;
        last = performance.now();
        latest.current.reload();
      }, wait);
    };
    listeners.add(fn);
    return () => {
      listeners.delete(fn);
      if (timer !== null) window.clearTimeout(timer);
    };
  }, []);
}
