// The Python agent's result keys (docs/python-results.md, parsed here) on every action of its
// firewalld and systeminfo modules, through the real tuxsec-rootd against a real firewalld in a
// network namespace: each key present with the table's type, and the firewall-cmd text keys equal
// to what firewall-cmd prints for the same firewalld.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ROOT, startRootd, type RootdHandle } from '../helpers/rootd.ts';
import { startFirewalldNetns, type FirewalldNetns } from '../helpers/firewalld-netns.ts';
import { withPythonKeys } from '../../src/rootd/modules/firewalld/python-results.ts';

type Data = Record<string, unknown>;

interface KeySpec {
  key: string;
  /** Alternatives: str, bool, int, list, object, null, or param (the value of the call's parameter). */
  types: string[];
  /** The table allows us to leave the key out (python_version). */
  optional: boolean;
}

const BASIC = new Set(['str', 'bool', 'int', 'list', 'object', 'null']);

/** Splits at commas and semicolons outside parentheses and braces. */
function splitTop(s: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let cur = '';
  for (const c of s) {
    if (c === '(' || c === '{') depth++;
    if (c === ')' || c === '}') depth--;
    if ((c === ',' || c === ';') && depth === 0) {
      out.push(cur);
      cur = '';
    } else cur += c;
  }
  return [...out, cur];
}

/** One table cell ("`zone` str, `permanent` bool") as key specs; `as `action`` copies another row's keys. */
function parseCell(cell: string, row: (action: string) => KeySpec[] | undefined): KeySpec[] {
  const out: KeySpec[] = [];
  let pending: string[] = [];
  for (const seg of splitTop(cell)) {
    const m = /^\s*`([^`]+)`\s*(.*)$/s.exec(seg);
    if (!m) continue;
    const [, key, rest] = m as unknown as [string, string, string];
    const note = /\(([^)]*)\)/.exec(rest)?.[1] ?? '';
    const typeText = rest
      .replace(/\([^)]*\)/g, '')
      .replace(/\{[^}]*\}/g, '')
      .replaceAll('*', '')
      .trim();
    const asOther = /^as `([^`]+)`$/.exec(typeText);
    if (asOther) {
      const from = row(asOther[1]!);
      assert.ok(from, `python-results.md: "${key}" refers to unknown action ${asOther[1]}`);
      out.push(...from);
      continue;
    }
    if (!typeText && note !== 'the parameter') {
      pending.push(key);
      continue;
    }
    // A Python variable in place of a type: a plural name is the list of that name, a singular the parameter.
    const types = typeText ? typeText.split(/\s+or\s+/).map((t) => (BASIC.has(t) ? t : t.endsWith('s') ? 'list' : 'param')) : ['param'];
    for (const k of [...pending, key]) out.push({ key: k, types, optional: /may be absent/.test(note) });
    pending = [];
  }
  assert.deepEqual(pending, [], `python-results.md: keys without a type in ${cell}`);
  return out;
}

