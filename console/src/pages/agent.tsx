/**
 * One agent: what the server knows, its inventory and modules (from systeminfo jobs), its firewall
 * (firewall.tsx), and a form for every action of every module, generated from the action's
 * parameter schema that the agent's own rootd reports (systeminfo get_module_info).
 */
import type { JSX } from 'preact';
import { useMemo, useState } from 'preact/hooks';
import { api, jobOutput, query, runJob } from '../api.ts';
import type { AgentView, JobView } from '../../../src/protocol/operator-api.ts';
import { Badge, ErrorBox, Facts, Json, Labels, Loading, SchemaForm, Section, Table, Time, useAction, useLoad } from '../components.tsx';
import { useLiveReload } from '../events.ts';
import { useCan } from '../session.ts';
import { osName } from './agents.tsx';
import { FirewallSection, latestJob } from './firewall.tsx';
import { capabilitiesOf, fieldsOfCapability, modulesOf, type Capability } from './jobs.tsx';

async function loadAgent(id: string): Promise<AgentView> {
  try {
    return (await api<{ agent: AgentView }>('GET', `/agents/${encodeURIComponent(id)}`)).agent;
  } catch {
    // Before a single-agent route: the list, searched for the id.
    const { agents } = await api<{ agents: AgentView[] }>('GET', `/agents${query({ q: id, limit: 1000 })}`);
    const a = agents.find((x) => x.id === id);
    if (!a) throw new Error(`cannot find agent "${id}"`);
    return a;
  }
}

const moduleNames = modulesOf;

/** A systeminfo read shown from its last completed job; operators may run it again. */
function JobView(props: { agentId: string; module: string; action: string; params?: Record<string, unknown>; title: string; render: (out: Record<string, unknown>) => JSX.Element }): JSX.Element {
  const last = useLoad(() => latestJob(props.agentId, props.module, props.action), [props.agentId]);
  const operator = useCan('operator');
  const act = useAction();
  const refresh = (): void => {
    void act.run(async () => {
      jobOutput(await runJob(props.agentId, props.module, props.action, props.params ?? {}));
      last.reload();
    });
  };
  const out = last.data?.result?.output as Record<string, unknown> | undefined;
  return (
    <Section
      title={props.title}
      actions={
        operator ? (
          <button type="button" onClick={refresh} disabled={act.busy} data-testid={`refresh-${props.action}`}>
            {act.busy ? 'Reading…' : 'Read from host'}
          </button>
        ) : null
      }
    >
      <ErrorBox error={act.error ?? last.error} />
      {last.data ? (
        <>
          <p class="muted small">
            As read <Time at={last.data.finished_at} />.
          </p>
          {out ? props.render(out) : null}
        </>
      ) : last.loading ? (
        <Loading />
      ) : (
        <p class="muted">Not read yet.</p>
      )}
    </Section>
  );
}

function Inventory(out: Record<string, unknown>): JSX.Element {
  const facts: Array<[string, unknown]> = Object.entries(out).filter(([, v]) => typeof v !== 'object' || v === null);
  const nested = Object.entries(out).filter(([, v]) => typeof v === 'object' && v !== null);
  return (
    <>
      <Facts testid="inventory" items={facts.map(([k, v]) => [k, String(v)] as const)} />
      {nested.map(([k, v]) => (
        <details key={k}>
          <summary>{k}</summary>
          <Json value={v} />
        </details>
      ))}
    </>
  );
}

function Modules(out: Record<string, unknown>): JSX.Element {
  const details = Array.isArray(out.details) ? (out.details as Array<{ name: string; source?: string; loaded?: boolean; reason?: string | null }>) : [];
  if (details.length === 0) return <Json value={out} />;
  return (
    <Table
      testid="modules-table"
      rows={details}
      rowKey={(m) => m.name}
      empty="No modules."
      columns={[
        { head: 'Module', cell: (m) => m.name },
        { head: 'Source', cell: (m) => m.source ?? '' },
        { head: 'Available', cell: (m) => <Badge state={m.loaded ? 'ok' : 'unavailable'} /> },
        { head: 'Why not', cell: (m) => m.reason ?? '' },
      ]}
    />
  );
}

