/**
 * Jobs across hosts: batches (one job per host for a label or a selection), each host's state with
 * progress, "retry failed only" and cancel; live through the event stream. Recent single jobs too.
 */
import type { JSX } from 'preact';
import { useEffect, useMemo, useState } from 'preact/hooks';
import { api, jobOutput, query, runJob } from '../api.ts';
import type { AgentView, BatchSummary, BatchView, JobView } from '../../../src/protocol/operator-api.ts';
import { fieldsOf, fieldsOfParameters, type Field } from '../schema-form.ts';
import { Badge, ErrorBox, Facts, Json, LoadedTable, LoadedView, Loading, SchemaForm, Section, Table, Time, useAction, useLoad } from '../components.tsx';
import { formatLabels, targetOf } from '../labels.ts';
import { useLiveReload } from '../events.ts';
import { Link, navigate } from '../router.tsx';
import { useCan } from '../session.ts';
import { JobTable } from './dashboard.tsx';

/** A batch target as words: "label env=prod" or "3 agents". */
export function targetText(t: BatchView['target']): string {
  if (t.label && Object.keys(t.label).length > 0) return `label ${formatLabels(t.label)}`;
  return `${t.agents?.length ?? 0} agent(s)`;
}

export function TargetFields(props: { labels: string; agents: string; onLabels: (v: string) => void; onAgents: (v: string) => void; prefix: string }): JSX.Element {
  return (
    <>
      <div class="field">
        <label for={`${props.prefix}-labels`}>Hosts with labels (KEY=VALUE, comma separated)</label>
        <input id={`${props.prefix}-labels`} value={props.labels} onInput={(e) => props.onLabels(e.currentTarget.value)} />
      </div>
      <div class="field">
        <label for={`${props.prefix}-agents`}>Or agent ids (space or comma separated)</label>
        <input id={`${props.prefix}-agents`} value={props.agents} onInput={(e) => props.onAgents(e.currentTarget.value)} />
      </div>
    </>
  );
}

export interface Capability {
  name: string;
  description: string;
  access?: string;
  schema?: Record<string, unknown>;
  parameters?: Array<{ name: string; type: string; description?: string; required?: string }>;
}

/** Module names agents report (a list of names or of {name} objects). */
export function modulesOf(a: AgentView): string[] {
  const m = a.modules;
  if (!Array.isArray(m)) return [];
  return m.map((x) => (typeof x === 'string' ? x : typeof x === 'object' && x !== null && typeof (x as { name?: unknown }).name === 'string' ? (x as { name: string }).name : '')).filter((x) => x !== '');
}

const capsCache = new Map<string, Promise<Capability[]>>();

/**
 * A module's actions with their schemas, from the rootd of an agent that has the module (an online
 * one first), through systeminfo get_module_info. Asked once per module per page load.
 */
export function capabilitiesOf(module: string, agents: AgentView[]): Promise<Capability[]> {
  let p = capsCache.get(module);
  if (!p) {
    const withIt = agents.filter((a) => modulesOf(a).includes(module) && a.status === 'active');
    withIt.sort((a, b) => Number(b.state === 'online') - Number(a.state === 'online'));
    const agent = withIt[0];
    p = agent
      ? runJob(agent.id, 'systeminfo', 'get_module_info', { module }, 30).then((j) => jobOutput<{ module_info?: { capabilities?: Capability[] } }>(j).module_info?.capabilities ?? [])
      : Promise.reject(new Error(`no active agent reports module "${module}"`));
    capsCache.set(module, p);
    p.catch(() => capsCache.delete(module));
  }
  return p;
}

export function fieldsOfCapability(cap: Capability | undefined): Field[] {
  if (!cap) return [];
  return cap.schema ? fieldsOf(cap.schema) : fieldsOfParameters(cap.parameters ?? []);
}