/** The table of one section (`## systeminfo`, `## firewalld`) as action → key specs. */
export function parseSection(md: string, section: string): Map<string, KeySpec[]> {
  const body = md.split(/^## /m).find((s) => s.startsWith(`${section}\n`));
  assert.ok(body, `python-results.md has no section ${section}`);
  const cells = new Map<string, string>();
  for (const line of body.split('\n')) {
    const m = /^\| `([a-z_]+)` \| (.*) \|$/.exec(line);
    if (m) cells.set(m[1]!, m[2]!);
  }
  // A row may refer to one further down (get_info's `uptime_*` as `get_uptime`).
  const row = (action: string): KeySpec[] | undefined => {
    const cell = cells.get(action);
    return cell === undefined ? undefined : parseCell(cell, row);
  };
  return new Map([...cells.keys()].map((a) => [a, row(a)!]));
}

/** List element types where the Python module built something other than strings. */
const ELEMENTS: Record<string, (v: unknown) => boolean> = {
  'direct_get_all_rules.rules': (v) => typeof v === 'object' && v !== null, // dicts of ipv, table, chain, priority, args
  'lockdown_list_uids.uids': (v) => Number.isInteger(v), // int() of each line
};

/** The parameter behind a `(the parameter)` key when the Python module named it differently. */
const PARAM_OF: Record<string, string> = { 'set_log_denied.log_denied': 'value' };

function typeOk(t: string, v: unknown, where: string, params: Data): boolean {
  switch (t) {
    case 'str':
      return typeof v === 'string';
    case 'bool':
      return typeof v === 'boolean';
    case 'int':
      return Number.isInteger(v);
    case 'null':
      return v === null;
    case 'object':
      return typeof v === 'object' && v !== null && !Array.isArray(v);
    case 'list':
      return Array.isArray(v) && v.every(ELEMENTS[where] ?? ((x) => typeof x === 'string'));
    case 'param': {
      const p = params[PARAM_OF[where] ?? where.split('.')[1]!];
      return JSON.stringify(v) === JSON.stringify(p ?? null);
    }
    default:
      return false;
  }
}

/** What is wrong with `data` against the specs: one line per missing or mistyped key. */
export function check(action: string, specs: KeySpec[], data: unknown, params: Data): string[] {
  if (typeof data !== 'object' || data === null) return [`${action}: data is ${JSON.stringify(data)}`];
  const d = data as Data;
  const bad: string[] = [];
  for (const s of specs) {
    if (!(s.key in d)) {
      if (!s.optional) bad.push(`${action}: key "${s.key}" missing`);
      continue;
    }
    const where = `${action}.${s.key}`;
    if (!s.types.some((t) => typeOk(t, d[s.key], where, params))) {
      bad.push(`${where}: expected ${s.types.join(' or ')}, got ${JSON.stringify(d[s.key]).slice(0, 200)}`);
    }
  }
  return bad;
}

const MD = readFileSync(path.join(ROOT, 'docs/python-results.md'), 'utf8');
const FIREWALLD = parseSection(MD, 'firewalld');
const SYSTEMINFO = parseSection(MD, 'systeminfo');

const pt = { ipv: 'ipv4', args: ['-t', 'filter', '-I', 'INPUT', '-s', '192.0.2.2', '-m', 'comment', '--comment', 'tsx py', '-j', 'ACCEPT'] };
const chain = { ipv: 'ipv4', table: 'filter', chain: 'tsxpy_chain' };
const rule = { ...chain, priority: 0, args: ['-s', '192.0.2.1', '-j', 'ACCEPT'] };
const pol = { policy: 'tsxpypol', permanent: true };

/**
 * Every firewalld action of the table, in an order where each succeeds and the reads see
 * something (a zone with interfaces, sources, rules; a passthrough; a direct rule).
 */
const CALLS: Array<[string, Data]> = [
  ['get_status', {}],
  ['get_version', {}],
  ['list_zones', {}],
  ['get_default_zone', {}],
  ['set_default_zone', { zone: 'public' }],
  ['list_services', {}],
  ['list_icmptypes', {}],
  ['new_zone', { zone: 'tsxpy', permanent: true }],
  ['get_zone_of_interface', { interface: 'tsxpy0' }],
  ['add_interface', { zone: 'public', interface: 'tsxpy0' }],
  ['get_zone_of_interface', { interface: 'tsxpy0' }],
  ['change_interface', { zone: 'internal', interface: 'tsxpy0' }],
  ['list_interfaces', { zone: 'internal' }],
  ['add_source', { zone: 'public', source: '192.0.2.0/24' }],
  ['get_zone_of_source', { source: '192.0.2.0/24' }],
  ['change_source', { zone: 'internal', source: '192.0.2.0/24' }],
  ['list_sources', { zone: 'internal' }],
  ['add_service', { zone: 'internal', service: 'http' }],
  ['add_port', { zone: 'internal', port: '8081/tcp' }],
  ['add_rich_rule', { zone: 'internal', rule: 'rule priority="5" family="ipv4" source address="198.51.100.0/24" accept' }],
  ['add_rich_rule', { zone: 'internal', rule: 'rule family="ipv4" source address="198.51.100.9" drop' }],
  ['add_protocol', { zone: 'internal', protocol: 'gre' }],
  ['add_source_port', { zone: 'internal', port: '5000/udp' }],
  ['add_icmp_block', { zone: 'internal', icmp_type: 'echo-request' }],
  ['add_icmp_block_inversion', { zone: 'internal' }],
  ['add_masquerade', { zone: 'internal' }],
  ['add_forward_port', { zone: 'internal', port: '8080/tcp', to_port: '80' }],
  ['add_forward_port', { zone: 'internal', port: '8443/tcp', to_port: '443', to_addr: '192.0.2.20' }],
  ['get_zone', { zone: 'internal' }],
  ['get_zone', { zone: 'public' }],
  ['get_active_zones', {}],
  ['remove_forward_port', { zone: 'internal', port: '8080/tcp', to_port: '80' }],
  ['remove_forward_port', { zone: 'internal', port: '8443/tcp', to_port: '443', to_addr: '192.0.2.20' }],
  ['remove_masquerade', { zone: 'internal' }],
  ['remove_icmp_block_inversion', { zone: 'internal' }],
  ['remove_icmp_block', { zone: 'internal', icmp_type: 'echo-request' }],
  ['remove_source_port', { zone: 'internal', port: '5000/udp' }],
  ['remove_protocol', { zone: 'internal', protocol: 'gre' }],
  ['remove_rich_rule', { zone: 'internal', rule: 'rule family="ipv4" source address="198.51.100.9" drop' }],
  ['remove_rich_rule', { zone: 'internal', rule: 'rule priority="5" family="ipv4" source address="198.51.100.0/24" accept' }],
  ['remove_port', { zone: 'internal', port: '8081/tcp' }],
  ['remove_service', { zone: 'internal', service: 'http' }],
  ['remove_source', { zone: 'internal', source: '192.0.2.0/24' }],
  ['remove_interface', { zone: 'internal', interface: 'tsxpy0' }],
  ['delete_zone', { zone: 'tsxpy', permanent: true }],
  ['check_config', {}],
  ['runtime_to_permanent', {}],
  ['reload', {}],
  ['complete_reload', {}],
  ['query_panic', {}],
  ['panic_on', {}],
  ['query_panic', {}],
  ['panic_off', {}],
  ['get_log_denied', {}],
  ['set_log_denied', { value: 'unicast' }],
  ['set_log_denied', { value: 'off' }],
  ['get_service_info', { service: 'ssh' }],
  ['get_service_info', { service: 'mdns' }],
  ['new_service', { service: 'tsxpysvc' }],
  ['service_add_port', { service: 'tsxpysvc', port: '7000', protocol: 'tcp' }],
  ['service_add_protocol', { service: 'tsxpysvc', protocol: 'gre' }],
  ['get_service_info', { service: 'tsxpysvc', permanent: true }],
  ['service_remove_port', { service: 'tsxpysvc', port: '7000', protocol: 'tcp' }],
  ['service_remove_protocol', { service: 'tsxpysvc', protocol: 'gre' }],
  ['delete_service', { service: 'tsxpysvc' }],
  ['new_ipset', { ipset: 'tsxpyset', type: 'hash:ip' }],
  ['list_ipsets', { permanent: true }],
  ['ipset_add_entry', { ipset: 'tsxpyset', entry: '192.0.2.7', permanent: true }],
  ['get_ipset_info', { ipset: 'tsxpyset', permanent: true }],
  ['ipset_remove_entry', { ipset: 'tsxpyset', entry: '192.0.2.7', permanent: true }],
  ['zone_add_source_ipset', { zone: 'internal', ipset: 'tsxpyset', permanent: true }],
  ['zone_remove_source_ipset', { zone: 'internal', ipset: 'tsxpyset', permanent: true }],
  ['delete_ipset', { ipset: 'tsxpyset' }],
  ['list_helpers', {}],
  ['zone_add_helper', { zone: 'internal', helper: 'ftp' }],
  ['zone_list_helpers', { zone: 'internal' }],
  ['zone_remove_helper', { zone: 'internal', helper: 'ftp' }],
  ['policy_add', pol],
  ['list_policies', { permanent: true }],
  ['policy_set_ingress_zone', { ...pol, zone: 'internal' }],
  ['policy_set_egress_zone', { ...pol, zone: 'external' }],
  ['policy_set_target', { ...pol, target: 'ACCEPT' }],
  ['policy_get_info', pol],
  ['policy_delete', pol],
  ['direct_add_chain', chain],
  ['direct_get_all_chains', { ipv: 'ipv4', table: 'filter' }],
  ['direct_add_rule', rule],
  ['direct_get_all_rules', {}],
  ['direct_remove_rule', rule],
  ['direct_remove_chain', chain],
  ['direct_get_passthrough', { ipv: 'ipv4' }],
  ['direct_add_passthrough', pt],
  ['direct_get_passthrough', { ipv: 'ipv4' }],
  ['direct_remove_passthrough', pt],
  ['lockdown_get_status', {}],
  ['lockdown_enable', {}],
  ['lockdown_get_status', {}],
  ['lockdown_disable', {}],
  ['lockdown_add_command', { command: '/usr/bin/tsx-py --flag' }],
  ['lockdown_list_commands', {}],
  ['lockdown_remove_command', { command: '/usr/bin/tsx-py --flag' }],
  ['lockdown_add_context', { context: 'system_u:system_r:tsxpy_t:s0' }],
  ['lockdown_list_contexts', {}],
  ['lockdown_remove_context', { context: 'system_u:system_r:tsxpy_t:s0' }],
  ['lockdown_add_user', { user: 'tsxpyuser' }],
  ['lockdown_list_users', {}],
  ['lockdown_remove_user', { user: 'tsxpyuser' }],
  ['lockdown_add_uid', { uid: 4242 }],
  ['lockdown_list_uids', {}],
  ['lockdown_remove_uid', { uid: 4242 }],
];

/** firewalld's systemd unit actions need systemd as PID 1, which this machine may not have. */
const UNIT_ACTIONS = ['service_status', 'start_service', 'stop_service', 'restart_service'];
const hasSystemd = existsSync('/run/systemd/system');

let fw: FirewalldNetns;
let rootd: RootdHandle;
let stateDir: string;

before(async () => {
  fw = await startFirewalldNetns();
  stateDir = mkdtempSync(path.join(tmpdir(), 'tuxsec-pyres-'));
  // Dangerous actions (panic_on, lockdown, direct rules) only ever reach the namespace's firewalld.
  rootd = await startRootd({
    config: { modules: { firewalld: { allow_dangerous: true, settings: { pending_file: path.join(stateDir, 'pending.json') } } } },
  });
});

after(async () => {
  await rootd?.stop();
  await fw?.stop();
  rmSync(stateDir, { recursive: true, force: true });
});

const stdout = async (args: string[]) => (await fw.cmd(args)).stdout;

test('check reports a missing key, a wrong type and a wrong parameter echo', () => {
  assert.deepEqual(check('get_default_zone', FIREWALLD.get('get_default_zone')!, { zone: 'public' }, {}), ['get_default_zone: key "default_zone" missing']);
  assert.match(check('get_status', FIREWALLD.get('get_status')!, { active: 'yes', status: 'active' }, {}).join(), /get_status\.active: expected bool/);
  assert.match(check('set_log_denied', FIREWALLD.get('set_log_denied')!, { log_denied: 'all', message: 'm' }, { value: 'off' }).join(), /set_log_denied\.log_denied/);
  assert.deepEqual(check('get_info', SYSTEMINFO.get('get_info')!, {}, {}).slice(0, 2), ['get_info: key "hostname" missing', 'get_info: key "fqdn" missing']);
  assert.ok(FIREWALLD.size >= 100 && SYSTEMINFO.size === 6, `parsed ${FIREWALLD.size} firewalld and ${SYSTEMINFO.size} systeminfo actions`);
  const spec = (key: string, types: string[], optional = false) => ({ key, types, optional });
  assert.deepEqual(FIREWALLD.get('add_forward_port'), [
    spec('zone', ['str']),
    spec('port', ['str']),
    spec('to_port', ['param']),
    spec('to_addr', ['param']),
    spec('permanent', ['bool']),
  ]);
  assert.deepEqual(FIREWALLD.get('get_zone_of_source'), [spec('source', ['str']), spec('zone', ['str', 'null'])]);
  assert.deepEqual(FIREWALLD.get('lockdown_list_uids'), [spec('uids', ['list'])]);
  assert.deepEqual(FIREWALLD.get('lockdown_add_uid'), [spec('uid', ['param']), spec('message', ['str'])]);
  assert.deepEqual(
    SYSTEMINFO.get('get_os_info'),
    [...['system', 'release', 'version', 'machine', 'processor', 'distribution', 'distribution_version', 'distribution_codename'].map((k) => spec(k, ['str']))],
  );
  const info = SYSTEMINFO.get('get_info')!;
  assert.deepEqual(info.find((s) => s.key === 'distribution'), spec('distribution', ['object']));
  assert.deepEqual(info.find((s) => s.key === 'python_version'), spec('python_version', ['str'], true));
  assert.deepEqual(info.find((s) => s.key === 'uptime_formatted'), spec('uptime_formatted', ['str']));
});

test('every firewalld action of docs/python-results.md answers every Python key with its type, through rootd', async (t) => {
  const c = rootd.client;
  const bad: string[] = [];
  const ran = new Set<string>();
  for (const [action, params] of CALLS) {
    const specs = FIREWALLD.get(action);
    let data: unknown;
    try {
      data = await c.execute('firewalld', action, params, { timeoutMs: 60_000 });
    } catch (e) {
      bad.push(`${action} ${JSON.stringify(params)} failed: ${(e as Error).message}`);
      continue;
    }
    ran.add(action);
    if (specs) bad.push(...check(action, specs, data, params));
    const d = data as Data;
    // The keys that carry firewall-cmd's text must be that text, for the same firewalld.
    if (action === 'get_zone') assert.equal(d.config, await stdout([`--zone=${String(params.zone)}`, '--list-all']), `get_zone ${String(params.zone)} config`);
    if (action === 'get_active_zones') assert.equal(d.active_zones, await stdout(['--get-active-zones']));
    if (action === 'get_default_zone') assert.equal(d.default_zone, (await stdout(['--get-default-zone'])).trim());
    if (action === 'direct_get_passthrough') {
      const lines = (await stdout(['--direct', '--get-passthroughs', 'ipv4'])).split('\n').filter(Boolean);
      assert.deepEqual(d.passthroughs, lines);
    }
    if (action === 'get_service_info' && params.service === 'ssh') assert.deepEqual(d.ports, ['22/tcp']);
    if (action === 'get_status') assert.deepEqual([d.active, d.status], [true, 'active']);
    if (action === 'query_panic') assert.equal(d.status, (await stdout(['--query-panic'])).trim() === 'yes' ? 'enabled' : 'disabled');
  }
  if (hasSystemd) {
    // Only the read: start/stop/restart would act on the host's firewalld, not the namespace's.
    const data = await c.execute('firewalld', 'service_status', {});
    bad.push(...check('service_status', FIREWALLD.get('service_status')!, data, {}));
    ran.add('service_status');
  } else {
    for (const a of UNIT_ACTIONS) {
      await assert.rejects(c.execute('firewalld', a, {}), (e: { code?: string }) => e.code === 'service-unavailable', a);
    }
    t.diagnostic(`not checked here (systemd is not PID 1): ${UNIT_ACTIONS.join(', ')}`);
  }
  const skipped = new Set(hasSystemd ? UNIT_ACTIONS.slice(1) : UNIT_ACTIONS);
  const notRun = [...FIREWALLD.keys()].filter((a) => !ran.has(a) && !skipped.has(a));
  assert.deepEqual(notRun, [], 'actions of the table the test did not run');
  assert.deepEqual(bad, []);
});

test('every systeminfo action of docs/python-results.md answers every Python key with its type, through rootd', async () => {
  const bad: string[] = [];
  for (const [action, specs] of SYSTEMINFO) {
    const data = (await rootd.client.execute('systeminfo', action, {})) as Data;
    bad.push(...check(action, specs, data, {}));
    if (action === 'get_os_info') {
      const osRelease = readFileSync('/etc/os-release', 'utf8');
      assert.match(osRelease, new RegExp(`^NAME="?${String(data.distribution).replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}"?$`, 'm'), 'distribution is the NAME of os-release');
    }
    if (action === 'get_info') {
      const dist = data.distribution as Data;
      for (const k of ['name', 'version', 'codename']) assert.equal(typeof dist[k], 'string', `get_info.distribution.${k}`);
    }
  }
  assert.deepEqual(bad, []);
});

test('the systemd unit actions add their Python keys to the unit status (a stand-in: systemd cannot run here)', async () => {
  // What service-unit.ts answers, as systemd would fill it; the real answer needs systemd as PID 1.
  const status = { unit: 'firewalld.service', load_state: 'loaded', active_state: 'active', sub_state: 'running', unit_file_state: 'enabled', firewalld_on_bus: true };
  const bad: string[] = [];
  const results: Array<[string, Data]> = [
    ['service_status', status],
    ...['start', 'stop', 'restart'].map((v): [string, Data] => [`${v}_service`, { changed: true, action: `${v} firewalld.service`, job: '/org/freedesktop/systemd1/job/1', ...status }]),
  ];
  for (const [action, data] of results) {
    const res = await withPythonKeys(action, {}, { success: true, data });
    bad.push(...check(action, FIREWALLD.get(action)!, res.data, {}));
  }
  const st = (await withPythonKeys('service_status', {}, { success: true, data: status })).data as Data;
  assert.deepEqual([st.active, st.enabled, st.status], [true, true, 'active']);
  assert.ok(String(st.detailed_status).length > 0, 'detailed_status says something even without systemd');
  assert.deepEqual(bad, []);
});
