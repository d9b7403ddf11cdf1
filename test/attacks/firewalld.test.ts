// Attacks on the firewalld module through the real tuxsec-rootd, against a real firewalld in a
// network namespace, by real users: an allowed user injecting into every kind of string
// parameter and smuggling iptables options through passthroughs, an allowed user stopping the
// firewall, and a local user outside the socket group forging D-Bus signals to rootd.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ROOT, startRootd, type RootdHandle } from '../helpers/rootd.ts';
import { asUser, ensureTestUsers } from '../helpers/users.ts';
import { startFirewalldNetns, type FirewalldNetns } from '../helpers/firewalld-netns.ts';
import { DbusConnection } from '../../src/os/dbus.ts';
import { BY_MEMBER_MAX } from '../../src/rootd/modules/firewalld/dbus.ts';
import type { UserEntry } from '../../src/os/users.ts';

let fw: FirewalldNetns;
let rootd: RootdHandle;
let users: Awaited<ReturnType<typeof ensureTestUsers>>;
let dir: string;

interface Reply {
  code: string;
  message: string;
  details?: Record<string, unknown>;
}

// Sends execute_command requests in turn on one connection; prints one reply per request.
const SENDER = `
const [sock, file] = process.argv.slice(1);
const reqs = JSON.parse(require('fs').readFileSync(file, 'utf8'));
const s = require('net').createConnection(sock);
let buf = '', i = 0; const out = [];
const next = () => {
  if (i === reqs.length) { process.stdout.write(JSON.stringify(out)); s.destroy(); return; }
  s.write(JSON.stringify({ type: 'execute_command', request_id: String(i), data: { module: 'firewalld', action: reqs[i][0], parameters: reqs[i][1] } }) + '\\n');
};
s.on('connect', next);
s.on('error', (e) => { process.stderr.write(String(e)); process.exit(2); });
s.on('data', (d) => {
  buf += d;
  let k;
  while ((k = buf.indexOf('\\n')) >= 0) {
    const r = JSON.parse(buf.slice(0, k)); buf = buf.slice(k + 1);
    out.push(r.type === 'error' ? { code: r.data.code, message: r.data.error, details: r.data.details } : { code: 'success', message: '' });
    i++; next();
  }
});`;

/** Sends requests to rootd as `user` (a real process with that user's credentials). */
function sendAs(user: UserEntry, reqs: Array<[string, Record<string, unknown>]>, socketPath = rootd.socketPath): Reply[] {
  const file = path.join(dir, `reqs-${Math.random().toString(36).slice(2)}.json`);
  writeFileSync(file, JSON.stringify(reqs), { mode: 0o644 });
  const [bin, argv] = asUser(user, process.execPath, ['-e', SENDER, socketPath, file]);
  const r = spawnSync(bin, argv, { encoding: 'utf8', timeout: 120_000, maxBuffer: 64 * 1024 * 1024 });
  rmSync(file, { force: true });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout) as Reply[];
}

/** Everything firewalld enforces that these attacks could touch. */
async function fwState(): Promise<string> {
  const parts = await Promise.all(
    [
      ['--list-all-zones'],
      ['--permanent', '--list-all-zones'],
      ['--direct', '--get-all-chains'],
      ['--direct', '--get-all-rules'],
      ['--direct', '--get-all-passthroughs'],
      ['--permanent', '--direct', '--get-all-passthroughs'],
      ['--list-lockdown-whitelist-commands'],
      ['--get-ipsets'],
      ['--get-log-denied'],
    ].map(async (a) => (await fw.cmd(a)).stdout),
  );
  return parts.join('\n--\n');
}

before(async () => {
  fw = await startFirewalldNetns();
  users = await ensureTestUsers();
  dir = mkdtempSync(path.join(tmpdir(), 'tuxsec-fwattack-'));
  chmodSync(dir, 0o755);
  rootd = await startRootd({
    config: {
      allowed_users: ['tuxsec'],
      read_only_users: [users.member.name],
      modules: { firewalld: { allow_dangerous: true, settings: { pending_file: path.join(dir, 'pending.json') } } },
    },
  });
});

