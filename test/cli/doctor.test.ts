import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startRootd, ROOT, type RootdHandle } from '../helpers/rootd.ts';
import { ensureTestUsers, asUser } from '../helpers/users.ts';
import { makeCerts, type CertPaths } from '../helpers/certs.ts';
import { startServer, type TestServer } from '../helpers/server.ts';
import { pluginDir, writePluginSource, SDK_JS } from '../helpers/plugin.ts';
import type { UserEntry } from '../../src/os/users.ts';

const BIN = path.join(ROOT, 'bin/tuxsec-cli');

interface Check {
  name: string;
  ok: boolean | null;
  detail: string;
  fix: string | null;
}

interface Report {
  status: number | null;
  checks: Check[];
  stderr: string;
}

/** Runs `tuxsec-cli doctor --json`, as root or as `user`. */
function doctor(args: string[], user?: UserEntry): Report {
  const full = ['doctor', '--json', ...args];
  const [file, argv] = user ? asUser(user, process.execPath, [BIN, ...full]) : [BIN, full];
  const r = spawnSync(file, argv, { encoding: 'utf8', timeout: 60_000 });
  assert.equal(r.stderr, '', r.stderr);
  return { status: r.status, checks: (JSON.parse(r.stdout) as { checks: Check[] }).checks, stderr: r.stderr };
}

function check(r: Report, name: string): Check {
  const c = r.checks.find((x) => x.name === name);
  assert.ok(c, `no check ${name} in ${JSON.stringify(r.checks.map((x) => x.name))}`);
  return c;
}

/** The failures of a report, as name -> check. */
const failures = (r: Report) => r.checks.filter((c) => c.ok === false).map((c) => c.name);

