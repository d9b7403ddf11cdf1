/**
 * An agent's firewall (firewalld): zones with their services, ports, interfaces, sources, ICMP
 * blocks, rich rules, masquerade and forward ports; services, ipsets, policies; panic mode and
 * log-denied. Read from the host with one `get_state_hash {include_state}` job (a viewer sees the
 * last one an operator ran). Every change goes preview (dry_run) -> apply with confirm_timeout ->
 * Confirm before the countdown ends, or the host rolls it back by itself and the page says so.
 */
import type { JSX } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { api, jobOutput, query, runJob } from '../api.ts';
import type { JobView } from '../../../src/protocol/operator-api.ts';
import { ErrorBox, Section, Time, useAction, useLoad, useSecondsLeft } from '../components.tsx';
import { useCan } from '../session.ts';

interface PortProto {
  port: string;
  protocol: string;
}
interface Zone {
  target?: string;
  services?: string[];
  ports?: PortProto[];
  protocols?: string[];
  source_ports?: PortProto[];
  icmp_blocks?: string[];
  icmp_block_inversion?: boolean;
  masquerade?: boolean;
  forward_ports?: Array<PortProto & { to_port: string; to_addr: string }>;
  interfaces?: string[];
  sources?: string[];
  rich_rules?: string[];
}
interface FirewallState {
  default_zone?: string;
  log_denied?: string;
  panic?: boolean;
  zones?: Record<string, Zone>;
  policies?: Record<string, Record<string, unknown>>;
  ipsets?: Record<string, Record<string, unknown>>;
}

/** One change to the firewall: a firewalld write action and its parameters. */
export interface Change {
  action: string;
  params: Record<string, unknown>;
  /** What it does, in words ("remove service ssh from zone public"). */
  label: string;
}

/** The newest completed job of `module.action` for an agent, or null. */
export async function latestJob(agentId: string, module: string, action: string): Promise<JobView | null> {
  const { jobs } = await api<{ jobs: JobView[] }>('GET', `/jobs${query({ agent_id: agentId, status: 'completed', limit: 500 })}`);
  const mine = jobs.filter((j) => j.module === module && j.action === action && j.result?.success !== false);
  mine.sort((a, b) => Date.parse(b.finished_at ?? b.created_at ?? '') - Date.parse(a.finished_at ?? a.created_at ?? ''));
  return mine[0] ?? null;
}

function Chips(props: { items: string[]; kind: string; zone: string; remove?: (item: string) => Change; testid: string }): JSX.Element {
  const operator = useCan('operator');
  if (props.items.length === 0) return <span class="muted">none</span>;
  return (
    <ul class="chips" data-testid={props.testid}>
      {props.items.map((it) => (
        <li key={it}>
          <span>{it}</span>
          {operator && props.remove ? (
            <button type="button" aria-label={`Remove ${props.kind} ${it} from zone ${props.zone}`} data-testid="remove-item" onClick={() => pick.current?.({ kind: 'fixed', change: props.remove!(it) })}>
              ×
            </button>
          ) : null}
        </li>
      ))}
    </ul>
  );
}

// The change a remove button starts goes to the page's change panel (one per page).
const pick: { current: ((d: Draft) => void) | null } = { current: null };

