/**
 * Agents: search and filters (label, state, mode, OS) kept in the address so a filtered list can be
 * bookmarked; approve or reject pending agents and edit labels (admin); enrollment tokens (admin).
 */
import type { JSX } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { api, query, takePrefetched } from '../api.ts';
import type { AgentView, TokenView } from '../../../src/protocol/operator-api.ts';
import { Badge, ErrorBox, Labels, LoadedTable, Loading, Section, Table, Time, useAction, useLoad } from '../components.tsx';
import { formatLabels, parseLabels } from '../labels.ts';
import { useLiveReload } from '../events.ts';
import { Link, navigate, type Route } from '../router.tsx';
import { useCan } from '../session.ts';

const PAGE_SIZE = 100;
/**
 * Rows rendered at first, more than a screen holds: the rest of the page follows once these are on
 * screen (a page of 100 rows took 0.4–1 s of script, style and layout on a loaded 2-core machine).
 */
const FIRST_ROWS = 25;

/** What an agent's os_info says, in a few words. */
export function osName(a: AgentView): string {
  const o = a.os_info;
  if (typeof o === 'string') return o;
  if (typeof o === 'object' && o !== null) {
    const r = o as Record<string, unknown>;
    for (const k of ['pretty_name', 'name', 'distro', 'system', 'os']) if (typeof r[k] === 'string') return r[k] as string;
  }
  return '';
}

function LabelEditor(props: { agent: AgentView; onSaved: () => void }): JSX.Element {
  const [open, setOpen] = useState(false);
  const [text, setText] = useState(formatLabels(props.agent.labels));
  const act = useAction();
  const id = `labels-${props.agent.id}`;
  if (!open) {
    return (
      <button type="button" class="link" onClick={() => setOpen(true)} aria-label={`Edit labels of ${props.agent.hostname}`} data-testid="edit-labels">
        Edit
      </button>
    );
  }
  const save = (e: SubmitEvent): void => {
    e.preventDefault();
    const p = parseLabels(text);
    if (p.error !== null) {
      act.clear();
      void act.run(() => Promise.reject(new Error(p.error!)));
      return;
    }
    const old = props.agent.labels ?? {};
    const remove = Object.keys(old).filter((k) => !(k in p.labels));
    void act
      .run(() => api('POST', `/agents/${encodeURIComponent(props.agent.id)}/labels`, { set: p.labels, remove }))
      .then((ok) => {
        if (ok) {
          setOpen(false);
          props.onSaved();
        }
      });
  };
  return (
    <form onSubmit={save} class="inline-form" data-testid="labels-form">
      <ErrorBox error={act.error} />
      <label for={id}>Labels of {props.agent.hostname} (KEY=VALUE, comma separated)</label>
      <input id={id} value={text} onInput={(e) => setText(e.currentTarget.value)} />
      <div class="buttons">
        <button type="submit" class="primary" disabled={act.busy} data-testid="save-labels">
          Save labels
        </button>
        <button type="button" onClick={() => setOpen(false)}>
          Cancel
        </button>
      </div>
    </form>
  );
}

function AgentRows(props: { agents: AgentView[]; reload: () => void }): JSX.Element {
  const admin = useCan('admin');
  const act = useAction();
  const [all, setAll] = useState(props.agents.length <= FIRST_ROWS);
  useEffect(() => {
    if (all) return;
    const t = window.setTimeout(() => setAll(true), 0);
    return () => window.clearTimeout(t);
  }, [all]);
  const decide = (a: AgentView, verb: 'approve' | 'reject'): void => {
    if (verb === 'reject' && !window.confirm(`Reject agent ${a.hostname}? It can no longer check in.`)) return;
    void act.run(() => api('POST', `/agents/${encodeURIComponent(a.id)}/${verb}`)).then(props.reload);
  };
  return (
    <>
      <ErrorBox error={act.error} />
      <Table
        testid="agents-table"
        rows={all ? props.agents : props.agents.slice(0, FIRST_ROWS)}
        rowKey={(a) => a.id}
        rowTestid={(a) => `agent-row-${a.hostname}`}
        empty="No agent matches."
        columns={[
          {
            head: 'Host',
            cell: (a) => (
              <>
                <Link href={`/agents/${encodeURIComponent(a.id)}`}>{a.hostname}</Link>
                <div class="small muted">{a.ip ?? ''}</div>
              </>
            ),
          },
          { head: 'State', cell: (a) => <Badge state={a.state ?? a.status} /> },
          { head: 'Mode', cell: (a) => a.mode },
          { head: 'OS', cell: (a) => osName(a) },
          {
            head: 'Labels',
            cell: (a) => (
              <>
                <Labels labels={a.labels} />
                {admin ? <LabelEditor agent={a} onSaved={props.reload} /> : null}
              </>
            ),
          },
          { head: 'Last seen', cell: (a) => <Time at={a.last_seen} /> },
          admin && {
            head: 'Actions',
            cell: (a) =>
              a.status === 'pending' ? (
                <div class="buttons">
                  <button type="button" class="primary" disabled={act.busy} onClick={() => decide(a, 'approve')} aria-label={`Approve ${a.hostname}`} data-testid="approve">
                    Approve
                  </button>
                  <button type="button" class="danger" disabled={act.busy} onClick={() => decide(a, 'reject')} aria-label={`Reject ${a.hostname}`} data-testid="reject">
                    Reject
                  </button>
                </div>
              ) : null,
          },
        ]}
      />
    </>
  );
}

