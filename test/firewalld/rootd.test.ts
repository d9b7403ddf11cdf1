// The firewalld module inside the real tuxsec-rootd process, over its socket, against a real
// firewalld in a network namespace: injections, the dangerous class, rollback audit, and a
// firewalld restart while rootd runs.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startRootd, type RootdHandle } from '../helpers/rootd.ts';
import { startFirewalldNetns, type FirewalldNetns } from '../helpers/firewalld-netns.ts';
import { waitFor } from '../helpers/procs.ts';

let fw: FirewalldNetns;
let rootd: RootdHandle | null = null;
let stateDir: string;

async function codeOf(p: Promise<unknown>): Promise<{ code: string; message: string }> {
  try {
    await p;
  } catch (e) {
    return { code: String((e as { code?: unknown }).code), message: (e as Error).message };
  }
  assert.fail('expected an error');
}

async function state(): Promise<string> {
  const rt = await fw.cmd(['--list-all-zones']);
  const perm = await fw.cmd(['--permanent', '--list-all-zones']);
  const misc = await fw.cmd(['--get-default-zone']);
  return `${rt.stdout}\n--\n${perm.stdout}\n--\n${misc.stdout}`;
}

/** How rootd's change guard says a change ended; undefined while it is pending or rolling back. */
async function outcomeOf(r: RootdHandle, changeId: string): Promise<string | undefined> {
  const st = (await r.client.execute('firewalld', 'get_pending_changes', {})) as { history: Array<{ change_id: string; outcome: string }> };
  return st.history.find((h) => h.change_id === changeId)?.outcome;
}

async function withRootd(allowDangerous: boolean): Promise<RootdHandle> {
  await rootd?.stop();
  rootd = await startRootd({
    config: { modules: { firewalld: { allow_dangerous: allowDangerous, settings: { pending_file: path.join(stateDir, 'pending.json') } } } },
  });
  return rootd;
}

before(async () => {
  fw = await startFirewalldNetns();
  stateDir = mkdtempSync(path.join(tmpdir(), 'tuxsec-fwstate-'));
});

after(async () => {
  await rootd?.stop();
  await fw?.stop();
  rmSync(stateDir, { recursive: true, force: true });
});

test('firewalld through rootd refuses injections with invalid-params and leaves firewalld unchanged', async () => {
  const r = await withRootd(false);
  const before = await state();
  const attempts: Array<[string, Record<string, unknown>, string]> = [
    ['add_service', { zone: '--panic-on', service: 'http' }, 'zone'],
    ['add_service', { zone: 'public', service: 'http --permanent' }, 'service'],
    ['add_rich_rule', { zone: 'public', rule: 'rule family="ipv4" source address="10.0.0.0/8"\naccept' }, 'rule'],
    ['add_port', { zone: 'public', port: '22;reboot' }, 'port'],
    ['add_port', { zone: 'public', port: `${'1'.repeat(100 * 1024)}/tcp` }, 'port'],
    ['add_service', { zone: 'public', service: 'h'.repeat(100 * 1024) }, 'service'],
    ['add_source', { zone: 'public', source: '10.0.0.1 --permanent' }, 'source'],
    ['set_default_zone', { zone: 'public\u0000drop' }, 'zone'],
  ];
  for (const [action, params, param] of attempts) {
    const e = await codeOf(r.client.execute('firewalld', action, params));
    assert.equal(e.code, 'invalid-params', `${action}: ${e.message.slice(0, 200)}`);
    assert.match(e.message, new RegExp(`"${param}"`));
  }
  assert.equal(await state(), before, 'firewalld state unchanged');
  // The same connection still works.
  const z = (await r.client.execute('firewalld', 'get_zone', { zone: 'public' })) as { name: string; services: string[] };
  assert.equal(z.name, 'public');
});

test('firewalld dangerous actions through rootd are refused until allow_dangerous is set', async () => {
  let r = await withRootd(false);
  for (const a of ['direct_get_all_rules', 'direct_add_passthrough', 'lockdown_enable', 'panic_on']) {
    const e = await codeOf(r.client.execute('firewalld', a, {}));
    assert.equal(e.code, 'permission-denied', a);
    assert.match(e.message, /modules\.firewalld\.allow_dangerous/);
  }
  assert.equal((await fw.cmd(['--query-panic'])).stdout.trim(), 'no');
  r = await withRootd(true);
  assert.deepEqual(await r.client.execute('firewalld', 'direct_get_all_rules', {}), { rules: [] });
  assert.deepEqual(await r.client.execute('firewalld', 'lockdown_get_status', {}), { enabled: false, status: 'disabled' });
});