after(async () => {
  await rootd?.stop();
  await fw?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** One kind of string parameter: where the value goes in a request, and a valid value of it. */
interface Kind {
  kind: string;
  param: string;
  valid: string;
  request: (v: string) => [string, Record<string, unknown>];
  /** Payloads that are legal for this kind (a command line may hold " --flag"). */
  legal?: string[];
}

const KINDS: Kind[] = [
  { kind: 'zone name', param: 'zone', valid: 'public', request: (v) => ['add_service', { zone: v, service: 'http' }] },
  { kind: 'service name', param: 'service', valid: 'http', request: (v) => ['add_service', { zone: 'public', service: v }] },
  { kind: 'port with protocol', param: 'port', valid: '8080/tcp', request: (v) => ['add_port', { zone: 'public', port: v }] },
  { kind: 'service port', param: 'port', valid: '8080', request: (v) => ['service_add_port', { service: 'http', port: v, protocol: 'tcp' }] },
  { kind: 'protocol', param: 'protocol', valid: 'gre', request: (v) => ['add_protocol', { zone: 'public', protocol: v }] },
  { kind: 'source address', param: 'source', valid: '192.0.2.7', request: (v) => ['add_source', { zone: 'public', source: v }] },
  { kind: 'forward-to address', param: 'to_addr', valid: '192.0.2.5', request: (v) => ['add_forward_port', { zone: 'public', port: '8080/tcp', to_port: '80', to_addr: v }] },
  { kind: 'interface', param: 'interface', valid: 'tsx0', request: (v) => ['add_interface', { zone: 'public', interface: v }] },
  {
    kind: 'rich rule',
    param: 'rule',
    valid: 'rule family="ipv4" source address="192.0.2.0/24" accept',
    request: (v) => ['add_rich_rule', { zone: 'public', rule: v }],
  },
  { kind: 'ipset name', param: 'ipset', valid: 'tsxset', request: (v) => ['ipset_add_entry', { ipset: v, entry: '192.0.2.1' }] },
  { kind: 'ipset entry', param: 'entry', valid: '192.0.2.1', request: (v) => ['ipset_add_entry', { ipset: 'tsxset', entry: v }] },
  { kind: 'icmp type', param: 'icmp_type', valid: 'echo-request', request: (v) => ['add_icmp_block', { zone: 'public', icmp_type: v }] },
  { kind: 'policy', param: 'policy', valid: 'tsxpol', request: (v) => ['policy_set_ingress_zone', { policy: v, zone: 'public' }] },
  { kind: 'helper', param: 'helper', valid: 'ftp', request: (v) => ['zone_add_helper', { zone: 'public', helper: v }] },
  { kind: 'log-denied value', param: 'value', valid: 'all', request: (v) => ['set_log_denied', { value: v }] },
  { kind: 'change id', param: 'change_id', valid: '0123456789abcdef', request: (v) => ['confirm', { change_id: v }] },
  { kind: 'direct chain', param: 'chain', valid: 'tsx_chain', request: (v) => ['direct_add_chain', { ipv: 'ipv4', table: 'filter', chain: v }] },
  {
    kind: 'direct rule argument value',
    param: 'args',
    valid: '192.0.2.9',
    request: (v) => ['direct_add_rule', { ipv: 'ipv4', table: 'filter', chain: 'INPUT', priority: 0, args: ['-s', v, '-j', 'ACCEPT'] }],
  },
  { kind: 'passthrough argument value', param: 'args', valid: '192.0.2.9', request: (v) => ['direct_add_passthrough', { ipv: 'ipv4', args: ['-A', 'INPUT', '-s', v, '-j', 'ACCEPT'] }] },
  { kind: 'passthrough option', param: 'args', valid: '-f', request: (v) => ['direct_add_passthrough', { ipv: 'ipv4', args: ['-A', 'INPUT', v, '-j', 'ACCEPT'] }] },
  {
    kind: 'lockdown command',
    param: 'command',
    valid: '/usr/bin/tsx-test',
    request: (v) => ['lockdown_add_command', { command: v }],
    legal: ['space then option'],
  },
  { kind: 'lockdown context', param: 'context', valid: 'system_u:system_r:tsx_t:s0', request: (v) => ['lockdown_add_context', { context: v }] },
  { kind: 'lockdown user', param: 'user', valid: 'tsxuser', request: (v) => ['lockdown_add_user', { user: v }] },
];

const PAYLOADS: Array<[string, (base: string) => string]> = [
  ['newline then option', (b) => `${b}\n--panic-on`],
  ['carriage return', (b) => `${b}\r`],
  ['NUL byte', (b) => `${b}\u0000x`],
  ['tab', (b) => `${b}\tx`],
  ['semicolon command', (b) => `${b};reboot`],
  ['command substitution', (b) => `${b}$(id)`],
  ['backticks', (b) => `${b}\`id\``],
  ['pipe', (b) => `${b}|id`],
  ['redirection', (b) => `${b}>/etc/passwd`],
  ['space then option', (b) => `${b} --permanent`],
  ['option -j ACCEPT', () => '-j ACCEPT'],
  ['option --foo', () => '--foo'],
  ['clustered option -tnat', () => '-tnat'],
  ['100 KB value', (b) => `${b}${'a'.repeat(100_000)}`],
  ['non-ASCII letter', (b) => `${b}é`],
  ['bidi override', (b) => `${b}\u202e`],
  ['fullwidth hyphens', () => '\uff0d\uff0dfoo'],
  ['line separator', (b) => `${b}\u2028x`],
  ['empty', () => ''],
];

test('an allowed user injecting newline, NUL, shell characters, options, 100 KB and unicode into every firewalld string parameter gets invalid-params and firewalld is never reached', async () => {
  const before = await fwState();
  // The valid value of each kind passes validation: the table tests the payloads, not typos.
  const cases: Array<{ kind: Kind; payload: string; value: string }> = [];
  for (const kind of KINDS) {
    for (const [payload, make] of PAYLOADS) if (!kind.legal?.includes(payload)) cases.push({ kind, payload, value: make(kind.valid) });
  }
  const replies = sendAs(users.tuxsec, cases.map((c) => c.kind.request(c.value)));
  assert.equal(replies.length, cases.length);
  replies.forEach((r, i) => {
    const c = cases[i]!;
    const label = `${c.kind.kind} / ${c.payload}: ${r.code} ${r.message.slice(0, 300)}`;
    assert.equal(r.code, 'invalid-params', label);
    assert.ok(r.message.includes(`"${c.kind.param}`), `message names the parameter: ${label}`);
    assert.ok(r.message.length < 1200, `message is bounded: ${label}`);
    // An invalid-params mapped from firewalld's own refusal carries its code: this one must not.
    assert.equal(r.details?.firewalld, undefined, `refused before firewalld: ${label}`);
  });
  assert.equal(await fwState(), before, 'firewalld unchanged');
  assert.equal(((await rootd.client.execute('firewalld', 'get_zone', { zone: 'public' })) as { name: string }).name, 'public');
});

test('an allowed user smuggling -t, --table abbreviations, --modprobe and -M through direct rules and passthroughs gets invalid-params naming the argument, and the modprobe program never runs', async () => {
  const marker = path.join(dir, 'modprobe-ran');
  const prog = path.join(dir, 'modprobe.sh');
  writeFileSync(prog, `#!/bin/sh\necho ran > ${marker}\nexit 1\n`, { mode: 0o755 });
  const before = await fwState();
  const attempts: Array<[[string, Record<string, unknown>], string]> = [
    [['direct_add_passthrough', { ipv: 'ipv4', args: ['-tnat', '-A', 'POSTROUTING', '-j', 'ACCEPT'] }], '-tnat'],
    [['direct_add_passthrough', { ipv: 'ipv4', args: ['--tab=nat', '-A', 'POSTROUTING', '-j', 'ACCEPT'] }], '--tab=nat'],
    [['direct_add_passthrough', { ipv: 'ipv4', args: ['--tab', 'nat', '-A', 'POSTROUTING', '-j', 'ACCEPT'] }], '--tab'],
    [['direct_add_passthrough', { ipv: 'ipv4', args: ['-A', 'INPUT', '-vt', 'nat', '-j', 'ACCEPT'] }], '-vt'],
    [['direct_add_passthrough', { ipv: 'ipv4', args: [`--modprobe=${prog}`, '-A', 'INPUT', '-j', 'ACCEPT'] }], `--modprobe=${prog}`],
    [['direct_add_passthrough', { ipv: 'ipv6', args: ['--modprobe', prog, '-A', 'INPUT', '-j', 'ACCEPT'] }], '--modprobe'],
    [['direct_add_passthrough', { ipv: 'ipv4', args: ['-M', prog, '-A', 'INPUT', '-j', 'ACCEPT'] }], '-M'],
    [['direct_add_passthrough', { ipv: 'ipv4', args: ['-A', 'INPUT', '-j', 'NFQUEUE'] }], 'NFQUEUE'],
    [['direct_remove_passthrough', { ipv: 'ipv4', args: ['-M', prog, '-D', 'INPUT', '-j', 'ACCEPT'] }], '-M'],
    [['direct_add_rule', { ipv: 'ipv4', table: 'filter', chain: 'INPUT', priority: 0, args: ['-tnat', '-j', 'ACCEPT'] }], '-tnat'],
    [['direct_add_rule', { ipv: 'ipv4', table: 'filter', chain: 'INPUT', priority: 0, args: ['--tab=nat', '-j', 'ACCEPT'] }], '--tab=nat'],
    [['direct_add_rule', { ipv: 'ipv4', table: 'filter', chain: 'INPUT', priority: 0, args: ['-M', prog, '-j', 'ACCEPT'] }], '-M'],
    [['direct_add_rule', { ipv: 'ipv4', table: 'filter', chain: 'INPUT', priority: 0, args: ['-j', 'ACCEPT', `--modprobe=${prog}`] }], `--modprobe=${prog}`],
  ];
  const replies = sendAs(
    users.tuxsec,
    attempts.map(([req]) => req),
  );
  replies.forEach((r, i) => {
    const [[action, params], arg] = attempts[i]!;
    const label = `${action} ${JSON.stringify(params.args)}: ${r.code} ${r.message}`;
    assert.equal(r.code, 'invalid-params', label);
    assert.ok(r.message.includes(JSON.stringify(arg)), `names the argument ${arg}: ${label}`);
    assert.match(String(r.details?.parameter), /^args\[[0-9]+\]$/, label);
    assert.equal(r.details?.firewalld, undefined, `refused before firewalld: ${label}`);
  });
  assert.equal(existsSync(marker), false, 'the modprobe program did not run');
  assert.equal(await fwState(), before, 'firewalld unchanged');
  // A plain passthrough passes the allowlist and reaches firewalld (which may lack the iptables
  // backend here: then firewalld itself refuses it, with its own code).
  const pt = { ipv: 'ipv4', args: ['-t', 'filter', '-I', 'INPUT', '-s', '192.0.2.2', '-j', 'ACCEPT'] };
  for (const r of sendAs(users.tuxsec, [
    ['direct_add_passthrough', pt],
    ['direct_remove_passthrough', pt],
  ])) {
    assert.ok(r.code === 'success' || r.details?.firewalld !== undefined, `${r.code} ${r.message}`);
  }
});

test('an allowed user injecting options through a quote in a --comment or --log-prefix, or a %%LOGTYPE%% placeholder, into direct rules and passthroughs gets invalid-params naming the argument, and firewalld is unchanged', async () => {
  const before = await fwState();
  // firewalld quotes an argument holding whitespace as "..." for iptables-restore without escaping:
  // this comment would close the quote and append "-j NFQUEUE --queue-num 7" past the allowlist.
  const inject = 'x" -j NFQUEUE --queue-num 7 -m comment --comment "y';
  const rule = (args: string[]): [string, Record<string, unknown>] => ['direct_add_rule', { ipv: 'ipv4', table: 'filter', chain: 'INPUT', priority: 0, args }];
  const attempts: Array<[[string, Record<string, unknown>], number]> = [
    [rule(['-p', 'tcp', '--dport', '22', '-m', 'comment', '--comment', inject]), 7],
    [['direct_add_passthrough', { ipv: 'ipv4', args: ['-A', 'INPUT', '-p', 'tcp', '--dport', '22', '-m', 'comment', '--comment', inject] }], 9],
    [['direct_add_passthrough', { ipv: 'ipv6', args: ['-A', 'INPUT', '-j', 'LOG', '--log-prefix', 'a" -j NFQUEUE "'] }], 5],
    // firewalld rewrites (or, with log_denied off, silently drops) a rule holding this after we checked it.
    [rule(['-m', 'comment', '--comment', '%%LOGTYPE%%', '-j', 'ACCEPT']), 3],
    [rule(['-j', 'LOG', '--log-prefix', '%%REJECT%%']), 3],
    [['direct_add_passthrough', { ipv: 'eb', args: ['-t', 'nat', '-A', 'PREROUTING', '-j', 'redirect'] }], 5],
  ];
  const replies = sendAs(
    users.tuxsec,
    attempts.map(([req]) => req),
  );
  replies.forEach((r, i) => {
    const [[action, params], at] = attempts[i]!;
    const label = `${action} ${JSON.stringify(params.args)}: ${r.code} ${r.message}`;
    assert.equal(r.code, 'invalid-params', label);
    assert.equal(r.details?.parameter, `args[${at}]`, label);
    assert.ok(r.message.includes(JSON.stringify((params.args as string[])[at])), `names the argument: ${label}`);
    assert.equal(r.details?.firewalld, undefined, `refused before firewalld: ${label}`);
  });
  assert.equal(await fwState(), before, 'firewalld unchanged');
  // A comment with spaces and ordinary punctuation still reaches firewalld.
  const ok = rule(['-p', 'tcp', '--dport', '2222', '-m', 'comment', '--comment', 'tuxsec test: ssh (alt)', '-j', 'ACCEPT']);
  const [added] = sendAs(users.tuxsec, [ok]);
  assert.ok(added!.code === 'success' || added!.details?.firewalld !== undefined, `${added!.code} ${added!.message}`);
  if (added!.code === 'success') sendAs(users.tuxsec, [['direct_remove_rule', ok[1]]]);
});

test('an allowed user cannot switch the firewall off with stop_service unless allow_dangerous is set', async () => {
  const safe = await startRootd({
    config: { allowed_users: ['tuxsec'], modules: { firewalld: { allow_dangerous: false, settings: { pending_file: path.join(dir, 'pending-safe.json') } } } },
  });
  try {
    // dry_run: on a host where systemd runs, a wrongly allowed stop must not stop anything.
    const [stop, restart] = sendAs(
      users.tuxsec,
      [
        ['stop_service', { dry_run: true }],
        ['restart_service', { dry_run: true, probe_unknown: 1 }],
      ],
      safe.socketPath,
    );
    assert.equal(stop!.code, 'permission-denied', stop!.message);
    assert.match(stop!.message, /modules\.firewalld\.allow_dangerous/);
    assert.equal(restart!.code, 'invalid-params', 'restart_service stays in the write class');
  } finally {
    await safe.stop();
  }
  assert.equal((await fw.cmd(['--state'])).stdout.trim(), 'running');
});

/** The unique bus name of the connection that process `pid` holds on the system bus. */
async function uniqueNameOf(pid: number): Promise<string> {
  const bus = new DbusConnection();
  const dbusCall = (member: string, signature: string, body: unknown[]) =>
    bus.call({ destination: 'org.freedesktop.DBus', path: '/org/freedesktop/DBus', interface: 'org.freedesktop.DBus', member, signature, body });
  try {
    const [names] = (await dbusCall('ListNames', '', [])) as [string[]];
    for (const n of names.filter((x) => x.startsWith(':'))) {
      const [p] = await dbusCall('GetConnectionUnixProcessID', 's', [n]).catch(() => [0]);
      if (p === pid) return n;
    }
  } finally {
    bus.close();
  }
  throw new Error(`process ${pid} has no connection on the system bus`);
}

// Connects to the system bus as whoever runs it and sends forged signals straight to rootd's
// connection (a destination bypasses match rules): with "spoof", NameOwnerChanged saying
// firewalld left and the forger took its name; then `count` firewalld signals with distinct
// names. A round trip at the end makes sure the bus has passed them on.
const FORGER = `
const dbus = require(process.argv[1]);
const [, target, owner, spoof, countS] = process.argv.slice(1);
const { Message, MessageType } = dbus;
const FW = 'org.fedoraproject.FirewallD1';
const bus = dbus.systemBus();
const sig = (o) => bus.send(new Message({ type: MessageType.SIGNAL, destination: target, ...o }));
bus.on('connect', async () => {
  if (spoof === 'spoof') {
    sig({ path: '/org/freedesktop/DBus', interface: 'org.freedesktop.DBus', member: 'NameOwnerChanged', signature: 'sss', body: [FW, owner, ''] });
    sig({ path: '/org/freedesktop/DBus', interface: 'org.freedesktop.DBus', member: 'NameOwnerChanged', signature: 'sss', body: [FW, '', bus.name] });
  }
  for (let i = 0; i < Number(countS); i++) {
    sig({ path: '/org/fedoraproject/FirewallD1', interface: FW + '.zone', member: 'Forged' + i, signature: 's', body: ['public'] });
  }
  await bus.call(new Message({ destination: 'org.freedesktop.DBus', path: '/org/freedesktop/DBus', interface: 'org.freedesktop.DBus', member: 'GetId' }));
  process.stdout.write(bus.name);
  bus.disconnect();
});
bus.on('error', (e) => { process.stderr.write(String(e)); process.exit(2); });
`;

interface Stats {
  total: number;
  byMember: Record<string, number>;
}
const signalStats = async () => (await rootd.client.execute('firewalld', 'get_signal_stats', {})) as Stats;

/** Runs the forger as the outsider, then waits until rootd has read everything it sent. */
async function forge(spoof: boolean, count: number): Promise<Stats> {
  const target = await uniqueNameOf(rootd.proc.pid!);
  const before = await signalStats();
  const argv0 = ['-e', FORGER, path.join(ROOT, 'node_modules/dbus-next'), target, await firewalldOwner(), spoof ? 'spoof' : 'none', String(count)];
  const [bin, argv] = asUser(users.outsider, process.execPath, argv0);
  const r = spawnSync(bin, argv, { encoding: 'utf8', timeout: 180_000, env: {} });
  assert.equal(r.status, 0, `forger ran and the bus accepted its signals: ${r.stderr}`);
  // A real firewalld signal sent after the forged ones: once rootd has counted it, it has read them all.
  const seen = before.byMember['zone.PortAdded'] ?? 0;
  const port = `${4000 + Math.floor(Math.random() * 1000)}/tcp`;
  assert.equal((await fw.cmd(['--zone=public', `--add-port=${port}`])).code, 0);
  let stats = before;
  for (let i = 0; i < 600 && (stats.byMember['zone.PortAdded'] ?? 0) === seen; i++) {
    await new Promise((res) => setTimeout(res, 100));
    stats = await signalStats();
  }
  await fw.cmd(['--zone=public', `--remove-port=${port}`]);
  assert.equal(stats.byMember['zone.PortAdded'], seen + 1, 'the real signal was counted');
  return stats;
}

test('a local user outside the socket group forging NameOwnerChanged to rootd cannot make it think firewalld left or that the forger owns its name', async () => {
  const downs = () => rootd.log().split('firewalld left the bus').length;
  const downBefore = downs();
  const stats = await forge(true, 50);
  assert.equal(downs(), downBefore, 'firewalld was never considered gone');
  assert.deepEqual(Object.keys(stats.byMember).filter((k) => k.includes('Forged')), [], 'signals from the forger, claiming the name, were not counted');
  assert.equal(((await rootd.client.execute('firewalld', 'get_status', {})) as { running: boolean }).running, true);
});

test('a local user outside the socket group sending 20,000 firewalld signals with distinct names to rootd does not grow its signal map', async () => {
  const stats = await forge(false, 20_000);
  const keys = Object.keys(stats.byMember);
  assert.deepEqual(keys.filter((k) => k.includes('Forged')), [], 'no forged signal was counted');
  assert.ok(keys.length <= BY_MEMBER_MAX + 1, `signal map bounded: ${keys.length} keys`);
  assert.equal(((await rootd.client.execute('firewalld', 'get_zone', { zone: 'public' })) as { name: string }).name, 'public');
});

async function firewalldOwner(): Promise<string> {
  const bus = new DbusConnection();
  try {
    const [o] = await bus.call({
      destination: 'org.freedesktop.DBus',
      path: '/org/freedesktop/DBus',
      interface: 'org.freedesktop.DBus',
      member: 'GetNameOwner',
      signature: 's',
      body: ['org.fedoraproject.FirewallD1'],
    });
    return String(o);
  } finally {
    bus.close();
  }
}
