/**
 * The keys the Python agent's firewalld module answered, added to ours (docs/python-results.md,
 * a copy of the spec's table). Scripts and the original Django server read those keys, so every
 * result is a superset of the Python one: same key, same type, same meaning. Our own keys stay;
 * where one of ours has a Python key's name but another type, Python's value takes the name and
 * ours moves to the key `replace` names (documented in docs/firewalld.md, "Results").
 */
import type { CommandResponse } from '../../../sdk/base-module.ts';
import { run } from '../../../os/exec.ts';
import { activeZonesText, passthroughText, portList, zoneText, type ZoneText } from './firewall-cmd-text.ts';

type Data = Record<string, unknown>;

interface PythonKeys {
  /** Keys echoing a parameter: `key` (same name) or `[key, parameter]`; an absent parameter is null. */
  params?: Array<string | [key: string, param: string]>;
  /** `permanent`: whether the call asked for the permanent configuration. */
  permanent?: true;
  /** `message`: what the write did, in words. */
  message?: true;
  /** Keys computed from our result (the value before any `replace`) and the parameters. */
  derive?: (data: Data, params: Data) => Data | Promise<Data>;
  /** Our keys that Python's key of the same name replaces: ours moves to the key given. */
  replace?: Record<string, string>;
}

/** What a write did, from the guard's `action` ("add service "http" to zone ...") and `changed`. */
function message(d: Data): string {
  const what = String(d.action ?? 'change');
  if (d.dry_run === true) return d.changed === true ? `dry run: would ${what}` : `dry run: nothing to do (${what}: already so)`;
  return d.changed === true ? `done: ${what}` : `nothing to do (${what}: already so)`;
}

const done = (d: Data) => d.dry_run !== true;

/** `systemctl status UNIT` as the Python agent answered it; our own summary when systemctl cannot say. */
async function unitStatusText(d: Data): Promise<string> {
  const unit = String(d.unit);
  const r = await run('/usr/bin/systemctl', ['status', '--no-pager', '--', unit], { timeoutMs: 10_000, maxOutputBytes: 64 * 1024 }).catch(() => null);
  const text = r && !r.timedOut ? r.stdout || r.stderr : '';
  if (text) return text;
  return `${unit}: load state ${String(d.load_state)}, active state ${String(d.active_state)} (${String(d.sub_state)}), unit file ${String(d.unit_file_state)}\n`;
}

const zoneWrite = (key?: string | [string, string]): PythonKeys => ({ params: key ? ['zone', key] : ['zone'], permanent: true });
/** A write whose Python answer echoed its parameters, `permanent` and a message. */
const permanentWrite = (...params: string[]): PythonKeys => ({ params, permanent: true, message: true });
const withMessage = (...params: Array<string | [string, string]>): PythonKeys => ({ params, message: true });
const counted = (list: string) => ({ derive: (d: Data) => ({ count: Array.isArray(d[list]) ? d[list].length : 0 }) });
const forward: PythonKeys = { params: ['zone', 'port', 'to_port', 'to_addr'], permanent: true };
const serviceUnit: PythonKeys = { message: true, derive: (d) => ({ active: d.active_state === 'active' }) };
const panic = (want: boolean): PythonKeys => ({
  message: true,
  // A dry run leaves the mode as it is: already `want` when nothing would change.
  derive: (d) => ({ panic_mode: done(d) ? want : d.changed === true ? !want : want }),
});

