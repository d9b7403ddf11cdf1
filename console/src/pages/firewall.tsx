/**
 * An agent's firewall (firewalld): zones with their services, ports, interfaces, sources, ICMP
 * blocks, rich rules, masquerade and forward ports; services, ipsets, policies; panic mode and
 * log-denied. Read from the host with one `get_state_hash {include_state}` job (a viewer sees the
 * last one an operator ran). Every change goes preview (dry_run) -> apply with confirm_timeout ->
 * Confirm before the countdown ends, or the host rolls it back by itself and the page says so.
 */
import type { JSX } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { api, jobOutput, query, runJob, type Job } from '../api.ts';
import { ErrorBox, Section, Time, useAction, useLoad } from '../components.tsx';
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
export async function latestJob(agentId: string, module: string, action: string): Promise<Job | null> {
  const { jobs } = await api<{ jobs: Job[] }>('GET', `/jobs${query({ agent_id: agentId, status: 'completed', limit: 500 })}`);
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
            <button type="button" aria-label={`Remove ${props.kind} ${it} from zone ${props.zone}`} data-testid="remove-item" onClick={() => pick.current?.(props.remove!(it))}>
              ×
            </button>
          ) : null}
        </li>
      ))}
    </ul>
  );
}

// The change a remove button starts goes to the page's change panel (one per page).
const pick: { current: ((c: Change) => void) | null } = { current: null };

function ZoneCard(props: { name: string; zone: Zone; isDefault: boolean }): JSX.Element {
  const { name, zone } = props;
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
        {row('Services', <Chips testid="zone-services" zone={z} kind="service" items={zone.services ?? []} remove={(s) => ({ action: 'remove_service', params: { zone: z, service: s }, label: `remove service ${s} from zone ${z}` })} />)}
        {row('Ports', <Chips testid="zone-ports" zone={z} kind="port" items={ports} remove={(p) => ({ action: 'remove_port', params: { zone: z, port: p }, label: `remove port ${p} from zone ${z}` })} />)}
        {row('Protocols', <Chips testid="zone-protocols" zone={z} kind="protocol" items={zone.protocols ?? []} remove={(p) => ({ action: 'remove_protocol', params: { zone: z, protocol: p }, label: `remove protocol ${p} from zone ${z}` })} />)}
        {row('Source ports', <Chips testid="zone-source-ports" zone={z} kind="source port" items={sports} remove={(p) => ({ action: 'remove_source_port', params: { zone: z, port: p }, label: `remove source port ${p} from zone ${z}` })} />)}
        {row('Interfaces', <Chips testid="zone-interfaces" zone={z} kind="interface" items={zone.interfaces ?? []} remove={(i) => ({ action: 'remove_interface', params: { zone: z, interface: i }, label: `remove interface ${i} from zone ${z}` })} />)}
        {row('Sources', <Chips testid="zone-sources" zone={z} kind="source" items={zone.sources ?? []} remove={(s) => ({ action: 'remove_source', params: { zone: z, source: s }, label: `remove source ${s} from zone ${z}` })} />)}
        {row('ICMP blocks', <Chips testid="zone-icmp-blocks" zone={z} kind="ICMP block" items={zone.icmp_blocks ?? []} remove={(t) => ({ action: 'remove_icmp_block', params: { zone: z, icmp_type: t }, label: `remove ICMP block ${t} from zone ${z}` })} />)}
        {row('ICMP block inversion', <span>{zone.icmp_block_inversion ? 'on' : 'off'}</span>)}
        {row('Masquerade', <span data-testid="zone-masquerade">{zone.masquerade ? 'on' : 'off'}</span>)}
        {row(
          'Forward ports',
          <Chips
            testid="zone-forward-ports"
            zone={z}
            kind="forward port"
            items={fwd.map((x) => x.text)}
            remove={(t) => {
              const f = fwd.find((x) => x.text === t)!.f;
              return { action: 'remove_forward_port', params: { zone: z, port: `${f.port}/${f.protocol}`, ...(f.to_port ? { to_port: f.to_port } : {}), ...(f.to_addr ? { to_addr: f.to_addr } : {}) }, label: `remove forward port ${t} from zone ${z}` };
            }}
          />,
        )}
        {row('Rich rules', <Chips testid="zone-rich-rules" zone={z} kind="rich rule" items={zone.rich_rules ?? []} remove={(r) => ({ action: 'remove_rich_rule', params: { zone: z, rule: r }, label: `remove rich rule ${r} from zone ${z}` })} />)}
      </dl>
    </section>
  );
}