function NewBatch(): JSX.Element {
  const agents = useLoad(() => api<{ agents: AgentView[] }>('GET', `/agents${query({ limit: 1000 })}`), []);
  const [labels, setLabels] = useState('');
  const [ids, setIds] = useState('');
  const [module, setModule] = useState('');
  const [action, setAction] = useState('');
  const [expires, setExpires] = useState('');
  const [caps, setCaps] = useState<Capability[] | null>(null);
  const [capsError, setCapsError] = useState<string | null>(null);
  const act = useAction();
  const modules = [...new Set((agents.data?.agents ?? []).flatMap(modulesOf))].sort();
  useEffect(() => {
    setCaps(null);
    setCapsError(null);
    setAction('');
    if (module === '' || agents.data === null) return;
    let live = true;
    capabilitiesOf(module, agents.data.agents).then(
      (c) => live && (setCaps(c), setAction(c[0]?.name ?? '')),
      (e: unknown) => live && setCapsError(`cannot list the actions of ${module}: ${(e as Error).message}`),
    );
    return () => void (live = false);
  }, [module, agents.data]);
  const cap = caps?.find((c) => c.name === action);
  const fields = useMemo(() => fieldsOfCapability(cap), [cap]);
  const submit = (params: Record<string, unknown>): void => {
    const t = targetOf(labels, ids);
    if (t.error !== null) {
      void act.run(() => Promise.reject(new Error(t.error!)));
      return;
    }
    if (module === '' || action === '') {
      void act.run(() => Promise.reject(new Error('Choose a module and an action')));
      return;
    }
    const hours = Number(expires);
    void act.run(async () => {
      const { batch } = await api<{ batch: BatchView }>('POST', '/batches', { target: t.target, module, action, params, ...(expires && hours > 0 ? { expires_in: Math.round(hours * 3600) } : {}) });
      navigate(`/batches/${encodeURIComponent(batch.id)}`);
    });
  };
  return (
    <Section title="New job for many hosts">
      <div data-testid="new-job">
        <ErrorBox error={act.error ?? agents.error} />
        <div class="filters">
          <div class="field">
            <label for="nb-labels">Label</label>
            <input id="nb-labels" placeholder="env=prod" value={labels} onInput={(e) => setLabels(e.currentTarget.value)} aria-describedby="nb-labels-hint" />
            <p id="nb-labels-hint" class="hint">
              Hosts with these labels (KEY=VALUE, comma separated)
            </p>
          </div>
          <div class="field">
            <label for="nb-agents">Agent ids</label>
            <input id="nb-agents" value={ids} onInput={(e) => setIds(e.currentTarget.value)} aria-describedby="nb-agents-hint" />
            <p id="nb-agents-hint" class="hint">
              Or a list of agents (space or comma separated)
            </p>
          </div>
          <div class="field">
            <label for="nb-module">Module</label>
            <select id="nb-module" value={module} onChange={(e) => setModule(e.currentTarget.value)}>
              <option value="">choose…</option>
              {modules.map((m) => (
                <option key={m}>{m}</option>
              ))}
            </select>
          </div>
          <div class="field">
            <label for="nb-action">Action</label>
            {capsError !== null ? (
              <input id="nb-action" value={action} onInput={(e) => setAction(e.currentTarget.value)} />
            ) : (
              <select id="nb-action" value={action} onChange={(e) => setAction(e.currentTarget.value)} disabled={caps === null}>
                {caps === null ? <option value="">{module === '' ? 'choose a module first' : 'loading…'}</option> : null}
                {(caps ?? []).map((c) => (
                  <option key={c.name} value={c.name}>
                    {c.name} ({c.access ?? 'read'})
                  </option>
                ))}
              </select>
            )}
          </div>
          <div class="field">
            <label for="nb-expires">Expires after (hours)</label>
            <input id="nb-expires" type="number" min={0} value={expires} onInput={(e) => setExpires(e.currentTarget.value)} aria-describedby="nb-expires-hint" />
            <p id="nb-expires-hint" class="hint">
              An offline host keeps its job until then
            </p>
          </div>
        </div>
        {capsError !== null ? <p class="warning">{capsError}: type the action; it runs without parameters.</p> : null}
        {cap ? <p class="hint">{cap.description}</p> : null}
        <SchemaForm fields={fields} idPrefix="nb-p" onSubmit={submit} testid="batch-form">
          <button type="submit" class="primary" disabled={act.busy} data-testid="batch-submit">
            Run on these hosts
          </button>
        </SchemaForm>
      </div>
    </Section>
  );
}

function Counts(props: { counts: Record<string, number> }): JSX.Element {
  const entries = Object.entries(props.counts).filter(([k, n]) => n > 0 && k !== 'total');
  if (entries.length === 0) return <span class="muted">no jobs</span>;
  return (
    <ul class="chips" data-testid="batch-counts">
      {entries.map(([k, n]) => (
        <li key={k}>
          <Badge state={k} /> {n}
        </li>
      ))}
    </ul>
  );
}

export function JobsPage(): JSX.Element {
  const operator = useCan('operator');
  const batches = useLoad(() => api<{ batches: BatchSummary[] }>('GET', '/batches'), []);
  const jobs = useLoad(() => api<{ jobs: JobView[] }>('GET', `/jobs${query({ limit: 50 })}`), []);
  useLiveReload(
    (e) => e.type === 'job' || e.type === 'batch',
    () => {
      batches.reload();
      jobs.reload();
    },
  );
  return (
    <>
      <h1>Jobs</h1>
      {operator ? <NewBatch /> : null}
      <Section title="Batches">
        <LoadedTable
          from={batches}
          testid="batches-table"
          rows={(d) => d.batches}
          rowKey={(b) => b.id}
          empty="No batches yet."
          columns={[
            { head: 'Action', cell: (b) => <Link href={`/batches/${encodeURIComponent(b.id)}`}>{`${b.module}.${b.action}`}</Link> },
            { head: 'Target', cell: (b) => targetText(b.target) },
            { head: 'Hosts', cell: (b) => <Counts counts={b.counts} /> },
            { head: 'By', cell: (b) => b.created_by },
            { head: 'Created', cell: (b) => <Time at={b.created_at} /> },
          ]}
        />
      </Section>
      <Section title="Recent jobs">
        <LoadedView from={jobs} show={(d) => <JobTable jobs={d.jobs} testid="jobs-table" empty="No jobs yet." />} />
      </Section>
    </>
  );
}

