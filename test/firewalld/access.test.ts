// Every firewalld action x {root, tuxsec, read-only user, outsider} through the real rootd.
// Requests carry an unknown parameter, so an action the caller may run stops at validation
// (invalid-params) and never reaches firewalld; one it may not run stops at permission-denied.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { startRootd, type RootdHandle } from '../helpers/rootd.ts';
import { asUser, ensureTestUsers } from '../helpers/users.ts';
import { startFirewalldNetns, type FirewalldNetns } from '../helpers/firewalld-netns.ts';
import { FirewalldModule } from '../../src/rootd/modules/firewalld/index.ts';
import type { UserEntry } from '../../src/os/users.ts';

let fw: FirewalldNetns;
let rootd: RootdHandle;
let users: Awaited<ReturnType<typeof ensureTestUsers>>;
const actions = (() => {
  const m = new FirewalldModule();
  const caps = m.getCapabilities().map((c) => ({ name: c.name, access: c.access! }));
  m.fw.bus.close();
  return caps;
})();

// Sends one execute_command per action, in turn, on one connection; prints {action: code}.
const PROBE = `
const [sock, list] = process.argv.slice(1);
const names = JSON.parse(list);
const s = require('net').createConnection(sock);
let buf = '', i = 0; const out = {};
const next = () => {
  if (i === names.length) { process.stdout.write(JSON.stringify(out)); s.destroy(); return; }
  s.write(JSON.stringify({ type: 'execute_command', request_id: String(i), data: { module: 'firewalld', action: names[i], parameters: { probe_unknown: 1 } } }) + '\\n');
};
s.on('connect', next);
s.on('error', (e) => { process.stdout.write(JSON.stringify({ connect_error: e.code })); });
s.on('data', (d) => {
  buf += d;
  let k;
  while ((k = buf.indexOf('\\n')) >= 0) {
    const r = JSON.parse(buf.slice(0, k)); buf = buf.slice(k + 1);
    out[names[i]] = r.type === 'error' ? r.data.code : 'success';
    i++; next();
  }
});`;

function probe(user: UserEntry | null): Record<string, string> {
  const args = ['-e', PROBE, rootd.socketPath, JSON.stringify(actions.map((a) => a.name))];
  const [file, argv] = user ? asUser(user, process.execPath, args) : [process.execPath, args];
  const r = spawnSync(file, argv, { encoding: 'utf8', timeout: 60_000 });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout) as Record<string, string>;
}

before(async () => {
  fw = await startFirewalldNetns();
  users = await ensureTestUsers();
  rootd = await startRootd({
    config: { allowed_users: ['tuxsec'], read_only_users: [users.member.name], modules: { firewalld: { allow_dangerous: false, settings: { pending_file: '/tmp/tuxsec-fw-access-pending.json' } } } },
  });
});

after(async () => {
  await rootd?.stop();
  await fw?.stop();
});

test('firewalld actions x users: access class decides before validation, firewalld never reached', async () => {
  assert.equal(actions.length, 109); // 108 + apply_zone_settings (issue 11)
  // Stopping firewalld switches the firewall off with no rollback: the operator must allow it.
  const cls = Object.fromEntries(actions.map((a) => [a.name, a.access]));
  assert.deepEqual([cls.start_service, cls.stop_service, cls.restart_service, cls.service_status], ['write', 'dangerous', 'write', 'read']);
  const before = (await fw.cmd(['--list-all-zones'])).stdout;
  const expect = {
    root: (a: string) => (a === 'dangerous' ? 'permission-denied' : 'invalid-params'),
    tuxsec: (a: string) => (a === 'dangerous' ? 'permission-denied' : 'invalid-params'),
    readonly: (a: string) => (a === 'read' ? 'invalid-params' : 'permission-denied'),
  };
  const got = { root: probe(null), tuxsec: probe(users.tuxsec), readonly: probe(users.member) };
  for (const who of ['root', 'tuxsec', 'readonly'] as const) {
    for (const { name, access } of actions) assert.equal(got[who][name], expect[who](access), `${who} ${name} (${access})`);
  }
  const outsider = probe(users.outsider);
  assert.equal(outsider.connect_error, 'EACCES');
  assert.equal((await fw.cmd(['--list-all-zones'])).stdout, before, 'firewalld unchanged');
});
