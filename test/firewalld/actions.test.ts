// Every firewalld action, in-process through ModuleRegistry, against a real firewalld in a
// network namespace; effects checked with firewall-cmd run inside that namespace.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { FirewalldModule } from '../../src/rootd/modules/firewalld/index.ts';
import { ModuleRegistry } from '../../src/rootd/registry.ts';
import type { ActionContext, Logger } from '../../src/sdk/action.ts';
import { TuxsecError } from '../../src/protocol/errors.ts';
import { startFirewalldNetns, type FirewalldNetns } from '../helpers/firewalld-netns.ts';
import { failure } from '../helpers/failure.ts';
import { waitFor } from '../helpers/procs.ts';

const logs: Array<{ level: string; obj: unknown; msg?: string }> = [];
const log: Logger = {
  debug: () => {},
  info: (obj, msg) => void logs.push({ level: 'info', obj, msg }),
  warn: (obj, msg) => void logs.push({ level: 'warn', obj, msg }),
  error: (obj, msg) => void logs.push({ level: 'error', obj, msg }),
};
const ctx = (): ActionContext => ({ peer: { uid: 0, gid: 0, pid: process.pid }, signal: new AbortController().signal, log, requestId: 't', progress: () => {} });

let fw: FirewalldNetns;
let mod: FirewalldModule;
let reg: ModuleRegistry;
let safeMod: FirewalldModule;
let safeReg: ModuleRegistry;
const seen = new Set<string>();

// eslint-disable-next-line @typescript-eslint/no-explicit-any
async function ex(action: string, params: Record<string, unknown> = {}): Promise<any> {
  seen.add(action);
  return reg.execute('firewalld', action, params, ctx());
}

async function code(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof TuxsecError, `expected TuxsecError, got ${String(e)}`);
    return e.code;
  }
  assert.fail('expected an error');
}


/** firewall-cmd inside the namespace; stdout trimmed. */
async function cmd(...args: string[]): Promise<string> {
  const r = await fw.cmd(args);
  return r.stdout.trim();
}

async function yes(...args: string[]): Promise<boolean> {
  const out = await cmd(...args);
  assert.ok(out === 'yes' || out === 'no', `firewall-cmd ${args.join(' ')} said ${JSON.stringify(out)}`);
  return out === 'yes';
}

let stateDir: string;

before(async () => {
  fw = await startFirewalldNetns();
  stateDir = mkdtempSync(path.join(tmpdir(), 'tuxsec-fwstate-'));
  mod = new FirewalldModule();
  reg = new ModuleRegistry(log, { check() {} });
  reg.register(mod, { enabled: true, allow_dangerous: true, settings: { pending_file: path.join(stateDir, 'a.json') } });
  safeMod = new FirewalldModule();
  safeReg = new ModuleRegistry(log, { check() {} });
  safeReg.register(safeMod, { enabled: true, allow_dangerous: false, settings: { pending_file: path.join(stateDir, 'b.json') } });
  await reg.initializeAll((_n, settings) => ({ settings, log }));
  await safeReg.initializeAll((_n, settings) => ({ settings, log }));
});

after(async () => {
  await mod?.shutdown();
  await safeMod?.shutdown();
  await fw?.stop();
  rmSync(stateDir, { recursive: true, force: true });
});

describe('firewalld queries', () => {
  test('get_status reports running and the version', async () => {
    const s = await ex('get_status');
    assert.equal(s.running, true);
    assert.equal(s.state, 'RUNNING');
    const v = await ex('get_version');
    assert.equal(v.version, await cmd('--version'));
  });

  test('list_zones, get_default_zone, list_services, list_icmptypes, list_helpers match firewall-cmd', async () => {
    assert.deepEqual((await ex('list_zones')).zones.sort(), (await cmd('--get-zones')).split(/\s+/).sort());
    assert.deepEqual((await ex('list_zones', { permanent: true })).zones.sort(), (await cmd('--permanent', '--get-zones')).split(/\s+/).sort());
    assert.equal((await ex('get_default_zone')).zone, await cmd('--get-default-zone'));
    assert.deepEqual((await ex('list_services')).services.sort(), (await cmd('--get-services')).split(/\s+/).sort());
    assert.deepEqual((await ex('list_icmptypes')).icmptypes.sort(), (await cmd('--get-icmptypes')).split(/\s+/).sort());
    assert.deepEqual((await ex('list_helpers')).helpers.sort(), (await cmd('--get-helpers')).split(/\s+/).sort());
    assert.deepEqual((await ex('list_policies')).policies.sort(), (await cmd('--get-policies')).split(/\s+/).sort());
  });

  test('get_zone returns the zone as an object', async () => {
    const z = await ex('get_zone', { zone: 'public' });
    assert.equal(z.name, 'public');
    assert.equal(z.target, 'default');
    assert.deepEqual(z.services.sort(), (await cmd('--zone=public', '--list-services')).split(/\s+/).sort());
    for (const k of ['ports', 'sources', 'interfaces', 'rich_rules', 'forward_ports', 'icmp_blocks', 'protocols', 'source_ports']) assert.ok(Array.isArray(z[k]), k);
    assert.equal(typeof z.masquerade, 'boolean');
    const zp = await ex('get_zone', { zone: 'public', permanent: true });
    assert.equal(zp.permanent, true);
    assert.equal(await code(ex('get_zone', { zone: 'nosuchzone' })), 'not-found');
  });

  test('check_config, query_panic, get_log_denied, get_active_zones answer', async () => {
    assert.deepEqual(await ex('check_config'), { valid: true, message: 'success' });
    assert.deepEqual(await ex('query_panic'), { enabled: false, panic_mode: false, status: 'disabled' });
    assert.equal((await ex('get_log_denied')).value, await cmd('--get-log-denied'));
    assert.equal(typeof (await ex('get_active_zones')).zones, 'object');
  });
});