function ZoneCard(props: { name: string; zone: Zone; isDefault: boolean; onDraft: (d: Draft) => void }): JSX.Element {
  const { name, zone } = props;
  const operator = useCan('operator');
  const z = name;
  const ports = (zone.ports ?? []).map((p) => `${p.port}/${p.protocol}`);
  const sports = (zone.source_ports ?? []).map((p) => `${p.port}/${p.protocol}`);
  const fwd = (zone.forward_ports ?? []).map((f) => ({ text: `${f.port}/${f.protocol} → ${f.to_addr || 'here'}:${f.to_port || f.port}`, f }));
  const row = (label: string, body: JSX.Element): JSX.Element => (
    <>
      <dt>{label}</dt>
      <dd>{body}</dd>
    </>
  );
  return (
    <section class="card zone" aria-labelledby={`zone-${z}`} data-testid={`zone-${z}`}>
      <h3 id={`zone-${z}`}>
        Zone {z}
        {props.isDefault ? <span class="muted"> (default)</span> : null}
      </h3>
      <dl class="facts">
        {row('Target', <span>{zone.target ?? 'default'}</span>)}
        {row('Services', <Chips testid="services" zone={z} kind="service" items={zone.services ?? []} remove={(s) => ({ action: 'remove_service', params: { zone: z, service: s }, label: `remove service ${s} from zone ${z}` })} />)}
        {row('Ports', <Chips testid="ports" zone={z} kind="port" items={ports} remove={(p) => ({ action: 'remove_port', params: { zone: z, port: p }, label: `remove port ${p} from zone ${z}` })} />)}
        {row('Protocols', <Chips testid="protocols" zone={z} kind="protocol" items={zone.protocols ?? []} remove={(p) => ({ action: 'remove_protocol', params: { zone: z, protocol: p }, label: `remove protocol ${p} from zone ${z}` })} />)}
        {row('Source ports', <Chips testid="source-ports" zone={z} kind="source port" items={sports} remove={(p) => ({ action: 'remove_source_port', params: { zone: z, port: p }, label: `remove source port ${p} from zone ${z}` })} />)}
        {row('Interfaces', <Chips testid="interfaces" zone={z} kind="interface" items={zone.interfaces ?? []} remove={(i) => ({ action: 'remove_interface', params: { zone: z, interface: i }, label: `remove interface ${i} from zone ${z}` })} />)}
        {row('Sources', <Chips testid="sources" zone={z} kind="source" items={zone.sources ?? []} remove={(s) => ({ action: 'remove_source', params: { zone: z, source: s }, label: `remove source ${s} from zone ${z}` })} />)}
        {row('ICMP blocks', <Chips testid="icmp-blocks" zone={z} kind="ICMP block" items={zone.icmp_blocks ?? []} remove={(t) => ({ action: 'remove_icmp_block', params: { zone: z, icmp_type: t }, label: `remove ICMP block ${t} from zone ${z}` })} />)}
        {row('ICMP block inversion', <span>{zone.icmp_block_inversion ? 'on' : 'off'}</span>)}
        {row('Masquerade', <span data-testid="masquerade">{zone.masquerade ? 'on' : 'off'}</span>)}
        {row(
          'Forward ports',
          <Chips
            testid="forward-ports"
            zone={z}
            kind="forward port"
            items={fwd.map((x) => x.text)}
            remove={(t) => {
              const f = fwd.find((x) => x.text === t)!.f;
              return { action: 'remove_forward_port', params: { zone: z, port: `${f.port}/${f.protocol}`, ...(f.to_port ? { to_port: f.to_port } : {}), ...(f.to_addr ? { to_addr: f.to_addr } : {}) }, label: `remove forward port ${t} from zone ${z}` };
            }}
          />,
        )}
        {row('Rich rules', <Chips testid="rich-rules" zone={z} kind="rich rule" items={zone.rich_rules ?? []} remove={(r) => ({ action: 'remove_rich_rule', params: { zone: z, rule: r }, label: `remove rich rule ${r} from zone ${z}` })} />)}
      </dl>
      {operator ? (
        <div class="buttons" data-testid="zone-actions">
          {(Object.keys(ADDS) as AddKind[]).map((k) => (
            <button key={k} type="button" class="small-button" onClick={() => props.onDraft({ kind: 'add', what: k, zone: z })} aria-label={`${ADDS[k].button} to zone ${z}`}>
              {ADDS[k].button}
            </button>
          ))}
          <button type="button" class="small-button" onClick={() => props.onDraft({ kind: 'fixed', change: zone.masquerade ? { action: 'remove_masquerade', params: { zone: z }, label: `disable masquerade in zone ${z}` } : { action: 'add_masquerade', params: { zone: z }, label: `enable masquerade in zone ${z}` } })}>
            {zone.masquerade ? 'Disable masquerade' : 'Enable masquerade'}
          </button>
        </div>
      ) : null}
    </section>
  );
}

