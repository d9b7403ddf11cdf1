// The D-Bus seam on a private dbus-daemon this test starts (never the system bus): it
// reconnects by itself when the bus restarts, replays its match rules, and the firewalld
// client follows NameOwnerChanged.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import dbus from 'dbus-next';
import { DbusConnection, type DbusSignal } from '../../src/os/dbus.ts';
import { BY_MEMBER_MAX, FirewalldClient, FW_NAME, OTHER_KEY } from '../../src/rootd/modules/firewalld/dbus.ts';

let dir: string;
let address: string;
let daemon: ChildProcess | null = null;

async function startBus(): Promise<void> {
  const sock = path.join(dir, 'bus');
  rmSync(sock, { force: true });
  daemon = spawn('/usr/bin/dbus-daemon', ['--session', '--nofork', '--nopidfile', `--address=unix:path=${sock}`], { stdio: 'ignore' });
  for (let i = 0; i < 200 && !existsSync(sock); i++) await new Promise((r) => setTimeout(r, 25));
  assert.ok(existsSync(sock), 'private bus came up');
}

async function stopBus(): Promise<void> {
  const d = daemon;
  if (!d || d.exitCode !== null || d.signalCode !== null) return;
  const gone = new Promise((r) => d.once('exit', r));
  process.kill(d.pid!, 'SIGTERM');
  await gone;
}

function once(em: NodeJS.EventEmitter, ev: string, ms = 10_000): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`no "${ev}" within ${ms} ms`)), ms);
    em.once(ev, (v: unknown) => {
      clearTimeout(t);
      resolve(v);
    });
  });
}

function otherClient(): dbus.MessageBus {
  process.env.DBUS_SYSTEM_BUS_ADDRESS = address;
  try {
    return dbus.systemBus();
  } finally {
    delete process.env.DBUS_SYSTEM_BUS_ADDRESS;
  }
}

before(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'tuxsec-bus-'));
  address = `unix:path=${path.join(dir, 'bus')}`;
  await startBus();
});

after(async () => {
  await stopBus();
  rmSync(dir, { recursive: true, force: true });
});

test('DbusConnection reconnects after the bus restarts and replays its match rules', async () => {
  const conn = new DbusConnection({ address, reconnectMinMs: 50 });
  await conn.addMatch("type='signal',interface='org.tuxsec.Test'");
  assert.equal(conn.connected, true);
  const down = once(conn, 'disconnected');
  await stopBus();
  await down;
  assert.equal(conn.connected, false);
  const up = once(conn, 'connected');
  await startBus();
  await up;
  assert.equal(conn.connected, true);
  // A signal sent by another client reaches us: the match rule was added again.
  const got = new Promise<DbusSignal>((resolve) => conn.on('signal', (s: DbusSignal) => s.interface === 'org.tuxsec.Test' && resolve(s)));
  const other = otherClient();
  await once(other, 'connect');
  other.send(dbus.Message.newSignal('/org/tuxsec/Test', 'org.tuxsec.Test', 'Ping', 's', ['hello']));
  const s = await got;
  assert.deepEqual(s.body, ['hello']);
  other.disconnect();
  conn.close();
});

test('DbusConnection calls fail with service-unavailable while no bus answers', async () => {
  const conn = new DbusConnection({ address: `unix:path=${path.join(dir, 'nobus')}` });
  await assert.rejects(
    conn.call({ destination: 'org.freedesktop.DBus', path: '/org/freedesktop/DBus', interface: 'org.freedesktop.DBus', member: 'ListNames' }),
    (e: { code?: string }) => e.code === 'service-unavailable',
  );
  conn.close();
});

test('FirewalldClient follows the owner of the firewalld name', async () => {
  const conn = new DbusConnection({ address, reconnectMinMs: 50 });
  const fw = new FirewalldClient(conn, 2000);
  await fw.watch();
  assert.equal(fw.running, false);
  const other = otherClient();
  await once(other, 'connect');
  const up = once(fw, 'up');
  await other.requestName(FW_NAME, 0);
  await up;
  assert.equal(fw.running, true);
  const down = once(fw, 'down');
  await other.releaseName(FW_NAME);
  await down;
  assert.equal(fw.running, false);
  other.disconnect();
  conn.close();
});

test('FirewalldClient counts only signals of the name owner, in a bounded map', async () => {
  const conn = new DbusConnection({ address, reconnectMinMs: 50 });
  const fw = new FirewalldClient(conn, 2000);
  await fw.watch();
  const owner = otherClient();
  const stranger = otherClient();
  await Promise.all([once(owner, 'connect'), once(stranger, 'connect')]);
  const up = once(fw, 'up');
  await owner.requestName(FW_NAME, 0);
  await up;
  const n = BY_MEMBER_MAX * 3;
  for (let i = 0; i < n; i++) owner.send(dbus.Message.newSignal('/org/fedoraproject/FirewallD1', `${FW_NAME}.zone`, `M${i}`, 's', ['public']));
  // Sent straight to our connection, as any local user can: not the owner, so not counted.
  stranger.send(new dbus.Message({ type: dbus.MessageType.SIGNAL, destination: (conn as unknown as { bus: { name: string } }).bus.name, path: '/org/fedoraproject/FirewallD1', interface: `${FW_NAME}.zone`, member: 'Stranger', signature: '', body: [] }));
  // A round trip: the bus has queued the stranger's signal to us before the owner's last one.
  await stranger.call(new dbus.Message({ destination: 'org.freedesktop.DBus', path: '/org/freedesktop/DBus', interface: 'org.freedesktop.DBus', member: 'GetId' }));
  const last = new Promise((resolve) => fw.on('fw-signal', (r: { member: string }) => r.member === 'Last' && resolve(r)));
  owner.send(dbus.Message.newSignal('/org/fedoraproject/FirewallD1', `${FW_NAME}.zone`, 'Last', '', []));
  await last;
  const st = fw.signalStats();
  assert.equal(st.total, n + 1);
  assert.equal(Object.keys(st.byMember).length, BY_MEMBER_MAX + 1);
  assert.equal(st.byMember[OTHER_KEY], n + 1 - BY_MEMBER_MAX);
  assert.equal(st.byMember['zone.Stranger'], undefined);
  owner.disconnect();
  stranger.disconnect();
  conn.close();
});
