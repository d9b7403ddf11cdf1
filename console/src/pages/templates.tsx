/**
 * Firewall templates: a named desired state (services, ports, rich rules per zone). Admins edit
 * them; operators preview one on hosts (a dry run per host, its result per host) and apply it with
 * a confirm timeout; each host's result is on the batch page.
 */
import type { JSX } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { api, jobOutput, query, runJob } from '../api.ts';
import { FINAL_JOB_STATUSES, type AgentView, type BatchView, type JobView, type TemplateView } from '../../../src/protocol/operator-api.ts';
import { Badge, ErrorBox, LoadedTable, Loading, Section, Table, Time, useAction, useLoad, useSecondsLeft } from '../components.tsx';
import { targetOf } from '../labels.ts';
import { useLiveReload } from '../events.ts';
import { Link, navigate } from '../router.tsx';
import { useCan } from '../session.ts';
import { TargetFields } from './jobs.tsx';

export function TemplatesPage(): JSX.Element {
  const list = useLoad(() => api<{ templates: TemplateView[] }>('GET', '/templates'), []);
  const admin = useCan('admin');
  return (
    <>
      <h1>Templates</h1>
      <Section title="Firewall templates" actions={
          admin ? (
            <button type="button" class="primary" onClick={() => navigate('/templates/new')} data-testid="new-template">
              New template
            </button>
          ) : null
        }>
        <LoadedTable
          from={list}
          testid="templates-table"
          rows={(d) => d.templates}
          rowKey={(t) => t.id}
          empty="No templates yet."
          columns={[
            {
              head: 'Name',
              cell: (t) => (
                <>
                  <Link href={`/templates/${encodeURIComponent(t.id)}`}>{t.name}</Link>
                  <div class="small muted">{t.description ?? ''}</div>
                </>
              ),
            },
            { head: 'Zones', cell: (t) => Object.keys(t.zones ?? {}).join(', ') },
            { head: 'Updated', cell: (t) => <Time at={t.updated_at ?? t.created_at} /> },
          ]}
        />
      </Section>
    </>
  );
}

interface ZoneRow {
  name: string;
  services: string;
  ports: string;
  rich_rules: string;
}

const lines = (s: string): string[] => [...new Set(s.split('\n').map((x) => x.trim()).filter((x) => x !== ''))];
/** Services and ports: one per line or comma separated. */
const items = (s: string): string[] => [...new Set(s.split(/[,\n]/).map((x) => x.trim()).filter((x) => x !== ''))];