const RETRYABLE = new Set(['failed', 'expired', 'interrupted', 'delivered-without-result']);

export function BatchPage(props: { id: string }): JSX.Element {
  const b = useLoad(() => api<{ batch: BatchView }>('GET', `/batches/${encodeURIComponent(props.id)}`), [props.id]);
  const operator = useCan('operator');
  const act = useAction();
  const [open, setOpen] = useState<string | null>(null);
  useLiveReload((e) => {
    const hosts = b.data?.batch.hosts ?? [];
    if (e.type === 'batch') return e.data.id === props.id;
    if (e.type === 'job') return e.data.batch_id === props.id || hosts.some((h) => h.job.id === e.data.id);
    return hosts.some((h) => h.agent_id === e.data.id);
  }, b.reload);
  if (b.data === null) {
    return (
      <>
        <h1>Batch</h1>
        <ErrorBox error={b.error} />
        {b.loading ? <Loading /> : null}
      </>
    );
  }
  const batch = b.data.batch;
  const failed = batch.hosts.filter((h) => RETRYABLE.has(h.job.status)).length;
  const live = batch.hosts.filter((h) => !['completed', 'failed', 'expired', 'interrupted', 'cancelled', 'delivered-without-result'].includes(h.job.status)).length;
  const retry = (): void => void act.run(() => api('POST', `/batches/${encodeURIComponent(batch.id)}/retry-failed`)).then(b.reload);
  const cancel = (): void => {
    if (!window.confirm('Cancel the jobs of this batch that have not ended?')) return;
    void act.run(() => api('POST', `/batches/${encodeURIComponent(batch.id)}/cancel`)).then(b.reload);
  };
  return (
    <>
      <h1>
        Batch {batch.module}.{batch.action}
      </h1>
      <Section
        title="Summary"
        actions={
          operator ? (
            <div class="buttons">
              <button type="button" class="primary" disabled={act.busy || failed === 0} onClick={retry} data-testid="retry-failed">
                Retry failed only ({failed})
              </button>
              <button type="button" class="danger" disabled={act.busy || live === 0} onClick={cancel} data-testid="cancel-batch">
                Cancel
              </button>
            </div>
          ) : null
        }
      >
        <ErrorBox error={act.error ?? b.error} />
        <Facts
          items={[
            ['Target', targetText(batch.target)],
            ['By', batch.created_by],
            ['Created', <Time at={batch.created_at} />],
            ['Hosts', <Counts counts={batch.counts} />],
            ['Parameters', <code>{JSON.stringify(batch.params)}</code>],
          ]}
        />
      </Section>
      <Section title="Hosts">
        <Table
          testid="batch-hosts"
          rows={batch.hosts}
          rowKey={(h) => h.agent_id}
          rowTestid={(h) => `batch-host-${h.hostname}`}
          empty="No hosts."
          columns={[
            { head: 'Host', cell: (h) => <Link href={`/agents/${encodeURIComponent(h.agent_id)}`}>{h.hostname}</Link> },
            { head: 'State', cell: (h) => <Badge state={h.job.status} /> },
            {
              head: 'Progress',
              cell: (h) =>
                h.job.progress ? (
                  <>
                    {h.job.progress.fraction !== null ? <progress max={1} value={h.job.progress.fraction} aria-label={`Progress on ${h.hostname}`} /> : null} <span class="small">{h.job.progress.phase ?? ''}</span>
                  </>
                ) : null,
            },
            { head: 'Finished', cell: (h) => <Time at={h.job.finished_at} /> },
            {
              head: 'Result',
              cell: (h) => (
                <>
                  {h.job.result?.error ? <span class="error-text">{h.job.result.error}</span> : null}
                  {h.job.result ? (
                    <button type="button" class="link" aria-expanded={open === h.agent_id} onClick={() => setOpen(open === h.agent_id ? null : h.agent_id)}>
                      {open === h.agent_id ? 'Hide' : 'Show'} result
                    </button>
                  ) : null}
                  {open === h.agent_id ? <Json value={h.job.result} /> : null}
                </>
              ),
            },
          ]}
        />
      </Section>
    </>
  );
}
