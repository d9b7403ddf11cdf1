/** The console's entry: the session, the page frame (landmarks, navigation) and the router. */
import type { JSX } from 'preact';
import { render } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { pagePath, type ConsolePage } from '../../src/protocol/console-routes.ts';
import type { SessionUser } from '../../src/protocol/operator-api.ts';
import { api, dropPrefetched, onLoggedOut, prefetch, setCsrf } from './api.ts';
import { startEvents, stopEvents, useLiveState } from './events.ts';
import { AgentPage } from './pages/agent.tsx';
import { AgentsPage, agentsPath } from './pages/agents.tsx';
import { AuditPage } from './pages/audit.tsx';
import { DASHBOARD_PATH, DashboardPage } from './pages/dashboard.tsx';
import { BatchPage, JobsPage } from './pages/jobs.tsx';
import { LoginPage } from './pages/login.tsx';
import { TemplatePage, TemplatesPage } from './pages/templates.tsx';
import { UsersPage } from './pages/users.tsx';
import { current, Link, navigate, useRoute, type Route } from './router.tsx';
import { SessionContext } from './session.ts';
import './styles.css';

interface SessionReply {
  user: SessionUser;
  csrf: string;
}

const NAV: Array<{ page: ConsolePage; label: string; admin?: boolean }> = [
  { page: 'dashboard', label: 'Dashboard' },
  { page: 'agents', label: 'Agents' },
  { page: 'jobs', label: 'Jobs' },
  { page: 'templates', label: 'Templates' },
  { page: 'audit', label: 'Audit' },
  { page: 'users', label: 'Users', admin: true },
];

const TITLES: Record<ConsolePage, string> = {
  dashboard: 'Dashboard',
  login: 'Log in',
  agents: 'Agents',
  agent: 'Agent',
  jobs: 'Jobs',
  batch: 'Batch',
  templates: 'Templates',
  template: 'Template',
  audit: 'Audit',
  users: 'Users',
};

function Page(props: { route: Route }): JSX.Element {
  const { route } = props;
  switch (route.page) {
    case 'dashboard':
      return <DashboardPage />;
    case 'agents':
      return <AgentsPage route={route} />;
    case 'agent':
      return <AgentPage id={route.params.id ?? ''} />;
    case 'jobs':
      return <JobsPage />;
    case 'batch':
      return <BatchPage id={route.params.id ?? ''} />;
    case 'templates':
      return <TemplatesPage />;
    case 'template':
      return <TemplatePage id={route.params.id ?? ''} />;
    case 'audit':
      return <AuditPage />;
    case 'users':
      return <UsersPage />;
    default:
      return (
        <>
          <h1>Page not found</h1>
          <p>
            There is no page at this address. <Link href="/">Go to the dashboard</Link>.
          </p>
        </>
      );
  }
}

function LiveIndicator(): JSX.Element {
  const s = useLiveState();
  const text = s === 'live' ? 'Live updates on' : s === 'connecting' ? 'Reconnecting…' : 'Live updates off';
  return (
    <span class={`live live-${s}`} role="status" data-testid="live-state">
      {text}
    </span>
  );
}

function Shell(props: { user: SessionUser; route: Route; onLogout: () => void }): JSX.Element {
  const { user, route } = props;
  const main = useRef<HTMLElement>(null);
  // A new page moves focus to its content, as a page load would (screen readers announce it).
  useEffect(() => {
    document.title = `${TITLES[route.page ?? 'dashboard']} · TuxSec`;
    main.current?.focus();
  }, [route.path]);
  const section = route.page === 'agent' ? 'agents' : route.page === 'batch' ? 'jobs' : route.page === 'template' ? 'templates' : route.page;
  return (
    <>
      <a class="skip" href="#main">
        Skip to content
      </a>
      <header class="top">
        <span class="brand">TuxSec</span>
        <nav aria-label="Main">
          <ul>
            {NAV.filter((n) => !n.admin || user.role === 'admin').map((n) => (
              <li key={n.page}>
                <Link href={pagePath(n.page)} aria-current={section === n.page ? 'page' : undefined} data-testid={`nav-${n.page}`}>
                  {n.label}
                </Link>
              </li>
            ))}
          </ul>
        </nav>
        <div class="who">
          <LiveIndicator />
          <span data-testid="current-user">
            {user.name} ({user.role})
          </span>
          <button type="button" class="link" onClick={props.onLogout} data-testid="logout">
            Log out
          </button>
        </div>
      </header>
      <main id="main" tabIndex={-1} ref={main}>
        <Page route={route} />
      </main>
    </>
  );
}

function App(): JSX.Element {
  const route = useRoute();
  const [user, setUser] = useState<SessionUser | null | 'loading'>('loading');
  useEffect(() => {
    // The frame and the first page render once both the session and that page's data are here.
    Promise.all([api<SessionReply>('GET', '/session'), firstPage]).then(
      ([s]) => {
        setCsrf(s.csrf);
        setUser(s.user);
      },
      () => {
        dropPrefetched();
        setUser(null);
      },
    );
    return onLoggedOut(() => {
      dropPrefetched();
      setCsrf(null);
      stopEvents();
      setUser(null);
    });
  }, []);
  useEffect(() => {
    if (user !== null && user !== 'loading') startEvents();
  }, [user]);
  if (user === 'loading') {
    return (
      <main id="main">
        <p role="status">Loading…</p>
      </main>
    );
  }
  if (user === null) {
    return (
      <LoginPage
        onLogin={(s) => {
          dropPrefetched();
          setCsrf(s.csrf);
          setUser(s.user);
          const next = route.search.get('next');
          navigate(route.page === 'login' ? (next && next.startsWith('/') && !next.startsWith('//') ? next : '/') : route.path + location.search, true);
        }}
      />
    );
  }
  if (route.page === 'login') navigate('/', true);
  const logout = (): void => {
    void api('DELETE', '/session')
      .catch(() => undefined)
      .then(() => {
        setCsrf(null);
        stopEvents();
        setUser(null);
        navigate('/login', true);
      });
  };
  return (
    <SessionContext.Provider value={user}>
      <Shell user={user} route={route} onLogout={logout} />
    </SessionContext.Provider>
  );
}

/**
 * The session check and the first page's data start together, before the first render: the page
 * then renders with its data one round trip after the script runs, not two (and not after a render
 * of the frame in between). Without a session both answer 401 and the login page shows.
 */
function prefetchFirstPage(route: Route): Promise<unknown> {
  prefetch('/session');
  if (route.page === 'dashboard') return prefetch(DASHBOARD_PATH);
  if (route.page === 'agents') return prefetch(agentsPath(route.search));
  return Promise.resolve();
}

/** Settles when the first page's data has (its page then renders with it in one pass). */
const firstPage = prefetchFirstPage(current()).catch(() => undefined);
render(<App />, document.getElementById('app')!);