/** Per action of the Python firewalld module, the keys it answered that ours does not. */
export const PYTHON_RESULTS: Readonly<Record<string, PythonKeys>> = {
  get_status: { derive: (d) => ({ active: d.running === true, status: d.running === true ? 'active' : 'inactive' }) },
  get_zone: { params: ['zone'], derive: (d) => ({ config: zoneText(d as unknown as ZoneText) }) },
  get_default_zone: { derive: (d) => ({ default_zone: d.zone }) },
  new_zone: permanentWrite('zone'),
  delete_zone: permanentWrite('zone'),
  get_active_zones: { derive: (d) => ({ active_zones: activeZonesText(d.zones as Parameters<typeof activeZonesText>[0]) }) },
  set_default_zone: { params: [['default_zone', 'zone']] },
  add_service: zoneWrite('service'),
  remove_service: zoneWrite('service'),
  add_interface: zoneWrite('interface'),
  remove_interface: zoneWrite('interface'),
  change_interface: zoneWrite('interface'),
  add_source: zoneWrite('source'),
  remove_source: zoneWrite('source'),
  change_source: zoneWrite('source'),
  add_port: zoneWrite('port'),
  remove_port: zoneWrite('port'),
  add_rich_rule: zoneWrite('rule'),
  remove_rich_rule: zoneWrite('rule'),
  add_protocol: zoneWrite('protocol'),
  remove_protocol: zoneWrite('protocol'),
  add_source_port: zoneWrite(['source_port', 'port']),
  remove_source_port: zoneWrite(['source_port', 'port']),
  add_icmp_block: zoneWrite('icmp_type'),
  remove_icmp_block: zoneWrite('icmp_type'),
  add_icmp_block_inversion: zoneWrite(),
  remove_icmp_block_inversion: zoneWrite(),
  add_masquerade: zoneWrite(),
  remove_masquerade: zoneWrite(),
  add_forward_port: forward,
  remove_forward_port: forward,
  reload: { derive: (d) => ({ reloaded: done(d) }) },
  complete_reload: { derive: (d) => ({ reloaded: done(d), complete: true }) },
  runtime_to_permanent: { derive: (d) => ({ saved: done(d) }) },
  // firewall-cmd --check-config prints "success" for a valid configuration.
  check_config: { derive: (d) => ({ message: d.valid === true ? 'success' : String(d.error ?? 'invalid configuration') }) },
  service_status: {
    derive: async (d) => ({
      active: d.active_state === 'active',
      enabled: d.unit_file_state === 'enabled',
      // What `systemctl is-active` prints is the unit's active state.
      status: String(d.active_state),
      detailed_status: await unitStatusText(d),
    }),
  },
  start_service: serviceUnit,
  stop_service: serviceUnit,
  restart_service: serviceUnit,
  query_panic: { derive: (d) => ({ panic_mode: d.enabled === true, status: d.enabled === true ? 'enabled' : 'disabled' }) },
  panic_on: panic(true),
  panic_off: panic(false),
  get_log_denied: { derive: (d) => ({ log_denied: d.value, description: `Logging denied packets: ${String(d.value)}` }) },
  set_log_denied: withMessage(['log_denied', 'value']),
  get_service_info: {
    replace: { ports: 'port_protocols' },
    derive: (d) => ({ ports: portList((d.ports ?? []) as Parameters<typeof portList>[0]), destinations: d.destination ?? {} }),
  },
  new_service: withMessage('service'),
  delete_service: withMessage('service'),
  service_add_port: withMessage('service', 'port', 'protocol'),
  service_remove_port: withMessage('service', 'port', 'protocol'),
  service_add_protocol: withMessage('service', 'protocol'),
  service_remove_protocol: withMessage('service', 'protocol'),
  list_ipsets: counted('ipsets'),
  new_ipset: withMessage('ipset', 'type'),
  delete_ipset: withMessage('ipset'),
  ipset_add_entry: withMessage('ipset', 'entry'),
  ipset_remove_entry: withMessage('ipset', 'entry'),
  zone_add_source_ipset: permanentWrite('zone', 'ipset'),
  zone_remove_source_ipset: permanentWrite('zone', 'ipset'),
  list_helpers: counted('helpers'),
  zone_list_helpers: counted('helpers'),
  zone_add_helper: permanentWrite('zone', 'helper'),
  zone_remove_helper: permanentWrite('zone', 'helper'),
  list_policies: counted('policies'),
  policy_add: permanentWrite('policy'),
  policy_delete: permanentWrite('policy'),
  policy_get_info: { derive: (d) => ({ policy: { ...d } }) },
  policy_set_ingress_zone: permanentWrite('policy', 'zone'),
  policy_set_egress_zone: permanentWrite('policy', 'zone'),
  policy_set_target: permanentWrite('policy', 'target'),
  direct_add_chain: withMessage('ipv', 'table', 'chain'),
  direct_remove_chain: withMessage('ipv', 'table', 'chain'),
  direct_add_rule: withMessage('ipv', 'table', 'chain', 'priority', 'args'),
  direct_remove_rule: withMessage('ipv', 'table', 'chain', 'priority', 'args'),
  direct_get_passthrough: {
    replace: { passthroughs: 'passthrough_args' },
    derive: (d) => ({ passthroughs: ((d.passthroughs ?? []) as string[][]).map(passthroughText) }),
  },
  direct_add_passthrough: withMessage('ipv', 'args'),
  lockdown_get_status: { derive: (d) => ({ status: d.enabled === true ? 'enabled' : 'disabled' }) },
  lockdown_enable: { message: true },
  lockdown_disable: { message: true },
  lockdown_add_command: withMessage('command'),
  lockdown_remove_command: withMessage('command'),
  lockdown_add_context: withMessage('context'),
  lockdown_remove_context: withMessage('context'),
  lockdown_add_user: withMessage('user'),
  lockdown_remove_user: withMessage('user'),
  lockdown_add_uid: withMessage('uid'),
  lockdown_remove_uid: withMessage('uid'),
};

const isObject = (v: unknown): v is Data => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Adds the Python agent's keys of `action` to a successful result; other results pass unchanged. */
export async function withPythonKeys(action: string, params: Data, res: CommandResponse): Promise<CommandResponse> {
  const spec = PYTHON_RESULTS[action];
  if (!spec || !res.success || !isObject(res.data)) return res;
  const data = res.data;
  const out: Data = { ...data };
  for (const [key, moved] of Object.entries(spec.replace ?? {})) {
    if (!(key in out)) continue;
    out[moved] = out[key];
    delete out[key];
  }
  const add: Data = {};
  for (const k of spec.params ?? []) {
    const [key, param] = typeof k === 'string' ? [k, k] : k;
    add[key] = params[param] ?? null;
  }
  if (spec.permanent) add.permanent = params.permanent === true;
  if (spec.message) add.message = message(data);
  Object.assign(add, await spec.derive?.(data, params));
  for (const [k, v] of Object.entries(add)) if (!(k in out)) out[k] = v;
  return { ...res, data: out };
}