describe('firewalld zone elements', () => {
  // [add action, remove action, params, firewall-cmd query args]
  const cases: Array<[string, string, Record<string, unknown>, string[]]> = [
    ['add_service', 'remove_service', { service: 'http' }, ['--query-service=http']],
    ['add_port', 'remove_port', { port: '8080-8090/tcp' }, ['--query-port=8080-8090/tcp']],
    ['add_protocol', 'remove_protocol', { protocol: 'gre' }, ['--query-protocol=gre']],
    ['add_source_port', 'remove_source_port', { port: '5353/udp' }, ['--query-source-port=5353/udp']],
    ['add_icmp_block', 'remove_icmp_block', { icmp_type: 'echo-request' }, ['--query-icmp-block=echo-request']],
    ['add_icmp_block_inversion', 'remove_icmp_block_inversion', {}, ['--query-icmp-block-inversion']],
    ['add_masquerade', 'remove_masquerade', {}, ['--query-masquerade']],
    ['add_forward_port', 'remove_forward_port', { port: '80/tcp', to_port: '8080', to_addr: '10.0.0.5' }, ['--query-forward-port=port=80:proto=tcp:toport=8080:toaddr=10.0.0.5']],
    [
      'add_rich_rule',
      'remove_rich_rule',
      { rule: 'rule family="ipv4" source address="10.0.0.0/8" service name="ssh" accept' },
      ['--query-rich-rule=rule family="ipv4" source address="10.0.0.0/8" service name="ssh" accept'],
    ],
    ['add_interface', 'remove_interface', { interface: 'tsx0' }, ['--query-interface=tsx0']],
    ['add_source', 'remove_source', { source: '192.0.2.0/24' }, ['--query-source=192.0.2.0/24']],
  ];
  for (const [add, remove, params, query] of cases) {
    for (const permanent of [false, true]) {
      test(`${add}/${remove} ${permanent ? 'permanent' : 'runtime'} apply, are idempotent and show in firewall-cmd`, async () => {
        const perm = permanent ? ['--permanent'] : [];
        const q = ['--zone=internal', ...perm, ...query];
        const p = { zone: 'internal', ...params, ...(permanent ? { permanent: true } : {}) };
        assert.equal(await yes(...q), false);
        const dry = await ex(add, { ...p, dry_run: true });
        assert.equal(dry.changed, true);
        assert.equal(dry.dry_run, true);
        assert.equal(await yes(...q), false, 'dry run changed nothing');
        assert.equal((await ex(add, p)).changed, true);
        assert.equal(await yes(...q), true);
        assert.equal((await ex(add, p)).changed, false);
        // The other configuration is untouched.
        if (!['add_interface', 'add_source'].includes(add) || permanent) {
          const other = permanent ? q.filter((a) => a !== '--permanent') : ['--zone=internal', '--permanent', ...query];
          assert.equal(await yes(...other), false, 'only the chosen configuration changed');
        }
        assert.equal((await ex(remove, p)).changed, true);
        assert.equal(await yes(...q), false);
        assert.equal((await ex(remove, p)).changed, false);
      });
    }
  }

  test('list_rich_rules, list_interfaces, list_sources read back what was added', async () => {
    await ex('add_interface', { zone: 'work', interface: 'tsx1' });
    await ex('add_source', { zone: 'work', source: '198.51.100.7' });
    await ex('add_rich_rule', { zone: 'work', rule: 'rule service name="ftp" drop' });
    assert.deepEqual((await ex('list_interfaces', { zone: 'work' })).interfaces, ['tsx1']);
    assert.deepEqual((await ex('list_sources', { zone: 'work' })).sources, ['198.51.100.7']);
    assert.deepEqual((await ex('list_rich_rules', { zone: 'work' })).rich_rules, ['rule service name="ftp" drop']);
    assert.equal((await ex('get_zone_of_interface', { interface: 'tsx1' })).zone, 'work');
    assert.equal((await ex('get_zone_of_source', { source: '198.51.100.7' })).zone, 'work');
    assert.equal((await ex('get_zone_of_interface', { interface: 'nonesuch' })).zone, null);
    const active = (await ex('get_active_zones')).zones;
    assert.deepEqual(active.work, { interfaces: ['tsx1'], sources: ['198.51.100.7'] });
  });

  test('change_interface and change_source move the binding between zones', async () => {
    assert.equal((await ex('change_interface', { zone: 'home', interface: 'tsx1' })).changed, true);
    assert.equal(await cmd('--get-zone-of-interface=tsx1'), 'home');
    assert.equal((await ex('change_interface', { zone: 'home', interface: 'tsx1' })).changed, false);
    assert.equal((await ex('change_source', { zone: 'home', source: '198.51.100.7' })).changed, true);
    assert.equal(await cmd('--get-zone-of-source=198.51.100.7'), 'home');
    // Permanent: the source moves from no zone to dmz, then to home.
    assert.equal((await ex('change_source', { zone: 'dmz', source: '203.0.113.9', permanent: true })).changed, true);
    assert.equal((await ex('change_source', { zone: 'home', source: '203.0.113.9', permanent: true })).changed, true);
    assert.equal(await cmd('--permanent', '--get-zone-of-source=203.0.113.9'), 'home');
    assert.equal(await yes('--permanent', '--zone=dmz', '--query-source=203.0.113.9'), false);
    await ex('remove_source', { zone: 'home', source: '203.0.113.9', permanent: true });
    await ex('remove_interface', { zone: 'home', interface: 'tsx1' });
    await ex('remove_source', { zone: 'home', source: '198.51.100.7' });
    await ex('remove_rich_rule', { zone: 'work', rule: 'rule service name="ftp" drop' });
  });

  test('set_default_zone changes the default zone idempotently', async () => {
    assert.equal((await ex('set_default_zone', { zone: 'work' })).changed, true);
    assert.equal(await cmd('--get-default-zone'), 'work');
    assert.equal((await ex('set_default_zone', { zone: 'work' })).changed, false);
    assert.equal((await ex('set_default_zone', { zone: 'public' })).changed, true);
    assert.equal(await code(ex('set_default_zone', { zone: 'nosuchzone' })), 'not-found');
  });

  test('add_service of an unknown service answers not-found naming it', async () => {
    const e = await failure(reg.execute('firewalld', 'add_service', { zone: 'public', service: 'htp' }, ctx()));
    assert.equal(e.code, 'not-found');
    assert.match(e.message, /cannot add service "htp" to zone "public"/);
  });
});

