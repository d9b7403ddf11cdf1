/**
 * Firewall templates: a named desired state (services, ports, rich rules per zone). Admins edit
 * them; operators preview one on hosts (a dry run per host, its result per host) and apply it with
 * a confirm timeout; each host's result is on the batch page.
 */
import type { JSX } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { api, query, type Agent, type Batch } from '../api.ts';
import { Badge, ErrorBox, LoadedView, Loading, Section, Table, Time, useAction, useLoad } from '../components.tsx';
import { targetOf } from '../labels.ts';
import { useLiveReload } from '../events.ts';
import { Link, navigate } from '../router.tsx';
import { useCan } from '../session.ts';
import { TargetFields } from './jobs.tsx';

interface TemplateZone {
  services?: string[];
  ports?: string[];
  rich_rules?: string[];
}
interface Template {
  id: string;
  name: string;
  description?: string;
  zones: Record<string, TemplateZone>;
  created_at?: string;
  updated_at?: string;
}

export function TemplatesPage(): JSX.Element {
  const list = useLoad(() => api<{ templates: Template[] }>('GET', '/templates'), []);
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
        <LoadedView
          from={list}
          show={(d) => (
            <Table
              testid="templates-table"
              head={['Name', 'Zones', 'Updated']}
              rows={d.templates}
              empty="No templates yet."
              row={(t) => (
                <tr key={t.id}>
                  <td>
                    <Link href={`/templates/${encodeURIComponent(t.id)}`}>{t.name}</Link>
                    <div class="small muted">{t.description ?? ''}</div>
                  </td>
                  <td>{Object.keys(t.zones ?? {}).join(', ')}</td>
                  <td>
                    <Time at={t.updated_at ?? t.created_at} />
                  </td>
                </tr>
              )}
            />
          )}
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

const lines = (s: string): string[] => s.split('\n').map((x) => x.trim()).filter((x) => x !== '');
/** Services and ports: one per line or comma separated. */
const items = (s: string): string[] => s.split(/[,\n]/).map((x) => x.trim()).filter((x) => x !== '');

function Editor(props: { template: Template | null; onSaved: (t: Template) => void }): JSX.Element {
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
    const body = { name: name.trim(), description, zones: Object.fromEntries(zones.filter((z) => z.name.trim() !== '').map((z) => [z.name.trim(), { services: items(z.services), ports: items(z.ports), rich_rules: lines(z.rich_rules) }])) };
    void act.run(async () => {
      const r = t ? await api<{ template: Template }>('PUT', `/templates/${encodeURIComponent(t.id)}`, body) : await api<{ template: Template }>('POST', '/templates', body);
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

/** What a host would change, as its dry run said. */
function previewText(out: unknown): string {
  if (typeof out !== 'object' || out === null) return '';
  const o = out as Record<string, unknown>;
  if (typeof o.message === 'string') return o.message;
  if (Array.isArray(o.changes)) return o.changes.map((c) => (typeof c === 'string' ? c : JSON.stringify(c))).join('; ');
  if (o.changed === false) return 'nothing to change';
  return JSON.stringify(o).slice(0, 300);
}

function Rollout(props: { template: Template }): JSX.Element {
  const [labels, setLabels] = useState('');
  const [agents, setAgents] = useState('');
  const [picked, setPicked] = useState<string[]>([]);
  const hosts = useLoad(() => api<{ agents: Agent[] }>('GET', `/agents${query({ limit: 500 })}`), []);
  const [timeout, setTimeoutText] = useState('120');
  const [batchId, setBatchId] = useState<string | null>(null);
  const act = useAction();
  const batch = useLoad(async () => (batchId ? (await api<{ batch: Batch }>('GET', `/batches/${encodeURIComponent(batchId)}`)).batch : null), [batchId]);
  useLiveReload((e) => e.type === 'job' && batchId !== null && e.data.batch_id === batchId, batch.reload, [batchId]);
  // Without the event stream a preview still fills in.
  useEffect(() => {
    if (!batch.data || !batch.data.hosts.some((h) => ['queued', 'sent', 'running'].includes(h.job.status))) return;
    const t = window.setTimeout(batch.reload, 2000);
    return () => window.clearTimeout(t);
  }, [batch.data]);
  const go = (kind: 'preview' | 'apply'): void => {
    const t = targetOf(labels, [agents, ...picked].join(' '));
    if (t.error !== null) {
      void act.run(() => Promise.reject(new Error(t.error!)));
      return;
    }
    const n = Number(timeout);
    if (kind === 'apply' && timeout !== '' && (!Number.isInteger(n) || n < 5 || n > 3600)) {
      void act.run(() => Promise.reject(new Error('Confirm within must be a whole number of seconds from 5 to 3600')));
      return;
    }
    void act.run(async () => {
      const body = kind === 'apply' ? { target: t.target, ...(timeout !== '' ? { confirm_timeout: n } : {}) } : { target: t.target };
      const r = await api<{ batch: Batch }>('POST', `/templates/${encodeURIComponent(props.template.id)}/${kind}`, body);
      if (kind === 'apply') navigate(`/batches/${encodeURIComponent(r.batch.id)}`);
      else setBatchId(r.batch.id);
    });
  };
  return (
    <Section title="Preview and apply">
      <ErrorBox error={act.error} />
      <form onSubmit={(e) => (e.preventDefault(), go('preview'))} data-testid="rollout-form" noValidate>
        <fieldset class="plain">
          <legend>Hosts</legend>
          <ul class="chips" data-testid="rollout-hosts">
            {(hosts.data?.agents ?? [])
              .filter((a) => a.status === 'active')
              .map((a) => (
                <li key={a.id}>
                  <input
                    type="checkbox"
                    id={`ro-host-${a.id}`}
                    checked={picked.includes(a.id)}
                    onChange={(e) => setPicked(e.currentTarget.checked ? [...picked, a.id] : picked.filter((x) => x !== a.id))}
                  />
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
        </div>
        <div class="buttons">
          <button type="submit" class="primary" disabled={act.busy} data-testid="template-preview">
            Preview on these hosts
          </button>
          <button type="button" disabled={act.busy || batch.data === null} onClick={() => go('apply')} data-testid="template-apply">
            Apply
          </button>
        </div>
        <p class="hint">Preview first: each host says what it would change. Apply is offered after a preview.</p>
      </form>
      {batch.data ? (
        <Table
          testid="preview-hosts"
          head={['Host', 'State', 'Would change']}
          rows={batch.data.hosts}
          empty="No host matches."
          row={(h) => (
            <tr key={h.agent_id} data-testid={`preview-host-${h.hostname}`}>
              <td>{h.hostname}</td>
              <td>
                <Badge state={h.job.status} />
              </td>
              <td>{h.job.result?.error ? <span class="error-text">{h.job.result.error}</span> : previewText(h.job.result?.output)}</td>
            </tr>
          )}
        />
      ) : null}
    </Section>
  );
}

export function TemplatePage(props: { id: string }): JSX.Element {
  const isNew = props.id === 'new';
  const t = useLoad(async () => (isNew ? null : (await api<{ template: Template }>('GET', `/templates/${encodeURIComponent(props.id)}`)).template), [props.id]);
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
