/** The dashboard: agents by state, recent jobs and failures, hosts whose firewall drifted. */
import type { JSX } from 'preact';
import { useState } from 'preact/hooks';
import { api, takePrefetched } from '../api.ts';
import type { DashboardView, DriftedHost, JobView } from '../../../src/protocol/operator-api.ts';
import { Badge, ErrorBox, Loading, Section, Table, Time, useAction, useLoad } from '../components.tsx';
import { useLiveReload } from '../events.ts';
import { Link } from '../router.tsx';
import { useCan } from '../session.ts';

/** The API path of the dashboard's data (main.tsx prefetches it). */
export const DASHBOARD_PATH = '/dashboard';

const STATES = ['online', 'stale', 'offline', 'pending', 'rejected'] as const;

export function JobTable(props: { jobs: JobView[]; testid: string; empty: string }): JSX.Element {
  return (
    <Table
      testid={props.testid}
      rows={props.jobs}
      rowKey={(j) => j.id}
      empty={props.empty}
      columns={[
        {
          head: 'Action',
          cell: (j) => (
            <>
              {j.batch_id ? <Link href={`/batches/${encodeURIComponent(j.batch_id)}`}>{`${j.module}.${j.action}`}</Link> : `${j.module}.${j.action}`}
              {j.result?.error ? <div class="small error-text">{j.result.error}</div> : null}
            </>
          ),
        },
        { head: 'Agent', cell: (j) => <Link href={`/agents/${encodeURIComponent(j.agent_id)}`}>{j.agent_id.slice(0, 8)}</Link> },
        { head: 'State', cell: (j) => <Badge state={j.status} /> },
        { head: 'Created', cell: (j) => <Time at={j.created_at} /> },
      ]}
    />
  );
}

/**
 * Hosts whose firewall differs from its accepted state; an operator accepts a host's current
 * firewall as its new baseline (the change was meant), and the host leaves the list.
 */
function Drifted(props: { hosts: DriftedHost[]; reload: () => void }): JSX.Element {
  const operator = useCan('operator');
  const act = useAction();
  const [accepted, setAccepted] = useState<string | null>(null);
  const accept = (h: DriftedHost): void => {
    setAccepted(null);
    void act.run(() => api('POST', `/agents/${encodeURIComponent(h.agent_id)}/firewall/baseline`)).then((ok) => {
      if (ok) setAccepted(h.hostname);
      props.reload();
    });
  };
  return (
    <>
      <ErrorBox error={act.error} />
      {accepted !== null ? (
        <p role="status" data-testid="baseline-accepted">
          The firewall of {accepted} is its baseline now.
        </p>
      ) : null}
      <Table
        testid="drifted"
        rows={props.hosts}
        rowKey={(h) => h.agent_id}
        rowTestid={(h) => `drifted-${h.hostname}`}
        empty="No host's firewall differs from its accepted state."
        columns={[
          { head: 'Host', cell: (h) => <Link href={`/agents/${encodeURIComponent(h.agent_id)}`}>{h.hostname}</Link> },
          { head: 'Checked', cell: (h) => <Time at={h.checked_at} /> },
          operator && {
            head: 'Actions',
            cell: (h) => (
              <button type="button" disabled={act.busy} onClick={() => accept(h)} aria-label={`Accept as baseline the firewall of ${h.hostname}`} data-testid="accept-baseline">
                Accept as baseline
              </button>
            ),
          },
        ]}
      />
    </>
  );
}

export function DashboardPage(): JSX.Element {
  const d = useLoad(() => api<DashboardView>('GET', DASHBOARD_PATH), [], () => takePrefetched<DashboardView>(DASHBOARD_PATH));
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
            <Drifted hosts={d.data.drifted} reload={d.reload} />
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