const ADDS: Record<string, { action: string; param: string; label: string; placeholder: string }> = {
  service: { action: 'add_service', param: 'service', label: 'Service', placeholder: 'https' },
  port: { action: 'add_port', param: 'port', label: 'Port', placeholder: '8443/tcp' },
  protocol: { action: 'add_protocol', param: 'protocol', label: 'Protocol', placeholder: 'gre' },
  source_port: { action: 'add_source_port', param: 'port', label: 'Source port', placeholder: '53/udp' },
  interface: { action: 'add_interface', param: 'interface', label: 'Interface', placeholder: 'eth1' },
  source: { action: 'add_source', param: 'source', label: 'Source', placeholder: '10.0.0.0/8' },
  icmp_block: { action: 'add_icmp_block', param: 'icmp_type', label: 'ICMP type', placeholder: 'echo-request' },
  rich_rule: { action: 'add_rich_rule', param: 'rule', label: 'Rich rule', placeholder: 'rule family="ipv4" source address="10.0.0.1" accept' },
  forward_port: { action: 'add_forward_port', param: 'port', label: 'Port (N/proto)', placeholder: '80/tcp' },
  masquerade_on: { action: 'add_masquerade', param: '', label: '', placeholder: '' },
  masquerade_off: { action: 'remove_masquerade', param: '', label: '', placeholder: '' },
};

function AddForm(props: { zones: string[]; defaultZone: string | undefined; services: string[]; onChange: (c: Change) => void }): JSX.Element {
  const [zone, setZone] = useState(props.defaultZone ?? props.zones[0] ?? '');
  const [what, setWhat] = useState('service');
  const [value, setValue] = useState('');
  const [toPort, setToPort] = useState('');
  const [toAddr, setToAddr] = useState('');
  const [permanent, setPermanent] = useState(false);
  const [err, setErr] = useState<string | null>(null);
  const spec = ADDS[what]!;
  const submit = (e: SubmitEvent): void => {
    e.preventDefault();
    if (spec.param !== '' && value.trim() === '') {
      setErr(`${spec.label} is required`);
      return;
    }
    setErr(null);
    const params: Record<string, unknown> = { zone };
    if (spec.param !== '') params[spec.param] = value.trim();
    if (what === 'forward_port') {
      if (toPort.trim()) params.to_port = toPort.trim();
      if (toAddr.trim()) params.to_addr = toAddr.trim();
    }
    if (permanent) params.permanent = true;
    const verb = what === 'masquerade_on' ? 'enable masquerade in' : what === 'masquerade_off' ? 'disable masquerade in' : `add ${what.replace('_', ' ')} ${value.trim()} to`;
    props.onChange({ action: spec.action, params, label: `${verb} zone ${zone}${permanent ? ' (permanent)' : ''}` });
  };
  return (
    <form onSubmit={submit} class="filters" data-testid="firewall-add-form" noValidate>
      <div class="field">
        <label for="fw-zone">Zone</label>
        <select id="fw-zone" value={zone} onChange={(e) => setZone(e.currentTarget.value)}>
          {props.zones.map((z) => (
            <option key={z}>{z}</option>
          ))}
        </select>
      </div>
      <div class="field">
        <label for="fw-what">Change</label>
        <select id="fw-what" value={what} onChange={(e) => setWhat(e.currentTarget.value)}>
          <option value="service">add service</option>
          <option value="port">add port</option>
          <option value="protocol">add protocol</option>
          <option value="source_port">add source port</option>
          <option value="interface">add interface</option>
          <option value="source">add source</option>
          <option value="icmp_block">add ICMP block</option>
          <option value="rich_rule">add rich rule</option>
          <option value="forward_port">add forward port</option>
          <option value="masquerade_on">enable masquerade</option>
          <option value="masquerade_off">disable masquerade</option>
        </select>
      </div>
      {spec.param !== '' ? (
        <div class="field">
          <label for="fw-value">{spec.label}</label>
          <input id="fw-value" list={what === 'service' ? 'fw-services' : undefined} placeholder={spec.placeholder} value={value} onInput={(e) => setValue(e.currentTarget.value)} aria-invalid={err ? true : undefined} />
          <datalist id="fw-services">
            {props.services.map((s) => (
              <option key={s} value={s} />
            ))}
          </datalist>
        </div>
      ) : null}
      {what === 'forward_port' ? (
        <>
          <div class="field">
            <label for="fw-to-port">To port</label>
            <input id="fw-to-port" value={toPort} onInput={(e) => setToPort(e.currentTarget.value)} />
          </div>
          <div class="field">
            <label for="fw-to-addr">To address</label>
            <input id="fw-to-addr" value={toAddr} onInput={(e) => setToAddr(e.currentTarget.value)} />
          </div>
        </>
      ) : null}
      <div class="field field-check">
        <label for="fw-permanent">Permanent configuration</label>
        <input id="fw-permanent" type="checkbox" checked={permanent} onChange={(e) => setPermanent(e.currentTarget.checked)} />
      </div>
      <button type="submit" class="primary" data-testid="firewall-prepare">
        Preview change
      </button>
      {err ? (
        <p class="field-error" role="alert">
          {err}
        </p>
      ) : null}
    </form>
  );
}

