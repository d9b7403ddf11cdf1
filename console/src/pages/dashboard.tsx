/** The dashboard: agents by state, recent jobs and failures, hosts whose firewall drifted. */
import type { JSX } from 'preact';
import { api, takePrefetched, type Job } from '../api.ts';
import { Badge, ErrorBox, Loading, Section, Table, Time, useLoad } from '../components.tsx';
import { useLiveReload } from '../events.ts';
import { Link } from '../router.tsx';

interface Dashboard {
  agents: Record<string, number>;
  recent_jobs: Job[];
  recent_failures: Job[];
  drifted: Array<{ agent_id: string; hostname: string; baseline: string | null; current: string | null; checked_at: string | null }>;
}

/** The API path of the dashboard's data (main.tsx prefetches it). */
export const DASHBOARD_PATH = '/dashboard';

const STATES = ['online', 'stale', 'offline', 'pending', 'rejected'] as const;

export function JobTable(props: { jobs: Job[]; testid: string; empty: string }): JSX.Element {
  return (
    <Table
      testid={props.testid}
      head={['Action', 'Agent', 'State', 'Created']}
      rows={props.jobs}
      empty={props.empty}
      row={(j) => (
        <tr key={j.id}>
          <td>
            {j.batch_id ? <Link href={`/batches/${encodeURIComponent(j.batch_id)}`}>{`${j.module}.${j.action}`}</Link> : `${j.module}.${j.action}`}
            {j.result?.error ? <div class="small error-text">{j.result.error}</div> : null}
          </td>
          <td>
            <Link href={`/agents/${encodeURIComponent(j.agent_id)}`}>{j.agent_id.slice(0, 8)}</Link>
          </td>
          <td>
            <Badge state={j.status} />
          </td>
          <td>
            <Time at={j.created_at} />
          </td>
        </tr>
      )}
    />
  );
}

export function DashboardPage(): JSX.Element {
  const d = useLoad(() => api<Dashboard>('GET', DASHBOARD_PATH), [], () => takePrefetched<Dashboard>(DASHBOARD_PATH));
  useLiveReload(() => true, d.reload);
  return (
    <>
      <h1>Dashboard</h1>
      <ErrorBox error={d.error} />
      {d.data === null ? (
        d.loading ? <Loading /> : null
      ) : (
        <>
          <Section title="Agents">
            <ul class="stats" data-testid="agent-counts">
              {STATES.map((s) => (
                <li key={s}>
                  <Link href={`/agents?state=${s}`} data-testid={`count-${s}`}>
                    <span class="stat-n">{d.data!.agents[s] ?? 0}</span> <span class="stat-l">{s === 'pending' ? 'pending approval' : s}</span>
                  </Link>
                </li>
              ))}
              <li>
                <Link href="/agents" data-testid="count-total">
                  <span class="stat-n">{d.data.agents.total ?? 0}</span> <span class="stat-l">in all</span>
                </Link>
              </li>
            </ul>
          </Section>
          <Section title="Firewall drift">
            <Table
              testid="drifted"
              head={['Host', 'Checked']}
              rows={d.data.drifted}
              empty="No host's firewall differs from its accepted state."
              row={(h) => (
                <tr key={h.agent_id}>
                  <td>
                    <Link href={`/agents/${encodeURIComponent(h.agent_id)}`}>{h.hostname}</Link>
                  </td>
                  <td>
                    <Time at={h.checked_at} />
                  </td>
                </tr>
              )}
            />
          </Section>
          <Section title="Recent failures">
            <JobTable jobs={d.data.recent_failures} testid="recent-failures" empty="No failed jobs." />
          </Section>
          <Section title="Recent jobs">
            <JobTable jobs={d.data.recent_jobs} testid="recent-jobs" empty="No jobs yet." />
          </Section>
        </>
      )}
    </>
  );
}