/** What a zone's "Add …" buttons add: the action, its parameter, the field's label. */
export const ADDS = {
  service: { action: 'add_service', param: 'service', label: 'Service', placeholder: 'https', button: 'Add service' },
  port: { action: 'add_port', param: 'port', label: 'Port (N/proto)', placeholder: '8443/tcp', button: 'Add port' },
  rich_rule: { action: 'add_rich_rule', param: 'rule', label: 'Rich rule', placeholder: 'rule family="ipv4" source address="10.0.0.1" accept', button: 'Add rich rule' },
  source: { action: 'add_source', param: 'source', label: 'Source (address, CIDR, MAC or ipset:NAME)', placeholder: '10.0.0.0/8', button: 'Add source' },
  interface: { action: 'add_interface', param: 'interface', label: 'Interface', placeholder: 'eth1', button: 'Add interface' },
  icmp_block: { action: 'add_icmp_block', param: 'icmp_type', label: 'ICMP type', placeholder: 'echo-request', button: 'Add ICMP block' },
  protocol: { action: 'add_protocol', param: 'protocol', label: 'Protocol', placeholder: 'gre', button: 'Add protocol' },
  source_port: { action: 'add_source_port', param: 'port', label: 'Source port (N/proto)', placeholder: '53/udp', button: 'Add source port' },
  forward_port: { action: 'add_forward_port', param: 'port', label: 'Port (N/proto)', placeholder: '80/tcp', button: 'Add forward port' },
} as const;
export type AddKind = keyof typeof ADDS;

/** A change being prepared: a fixed one (a remove button, panic mode) or an addition to a zone with its value still to type. */
export type Draft = { kind: 'fixed'; change: Change } | { kind: 'add'; what: AddKind; zone: string };

type FlowState =
  | { step: 'edit' }
  | { step: 'previewed'; change: Change; output: Record<string, unknown> }
  | { step: 'pending'; change: Change; changeId: string; deadline: number; output: Record<string, unknown> }
  | { step: 'done'; change: Change; text: string; kind: 'ok' | 'rolled-back' | 'nothing' };

/**
 * Preview (dry run), apply with confirm_timeout, the countdown with Confirm, and the host's own
 * rollback when the countdown ends unconfirmed (read back with get_pending_changes).
 */