describe('firewalld zones, services, helpers', () => {
  test('new_zone and delete_zone create and remove a permanent zone', async () => {
    assert.equal((await ex('new_zone', { zone: 'tsxzone' })).changed, true);
    assert.equal((await ex('new_zone', { zone: 'tsxzone' })).changed, false);
    assert.ok((await cmd('--permanent', '--get-zones')).split(/\s+/).includes('tsxzone'));
    assert.equal((await ex('delete_zone', { zone: 'tsxzone' })).changed, true);
    assert.equal((await ex('delete_zone', { zone: 'tsxzone' })).changed, false);
    assert.ok(!(await cmd('--permanent', '--get-zones')).split(/\s+/).includes('tsxzone'));
  });

  test('new_service, service_add_port/protocol, get_service_info, delete_service', async () => {
    assert.equal((await ex('new_service', { service: 'tsxsvc' })).changed, true);
    assert.equal((await ex('new_service', { service: 'tsxsvc' })).changed, false);
    assert.equal((await ex('service_add_port', { service: 'tsxsvc', port: '7000-7010', protocol: 'tcp' })).changed, true);
    assert.equal((await ex('service_add_port', { service: 'tsxsvc', port: '7000-7010', protocol: 'tcp' })).changed, false);
    assert.equal((await ex('service_add_protocol', { service: 'tsxsvc', protocol: 'gre' })).changed, true);
    assert.equal(await cmd('--permanent', '--service=tsxsvc', '--get-ports'), '7000-7010/tcp');
    const info = await ex('get_service_info', { service: 'tsxsvc', permanent: true });
    assert.deepEqual(info.port_protocols, [{ port: '7000-7010', protocol: 'tcp' }]);
    assert.deepEqual(info.ports, ['7000-7010/tcp']);
    assert.deepEqual(info.protocols, ['gre']);
    const ssh = await ex('get_service_info', { service: 'ssh' });
    assert.deepEqual(ssh.port_protocols, [{ port: '22', protocol: 'tcp' }]);
    assert.equal((await ex('service_remove_port', { service: 'tsxsvc', port: '7000-7010', protocol: 'tcp' })).changed, true);
    assert.equal((await ex('service_remove_protocol', { service: 'tsxsvc', protocol: 'gre' })).changed, true);
    assert.equal((await ex('service_remove_protocol', { service: 'tsxsvc', protocol: 'gre' })).changed, false);
    assert.equal(await cmd('--permanent', '--service=tsxsvc', '--get-ports'), '');
    assert.equal((await ex('delete_service', { service: 'tsxsvc' })).changed, true);
    assert.equal((await ex('delete_service', { service: 'tsxsvc' })).changed, false);
  });

  test('zone_add_helper enables the service carrying the helper; zone_list_helpers and zone_remove_helper follow', async () => {
    const r = await ex('zone_add_helper', { zone: 'dmz', helper: 'ftp' });
    assert.equal(r.changed, true);
    assert.equal(r.service, 'ftp');
    assert.equal(await yes('--zone=dmz', '--query-service=ftp'), true);
    assert.deepEqual((await ex('zone_list_helpers', { zone: 'dmz' })).helpers, ['ftp']);
    assert.equal((await ex('zone_add_helper', { zone: 'dmz', helper: 'ftp' })).changed, false);
    assert.equal((await ex('zone_remove_helper', { zone: 'dmz', helper: 'ftp' })).changed, true);
    assert.equal(await yes('--zone=dmz', '--query-service=ftp'), false);
    assert.equal((await ex('zone_remove_helper', { zone: 'dmz', helper: 'ftp' })).changed, false);
  });
});

