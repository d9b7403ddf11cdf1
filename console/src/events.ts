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

/** Calls `fn` for every live event while the component is shown. */
export function useLiveEvents(fn: Listener, deps: unknown[] = []): void {
  useEffect(() => {
    listeners.add(fn);
    return () => void listeners.delete(fn);
  }, deps);
}

export function useLiveState(): LiveState {
  const [s, set] = useState(state);
  useEffect(() => {
    stateListeners.add(set);
    return () => void stateListeners.delete(set);
  }, []);
  return s;
}