function Editor(props: { template: TemplateView | null; onSaved: (t: TemplateView) => void }): JSX.Element {
  const t = props.template;
  const admin = useCan('admin');
  const [name, setName] = useState(t?.name ?? '');
  const [description, setDescription] = useState(t?.description ?? '');
  const [zones, setZones] = useState<ZoneRow[]>(
    t ? Object.entries(t.zones).map(([z, v]) => ({ name: z, services: (v.services ?? []).join('\n'), ports: (v.ports ?? []).join('\n'), rich_rules: (v.rich_rules ?? []).join('\n') })) : [{ name: 'public', services: 'ssh', ports: '', rich_rules: '' }],
  );
  const act = useAction();
  const set = (i: number, patch: Partial<ZoneRow>): void => setZones(zones.map((z, j) => (j === i ? { ...z, ...patch } : z)));
  const save = (e: SubmitEvent): void => {
    e.preventDefault();
    if (name.trim() === '') {
      void act.run(() => Promise.reject(new Error('Name is required')));
      return;
    }
    const body = { name: name.trim(), ...(description.trim() ? { description: description.trim() } : {}), zones: Object.fromEntries(zones.filter((z) => z.name.trim() !== '').map((z) => [z.name.trim(), { services: items(z.services), ports: items(z.ports), rich_rules: lines(z.rich_rules) }])) };
    void act.run(async () => {
      const r = t ? await api<{ template: TemplateView }>('PUT', `/templates/${encodeURIComponent(t.id)}`, body) : await api<{ template: TemplateView }>('POST', '/templates', body);
      props.onSaved(r.template);
    });
  };
  const remove = (): void => {
    if (!t || !window.confirm(`Delete template ${t.name}?`)) return;
    void act.run(async () => {
      await api('DELETE', `/templates/${encodeURIComponent(t.id)}`);
      navigate('/templates');
    });
  };
  return (
    <Section title={t ? 'Desired state' : 'New template'}>
      <ErrorBox error={act.error} />
      <form onSubmit={save} data-testid="template-form" noValidate>
        <fieldset disabled={!admin} class="plain">
          <div class="field">
            <label for="tp-name">Name</label>
            <input id="tp-name" value={name} onInput={(e) => setName(e.currentTarget.value)} />
          </div>
          <div class="field">
            <label for="tp-desc">Description</label>
            <input id="tp-desc" value={description} onInput={(e) => setDescription(e.currentTarget.value)} />
          </div>
          {zones.map((z, i) => (
            <fieldset key={i} class="card" data-testid={`template-zone-${i}`}>
              <legend>{z.name || `Zone ${i + 1}`}</legend>
              <div class="grid">
                <div class="field">
                  <label for={`tz-${i}-name`}>Zone</label>
                  <input id={`tz-${i}-name`} value={z.name} onInput={(e) => set(i, { name: e.currentTarget.value })} />
                </div>
                <div class="field">
                  <label for={`tz-${i}-services`}>Services</label>
                  <textarea id={`tz-${i}-services`} rows={3} value={z.services} onInput={(e) => set(i, { services: e.currentTarget.value })} />
                </div>
                <div class="field">
                  <label for={`tz-${i}-ports`}>Ports</label>
                  <textarea id={`tz-${i}-ports`} rows={3} value={z.ports} onInput={(e) => set(i, { ports: e.currentTarget.value })} />
                </div>
                <div class="field">
                  <label for={`tz-${i}-rules`}>Rich rules</label>
                  <p class="hint">One per line.</p>
                  <textarea id={`tz-${i}-rules`} rows={3} value={z.rich_rules} onInput={(e) => set(i, { rich_rules: e.currentTarget.value })} />
                </div>
              </div>
              {admin ? (
                <button type="button" onClick={() => setZones(zones.filter((_, j) => j !== i))}>
                  Remove this zone
                </button>
              ) : null}
            </fieldset>
          ))}
          {admin ? (
            <div class="buttons">
              <button type="button" onClick={() => setZones([...zones, { name: '', services: '', ports: '', rich_rules: '' }])}>
                Add zone
              </button>
              <button type="submit" class="primary" disabled={act.busy} data-testid="template-save">
                Save template
              </button>
              {t ? (
                <button type="button" class="danger" onClick={remove} disabled={act.busy}>
                  Delete template
                </button>
              ) : null}
            </div>
          ) : null}
        </fieldset>
      </form>
    </Section>
  );
}

/** What a host would change (a dry run) or changed, as its answer says. */
export function changeText(out: unknown): string {
  if (typeof out !== 'object' || out === null) return '';
  const o = out as Record<string, unknown>;
  if (Array.isArray(o.items)) {
    const changed = (o.items as Array<{ zone?: string; kind?: string; value?: string; changed?: boolean }>).filter((i) => i.changed);
    if (changed.length === 0) return 'nothing to change';
    return changed.map((i) => `${i.kind ?? ''} ${i.value ?? ''} in ${i.zone ?? ''}`).join('; ');
  }
  if (typeof o.message === 'string') return o.message;
  if (o.changed === false) return 'nothing to change';
  return JSON.stringify(o).slice(0, 300);
}

interface HostJob {
  agent_id: string;
  hostname: string | null;
  job_id: string;
  job?: JobView;
  /** After apply: confirmed, rolled back, or why confirming failed. */
  outcome?: string;
}

/**
 * The jobs of a preview or an apply, read again every second until they end (one read of their
 * batch), and at once on a live event for one of them or for their batch. One read at a time, never
 * thrown away, always ending (api() gives up on a request without an answer): events
 * used to restart the second's wait and drop the read under way, so a steady flow of them (a big
 * rollout's own) froze the table, and with it the confirm countdown.
 */
