/** A small client router over the History API; the pages and their paths are CONSOLE_PAGES. */
import type { ComponentChildren, JSX } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { matchPage, type ConsolePage } from '../../src/protocol/console-routes.ts';

export interface Route {
  page: ConsolePage | null;
  params: Record<string, string>;
  search: URLSearchParams;
  path: string;
}

const listeners = new Set<() => void>();

/** The route of the address the browser shows. */
export function current(): Route {
  const m = matchPage(location.pathname);
  return { page: m?.page ?? null, params: m?.params ?? {}, search: new URLSearchParams(location.search), path: location.pathname };
}

/** Goes to `to` (a path with an optional query) without reloading; `replace` keeps history short. */
export function navigate(to: string, replace = false): void {
  if (replace) history.replaceState(null, '', to);
  else history.pushState(null, '', to);
  for (const fn of listeners) fn();
  window.scrollTo(0, 0);
}

/** The current route; re-renders on navigation and on the browser's back and forward. */
export function useRoute(): Route {
  const [route, setRoute] = useState(current);
  useEffect(() => {
    const update = (): void => setRoute(current());
    listeners.add(update);
    window.addEventListener('popstate', update);
    return () => {
      listeners.delete(update);
      window.removeEventListener('popstate', update);
    };
  }, []);
  return route;
}

/** A link the router follows in place (a modified click still opens a new tab). */
export function Link(props: { href: string; children: ComponentChildren; class?: string; 'aria-current'?: 'page' | undefined; 'data-testid'?: string }): JSX.Element {
  const onClick = (e: MouseEvent): void => {
    if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
    e.preventDefault();
    navigate(props.href);
  };
  return (
    <a {...props} onClick={onClick}>
      {props.children}
    </a>
  );
}