function Tokens(): JSX.Element {
  const list = useLoad(() => api<{ tokens: TokenView[] }>('GET', '/tokens'), []);
  const [name, setName] = useState('');
  const [uses, setUses] = useState('1');
  const [ttl, setTtl] = useState('24');
  const [labels, setLabels] = useState('');
  const [made, setMade] = useState<{ token: string; id: string } | null>(null);
  const act = useAction();
  const create = (e: SubmitEvent): void => {
    e.preventDefault();
    const l = parseLabels(labels);
    const n = Number(uses);
    const hours = Number(ttl);
    const bad = l.error ?? (!Number.isInteger(n) || n < 1 ? 'Uses must be a whole number of at least 1' : !(hours > 0) ? 'Expiry must be a positive number of hours' : null);
    if (bad !== null) {
      void act.run(() => Promise.reject(new Error(bad)));
      return;
    }
    void act
      .run(async () => {
        const r = await api<{ token: string; id: string }>('POST', '/tokens', { uses: n, ttl: Math.round(hours * 3600), labels: l.labels, ...(name.trim() ? { name: name.trim() } : {}) });
        setMade(r);
      })
      .then(list.reload);
  };
  const revoke = (t: TokenView): void => {
    if (!window.confirm(`Revoke token ${t.name ?? t.id}?`)) return;
    void act.run(() => api('DELETE', `/tokens/${encodeURIComponent(t.id)}`)).then(list.reload);
  };
  return (
    <Section title="Enrollment tokens">
      <ErrorBox error={act.error} />
      {made ? (
        <div class="notice" role="status" data-testid="new-token">
          <p>Token created. Copy it now: it is not shown again.</p>
          <p class="secret" data-testid="new-token-value">
            {made.token}
          </p>
        </div>
      ) : null}
      <form onSubmit={create} class="filters" data-testid="token-form">
        <div class="field">
          <label for="tok-name">Name</label>
          <input id="tok-name" value={name} onInput={(e) => setName(e.currentTarget.value)} />
        </div>
        <div class="field">
          <label for="tok-uses">Uses (1 = one-time)</label>
          <input id="tok-uses" type="number" min={1} value={uses} onInput={(e) => setUses(e.currentTarget.value)} />
        </div>
        <div class="field">
          <label for="tok-ttl">Expires after (hours)</label>
          <input id="tok-ttl" type="number" min={1} value={ttl} onInput={(e) => setTtl(e.currentTarget.value)} />
        </div>
        <div class="field">
          <label for="tok-labels">Labels given to enrolling agents</label>
          <input id="tok-labels" placeholder="env=prod, role=web" value={labels} onInput={(e) => setLabels(e.currentTarget.value)} />
        </div>
        <button type="submit" class="primary" disabled={act.busy} data-testid="create-token">
          Create token
        </button>
      </form>
      <LoadedTable
        from={list}
        testid="tokens-table"
        rows={(d) => d.tokens}
        rowKey={(t) => t.id}
        empty="No tokens."
        columns={[
          { head: 'Name', cell: (t) => t.name ?? <span class="muted">{t.id.slice(0, 8)}</span> },
          { head: 'Uses left', cell: (t) => `${t.uses_left} of ${t.uses}` },
          { head: 'Labels', cell: (t) => <Labels labels={t.labels} /> },
          { head: 'Expires', cell: (t) => <Time at={t.expires_at} /> },
          {
            head: 'Actions',
            cell: (t) => (
              <button type="button" class="danger" onClick={() => revoke(t)} aria-label={`Revoke token ${t.name ?? t.id}`}>
                Revoke
              </button>
            ),
          },
        ]}
      />
    </Section>
  );
}