describe('firewalld ipsets and policies', () => {
  test('new_ipset, entries (runtime and permanent), zone_add_source_ipset, delete_ipset', async () => {
    assert.equal((await ex('new_ipset', { ipset: 'tsxset', type: 'hash:net' })).changed, true);
    assert.equal((await ex('new_ipset', { ipset: 'tsxset', type: 'hash:net' })).changed, false);
    assert.equal((await ex('ipset_add_entry', { ipset: 'tsxset', entry: '10.9.0.0/16', permanent: true })).changed, true);
    assert.equal((await ex('reload')).changed, true);
    assert.deepEqual((await ex('list_ipsets')).ipsets, ['tsxset']);
    assert.equal((await ex('ipset_add_entry', { ipset: 'tsxset', entry: '10.8.0.0/16' })).changed, true);
    assert.equal((await ex('ipset_add_entry', { ipset: 'tsxset', entry: '10.8.0.0/16' })).changed, false);
    assert.equal(await yes('--ipset=tsxset', '--query-entry=10.8.0.0/16'), true);
    const info = await ex('get_ipset_info', { ipset: 'tsxset' });
    assert.equal(info.type, 'hash:net');
    assert.deepEqual(info.entries.sort(), ['10.8.0.0/16', '10.9.0.0/16']);
    assert.equal((await ex('zone_add_source_ipset', { zone: 'trusted', ipset: 'tsxset' })).changed, true);
    assert.equal(await yes('--zone=trusted', '--query-source=ipset:tsxset'), true);
    assert.equal((await ex('zone_remove_source_ipset', { zone: 'trusted', ipset: 'tsxset' })).changed, true);
    assert.equal((await ex('ipset_remove_entry', { ipset: 'tsxset', entry: '10.8.0.0/16' })).changed, true);
    assert.equal((await ex('ipset_remove_entry', { ipset: 'tsxset', entry: '10.8.0.0/16' })).changed, false);
    assert.equal((await ex('delete_ipset', { ipset: 'tsxset' })).changed, true);
    assert.equal((await ex('delete_ipset', { ipset: 'tsxset' })).changed, false);
    await ex('reload');
    assert.equal(await code(ex('ipset_add_entry', { ipset: 'tsxset', entry: '10.8.0.0/16' })), 'not-found');
  });

  test('policy_add, ingress/egress zones, target, policy_get_info, policy_delete', async () => {
    assert.equal((await ex('policy_add', { policy: 'tsxpol' })).changed, true);
    assert.equal((await ex('policy_add', { policy: 'tsxpol' })).changed, false);
    assert.equal((await ex('policy_set_ingress_zone', { policy: 'tsxpol', zone: 'internal', permanent: true })).changed, true);
    assert.equal((await ex('policy_set_egress_zone', { policy: 'tsxpol', zone: 'external', permanent: true })).changed, true);
    assert.equal((await ex('policy_set_target', { policy: 'tsxpol', target: 'ACCEPT', permanent: true })).changed, true);
    assert.equal((await ex('policy_set_target', { policy: 'tsxpol', target: 'ACCEPT', permanent: true })).changed, false);
    assert.equal(await code(ex('policy_set_target', { policy: 'tsxpol', target: 'DROP' })), 'invalid-params');
    const info = await ex('policy_get_info', { policy: 'tsxpol', permanent: true });
    assert.deepEqual([info.ingress_zones, info.egress_zones, info.target], [['internal'], ['external'], 'ACCEPT']);
    assert.match(await cmd('--permanent', '--info-policy=tsxpol'), /ingress-zones: internal/);
    await ex('reload');
    // Runtime: move the egress zone.
    assert.equal((await ex('policy_set_egress_zone', { policy: 'tsxpol', zone: 'dmz' })).changed, true);
    assert.deepEqual((await ex('policy_get_info', { policy: 'tsxpol' })).egress_zones, ['dmz']);
    assert.equal((await ex('policy_delete', { policy: 'tsxpol' })).changed, true);
    assert.equal((await ex('policy_delete', { policy: 'tsxpol' })).changed, false);
    await ex('reload');
    assert.ok(!(await cmd('--get-policies')).split(/\s+/).includes('tsxpol'));
  });
});

