import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { hostname } from 'node:os';
import { existsSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { SHELL_UNDER_TEST, ssh, startSshMode, type SshMode } from '../helpers/sshd.ts';

describe('tuxsec-shell over a real sshd (SSH mode, INTEROP section 4)', () => {
  let m: SshMode;
  before(async () => {
    m = await startSshMode();
  });
  after(async () => {
    await m?.stop();
  });

  for (const via of ['authorized_keys command=', 'user CA certificate'] as const) {
    it(`tuxsec-cli execute systeminfo get_hostname prints the JSON (${via})`, () => {
      const r = via === 'user CA certificate' ? ssh(m.ca, m.keys.certKey, 'tuxsec-cli execute systeminfo get_hostname') : ssh(m.keyed, m.keys.key, 'tuxsec-cli execute systeminfo get_hostname');
      assert.equal(r.status, 0, r.stderr + m.keyed.log().slice(-2000) + m.ca.log().slice(-2000));
      assert.equal(JSON.parse(r.stdout).hostname, hostname());
      assert.match(r.stdout, /^\{\n {2}"/);
    });
  }

  it('the original server\'s probe sequence gets the answers it expects', () => {
    const echo = ssh(m.keyed, m.keys.key, 'echo "test"');
    assert.equal(echo.status, 0, echo.stderr);
    assert.equal(echo.stdout, 'test\n');
    const which = ssh(m.keyed, m.keys.key, 'which tuxsec-cli 2>/dev/null');
    assert.equal(which.status, 0, which.stderr);
    assert.match(which.stdout, /^\/\S*tuxsec-cli\n$/);
    const active = ssh(m.keyed, m.keys.key, 'systemctl is-active tuxsec-rootd 2>/dev/null');
    assert.equal(active.stdout, 'active\n');
    assert.equal(active.status, 0);
    const os = ssh(m.keyed, m.keys.key, 'cat /etc/os-release 2>/dev/null');
    assert.equal(os.status, 0);
    assert.equal(os.stdout, readFileSync('/etc/os-release', 'utf8'));
    const info = ssh(m.keyed, m.keys.key, 'tuxsec-cli system-info');
    assert.equal(info.status, 0, info.stderr);
    assert.equal(JSON.parse(info.stdout).hostname, hostname());
    const list = ssh(m.keyed, m.keys.key, 'tuxsec-cli list-modules');
    assert.match(list.stdout, /^Available modules:\n( {2}- \w+\n)+$/);
  });

  it('a quoted --param value with spaces arrives as one argument', () => {
    const rule = 'rule family="ipv4" source address="10.0.0.0/8" service name="ssh" accept';
    const r = ssh(m.keyed, m.keys.key, `tuxsec-cli execute marker echo --param 'rule=${rule}'`);
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), { rule });
  });

  it('systemctl is-active answers inactive when rootd does not answer', () => {
    const conf = path.join(m.work, 'shell.yaml');
    const saved = readFileSync(conf, 'utf8');
    writeFileSync(conf, `socket: ${m.work}/no-such.sock\n`);
    try {
      const r = ssh(m.keyed, m.keys.key, 'systemctl is-active tuxsec-rootd 2>/dev/null');
      assert.equal(r.stdout, 'inactive\n');
      assert.equal(r.status, 3);
    } finally {
      writeFileSync(conf, saved);
    }
  });

  it('a read-only key runs read actions and refuses a write action before it runs', () => {
    const ok = ssh(m.keyed, m.readOnlyKey, 'tuxsec-cli execute marker look');
    assert.equal(ok.status, 0, ok.stderr);
    const r = ssh(m.keyed, m.readOnlyKey, 'tuxsec-cli execute marker touch');
    assert.equal(r.status, 1);
    assert.match(r.stderr, /^Error: cannot run marker "touch": read-only mode allows only read actions \(its access class is "write"\)$/m);
    assert.equal(existsSync(m.writeMarker), false);
    // The same action through the full key runs: the refusal above was the read-only option.
    const full = ssh(m.keyed, m.keys.key, 'tuxsec-cli execute marker touch');
    assert.equal(full.status, 0, full.stderr);
    assert.equal(existsSync(m.writeMarker), true);
  });

  it('agent.yaml\'s policy holds over SSH: a denied execute is refused before it runs', () => {
    const agentYaml = m.agent.configPath;
    const saved = readFileSync(agentYaml, 'utf8');
    rmSync(m.writeMarker, { force: true });
    writeFileSync(agentYaml, `${saved}\npolicy:\n  deny: ["firewalld/*", "marker/touch"]\n`);
    try {
      for (const [line, shown] of [['tuxsec-cli execute firewalld add_service --param zone=public --param service=http', 'firewalld add_service'], ['tuxsec-cli --read-only execute marker touch', 'marker touch']]) {
        const r = ssh(m.keyed, m.keys.key, line!);
        assert.equal(r.status, 1, r.stdout + r.stderr);
        // sshd may add a line of its own before it (no home directory).
        assert.match(r.stderr, new RegExp(`^Error: cannot run ${shown}: refused by the agent's policy$`, 'm'));
        assert.equal(r.stdout, '');
      }
      assert.equal(existsSync(m.writeMarker), false, 'the denied action ran');
      // What the policy does not name still runs.
      const ok = ssh(m.ca, m.keys.certKey, 'tuxsec-cli execute marker look');
      assert.equal(ok.status, 0, ok.stderr);
      // An agent.yaml that cannot be used refuses every execute rather than run without a policy.
      writeFileSync(agentYaml, 'policy: [oops\n');
      const bad = ssh(m.keyed, m.keys.key, 'tuxsec-cli execute marker look');
      assert.equal(bad.status, 126);
      assert.match(bad.stderr, /^tuxsec-shell: cannot run command: cannot load config .*agent\.yaml: invalid YAML/m);
    } finally {
      writeFileSync(agentYaml, saved);
    }
  });

  it('beyond max_sessions a session is refused; a slot whose process is gone is taken back', async () => {
    const conf = path.join(m.work, 'shell.yaml');
    const saved = readFileSync(conf, 'utf8');
    // A session that holds the only slot: a live process's pid, as tuxsec-shell writes its own.
    const holder = spawn('/usr/bin/sleep', ['600'], { stdio: 'ignore' });
    const slot = path.join(m.work, 'sessions', String(holder.pid));
    writeFileSync(slot, '');
    writeFileSync(conf, `${saved}max_sessions: 1\n`);
    try {
      const r = ssh(m.keyed, m.keys.key, 'echo "test"');
      assert.equal(r.status, 126, r.stdout);
      assert.match(r.stderr, /^tuxsec-shell: cannot start a session: too many SSH-mode sessions \(max_sessions is 1\); try again when one has ended$/m);
      const gone = new Promise((resolve) => holder.once('exit', resolve));
      holder.kill('SIGKILL');
      await gone;
      const ok = ssh(m.keyed, m.keys.key, 'echo "test"');
      assert.equal(ok.status, 0, ok.stderr);
      assert.equal(existsSync(slot), false, 'the dead session\'s slot stayed');
      assert.deepEqual(readdirSync(path.join(m.work, 'sessions')), [], 'a finished session left its slot');
    } finally {
      holder.kill('SIGKILL');
      writeFileSync(conf, saved);
    }
  });

  it('ssh-setup wrote root-owned key files with restrict,command= and made tuxsec-shell the login shell', () => {
    const akf = path.join(m.work, 'authorized_keys');
    const st = statSync(akf);
    assert.equal(st.uid, 0);
    assert.equal((st.mode & 0o777).toString(8), '644');
    const lines = readFileSync(akf, 'utf8').trim().split('\n');
    assert.equal(lines.length, 2);
    assert.ok(lines.every((l) => l.startsWith(`restrict,command="${SHELL_UNDER_TEST} `)), lines.join('\n'));
    assert.equal(lines.filter((l) => l.includes(' --read-only ')).length, 1);
    assert.equal(statSync(path.join(m.work, 'sshd.d', '00-tuxsec.conf')).uid, 0);
    const dropIn = readFileSync(path.join(m.work, 'keyed.d', '00-tuxsec.conf'), 'utf8');
    assert.match(dropIn, new RegExp(`Match User tuxsec\n {4}AuthorizedKeysFile ${akf}\n {4}TrustedUserCAKeys none\n`));
    for (const l of ['AuthenticationMethods publickey', 'AuthorizedKeysCommand none', 'PasswordAuthentication no', 'DisableForwarding yes', 'PermitTTY no', 'PermitUserRC no', 'MaxSessions 8']) {
      assert.match(dropIn, new RegExp(`\n {4}${l}\n`));
    }
    // ForceCommand would override each key's command=, and with it --read-only.
    assert.doesNotMatch(dropIn, /ForceCommand/);
    const shell = spawnSync('/usr/bin/getent', ['passwd', 'tuxsec'], { encoding: 'utf8' }).stdout.trim().split(':')[6];
    assert.equal(shell, SHELL_UNDER_TEST);
  });

  it('ssh-setup --dry-run prints the drop-in and writes nothing', () => {
    const r = spawnSync(process.execPath, ['dist/tuxsec-agent.js', 'ssh-setup', '--user-ca', `${m.keys.ca}.pub`, '--sshd-dir', '/nonexistent-dir', '--dry-run'], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^# \/nonexistent-dir\/00-tuxsec.conf /m);
    assert.match(r.stdout, /Match User tuxsec\n {4}TrustedUserCAKeys \/nonexistent-dir\/tuxsec-user-ca.pub\n {4}AuthorizedPrincipalsFile .*\n {4}AuthorizedKeysFile none\n {4}ForceCommand \/usr\/bin\/tuxsec-shell\n/);
  });
});