type FlowState =
  | { step: 'preview' }
  | { step: 'previewed'; output: Record<string, unknown> }
  | { step: 'pending'; changeId: string; deadline: number; output: Record<string, unknown> }
  | { step: 'done'; text: string; kind: 'ok' | 'rolled-back' | 'nothing' };

/** Preview, apply with confirm_timeout, the countdown with Confirm, and the host's rollback. */
export function ChangeFlow(props: { agentId: string; change: Change; onFinished: () => void; onClose: () => void }): JSX.Element {
  const [state, setState] = useState<FlowState>({ step: 'preview' });
  const [timeout, setTimeoutText] = useState('60');
  const [left, setLeft] = useState(0);
  const act = useAction();
  const { agentId, change } = props;
  const headline = useRef<HTMLHeadingElement>(null);
  useEffect(() => headline.current?.focus(), [change]);
  useEffect(() => setState({ step: 'preview' }), [change]);

  const preview = (): void => {
    void act.run(async () => {
      const out = jobOutput(await runJob(agentId, 'firewalld', change.action, { ...change.params, dry_run: true }));
      setState({ step: 'previewed', output: out });
    });
  };
  const apply = (): void => {
    const n = Number(timeout);
    if (!Number.isInteger(n) || n < 5 || n > 3600) {
      void act.run(() => Promise.reject(new Error('Confirm within must be a whole number of seconds from 5 to 3600')));
      return;
    }
    void act.run(async () => {
      const job = await runJob(agentId, 'firewalld', change.action, { ...change.params, confirm_timeout: n });
      const out = jobOutput<Record<string, unknown>>(job);
      const id = typeof out.change_id === 'string' ? out.change_id : null;
      if (out.changed === false || id === null) {
        setState({ step: 'done', kind: 'nothing', text: 'Nothing changed: the firewall was already so.' });
        props.onFinished();
        return;
      }
      // The host's clock sets confirm_by; the time left is measured against the host's own
      // finish time, so a browser whose clock differs still counts down correctly.
      const hostLeft = typeof out.confirm_by === 'string' && job.result && typeof (job.result as Record<string, unknown>).finished_at === 'string' ? Date.parse(out.confirm_by) - Date.parse((job.result as Record<string, unknown>).finished_at as string) : n * 1000;
      setState({ step: 'pending', changeId: id, deadline: Date.now() + (Number.isFinite(hostLeft) ? hostLeft : n * 1000), output: out });
      props.onFinished();
    });
  };
  const confirm = (changeId: string): void => {
    void act.run(async () => {
      jobOutput(await runJob(agentId, 'firewalld', 'confirm', { change_id: changeId }, 60));
      setState({ step: 'done', kind: 'ok', text: 'Confirmed: the change stays.' });
      props.onFinished();
    });
  };

  // The countdown; when it ends, ask the host what became of the change.
  useEffect(() => {
    if (state.step !== 'pending') return;
    const tick = (): void => setLeft(Math.max(0, Math.ceil((state.deadline - Date.now()) / 1000)));
    tick();
    const t = window.setInterval(tick, 250);
    return () => window.clearInterval(t);
  }, [state]);
  useEffect(() => {
    if (state.step !== 'pending' || left > 0 || Date.now() < state.deadline || act.busy) return;
    const changeId = state.changeId;
    void act.run(async () => {
      for (let i = 0; i < 10; i++) {
        const out = jobOutput<{ pending?: Array<{ change_id: string }>; history?: Array<{ change_id: string; outcome: string; reason: string }> }>(await runJob(agentId, 'firewalld', 'get_pending_changes', {}, 60));
        const h = (out.history ?? []).find((x) => x.change_id === changeId);
        if (h) {
          setState(h.outcome === 'confirmed' ? { step: 'done', kind: 'ok', text: 'Confirmed: the change stays.' } : { step: 'done', kind: 'rolled-back', text: `Rolled back by the host: the change was not confirmed in time (${h.outcome}: ${h.reason}).` });
          props.onFinished();
          return;
        }
        if (!(out.pending ?? []).some((p) => p.change_id === changeId)) break;
        await new Promise((r) => window.setTimeout(r, 2000));
      }
      setState({ step: 'done', kind: 'rolled-back', text: 'The confirmation time ran out; the host no longer lists the change as pending.' });
      props.onFinished();
    });
  }, [state, left]);

  return (
    <section class="card change" aria-labelledby="change-title" data-testid="change-flow">
      <div class="card-head">
        <h3 id="change-title" tabIndex={-1} ref={headline}>
          Change: {change.label}
        </h3>
        {state.step !== 'pending' ? (
          <button type="button" onClick={props.onClose}>
            Close
          </button>
        ) : null}
      </div>
      <ErrorBox error={act.error} testid="change-error" />
      {state.step === 'preview' ? (
        <div class="buttons">
          <button type="button" class="primary" disabled={act.busy} onClick={preview} data-testid="change-preview">
            {act.busy ? 'Asking the host…' : 'Preview (dry run)'}
          </button>
        </div>
      ) : null}
      {state.step === 'previewed' ? (
        <>
          <p data-testid="change-preview-result">
            {state.output.changed === false ? 'Nothing would change: ' : 'Would change: '}
            {typeof state.output.message === 'string' ? state.output.message : change.label}
          </p>
          {state.output.changed === false ? null : (
            <div class="filters">
              <div class="field">
                <label for="change-timeout">Confirm within (seconds)</label>
                <input id="change-timeout" type="number" min={5} max={3600} value={timeout} onInput={(e) => setTimeoutText(e.currentTarget.value)} />
                <p class="hint">Unless you confirm in time, the host undoes the change by itself.</p>
              </div>
              <button type="button" class="primary" disabled={act.busy} onClick={apply} data-testid="change-apply">
                {act.busy ? 'Applying…' : 'Apply'}
              </button>
            </div>
          )}
        </>
      ) : null}
      {state.step === 'pending' ? (
        <div class="warning" role="status" data-testid="change-pending">
          <p>
            Applied. Check that you can still reach the host, then confirm. The host rolls the change back in <span class="countdown" data-testid="countdown">{left}</span> s.
          </p>
          <div class="buttons">
            <button type="button" class="primary" disabled={act.busy || left <= 0} onClick={() => confirm(state.changeId)} data-testid="change-confirm">
              Confirm
            </button>
          </div>
          {left <= 0 ? <p>Time is up: asking the host whether it rolled back…</p> : null}
        </div>
      ) : null}
      {state.step === 'done' ? (
        <p class={state.kind === 'rolled-back' ? 'warning' : 'notice'} role="status" data-testid={state.kind === 'rolled-back' ? 'change-rolled-back' : 'change-done'}>
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
  const [change, setChange] = useState<Change | null>(null);
  const act = useAction();
  pick.current = setChange;
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
  const setGlobal = (c: Change): void => setChange(c);
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
          {operator ? (
            <>
              <h3>Change the firewall</h3>
              <AddForm zones={zones} defaultZone={fw.default_zone} services={services.data ?? []} onChange={setChange} />
            </>
          ) : null}
          {change && operator ? <ChangeFlow agentId={agentId} change={change} onFinished={refresh} onClose={() => setChange(null)} /> : null}
          <div class="zones">
            {zones.map((z) => (
              <ZoneCard key={z} name={z} zone={fw.zones![z]!} isDefault={z === fw.default_zone} />
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