describe('firewalld dangerous class', () => {
  const dangerous = [
    'direct_get_all_chains',
    'direct_add_chain',
    'direct_remove_chain',
    'direct_get_all_rules',
    'direct_add_rule',
    'direct_remove_rule',
    'direct_get_passthrough',
    'direct_add_passthrough',
    'panic_on',
    'lockdown_enable',
    'lockdown_add_uid',
    'stop_service',
  ];
  test('direct_*, passthrough, lockdown_*, panic_on and stop_service are refused unless allow_dangerous', async () => {
    for (const a of dangerous) {
      const e = await failure(safeReg.execute('firewalld', a, {}, ctx()));
      assert.equal(e.code, 'permission-denied', a);
      assert.match(e.message, /modules\.firewalld\.allow_dangerous/);
    }
    const caps = mod.getCapabilities();
    for (const c of caps) if (/^(direct_|lockdown_)|passthrough|^panic_on$|^stop_service$/.test(c.name)) assert.equal(c.access, 'dangerous', c.name);
    assert.equal(await yes('--query-panic'), false);
  });

  test('direct chains, rules and passthroughs work when allowed', async () => {
    const chain = { ipv: 'ipv4', table: 'filter', chain: 'tsx_chain' };
    assert.equal((await ex('direct_add_chain', chain)).changed, true);
    assert.equal((await ex('direct_add_chain', chain)).changed, false);
    assert.deepEqual((await ex('direct_get_all_chains', { ipv: 'ipv4', table: 'filter' })).chains, ['tsx_chain']);
    const rule = { ...chain, priority: 0, args: ['-s', '192.0.2.1', '-j', 'ACCEPT'] };
    assert.equal((await ex('direct_add_rule', rule)).changed, true);
    assert.equal((await ex('direct_add_rule', rule)).changed, false);
    assert.match(await cmd('--direct', '--get-all-rules'), /ipv4 filter tsx_chain 0 -s 192.0.2.1 -j ACCEPT/);
    assert.deepEqual((await ex('direct_get_all_rules')).rules, [{ ...rule }]);
    assert.equal((await ex('direct_remove_rule', rule)).changed, true);
    assert.equal((await ex('direct_remove_chain', chain)).changed, true);
    const pt = { ipv: 'ipv4', args: ['-t', 'filter', '-I', 'INPUT', '-s', '192.0.2.2', '-j', 'ACCEPT'] };
    assert.equal((await ex('direct_add_passthrough', pt)).changed, true);
    assert.deepEqual((await ex('direct_get_passthrough', { ipv: 'ipv4' })).passthrough_args, [pt.args]);
    assert.equal((await ex('direct_remove_passthrough', pt)).changed, true);
    assert.deepEqual((await ex('direct_get_passthrough', { ipv: 'ipv4' })).passthroughs, []);
  });

  test('lockdown status, enable/disable and whitelist edits work when allowed', async () => {
    assert.equal((await ex('lockdown_get_status')).enabled, false);
    assert.equal((await ex('lockdown_enable')).changed, true);
    assert.equal(await yes('--query-lockdown'), true);
    assert.equal((await ex('lockdown_enable')).changed, false);
    assert.equal((await ex('lockdown_disable')).changed, true);
    assert.equal(await yes('--query-lockdown'), false);
    const kinds: Array<[string, string, unknown]> = [
      ['command', 'commands', '/usr/bin/tsx-test --flag'],
      ['context', 'contexts', 'system_u:system_r:tsx_t:s0'],
      ['user', 'users', 'tsxuser'],
      ['uid', 'uids', 4242],
    ];
    for (const [k, plural, v] of kinds) {
      assert.equal((await ex(`lockdown_add_${k}`, { [k]: v })).changed, true, k);
      assert.equal((await ex(`lockdown_add_${k}`, { [k]: v })).changed, false, k);
      assert.ok((await ex(`lockdown_list_${plural}`))[plural].includes(v), k);
      assert.equal((await ex(`lockdown_remove_${k}`, { [k]: v })).changed, true, k);
      assert.equal((await ex(`lockdown_remove_${k}`, { [k]: v })).changed, false, k);
    }
  });

  test('panic_on with confirm_timeout is rolled back when not confirmed; panic_off turns it off', async () => {
    // 15 s: firewall-cmd (python) alone can take seconds to start on a loaded machine, and the
    // query must land before the deadline.
    const r = await ex('panic_on', { confirm_timeout: 15 });
    assert.equal(r.changed, true);
    assert.match(r.change_id, /^[0-9a-f]{16}$/);
    assert.equal(await yes('--query-panic'), true);
    await waitFor(async () => !(await yes('--query-panic')), 'panic mode rolled back after its confirm_timeout', 40_000);
    assert.equal((await ex('panic_on')).changed, true);
    assert.equal((await ex('panic_off')).changed, true);
    assert.equal((await ex('panic_off')).changed, false);
    assert.equal(await yes('--query-panic'), false);
  });
});