function useHostJobs(initial: HostJob[] | null, batchId: string | null): [HostJob[] | null, (f: (h: HostJob[]) => HostJob[]) => void] {
  const [hosts, setHosts] = useState<HostJob[] | null>(initial);
  useEffect(() => setHosts(initial), [initial]);
  const current = useRef(hosts);
  current.current = hosts;
  const wake = useRef<() => void>(() => undefined);
  useLiveReload(
    (e) => (e.type === 'batch' ? batchId !== null && e.data.id === batchId : e.type === 'job' && (current.current ?? []).some((h) => h.job_id === e.data.id)),
    () => wake.current(),
  );
  useEffect(() => {
    if (initial === null) return;
    let stopped = false;
    let running = false;
    let again = false;
    let timer: number | null = null;
    const later = (): void => {
      timer = window.setTimeout(() => void read(), 1000);
    };
    // The jobs still open, as last read (the state may not have re-rendered yet).
    const seen = new Map<string, JobView>();
    const isOpen = (h: HostJob): boolean => {
      const j = seen.get(h.job_id) ?? h.job;
      return !j || !FINAL_JOB_STATUSES.has(j.status);
    };
    const readJobs = async (open: HostJob[]): Promise<JobView[]> => {
      // One read of the batch for all its hosts; jobs without a batch one by one (at most 50).
      if (batchId !== null) {
        const r = await api<{ batch: BatchView }>('GET', `/batches/${encodeURIComponent(batchId)}`);
        return r.batch.hosts.map((h) => h.job);
      }
      const jobs = await Promise.all(open.slice(0, 50).map((h) => api<{ job: JobView }>('GET', `/jobs/${encodeURIComponent(h.job_id)}`).then((r) => r.job, () => undefined)));
      return jobs.filter((j): j is JobView => j !== undefined);
    };
    const read = async (): Promise<void> => {
      if (timer !== null) window.clearTimeout(timer);
      timer = null;
      if (running) {
        again = true;
        return;
      }
      running = true;
      let open = 0;
      try {
        do {
          again = false;
          const want = (current.current ?? []).filter(isOpen);
          open = want.length;
          if (open === 0) break;
          const jobs = await readJobs(want);
          if (stopped) return;
          const byId = new Map(jobs.map((j) => [j.id, j]));
          for (const [id, j] of byId) seen.set(id, j);
          open = want.filter(isOpen).length;
          setHosts((old) => (old ?? []).map((h) => (byId.has(h.job_id) ? { ...h, job: byId.get(h.job_id)! } : h)));
        } while (again);
      } catch {
        // A failed read (the server away a moment): the next one, in a second, tries again.
      } finally {
        running = false;
        // Nothing open any more: live events still wake it (nothing to read then).
        if (!stopped && open > 0) later();
      }
    };
    wake.current = () => void read();
    later();
    return () => {
      stopped = true;
      if (timer !== null) window.clearTimeout(timer);
      wake.current = () => undefined;
    };
  }, [initial, batchId]);
  return [hosts, (f) => setHosts((old) => (old === null ? old : f(old)))];
}