describe('tuxsec-cli doctor', () => {
  let d: RootdHandle;
  let srv: TestServer;
  let dir: string;
  let certs: CertPaths;
  let users: Awaited<ReturnType<typeof ensureTestUsers>>;
  let agentYaml: string;

  /** An agent.yaml readable by the test users; `extra` overrides the good setup's keys. */
  function agentConfig(name: string, extra: Record<string, unknown> = {}): string {
    const cfg = { server_url: srv.url, ca_cert: certs.ca, ssl_cert: certs.clientCert, ssl_key: certs.clientKey, rootd_socket: d.socketPath, ...extra };
    const file = path.join(dir, name);
    writeFileSync(file, Object.entries(cfg).map(([k, v]) => `${k}: ${JSON.stringify(v)}`).join('\n') + '\n', { mode: 0o644 });
    return file;
  }
  const base = (agent = agentYaml) => ['--socket', d.socketPath, '--rootd-config', d.configPath, '--agent-config', agent];

  before(async () => {
    users = await ensureTestUsers();
    dir = mkdtempSync(path.join(tmpdir(), 'tuxsec-doctor-'));
    chmodSync(dir, 0o755);
    // Valid for a year: the good setup must not trip the 30-day expiry warning.
    certs = await makeCerts(path.join(dir, 'certs'), { days: 365 });
    chmodSync(path.join(dir, 'certs'), 0o755);
    chmodSync(certs.clientKey, 0o600);
    srv = await startServer({ certs });
    d = await startRootd({ config: { modules: { firewalld: { enabled: false } } } });
    agentYaml = agentConfig('agent.yaml');
  });
  after(async () => {
    await d?.stop();
    await srv?.stop();
    srv?.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  it('passes every check in a good setup, as root, and exits 0', () => {
    const r = doctor(base());
    assert.deepEqual(
      r.checks.filter((c) => c.ok !== true),
      [],
    );
    assert.equal(r.status, 0);
    for (const name of ['socket-directory', 'socket', 'socket-group', 'rootd', 'allowed-users', 'module systeminfo', 'module firewalld', 'rootd-config', 'agent-config', 'ca_cert', 'ssl_cert', 'ssl_key', 'server', 'clock']) {
      assert.equal(check(r, name).ok, true, name);
    }
    assert.match(check(r, 'socket-directory').detail, /: 0750 root:tuxsec$/);
    assert.match(check(r, 'socket').detail, /: 0660 root:tuxsec$/);
    assert.equal(check(r, 'module firewalld').detail, 'disabled in rootd.yaml');
    assert.match(check(r, 'clock').detail, /Date header/);
  });

  it('prints one line per check and the count without --json', () => {
    const r = spawnSync(BIN, ['doctor', ...base()], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(r.status, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /^ok {4}socket-directory +\/tmp\//m);
    assert.match(r.stdout, /\n\n\d+ checks: \d+ passed, 0 failed, 0 skipped\n$/);
  });

  it('as the agent user: a rootd.yaml it may not read is skipped, not passed', () => {
    const r = doctor(base(), users.tuxsec);
    assert.deepEqual(failures(r), []);
    assert.equal(r.status, 0);
    assert.equal(check(r, 'rootd-config').ok, null);
    assert.match(check(r, 'rootd-config').detail, /^skipped: .*rootd\.yaml cannot be read as uid \d+ \(tuxsec\)/);
    assert.match(check(r, 'socket-group').detail, /is in group tuxsec/);
    // The client key is 0600 root here: the agent user cannot read it either.
    assert.equal(check(r, 'ssl_key').ok, null);
  });

  it('a caller outside the socket group: socket-group fails with the usermod fix', () => {
    const r = doctor(base(), users.outsider);
    assert.equal(r.status, 1);
    const g = check(r, 'socket-group');
    assert.equal(g.ok, false);
    assert.match(g.detail, /\(tuxsec-test-outsider\) is not in group tuxsec/);
    assert.equal(g.fix, 'sudo usermod -a -G tuxsec tuxsec-test-outsider, then log in again');
    assert.equal(check(r, 'socket').ok, null, 'the socket cannot be seen from outside the group');
    assert.equal(check(r, 'rootd').ok, null);
  });

  it('a group member not in allowed_users: allowed-users fails with rootd\'s refusal', () => {
    const r = doctor(base(), users.member);
    assert.equal(r.status, 1);
    assert.deepEqual(failures(r), ['allowed-users']);
    const a = check(r, 'allowed-users');
    assert.match(a.detail, /permission denied: uid \d+ may not use tuxsec-rootd/);
    assert.match(a.fix!, /^add tuxsec-test-member to allowed_users \(or read_only_users\) in rootd\.yaml, then sudo systemctl reload tuxsec-rootd$/);
    assert.equal(check(r, 'rootd').ok, true);
  });

  it('an expired client certificate: ssl_cert fails with the renewal fix', async () => {
    const old = await makeCerts(path.join(dir, 'expired'), { expired: true });
    const r = doctor(base(agentConfig('expired.yaml', { ssl_cert: old.clientCert, ssl_key: old.clientKey })));
    assert.equal(r.status, 1);
    const c = check(r, 'ssl_cert');
    assert.equal(c.ok, false);
    assert.match(c.detail, /: expired on \d{4}-/);
    assert.equal(c.fix, `renew it: put a new certificate at ${old.clientCert}; then sudo systemctl restart tuxsec-agent`);
  });

  it('a client certificate expiring in 10 days: ssl_cert fails before it expires', async () => {
    const soon = await makeCerts(path.join(dir, 'soon'), { days: 10 });
    const r = doctor(base(agentConfig('soon.yaml', { ssl_cert: soon.clientCert, ssl_key: soon.clientKey })));
    const c = check(r, 'ssl_cert');
    assert.equal(c.ok, false);
    assert.match(c.detail, /: expires on \d{4}-.*, in 9 days$/);
    assert.match(c.fix!, /^renew it: /);
    assert.equal(check(r, 'ssl_key').ok, true);
  });

  it('a key that is not the certificate\'s: ssl_key fails', () => {
    chmodSync(certs.serverKey, 0o600);
    const r = doctor(base(agentConfig('mismatch.yaml', { ssl_key: certs.serverKey })));
    assert.equal(r.status, 1);
    const k = check(r, 'ssl_key');
    assert.equal(k.ok, false);
    assert.equal(k.detail, `${certs.serverKey} is not the key of the certificate in ssl_cert`);
    assert.match(k.fix!, /^put ssl_cert's own key at /);
    assert.equal(check(r, 'ssl_cert').ok, true);
  });

  it('an unreachable server: server fails, clock is skipped', () => {
    // A port nobody listens on: the server's own, after it is known to be free is not certain, so a closed low port.
    const r = doctor(base(agentConfig('down.yaml', { server_url: 'https://127.0.0.1:9' })));
    assert.equal(r.status, 1);
    const s = check(r, 'server');
    assert.equal(s.ok, false);
    assert.match(s.detail, /^cannot reach https:\/\/127\.0\.0\.1:9\/: .*ECONNREFUSED/);
    assert.match(s.fix!, /^check server_url in agent\.yaml/);
    assert.equal(check(r, 'clock').ok, null);
  });

  it('a server whose certificate the configured CA did not sign: server fails naming the CA', async () => {
    const other = await makeCerts(path.join(dir, 'other-ca'), { days: 365, caName: 'unrelated-ca' });
    const r = doctor(base(agentConfig('other-ca.yaml', { ca_cert: other.ca })));
    const s = check(r, 'server');
    assert.equal(s.ok, false);
    assert.match(s.detail, /not signed by a trusted CA|untrusted CA/);
  });

  it('configs with an unknown key: agent-config and rootd-config fail naming it', () => {
    const rootdYaml = path.join(dir, 'rootd-bad.yaml');
    writeFileSync(rootdYaml, 'socket_group: tuxsec\nsocket_grup: tuxsec\n');
    const args = ['--socket', d.socketPath, '--rootd-config', rootdYaml, '--agent-config', agentConfig('bad.yaml', { pol_interval: 5 })];
    const r = doctor(args);
    assert.equal(r.status, 1);
    const a = check(r, 'agent-config');
    assert.equal(a.ok, false);
    assert.match(a.detail, /unknown key "pol_interval"/);
    assert.match(a.fix!, /tuxsec-agent --check-config --config /);
    const rc = check(r, 'rootd-config');
    assert.match(rc.detail, /unknown key "socket_grup"/);
    assert.match(rc.fix!, /tuxsec-rootd --check-config --config /);
  });

  it('a module that failed to initialise and a plugin that was refused: each fails with why', async () => {
    const plugins = pluginDir();
    writePluginSource(
      plugins,
      'needsthing.mjs',
      `import { ActionModule } from ${JSON.stringify(SDK_JS)};
export default class extends ActionModule {
  get name() { return 'needsthing'; }
  get version() { return '1.0.0'; }
  get description() { return 'test'; }
  async initialize() { return [false, 'the thing it needs is not installed']; }
  defineActions() { return []; }
}
`,
    );
    writePluginSource(plugins, 'writable.mjs', `throw new Error('must never load');\n`, 0o666);
    // aide without its program: how a host is, not a fault (a skip, not a failure).
    const m = await startRootd({ config: { plugins_dir: plugins, modules: { firewalld: { enabled: false }, aide: { settings: { binary: '/nonexistent/aide' } } } } });
    try {
      const r = doctor(['--socket', m.socketPath, '--rootd-config', m.configPath, '--agent-config', agentYaml]);
      assert.equal(r.status, 1);
      const n = check(r, 'module needsthing');
      assert.equal(n.ok, false);
      assert.equal(n.detail, 'not available: the thing it needs is not installed');
      assert.match(n.fix!, /journalctl -u tuxsec-rootd \| grep -i module/);
      const w = check(r, 'module writable');
      assert.equal(w.ok, false);
      assert.match(w.detail, /^not loaded \(.*writable\.mjs\): /);
      assert.equal(check(r, 'module systeminfo').ok, true);
      const a = check(r, 'module aide');
      assert.equal(a.ok, null);
      assert.match(a.detail, /^skipped: not available on this host: .*\/nonexistent\/aide/);
    } finally {
      await m.stop();
      rmSync(plugins, { recursive: true, force: true });
    }
  });

  it('rootd killed (a stale socket), then stopped (no socket): rootd fails with the guide\'s fixes', async () => {
    const k = await startRootd({ config: { modules: { firewalld: { enabled: false } } } });
    try {
      k.signal('SIGKILL');
      await new Promise((resolve) => (k.proc.exitCode !== null || k.proc.signalCode !== null ? resolve(null) : k.proc.once('exit', resolve)));
      const stale = doctor(['--socket', k.socketPath, '--rootd-config', k.configPath, '--agent-config', agentYaml]);
      assert.equal(stale.status, 1);
      const r = check(stale, 'rootd');
      assert.equal(r.ok, false);
      assert.match(r.detail, /connection refused \(tuxsec-rootd is not running; the socket is stale\)/);
      assert.equal(r.fix, 'it died: check journalctl -u tuxsec-rootd, then sudo systemctl restart tuxsec-rootd');
      assert.equal(check(stale, 'modules').ok, null);
      rmSync(k.socketPath);
      const gone = doctor(['--socket', k.socketPath, '--rootd-config', k.configPath, '--agent-config', agentYaml]);
      assert.equal(check(gone, 'socket').ok, false);
      assert.equal(check(gone, 'socket').fix, 'start it: sudo systemctl start tuxsec-rootd');
      assert.equal(check(gone, 'rootd').fix, 'start it: sudo systemctl start tuxsec-rootd');
    } finally {
      await k.stop();
    }
  });

  it('a socket directory others can write, or not root\'s: socket-directory fails with the chown/chmod fix', async () => {
    const sockDir = path.dirname(d.socketPath);
    chmodSync(sockDir, 0o770);
    try {
      const r = doctor(base());
      const c = check(r, 'socket-directory');
      assert.equal(c.ok, false);
      assert.match(c.detail, /group or others can write it \(mode 0770\)/);
      assert.equal(c.fix, `make it root's, 0750 root:tuxsec: sudo chown root:tuxsec ${sockDir} && sudo chmod 0750 ${sockDir}`);
    } finally {
      chmodSync(sockDir, 0o750);
    }
  });

  it('the CLI bundle loads doctor from a file of its own: YAML, schemas and HTTPS stay out of the other commands', () => {
    const cli = readFileSync(path.join(ROOT, 'dist/tuxsec-cli.cjs'), 'utf8');
    assert.match(cli, /import\("\.\/tuxsec-cli-doctor\.cjs"\)/);
    for (const heavy of ['maxAliasCount', 'undici', 'X509Certificate']) assert.ok(!cli.includes(heavy), heavy);
  });

  it('usage: --rootd-config goes with doctor only; doctor takes no argument', () => {
    const r = spawnSync(BIN, ['ping', '--rootd-config', '/x'], { encoding: 'utf8' });
    assert.equal(r.status, 2);
    assert.match(r.stderr, /--rootd-config and --agent-config go with doctor/);
    assert.equal(spawnSync(BIN, ['doctor', 'extra'], { encoding: 'utf8' }).status, 2);
  });
});