export function ChangeFlow(props: { agentId: string; draft: Draft; services: string[]; onFinished: () => void; onClose: () => void }): JSX.Element {
  const { agentId, draft } = props;
  const [state, setState] = useState<FlowState>({ step: 'edit' });
  const [value, setValue] = useState('');
  const [toPort, setToPort] = useState('');
  const [toAddr, setToAddr] = useState('');
  const [permanent, setPermanent] = useState(false);
  const [timeout, setTimeoutText] = useState('60');
  const act = useAction();
  const headline = useRef<HTMLHeadingElement>(null);
  useEffect(() => {
    setState({ step: 'edit' });
    setValue('');
    act.clear();
    headline.current?.focus();
  }, [draft]);

  const left = useSecondsLeft(state.step === 'pending' ? state.deadline : null);
  const spec = draft.kind === 'add' ? ADDS[draft.what] : null;
  const title = draft.kind === 'fixed' ? draft.change.label : `${spec!.button.toLowerCase()} to zone ${draft.zone}`;
  /** The change the form stands for; an error message when a field is wrong. */
  const build = (): Change | string => {
    const n = Number(timeout);
    if (!Number.isInteger(n) || n < 5 || n > 3600) return 'Confirm within must be a whole number of seconds from 5 to 3600';
    if (draft.kind === 'fixed') return draft.change;
    const v = value.trim();
    if (v === '') return `${spec!.label} is required`;
    const params: Record<string, unknown> = { zone: draft.zone, [spec!.param]: v };
    if (draft.what === 'forward_port') {
      if (toPort.trim() === '' && toAddr.trim() === '') return 'A forward port needs a to port, a to address or both';
      if (toPort.trim()) params.to_port = toPort.trim();
      if (toAddr.trim()) params.to_addr = toAddr.trim();
    }
    if (permanent) params.permanent = true;
    return { action: spec!.action, params, label: `${spec!.button.toLowerCase()} ${v} to zone ${draft.zone}${permanent ? ' (permanent)' : ''}` };
  };
  const preview = (e: SubmitEvent): void => {
    e.preventDefault();
    const c = build();
    if (typeof c === 'string') {
      void act.run(() => Promise.reject(new Error(c)));
      return;
    }
    void act.run(async () => {
      const out = jobOutput(await runJob(agentId, 'firewalld', c.action, { ...c.params, dry_run: true }));
      setState({ step: 'previewed', change: c, output: out });
    });
  };
  const apply = (c: Change): void => {
    const n = Number(timeout);
    void act.run(async () => {
      const job = await runJob(agentId, 'firewalld', c.action, { ...c.params, confirm_timeout: n });
      const out = jobOutput<Record<string, unknown>>(job);
      const id = typeof out.change_id === 'string' ? out.change_id : null;
      if (out.changed === false || id === null) {
        setState({ step: 'done', change: c, kind: 'nothing', text: 'Nothing changed: the firewall was already so.' });
        props.onFinished();
        return;
      }
      // confirm_by is on the host's clock: the time left is measured against the host's own
      // finish time, so a browser whose clock differs still counts down right.
      const finished = (job.result as Record<string, unknown> | null)?.finished_at;
      const hostLeft = typeof out.confirm_by === 'string' && typeof finished === 'string' ? Date.parse(out.confirm_by) - Date.parse(finished) : NaN;
      setState({ step: 'pending', change: c, changeId: id, deadline: Date.now() + (Number.isFinite(hostLeft) ? hostLeft : n * 1000), output: out });
      props.onFinished();
    });
  };
  const confirm = (c: Change, changeId: string): void => {
    void act.run(async () => {
      jobOutput(await runJob(agentId, 'firewalld', 'confirm', { change_id: changeId }, 60));
      setState({ step: 'done', change: c, kind: 'ok', text: 'Confirmed: the change stays.' });
      props.onFinished();
    });
  };

  // The countdown ran out: ask the host what became of the change.
  useEffect(() => {
    if (state.step !== 'pending' || left > 0 || Date.now() < state.deadline || act.busy) return;
    const { changeId, change } = state;
    void act.run(async () => {
      for (let i = 0; i < 15; i++) {
        const out = jobOutput<{ pending?: Array<{ change_id: string }>; history?: Array<{ change_id: string; outcome: string; reason: string }> }>(await runJob(agentId, 'firewalld', 'get_pending_changes', {}, 60));
        const h = (out.history ?? []).find((x) => x.change_id === changeId);
        if (h) {
          setState(
            h.outcome === 'confirmed'
              ? { step: 'done', change, kind: 'ok', text: 'Confirmed: the change stays.' }
              : { step: 'done', change, kind: 'rolled-back', text: `Rolled back by the host: the change was not confirmed in time (${h.reason}).` },
          );
          props.onFinished();
          return;
        }
        if (!(out.pending ?? []).some((p) => p.change_id === changeId)) break;
        await new Promise((r) => window.setTimeout(r, 2000));
      }
      setState({ step: 'done', change, kind: 'rolled-back', text: 'The confirmation time ran out and the host no longer lists the change as pending: it rolled back.' });
      props.onFinished();
    });
  }, [state, left]);

  const editing = state.step === 'edit' || state.step === 'previewed';
  return (
    <section class="card change" aria-labelledby="change-title" data-testid="change-flow">
      <div class="card-head">
        <h3 id="change-title" tabIndex={-1} ref={headline}>
          Change: {title}
        </h3>
        {state.step !== 'pending' ? (
          <button type="button" onClick={props.onClose}>
            Close
          </button>
        ) : null}
      </div>
      <ErrorBox error={act.error} testid="change-error" />
      {editing ? (
        <form onSubmit={preview} data-testid="change-form" noValidate>
          <div class="filters">
            {spec ? (
              <div class="field">
                <label for="chg-value">{spec.label}</label>
                <input id="chg-value" list={draft.kind === 'add' && draft.what === 'service' ? 'chg-services' : undefined} placeholder={spec.placeholder} value={value} onInput={(e) => setValue(e.currentTarget.value)} />
                <datalist id="chg-services">
                  {props.services.map((s) => (
                    <option key={s} value={s} />
                  ))}
                </datalist>
              </div>
            ) : null}
            {draft.kind === 'add' && draft.what === 'forward_port' ? (
              <>
                <div class="field">
                  <label for="chg-to-port">To port</label>
                  <input id="chg-to-port" value={toPort} onInput={(e) => setToPort(e.currentTarget.value)} />
                </div>
                <div class="field">
                  <label for="chg-to-addr">To address</label>
                  <input id="chg-to-addr" value={toAddr} onInput={(e) => setToAddr(e.currentTarget.value)} />
                </div>
              </>
            ) : null}
            {draft.kind === 'add' ? (
              <div class="field field-check">
                <label for="chg-permanent">Permanent configuration</label>
                <input id="chg-permanent" type="checkbox" checked={permanent} onChange={(e) => setPermanent(e.currentTarget.checked)} />
              </div>
            ) : null}
            <div class="field">
              <label for="chg-timeout">Confirm within (seconds)</label>
              <input id="chg-timeout" type="number" min={5} max={3600} value={timeout} onInput={(e) => setTimeoutText(e.currentTarget.value)} aria-describedby="chg-timeout-hint" />
              <p id="chg-timeout-hint" class="hint">
                Unless you confirm in time, the host undoes the change by itself.
              </p>
            </div>
          </div>
          <div class="buttons">
            <button type="submit" class={state.step === 'edit' ? 'primary' : ''} disabled={act.busy} data-testid="change-preview-button">
              Preview (dry run)
            </button>
          </div>
        </form>
      ) : null}
      {state.step === 'previewed' ? (
        <>
          <p data-testid="change-preview" role="status">
            {state.output.changed === false ? 'Nothing would change: ' : 'Would change: '}
            {typeof state.output.message === 'string' ? state.output.message : state.change.label}
          </p>
          {state.output.changed === false ? null : (
            <div class="buttons">
              <button type="button" class="primary" disabled={act.busy} onClick={() => apply(state.change)} data-testid="change-apply">
                {act.busy ? 'Applying…' : 'Apply'}
              </button>
            </div>
          )}
        </>
      ) : null}
      {state.step === 'pending' ? (
        <div class="warning" data-testid="change-pending">
          <p>
            Applied: {state.change.label}. Check that you can still reach the host, then confirm. The host rolls the change back in{' '}
            <span class="countdown" data-testid="confirm-countdown" data-confirm-by={new Date(state.deadline).toISOString()} role="timer" aria-live="off">
              {left}
            </span>{' '}
            s.
          </p>
          <div class="buttons">
            <button type="button" class="primary" disabled={act.busy || left <= 0} onClick={() => confirm(state.change, state.changeId)} data-testid="change-confirm">
              Confirm
            </button>
          </div>
          {left <= 0 ? <p role="status">Time is up: asking the host whether it rolled back…</p> : null}
        </div>
      ) : null}
      {state.step === 'done' ? (
        <p class={state.kind === 'rolled-back' ? 'warning' : 'notice'} role="status" data-testid={state.kind === 'rolled-back' ? 'change-rolled-back' : state.kind === 'ok' ? 'change-confirmed' : 'change-nothing'}>
          {state.text}
        </p>
      ) : null}
    </section>
  );
}