function Rollout(props: { template: TemplateView }): JSX.Element {
  const [labels, setLabels] = useState('');
  const [agents, setAgents] = useState('');
  const [picked, setPicked] = useState<string[]>([]);
  const hostList = useLoad(() => api<{ agents: AgentView[] }>('GET', `/agents${query({ limit: 500 })}`), []);
  const [timeout, setTimeoutText] = useState('120');
  const [permanent, setPermanent] = useState(false);
  const [started, setStarted] = useState<{ kind: 'preview' | 'apply'; hosts: HostJob[]; deadline: number | null; batchId: string | null } | null>(null);
  const [hosts, update] = useHostJobs(started?.hosts ?? null, started?.batchId ?? null);
  const act = useAction();
  const go = (kind: 'preview' | 'apply'): void => {
    const t = targetOf(labels, [agents, ...picked].join(' '));
    if (t.error !== null) {
      void act.run(() => Promise.reject(new Error(t.error!)));
      return;
    }
    const n = Number(timeout);
    if (kind === 'apply' && (!Number.isInteger(n) || n < 5 || n > 3600)) {
      void act.run(() => Promise.reject(new Error('Confirm within must be a whole number of seconds from 5 to 3600')));
      return;
    }
    void act.run(async () => {
      const body = { target: t.target, ...(permanent ? { permanent: true } : {}), ...(kind === 'apply' ? { confirm_timeout: n } : {}) };
      // A batch (one job per host); each host's job is then followed on its own.
      const r = await api<{ batch?: BatchView; jobs?: HostJob[] }>('POST', `/templates/${encodeURIComponent(props.template.id)}/${kind}`, body);
      const hosts = r.batch ? r.batch.hosts.map((h) => ({ agent_id: h.agent_id, hostname: h.hostname, job_id: h.job.id, job: h.job })) : (r.jobs ?? []);
      setStarted({ kind, hosts, deadline: null, batchId: r.batch?.id ?? null });
    });
  };
  // After apply: the countdown runs from the first host that applied (each host has its own
  // confirm_by; the earliest is the one that matters).
  const pendingIds = (hosts ?? []).filter((h) => h.outcome === undefined && typeof (h.job?.result?.output as Record<string, unknown> | undefined)?.change_id === 'string');
  const deadline = started?.kind === 'apply' && pendingIds.length > 0 ? (started.deadline ?? Date.now() + Number(timeout) * 1000) : null;
  useEffect(() => {
    if (started?.kind === 'apply' && started.deadline === null && pendingIds.length > 0) setStarted({ ...started, deadline: Date.now() + Number(timeout) * 1000 });
  }, [pendingIds.length]);
  const left = useSecondsLeft(deadline);
  // The hosts table shows a preview or an apply: its test ids and columns follow.
  const kind = started?.kind === 'apply' ? 'apply' : 'preview';
  const changeIdOf = (h: HostJob): string => String((h.job?.result?.output as Record<string, unknown>).change_id);
  const confirmAll = (): void => {
    void act.run(async () => {
      const results = await Promise.all(
        pendingIds.map(async (h) => {
          try {
            jobOutput(await runJob(h.agent_id, 'firewalld', 'confirm', { change_id: changeIdOf(h) }, 60));
            return [h.agent_id, 'confirmed'] as const;
          } catch (e) {
            return [h.agent_id, `not confirmed: ${(e as Error).message}`] as const;
          }
        }),
      );
      const by = new Map(results);
      update((all) => all.map((h) => (by.has(h.agent_id) ? { ...h, outcome: by.get(h.agent_id) } : h)));
    });
  };
  // The countdown ran out unconfirmed: each host says what became of its change.
  useEffect(() => {
    if (deadline === null || left > 0 || Date.now() < deadline || act.busy || pendingIds.length === 0) return;
    void act.run(async () => {
      await new Promise((r) => window.setTimeout(r, 1500));
      const results = await Promise.all(
        pendingIds.map(async (h) => {
          try {
            const out = jobOutput<{ history?: Array<{ change_id: string; outcome: string; reason: string }> }>(await runJob(h.agent_id, 'firewalld', 'get_pending_changes', {}, 60));
            const e = (out.history ?? []).find((x) => x.change_id === changeIdOf(h));
            return [h.agent_id, e ? (e.outcome === 'confirmed' ? 'confirmed' : `rolled back by the host (${e.reason})`) : 'rolled back by the host'] as const;
          } catch (e) {
            return [h.agent_id, `unknown: ${(e as Error).message}`] as const;
          }
        }),
      );
      const by = new Map(results);
      update((all) => all.map((h) => (by.has(h.agent_id) ? { ...h, outcome: by.get(h.agent_id) } : h)));
    });
  }, [deadline, left]);
  return (
    <Section title="Preview and apply">
      <ErrorBox error={act.error} />
      <form onSubmit={(e) => (e.preventDefault(), go('preview'))} data-testid="rollout-form" noValidate>
        <fieldset class="plain">
          <legend>Hosts</legend>
          <ul class="chips" data-testid="rollout-hosts">
            {(hostList.data?.agents ?? [])
              .filter((a) => a.status === 'active')
              .map((a) => (
                <li key={a.id}>
                  <input type="checkbox" id={`ro-host-${a.id}`} checked={picked.includes(a.id)} onChange={(e) => setPicked(e.currentTarget.checked ? [...picked, a.id] : picked.filter((x) => x !== a.id))} />
                  <label for={`ro-host-${a.id}`}>{a.hostname}</label>
                </li>
              ))}
          </ul>
        </fieldset>
        <div class="filters">
          <TargetFields prefix="ro" labels={labels} agents={agents} onLabels={setLabels} onAgents={setAgents} />
          <div class="field">
            <label for="ro-timeout">Confirm within (seconds)</label>
            <input id="ro-timeout" type="number" min={5} max={3600} value={timeout} onInput={(e) => setTimeoutText(e.currentTarget.value)} />
          </div>
          <div class="field field-check">
            <label for="ro-permanent">Permanent configuration</label>
            <input id="ro-permanent" type="checkbox" checked={permanent} onChange={(e) => setPermanent(e.currentTarget.checked)} />
          </div>
        </div>
        <div class="buttons">
          <button type="submit" class="primary" disabled={act.busy} data-testid="template-preview">
            Preview on these hosts
          </button>
          <button type="button" disabled={act.busy || started === null} onClick={() => go('apply')} data-testid="template-apply">
            Apply
          </button>
        </div>
        <p class="hint">Preview first: each host says what it would change. Apply is offered after a preview; each host undoes the whole template unless it is confirmed in time.</p>
      </form>
      {hosts ? (
        <>
          <h3>{started?.kind === 'apply' ? 'Applied' : 'Preview'}</h3>
          {started?.batchId ? (
            <p class="small">
              <Link href={`/batches/${encodeURIComponent(started.batchId)}`}>The batch of these jobs</Link> (retry failed hosts there).
            </p>
          ) : null}
          {deadline !== null && pendingIds.length > 0 ? (
            <div class="warning" data-testid="template-pending">
              <p>
                Check the hosts, then confirm. Unconfirmed hosts roll back in{' '}
                <span class="countdown" data-testid="confirm-countdown" data-confirm-by={new Date(deadline).toISOString()} role="timer">
                  {left}
                </span>{' '}
                s.
              </p>
              <button type="button" class="primary" disabled={act.busy || left <= 0} onClick={confirmAll} data-testid="template-confirm">
                Confirm on {pendingIds.length} host(s)
              </button>
            </div>
          ) : null}
          <Table
            testid={`${kind}-hosts`}
            rows={hosts}
            rowKey={(h) => h.agent_id}
            rowTestid={(h) => `${kind}-host-${h.hostname}`}
            empty="No host matches."
            columns={[
              { head: 'Host', cell: (h) => h.hostname },
              { head: 'State', cell: (h) => <Badge state={h.job?.status ?? 'queued'} /> },
              { head: kind === 'apply' ? 'Changed' : 'Would change', cell: (h) => (h.job?.result?.error ? <span class="error-text">{h.job.result.error}</span> : changeText(h.job?.result?.output)) },
              kind === 'apply' && { head: 'Outcome', testid: 'host-outcome', cell: (h) => h.outcome ?? '' },
            ]}
          />
        </>
      ) : null}
    </Section>
  );
}

export function TemplatePage(props: { id: string }): JSX.Element {
  const isNew = props.id === 'new';
  const t = useLoad(async () => (isNew ? null : (await api<{ template: TemplateView }>('GET', `/templates/${encodeURIComponent(props.id)}`)).template), [props.id]);
  const operator = useCan('operator');
  if (!isNew && t.data === null) {
    return (
      <>
        <h1>Template</h1>
        <ErrorBox error={t.error} />
        {t.loading ? <Loading /> : null}
      </>
    );
  }
  return (
    <>
      <h1>{isNew ? 'New template' : `Template ${t.data!.name}`}</h1>
      <Editor key={props.id} template={t.data} onSaved={(saved) => (isNew ? navigate(`/templates/${encodeURIComponent(saved.id)}`, true) : t.reload())} />
      {!isNew && operator ? <Rollout template={t.data!} /> : null}
    </>
  );
}