/** Every action of every module: pick one, fill the form its schema makes, run it. */
function ModuleActions(props: { agentId: string; modules: string[] }): JSX.Element {
  const [module, setModule] = useState(props.modules[0] ?? '');
  const [caps, setCaps] = useState<Awaited<ReturnType<typeof capabilitiesOf>> | null>(null);
  const [action, setAction] = useState('');
  const [result, setResult] = useState<JobView | null>(null);
  const act = useAction();
  const load = (e: SubmitEvent): void => {
    e.preventDefault();
    setCaps(null);
    setResult(null);
    void act.run(async () => {
      const out = jobOutput<{ module_info?: { capabilities?: Capability[] } }>(await runJob(props.agentId, 'systeminfo', 'get_module_info', { module }));
      const list = out.module_info?.capabilities ?? [];
      setCaps(list);
      setAction(list[0]?.name ?? '');
    });
  };
  const cap = caps?.find((c) => c.name === action);
  const fields = useMemo(() => fieldsOfCapability(cap), [cap]);
  const run = (params: Record<string, unknown>): void => {
    if (cap?.access === 'dangerous' && !window.confirm(`${module}.${action} is a dangerous action. Run it?`)) return;
    setResult(null);
    void act.run(async () => setResult(await runJob(props.agentId, module, action, params)));
  };
  return (
    <Section title="Module actions">
      <form onSubmit={load} class="filters" data-testid="module-pick">
        <div class="field">
          <label for="ma-module">Module</label>
          {props.modules.length > 0 ? (
            <select id="ma-module" value={module} onChange={(e) => setModule(e.currentTarget.value)}>
              {props.modules.map((m) => (
                <option key={m}>{m}</option>
              ))}
            </select>
          ) : (
            <input id="ma-module" value={module} onInput={(e) => setModule(e.currentTarget.value)} />
          )}
        </div>
        <button type="submit" disabled={act.busy || module === ''} data-testid="load-actions">
          Load actions
        </button>
      </form>
      <ErrorBox error={act.error} />
      {caps ? (
        <>
          <div class="field">
            <label for="ma-action">Action</label>
            <select id="ma-action" value={action} onChange={(e) => setAction(e.currentTarget.value)} data-testid="action-select">
              {caps.map((c) => (
                <option key={c.name} value={c.name}>
                  {c.name} ({c.access ?? 'read'})
                </option>
              ))}
            </select>
          </div>
          {cap ? (
            <>
              <p class="hint">{cap.description}</p>
              <SchemaForm fields={fields} idPrefix="ma" onSubmit={run} testid="action-form">
                <button type="submit" class={cap.access === 'dangerous' ? 'danger' : 'primary'} disabled={act.busy} data-testid="run-action">
                  {act.busy ? 'Running…' : `Run ${cap.name}`}
                </button>
              </SchemaForm>
            </>
          ) : null}
        </>
      ) : null}
      {result ? (
        <div data-testid="action-result">
          <h3>
            Result <Badge state={result.status} />
          </h3>
          {result.result?.error ? <p class="error-text">{result.result.error}</p> : null}
          <Json value={result.result?.output ?? result.result} />
        </div>
      ) : null}
    </Section>
  );
}

/** Tabs as WAI-ARIA describes them: arrow keys move between tabs, one panel shown. */
function Tabs(props: { tabs: Array<{ id: string; label: string; body: () => JSX.Element }> }): JSX.Element {
  const initial = new URLSearchParams(location.search).get('tab');
  const [current, setCurrent] = useState(props.tabs.some((t) => t.id === initial) ? initial! : props.tabs[0]!.id);
  const select = (id: string, focus: boolean): void => {
    setCurrent(id);
    const u = new URL(location.href);
    u.searchParams.set('tab', id);
    history.replaceState(null, '', u.pathname + u.search);
    if (focus) document.getElementById(`tab-${id}`)?.focus();
  };
  const onKey = (e: KeyboardEvent): void => {
    const i = props.tabs.findIndex((t) => t.id === current);
    const n = props.tabs.length;
    const to = e.key === 'ArrowRight' ? (i + 1) % n : e.key === 'ArrowLeft' ? (i - 1 + n) % n : e.key === 'Home' ? 0 : e.key === 'End' ? n - 1 : -1;
    if (to < 0) return;
    e.preventDefault();
    select(props.tabs[to]!.id, true);
  };
  const tab = props.tabs.find((t) => t.id === current) ?? props.tabs[0]!;
  return (
    <>
      <div role="tablist" aria-label="Agent" onKeyDown={onKey}>
        {props.tabs.map((t) => (
          <button key={t.id} type="button" role="tab" id={`tab-${t.id}`} aria-selected={t.id === current} aria-controls={`panel-${t.id}`} tabIndex={t.id === current ? 0 : -1} onClick={() => select(t.id, false)} data-testid={`tab-${t.id}`}>
            {t.label}
          </button>
        ))}
      </div>
      <div role="tabpanel" id={`panel-${tab.id}`} aria-labelledby={`tab-${tab.id}`} tabIndex={0}>
        {tab.body()}
      </div>
    </>
  );
}

export function AgentPage(props: { id: string }): JSX.Element {
  const a = useLoad(() => loadAgent(props.id), [props.id]);
  const operator = useCan('operator');
  useLiveReload((e) => e.type === 'agent' && e.data.id === props.id, a.reload);
  if (a.data === null) {
    return (
      <>
        <h1>Agent</h1>
        <ErrorBox error={a.error} />
        {a.loading ? <Loading what="agent" /> : null}
      </>
    );
  }
  const agent = a.data;
  const modules = moduleNames(agent);
  return (
    <>
      <h1>Agent {agent.hostname}</h1>
      <Section title="Overview">
        <Facts
          testid="agent-facts"
          items={[
            ['State', <Badge state={agent.state ?? agent.status} />],
            ['Id', <code>{agent.id}</code>],
            ['Mode', agent.mode],
            ['Address', agent.ip ?? ''],
            ['OS', osName(agent)],
            ['Agent version', agent.version ?? ''],
            ['Labels', <Labels labels={agent.labels} />],
            ['Enrolled', <Time at={agent.created_at} />],
            ['Last seen', <Time at={agent.last_seen} />],
          ]}
        />
      </Section>
      <Tabs
        tabs={[
          { id: 'overview', label: 'Inventory and modules', body: () => (
            <>
              <JobView agentId={agent.id} module="systeminfo" action="get_inventory" title="Inventory" render={Inventory} />
              <JobView agentId={agent.id} module="systeminfo" action="list_modules" title="Modules" render={Modules} />
            </>
          ) },
          { id: 'firewall', label: 'Firewall', body: () => <FirewallSection agentId={agent.id} hasFirewalld={modules.length === 0 || modules.includes('firewalld')} /> },
          ...(operator ? [{ id: 'actions', label: 'Module actions', body: () => <ModuleActions agentId={agent.id} modules={modules} /> }] : []),
        ]}
      />
    </>
  );
}