function ObjectList(props: { title: string; items: Record<string, Record<string, unknown>> | undefined; describe: (v: Record<string, unknown>) => string; testid: string }): JSX.Element {
  const entries = Object.entries(props.items ?? {});
  return (
    <Section title={props.title} level={3}>
      {entries.length === 0 ? (
        <p class="muted">none</p>
      ) : (
        <ul data-testid={props.testid}>
          {entries.map(([k, v]) => (
            <li key={k}>
              <strong>{k}</strong> <span class="muted">{props.describe(v)}</span>
            </li>
          ))}
        </ul>
      )}
    </Section>
  );
}

const list = (v: unknown): string => (Array.isArray(v) ? v.join(', ') : '');

export function FirewallSection(props: { agentId: string; hasFirewalld: boolean }): JSX.Element {
  const { agentId } = props;
  const operator = useCan('operator');
  const state = useLoad(() => latestJob(agentId, 'firewalld', 'get_state_hash'), [agentId]);
  const services = useLoad(async () => {
    const j = await latestJob(agentId, 'firewalld', 'list_services');
    return j ? ((j.result?.output as { services?: string[] }).services ?? []) : [];
  }, [agentId]);
  const [draft, setDraft] = useState<Draft | null>(null);
  const act = useAction();
  pick.current = setDraft;
  const refresh = (): void => {
    void act.run(async () => {
      jobOutput(await runJob(agentId, 'firewalld', 'get_state_hash', { include_state: true }));
      if (services.data === null || services.data.length === 0) await runJob(agentId, 'firewalld', 'list_services').catch(() => undefined);
      state.reload();
      services.reload();
    });
  };
  // An operator opening the page sees the firewall as it is now, not as last read.
  const asked = useRef(false);
  useEffect(() => {
    if (operator && props.hasFirewalld && !asked.current && !state.loading) {
      asked.current = true;
      refresh();
    }
  }, [state.loading]);
  const job = state.data;
  const fw = (job?.result?.output as { state?: FirewallState } | undefined)?.state;
  const zones = Object.keys(fw?.zones ?? {}).sort();
  const setGlobal = (c: Change): void => setDraft({ kind: 'fixed', change: c });
  return (
    <Section
      title="Firewall"
      actions={
        operator ? (
          <button type="button" onClick={refresh} disabled={act.busy} data-testid="firewall-refresh">
            {act.busy ? 'Reading…' : 'Read from host'}
          </button>
        ) : null
      }
    >
      <ErrorBox error={act.error ?? state.error} />
      {!props.hasFirewalld ? <p class="muted">This agent does not report the firewalld module.</p> : null}
      {job ? (
        <p class="muted small" data-testid="firewall-read-at">
          As read <Time at={job.finished_at} />.
        </p>
      ) : (
        <p class="muted">{operator ? 'Not read yet.' : 'No operator has read this firewall yet.'}</p>
      )}
      {fw ? (
        <>
          <dl class="facts" data-testid="firewall-globals">
            <dt>Default zone</dt>
            <dd>{fw.default_zone}</dd>
            <dt>Panic mode</dt>
            <dd data-testid="panic-mode">
              {fw.panic ? 'on: all traffic dropped' : 'off'}{' '}
              {operator ? (
                <button type="button" class={fw.panic ? '' : 'danger'} onClick={() => setGlobal(fw.panic ? { action: 'panic_off', params: {}, label: 'turn panic mode off' } : { action: 'panic_on', params: {}, label: 'turn panic mode on (drop all traffic)' })}>
                  {fw.panic ? 'Turn off' : 'Turn on'}
                </button>
              ) : null}
            </dd>
            <dt>Log denied</dt>
            <dd data-testid="log-denied">
              {fw.log_denied}{' '}
              {operator ? (
                <select aria-label="Set log denied" value="" onChange={(e) => e.currentTarget.value && setGlobal({ action: 'set_log_denied', params: { value: e.currentTarget.value }, label: `set log denied to ${e.currentTarget.value}` })}>
                  <option value="">change…</option>
                  {['all', 'unicast', 'broadcast', 'multicast', 'off'].map((v) => (
                    <option key={v}>{v}</option>
                  ))}
                </select>
              ) : null}
            </dd>
          </dl>
          {draft && operator ? <ChangeFlow agentId={agentId} draft={draft} services={services.data ?? []} onFinished={refresh} onClose={() => setDraft(null)} /> : null}
          <div class="zones">
            {zones.map((z) => (
              <ZoneCard key={z} name={z} zone={fw.zones![z]!} isDefault={z === fw.default_zone} onDraft={setDraft} />
            ))}
          </div>
          <ObjectList title="IP sets" testid="ipsets" items={fw.ipsets} describe={(v) => `${String(v.type ?? '')} ${list(v.entries)}`} />
          <ObjectList title="Policies" testid="policies" items={fw.policies} describe={(v) => `${list(v.ingress_zones)} → ${list(v.egress_zones)}, target ${String(v.target ?? '')}`} />
          <Section title="Services available" level={3}>
            <p class="small">{(services.data ?? []).join(', ') || 'not read yet'}</p>
          </Section>
        </>
      ) : null}
    </Section>
  );
}