interface AgentList {
  agents: AgentView[];
  total?: number;
}

function filtersOf(s: URLSearchParams): { q: string; label: string[]; state: string; mode: string; os: string } {
  return { q: s.get('q') ?? '', label: s.getAll('label'), state: s.get('state') ?? '', mode: s.get('mode') ?? '', os: s.get('os') ?? '' };
}

/** The API path of the list the agents page at this address shows (main.tsx prefetches it). */
export function agentsPath(s: URLSearchParams): string {
  const offset = Number(s.get('offset') ?? 0) || 0;
  return `/agents${query({ ...filtersOf(s), limit: PAGE_SIZE, offset })}`;
}

export function AgentsPage(props: { route: Route }): JSX.Element {
  const s = props.route.search;
  const filters = filtersOf(s);
  const offset = Number(s.get('offset') ?? 0) || 0;
  const key = s.toString();
  const list = useLoad(() => api<AgentList>('GET', agentsPath(s)), [key], () => takePrefetched<AgentList>(agentsPath(s)));
  useLiveReload((e) => e.type === 'agent', list.reload);
  const admin = useCan('admin');
  const [form, setForm] = useState({ ...filters, label: filters.label.join(', ') });
  const apply = (e: SubmitEvent): void => {
    e.preventDefault();
    const labels = form.label.split(',').map((x) => x.trim()).filter((x) => x !== '');
    navigate(`/agents${query({ q: form.q, label: labels, state: form.state, mode: form.mode, os: form.os })}`);
  };
  const total = list.data?.total ?? list.data?.agents.length ?? 0;
  const page = (o: number): string => {
    const p = new URLSearchParams(s);
    p.set('offset', String(o));
    return `/agents?${p.toString()}`;
  };
  return (
    <>
      <h1>Agents</h1>
      <Section title="Find agents">
        <form onSubmit={apply} class="filters" role="search" data-testid="agent-filters">
          <div class="field">
            <label for="f-q">Search</label>
            <input id="f-q" type="search" placeholder="host name, IP or id" value={form.q} onInput={(e) => setForm({ ...form, q: e.currentTarget.value })} />
          </div>
          <div class="field">
            <label for="f-label">Labels (KEY=VALUE, comma separated)</label>
            <input id="f-label" value={form.label} onInput={(e) => setForm({ ...form, label: e.currentTarget.value })} />
          </div>
          <div class="field">
            <label for="f-state">State</label>
            <select id="f-state" value={form.state} onChange={(e) => setForm({ ...form, state: e.currentTarget.value })}>
              <option value="">any</option>
              {['online', 'stale', 'offline', 'pending', 'rejected'].map((x) => (
                <option key={x}>{x}</option>
              ))}
            </select>
          </div>
          <div class="field">
            <label for="f-mode">Mode</label>
            <select id="f-mode" value={form.mode} onChange={(e) => setForm({ ...form, mode: e.currentTarget.value })}>
              <option value="">any</option>
              {['pull', 'push', 'ssh'].map((x) => (
                <option key={x}>{x}</option>
              ))}
            </select>
          </div>
          <div class="field">
            <label for="f-os">OS</label>
            <input id="f-os" value={form.os} onInput={(e) => setForm({ ...form, os: e.currentTarget.value })} />
          </div>
          <button type="submit" class="primary" data-testid="apply-filters">
            Filter
          </button>
        </form>
      </Section>
      <Section title={`Agents (${total})`} id="s-agent-list">
        <ErrorBox error={list.error} />
        {list.data === null ? (
          list.loading ? <Loading what="agents" /> : null
        ) : list.data.agents.length === 0 ? (
          <p class="muted">No agent matches.</p>
        ) : (
          <AgentRows agents={list.data.agents} reload={list.reload} />
        )}
        {total > PAGE_SIZE ? (
          <nav aria-label="Pages" class="buttons">
            {offset > 0 ? <Link href={page(Math.max(0, offset - PAGE_SIZE))}>Previous</Link> : null}
            <span>
              {offset + 1}–{Math.min(total, offset + PAGE_SIZE)} of {total}
            </span>
            {offset + PAGE_SIZE < total ? <Link href={page(offset + PAGE_SIZE)}>Next</Link> : null}
          </nav>
        ) : null}
      </Section>
      {admin ? <Tokens /> : null}
    </>
  );
}