describe('firewalld lockout safety', () => {
  test('a write with confirm_timeout is rolled back (runtime and permanent) unless confirmed, and audited', async () => {
    // 15 s: the checks below start firewall-cmd (python) twice, seconds each on a loaded machine,
    // and must all land before the deadline.
    const a = await ex('add_port', { zone: 'public', port: '2222/tcp', confirm_timeout: 15 });
    const b = await ex('add_service', { zone: 'dmz', service: 'https', permanent: true, confirm_timeout: 15 });
    assert.equal(await yes('--zone=public', '--query-port=2222/tcp'), true);
    assert.equal(await yes('--permanent', '--zone=dmz', '--query-service=https'), true);
    const saved = JSON.parse(readFileSync(path.join(stateDir, 'a.json'), 'utf8'));
    assert.deepEqual(saved.pending.map((p: { id: string }) => p.id).sort(), [a.change_id, b.change_id].sort(), 'pending changes saved for a crash');
    const st = await ex('get_pending_changes');
    assert.deepEqual(st.pending.map((p: { change_id: string }) => p.change_id).sort(), [a.change_id, b.change_id].sort());
    // The zone is locked while its change is pending.
    assert.equal(await code(ex('add_port', { zone: 'public', port: '2223/tcp' })), 'conflict');
    // Recorded in the history once the rollback is done (it leaves pending as it starts).
    const done = async (): Promise<boolean> => {
      const ids = new Set((await ex('get_pending_changes')).history.map((x: { change_id: string }) => x.change_id));
      return ids.has(a.change_id) && ids.has(b.change_id);
    };
    await waitFor(done, 'both changes rolled back after their confirm_timeout', 40_000);
    assert.equal(await yes('--zone=public', '--query-port=2222/tcp'), false);
    assert.equal(await yes('--permanent', '--zone=dmz', '--query-service=https'), false);
    const hist = (await ex('get_pending_changes')).history;
    for (const id of [a.change_id, b.change_id]) {
      const h = hist.find((x: { change_id: string }) => x.change_id === id);
      assert.equal(h.outcome, 'rolled-back');
      assert.equal(h.reason, 'confirmation timed out');
    }
    assert.equal(existsSync(path.join(stateDir, 'a.json')), false, 'nothing pending any more');
    assert.ok(logs.some((l) => l.msg === 'firewalld change rolled back' && (l.obj as { change_id: string }).change_id === a.change_id));
  });

  test('confirm keeps a change; rollback undoes one at once', async () => {
    const a = await ex('add_port', { zone: 'public', port: '2224/tcp', confirm_timeout: 5 });
    assert.equal((await ex('confirm', { change_id: a.change_id })).outcome, 'confirmed');
    await new Promise((res) => setTimeout(res, 5500));
    assert.equal(await yes('--zone=public', '--query-port=2224/tcp'), true);
    assert.equal(await code(ex('confirm', { change_id: a.change_id })), 'not-found');
    await ex('remove_port', { zone: 'public', port: '2224/tcp' });
    const b = await ex('set_log_denied', { value: 'all', confirm_timeout: 60 });
    assert.equal(await cmd('--get-log-denied'), 'all');
    assert.equal((await ex('rollback', { change_id: b.change_id })).outcome, 'rolled-back');
    assert.equal(await cmd('--get-log-denied'), 'off');
    const c = await ex('set_default_zone', { zone: 'home', confirm_timeout: 60 });
    await ex('rollback', { change_id: c.change_id });
    assert.equal(await cmd('--get-default-zone'), 'public');
    // A created zone is removed again; a moved interface returns.
    await ex('add_interface', { zone: 'work', interface: 'tsx2' });
    const d = await ex('change_interface', { zone: 'home', interface: 'tsx2', confirm_timeout: 60 });
    assert.equal(await cmd('--get-zone-of-interface=tsx2'), 'home');
    await ex('rollback', { change_id: d.change_id });
    assert.equal(await cmd('--get-zone-of-interface=tsx2'), 'work');
    await ex('remove_interface', { zone: 'work', interface: 'tsx2' });
    const e = await ex('new_zone', { zone: 'tsxtmp', confirm_timeout: 60 });
    await ex('rollback', { change_id: e.change_id });
    assert.ok(!(await cmd('--permanent', '--get-zones')).split(/\s+/).includes('tsxtmp'));
  });

  test('rollback restores policies, service definitions and ipsets, runtime and permanent', async () => {
    await ex('policy_add', { policy: 'tsxrb' });
    await ex('policy_set_ingress_zone', { policy: 'tsxrb', zone: 'internal', permanent: true });
    await ex('policy_set_egress_zone', { policy: 'tsxrb', zone: 'external', permanent: true });
    await ex('new_ipset', { ipset: 'tsxrb', type: 'hash:ip' });
    await ex('reload');
    const p1 = await ex('policy_set_egress_zone', { policy: 'tsxrb', zone: 'dmz', confirm_timeout: 60 });
    assert.deepEqual((await ex('policy_get_info', { policy: 'tsxrb' })).egress_zones, ['dmz']);
    await ex('rollback', { change_id: p1.change_id });
    const p2 = await ex('policy_set_target', { policy: 'tsxrb', target: 'DROP', permanent: true, confirm_timeout: 60 });
    assert.equal((await ex('policy_get_info', { policy: 'tsxrb', permanent: true })).target, 'DROP');
    await ex('rollback', { change_id: p2.change_id });
    assert.deepEqual((await ex('policy_get_info', { policy: 'tsxrb' })).egress_zones, ['external']);
    assert.equal((await ex('policy_get_info', { policy: 'tsxrb', permanent: true })).target, 'CONTINUE');
    const i1 = await ex('ipset_add_entry', { ipset: 'tsxrb', entry: '192.0.2.44', confirm_timeout: 60 });
    assert.equal(await yes('--ipset=tsxrb', '--query-entry=192.0.2.44'), true);
    await ex('rollback', { change_id: i1.change_id });
    assert.equal(await yes('--ipset=tsxrb', '--query-entry=192.0.2.44'), false);
    const s1 = await ex('new_service', { service: 'tsxrb', confirm_timeout: 60 });
    await ex('rollback', { change_id: s1.change_id });
    assert.ok(!(await cmd('--permanent', '--get-services')).split(/\s+/).includes('tsxrb'));
    await ex('new_service', { service: 'tsxrb' });
    await ex('service_add_port', { service: 'tsxrb', port: '9000', protocol: 'udp' });
    const s2 = await ex('delete_service', { service: 'tsxrb', confirm_timeout: 60 });
    await ex('rollback', { change_id: s2.change_id });
    assert.deepEqual((await ex('get_service_info', { service: 'tsxrb', permanent: true })).port_protocols, [{ port: '9000', protocol: 'udp' }], 'deleted service recreated');
    await ex('delete_service', { service: 'tsxrb' });
    await ex('delete_ipset', { ipset: 'tsxrb' });
    await ex('policy_delete', { policy: 'tsxrb' });
    await ex('reload');
  });

  test('concurrent confirm-writes to one zone: one is applied, the other answers conflict', async () => {
    const rs = await Promise.allSettled([
      ex('add_port', { zone: 'home', port: '6001/tcp', confirm_timeout: 60 }),
      ex('add_port', { zone: 'home', port: '6002/tcp', confirm_timeout: 60 }),
    ]);
    const ok = rs.filter((r) => r.status === 'fulfilled');
    const bad = rs.filter((r) => r.status === 'rejected');
    assert.equal(ok.length, 1);
    assert.equal((bad[0] as PromiseRejectedResult).reason.code, 'conflict');
    await ex('rollback', { change_id: (ok[0] as PromiseFulfilledResult<{ change_id: string }>).value.change_id });
    assert.equal(await cmd('--zone=home', '--list-ports'), '');
  });

  test('set_log_denied sets the value and dry_run reports without changing', async () => {
    const dry = await ex('set_log_denied', { value: 'unicast', dry_run: true });
    assert.deepEqual([dry.changed, dry.dry_run], [true, true]);
    assert.equal(await cmd('--get-log-denied'), 'off');
    assert.equal((await ex('set_log_denied', { value: 'unicast' })).changed, true);
    assert.equal((await ex('get_log_denied')).value, 'unicast');
    assert.equal((await ex('set_log_denied', { value: 'off' })).changed, true);
  });
});