test('firewalld rollback through rootd is applied on timeout and written to its log', async () => {
  const r = rootd ?? (await withRootd(false));
  // 15 s: firewall-cmd (python) can take seconds to start on a loaded machine; the query must land before the deadline.
  const res = (await r.client.execute('firewalld', 'add_port', { zone: 'public', port: '3333/tcp', confirm_timeout: 15 })) as { change_id: string };
  assert.equal((await fw.cmd(['--zone=public', '--query-port=3333/tcp'])).stdout.trim(), 'yes');
  const outcome = (): Promise<string | undefined> => outcomeOf(r, res.change_id);
  // In the history once the rollback is done.
  await waitFor(async () => (await outcome()) !== undefined, 'the change rolled back after its confirm_timeout', 40_000);
  assert.equal(await outcome(), 'rolled-back');
  assert.equal((await fw.cmd(['--zone=public', '--query-port=3333/tcp'])).stdout.trim(), 'no');
  assert.match(r.log(), /firewalld change rolled back/);
});

test('firewalld restart while rootd runs: not-running answers, then the module reconnects and sees signals', async () => {
  const r = rootd ?? (await withRootd(false));
  assert.equal(((await r.client.execute('firewalld', 'get_status', {})) as { running: boolean }).running, true);
  await fw.stopFirewalld();
  assert.equal(((await r.client.execute('firewalld', 'get_status', {})) as { running: boolean }).running, false);
  assert.equal((await codeOf(r.client.execute('firewalld', 'list_zones', {}))).code, 'firewalld-not-running');
  assert.equal((await codeOf(r.client.execute('firewalld', 'service_status', {}))).code, 'service-unavailable');
  await fw.startFirewalld();
  const deadline = Date.now() + 10_000;
  let zones: string[] = [];
  while (Date.now() < deadline && zones.length === 0) {
    try {
      zones = ((await r.client.execute('firewalld', 'list_zones', {})) as { zones: string[] }).zones;
    } catch {
      await new Promise((res) => setTimeout(res, 100));
    }
  }
  assert.ok(zones.includes('public'));
  // Signal subscriptions survived the restart: a change made outside TuxSec is seen.
  const before = ((await r.client.execute('firewalld', 'get_signal_stats', {})) as { total: number }).total;
  await fw.cmd(['--zone=public', '--add-port=5555/udp']);
  const stats = (await r.client.execute('firewalld', 'get_signal_stats', {})) as { total: number; byMember: Record<string, number> };
  assert.ok(stats.total > before);
  assert.ok((stats.byMember['zone.PortAdded'] ?? 0) >= 1);
  assert.equal(((await r.client.execute('firewalld', 'add_port', { zone: 'public', port: '5555/udp' })) as { changed: boolean }).changed, false);
  assert.equal(((await r.client.execute('firewalld', 'remove_port', { zone: 'public', port: '5555/udp' })) as { changed: boolean }).changed, true);
});

test('firewalld change pending when rootd is killed is rolled back by the next rootd', async () => {
  let r = rootd ?? (await withRootd(false));
  // 20 s: still pending after two firewall-cmd runs and a rootd start, seconds each on a loaded machine.
  const res = (await r.client.execute('firewalld', 'add_service', { zone: 'public', service: 'smtp', permanent: true, confirm_timeout: 20 })) as { change_id: string };
  assert.equal((await fw.cmd(['--permanent', '--zone=public', '--query-service=smtp'])).stdout.trim(), 'yes');
  r.signal('SIGKILL');
  await r.stop();
  rootd = null;
  assert.equal((await fw.cmd(['--permanent', '--zone=public', '--query-service=smtp'])).stdout.trim(), 'yes', 'nobody rolled it back yet');
  r = await withRootd(false);
  const st = (await r.client.execute('firewalld', 'get_pending_changes', {})) as { pending: Array<{ change_id: string }> };
  assert.deepEqual(st.pending.map((p) => p.change_id), [res.change_id]);
  const outcome = (): Promise<string | undefined> => outcomeOf(r, res.change_id);
  await waitFor(async () => (await outcome()) !== undefined, 'the next rootd to roll the change back at its deadline', 40_000);
  assert.equal(await outcome(), 'rolled-back');
  assert.equal((await fw.cmd(['--permanent', '--zone=public', '--query-service=smtp'])).stdout.trim(), 'no');
});
