/**
 * Live updates: one EventSource on /api/v1/events for the whole console, reopened with a growing
 * delay when it fails (a restarted server, a lost network). Pages subscribe to `job` and `agent`.
 */
import { useEffect, useState } from 'preact/hooks';

export type LiveEvent = { type: 'job'; data: Record<string, unknown> } | { type: 'agent'; data: Record<string, unknown> };
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

function deliver(type: LiveEvent['type'], ev: MessageEvent): void {
  let data: unknown;
  try {
    data = JSON.parse(String(ev.data));
  } catch {
    return;
  }
  if (typeof data !== 'object' || data === null) return;
  for (const fn of listeners) fn({ type, data: data as Record<string, unknown> } as LiveEvent);
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
  });
  es.addEventListener('job', (ev) => deliver('job', ev as MessageEvent));
  es.addEventListener('agent', (ev) => deliver('agent', ev as MessageEvent));
  es.addEventListener('error', () => {
    // The browser retries by itself while the stream is CONNECTING; a CLOSED one (an HTTP error)
    // is ours to reopen, later each time up to a minute.
    if (es.readyState !== EventSource.CLOSED) {
      setState('connecting');
      return;
    }
    stopEvents();
    retryTimer = window.setTimeout(() => {
      retryTimer = null;
      startEvents();
    }, retryMs);
    retryMs = Math.min(retryMs * 2, 60_000);
  });
}

/** Closes the stream (at logout). */
export function stopEvents(): void {
  source?.close();
  source = null;
  if (retryTimer !== null) window.clearTimeout(retryTimer);
  retryTimer = null;
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
 * Calls `reload` after live events that `wanted` accepts, at most once a second: a fleet's burst of
 * job events becomes one request, not one per event.
 */
export function useLiveReload(wanted: (e: LiveEvent) => boolean, reload: () => void, deps: unknown[] = []): void {
  useEffect(() => {
    let timer: number | null = null;
    let last = 0;
    const fn: Listener = (e) => {
      if (!wanted(e) || timer !== null) return;
      const wait = Math.max(0, last + 1000 - Date.now());
      timer = window.setTimeout(() => {
        timer = null;
        last = Date.now();
        reload();
      }, wait);
    };
    listeners.add(fn);
    return () => {
      listeners.delete(fn);
      if (timer !== null) window.clearTimeout(timer);
    };
  }, deps);
}