describe('firewalld drift and reloads', () => {
  test('get_state_hash changes when the firewall is changed outside TuxSec, and signals are counted', async () => {
    const h1 = await ex('get_state_hash');
    assert.match(h1.hash, /^[0-9a-f]{64}$/);
    assert.equal((await ex('get_state_hash')).hash, h1.hash, 'stable');
    const before = (await ex('get_signal_stats')).total;
    await cmd('--zone=public', '--add-port=4444/udp');
    const h2 = await ex('get_state_hash');
    assert.notEqual(h2.hash, h1.hash);
    const stats = await ex('get_signal_stats');
    assert.ok(stats.total > before);
    assert.ok(stats.byMember['zone.PortAdded'] >= 1);
    assert.ok(stats.recent.some((r: { member: string; subject: string }) => r.member === 'PortAdded' && r.subject === 'public'));
    await cmd('--zone=public', '--remove-port=4444/udp');
    assert.equal((await ex('get_state_hash')).hash, h1.hash, 'back to the same state');
    assert.match((await ex('get_state_hash', { permanent: true })).hash, /^[0-9a-f]{64}$/);
  });

  test('reload, complete_reload and runtime_to_permanent run', async () => {
    await ex('add_service', { zone: 'external', service: 'imaps' });
    assert.equal((await ex('runtime_to_permanent')).changed, true);
    assert.equal(await yes('--permanent', '--zone=external', '--query-service=imaps'), true);
    await ex('remove_service', { zone: 'external', service: 'imaps', permanent: true });
    assert.equal((await ex('reload')).changed, true);
    assert.equal(await yes('--zone=external', '--query-service=imaps'), false);
    assert.equal((await ex('complete_reload', { dry_run: true })).dry_run, true);
    assert.equal((await ex('complete_reload')).changed, true);
    assert.equal((await ex('get_status')).running, true);
  });
});

