/**
 * The web console's pages: the paths its router knows, which tuxsec-server answers with the
 * console's index.html (src/server/console.ts). One list for both ends, so a page the browser can
 * open is one the server serves, and nothing else is taken from the API or agent paths.
 * Patterns in Fastify's syntax: `:name` is one path segment.
 */
export const CONSOLE_PAGES = {
  dashboard: '/',
  login: '/login',
  agents: '/agents',
  agent: '/agents/:id',
  jobs: '/jobs',
  batch: '/batches/:id',
  templates: '/templates',
  template: '/templates/:id',
  audit: '/audit',
  users: '/users',
} as const;

export type ConsolePage = keyof typeof CONSOLE_PAGES;

/** Where the console's hashed scripts and style sheets are served from. */
export const CONSOLE_ASSETS_PREFIX = '/assets/';

/** The page a path names and its parameters; null for a path no page has. */
export function matchPage(pathname: string): { page: ConsolePage; params: Record<string, string> } | null {
  const parts = pathname.split('/').filter((s) => s !== '');
  for (const [page, pattern] of Object.entries(CONSOLE_PAGES) as Array<[ConsolePage, string]>) {
    const want = pattern.split('/').filter((s) => s !== '');
    if (want.length !== parts.length) continue;
    const params: Record<string, string> = {};
    let ok = true;
    for (let i = 0; i < want.length && ok; i++) {
      const w = want[i]!;
      const got = parts[i]!;
      if (w.startsWith(':')) {
        try {
          params[w.slice(1)] = decodeURIComponent(got);
        } catch {
          ok = false;
        }
      } else ok = w === got;
    }
    if (ok) return { page, params };
  }
  return null;
}

/** The path of a page with its parameters filled in. */
export function pagePath(page: ConsolePage, params: Record<string, string> = {}): string {
  return CONSOLE_PAGES[page].replace(/:([a-z]+)/g, (_, k: string) => encodeURIComponent(params[k] ?? ''));
}