describe('firewalld without systemd, without firewalld', () => {
  test('service_status, start/stop/restart_service answer service-unavailable without systemd', async () => {
    for (const a of ['service_status', 'start_service', 'stop_service', 'restart_service']) {
      const e = await failure(reg.execute('firewalld', a, {}, ctx()));
      seen.add(a);
      assert.equal(e.code, 'service-unavailable', a);
      assert.match(e.message, /systemd is not running on this host/);
    }
  });

  test('a stopped firewalld answers firewalld-not-running; the module reconnects when it returns', async () => {
    await fw.stopFirewalld();
    assert.equal((await ex('get_status')).running, false);
    assert.equal(await code(ex('list_zones')), 'firewalld-not-running');
    assert.equal(await code(ex('add_service', { zone: 'public', service: 'http' })), 'firewalld-not-running');
    assert.equal(await code(ex('service_status')), 'service-unavailable');
    await fw.startFirewalld();
    const deadline = Date.now() + 10_000;
    let zones: string[] = [];
    while (Date.now() < deadline) {
      try {
        zones = (await ex('list_zones')).zones;
        break;
      } catch {
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    assert.ok(zones.includes('public'));
    assert.equal((await ex('get_zone', { zone: 'public', permanent: true })).name, 'public');
  });

  test('firewalld not installed leaves the module unavailable and says why', async () => {
    const m = new FirewalldModule({ exists: () => false });
    const [ok, why] = await m.initialize({ settings: {}, log });
    assert.equal(ok, false);
    assert.match(String(why), /firewalld is not installed/);
    await m.shutdown();
  });
});

describe('firewalld validation', () => {
  const bad: Array<[string, Record<string, unknown>, string]> = [
    ['add_service', { zone: '--panic-on', service: 'http' }, 'zone'],
    ['add_service', { zone: 'public', service: 'http --permanent' }, 'service'],
    ['add_rich_rule', { zone: 'public', rule: 'rule family="ipv4"\naccept' }, 'rule'],
    ['add_port', { zone: 'public', port: '22;reboot' }, 'port'],
    ['add_port', { zone: 'public', port: '70000/tcp' }, 'port'],
    ['add_port', { zone: 'public', port: '90-80/tcp' }, 'port'],
    ['add_port', { zone: 'public', port: '22/icmp' }, 'port'],
    ['add_source', { zone: 'public', source: '10.0.0.0/33' }, 'source'],
    ['add_source', { zone: 'public', source: '10.0.0.256' }, 'source'],
    ['add_source', { zone: 'public', source: 'fe80::1/129' }, 'source'],
    ['add_source', { zone: 'public', source: '$(reboot)' }, 'source'],
    ['add_forward_port', { zone: 'public', port: '80/tcp', to_addr: '10.0.0.1/24' }, 'to_addr'],
    ['add_forward_port', { zone: 'public', port: '80/tcp' }, 'to_port'],
    ['add_rich_rule', { zone: 'public', rule: 'accept' }, 'rule'],
    ['add_rich_rule', { zone: 'public', rule: 'rule family="ipv4 accept' }, 'rule'],
    ['add_icmp_block', { zone: 'public', icmp_type: 'Echo Request' }, 'icmp_type'],
    ['set_log_denied', { value: 'everything' }, 'value'],
    ['new_ipset', { ipset: 'x', type: 'hash:foo' }, 'type'],
    ['ipset_add_entry', { ipset: 'x', entry: '-exist' }, 'entry'],
    ['add_interface', { zone: 'public', interface: 'eth0/../../x' }, 'interface'],
    ['policy_set_target', { policy: 'p', target: 'default', permanent: true }, 'target'],
    ['add_service', { zone: 'public', service: 'http', extra: 1 }, 'extra'],
    ['add_service', { zone: 'public', service: 'x'.repeat(100 * 1024) }, 'service'],
    ['add_rich_rule', { zone: 'public', rule: `rule ${'x'.repeat(100 * 1024)}` }, 'rule'],
    ['add_port', { zone: 'public', port: '22/tcp', confirm_timeout: 1 }, 'confirm_timeout'],
    ['confirm', { change_id: '../../etc' }, 'change_id'],
    ['lockdown_add_uid', { uid: -1 }, 'uid'],
    ['lockdown_add_uid', { uid: 2147483648 }, 'uid'],
  ];
  test('bad values are refused with invalid-params naming the parameter, before firewalld sees them', async () => {
    const before = (await ex('get_state_hash')).hash;
    const sigBefore = (await ex('get_signal_stats')).total;
    for (const [action, params, param] of bad) {
      const e = await failure(reg.execute('firewalld', action, params, ctx()));
      assert.equal(e.code, 'invalid-params', `${action} ${JSON.stringify(params).slice(0, 80)}: ${e.message}`);
      assert.match(e.message, new RegExp(`"${param}"`), e.message);
      assert.ok(e.message.length < 1000, 'message stays short');
    }
    assert.equal((await ex('get_state_hash')).hash, before, 'firewalld state unchanged');
    assert.equal((await ex('get_signal_stats')).total, sigBefore, 'firewalld saw no change');
  });

  test('every action declares a schema refusing unknown params and an access class', () => {
    for (const c of mod.getCapabilities()) {
      assert.ok(['read', 'write', 'dangerous'].includes(String(c.access)), c.name);
      assert.equal((c.schema as { additionalProperties?: boolean }).additionalProperties, false, c.name);
    }
  });
});

/** The 101 action names of FIREWALLD-ACTIONS.md, in its order. */
const SPEC_ACTIONS = [
  'get_status',
  'get_version',
  'list_zones',
  'get_zone',
  'get_default_zone',
  'list_services',
  'list_icmptypes',
  'new_zone',
  'delete_zone',
  'get_zone_of_interface',
  'get_zone_of_source',
  'set_default_zone',
  'get_active_zones',
  'add_service',
  'remove_service',
  'add_interface',
  'remove_interface',
  'change_interface',
  'list_interfaces',
  'add_source',
  'remove_source',
  'change_source',
  'list_sources',
  'add_port',
  'remove_port',
  'add_rich_rule',
  'remove_rich_rule',
  'add_protocol',
  'remove_protocol',
  'add_source_port',
  'remove_source_port',
  'add_icmp_block',
  'remove_icmp_block',
  'add_icmp_block_inversion',
  'remove_icmp_block_inversion',
  'add_masquerade',
  'remove_masquerade',
  'add_forward_port',
  'remove_forward_port',
  'reload',
  'complete_reload',
  'runtime_to_permanent',
  'check_config',
  'service_status',
  'start_service',
  'stop_service',
  'restart_service',
  'query_panic',
  'panic_on',
  'panic_off',
  'get_log_denied',
  'set_log_denied',
  'get_service_info',
  'new_service',
  'delete_service',
  'service_add_port',
  'service_remove_port',
  'service_add_protocol',
  'service_remove_protocol',
  'list_ipsets',
  'get_ipset_info',
  'new_ipset',
  'delete_ipset',
  'ipset_add_entry',
  'ipset_remove_entry',
  'zone_add_source_ipset',
  'zone_remove_source_ipset',
  'list_helpers',
  'zone_list_helpers',
  'zone_add_helper',
  'zone_remove_helper',
  'list_policies',
  'policy_add',
  'policy_delete',
  'policy_get_info',
  'policy_set_ingress_zone',
  'policy_set_egress_zone',
  'policy_set_target',
  'direct_get_all_chains',
  'direct_add_chain',
  'direct_remove_chain',
  'direct_get_all_rules',
  'direct_add_rule',
  'direct_remove_rule',
  'direct_get_passthrough',
  'direct_add_passthrough',
  'lockdown_get_status',
  'lockdown_enable',
  'lockdown_disable',
  'lockdown_list_commands',
  'lockdown_add_command',
  'lockdown_remove_command',
  'lockdown_list_contexts',
  'lockdown_add_context',
  'lockdown_remove_context',
  'lockdown_list_users',
  'lockdown_add_user',
  'lockdown_remove_user',
  'lockdown_list_uids',
  'lockdown_add_uid',
  'lockdown_remove_uid',
];

describe('firewalld apply_zone_settings', () => {
  // Its behaviour (rollback of all of it, all or nothing, limits) is tested in zone-settings.test.ts.
  test('dry_run reports each item and changes nothing', async () => {
    const before = await cmd('--zone=work', '--list-all');
    const r = await ex('apply_zone_settings', { zones: { work: { services: ['imaps'], ports: ['7101/tcp'] } }, dry_run: true });
    assert.deepEqual([r.dry_run, r.changed, r.items.length], [true, true, 2]);
    assert.equal(await cmd('--zone=work', '--list-all'), before);
  });
});

describe('firewalld coverage', () => {
  test('every action of FIREWALLD-ACTIONS.md exists and was run by these tests', async () => {
    const names = SPEC_ACTIONS;
    assert.equal(names.length, 101);
    const have = new Set(mod.getCapabilities().map((c) => c.name));
    for (const n of names) assert.ok(have.has(n), `missing action ${n}`);
    const notRun = [...have].filter((n) => !seen.has(n));
    assert.deepEqual(notRun, []);
  });
});
