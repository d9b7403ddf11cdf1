/**
 * ssh-setup runs as root; the tuxsec user's home belongs to tuxsec. A symlink planted at
 * ~tuxsec/.ssh/authorized_keys must not make root read a root-only file into anything tuxsec
 * can read, and root writes nothing under that home.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { ROOT } from '../helpers/rootd.ts';
import { ensureTestUsers } from '../helpers/users.ts';
import { makeKeys, ssh, sshdConfig, startSshMode, type SshKeys, type SshMode } from '../helpers/sshd.ts';

const AGENT = path.join(ROOT, 'bin/tuxsec-agent');
const SECRET = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAISECRETSECRET root-only-secret-line';

/** Makes ~tuxsec/.ssh as tuxsec would (and the home if missing); returns the undo. */
async function makeDotSsh(): Promise<{ home: string; dotSsh: string; uid: number; gid: number; undo(): void }> {
  const { tuxsec } = await ensureTestUsers();
  const home = tuxsec.home;
  const createdHome = !existsSync(home);
  if (createdHome) {
    mkdirSync(home, { mode: 0o750 });
    chownSync(home, tuxsec.uid, tuxsec.gid);
  }
  const dotSsh = path.join(home, '.ssh');
  assert.equal(existsSync(dotSsh), false, `${dotSsh} exists already: not touching it`);
  mkdirSync(dotSsh, { mode: 0o700 });
  chownSync(dotSsh, tuxsec.uid, tuxsec.gid);
  return {
    home,
    dotSsh,
    uid: tuxsec.uid,
    gid: tuxsec.gid,
    undo() {
      rmSync(dotSsh, { recursive: true, force: true });
      if (createdHome) rmSync(home, { recursive: true, force: true });
    },
  };
}

describe('ssh-setup never reads or writes in the tuxsec home as root', () => {
  let home: string;
  let undo = () => {};
  let work: string;
  let keys: SshKeys;
  before(async () => {
    const d = await makeDotSsh();
    ({ home, undo } = d);
    const ssh = d.dotSsh;
    work = mkdtempSync('/run/tst-sshsetup-');
    writeFileSync(path.join(work, 'secret'), `${SECRET}\n`, { mode: 0o600 });
    // What tuxsec itself could do in its own home: point the keys file at a root-only file.
    symlinkSync(path.join(work, 'secret'), path.join(ssh, 'authorized_keys'));
    keys = makeKeys('tuxsec');
  });
  after(() => {
    undo();
    rmSync(work, { recursive: true, force: true });
    rmSync(keys.dir, { recursive: true, force: true });
  });

  const setup = (args: string[]) => spawnSync(AGENT, ['ssh-setup', '--keep-shell', '--authorized-key', `${keys.key}.pub`, ...args], { encoding: 'utf8', timeout: 60_000 });

  it('the default plan neither reads the planted symlink nor names the home', () => {
    const r = setup(['--dry-run']);
    assert.equal(r.status, 0, r.stderr);
    assert.doesNotMatch(r.stdout + r.stderr, /SECRETSECRET/);
    assert.doesNotMatch(r.stdout, new RegExp(`${home}/`));
    assert.match(r.stdout, /^# \/etc\/ssh\/tuxsec\/authorized_keys /m);
    assert.match(r.stdout, /Match User tuxsec\n {4}AuthorizedKeysFile \/etc\/ssh\/tuxsec\/authorized_keys\n/);
  });

  it('a real setup writes nothing under the home and copies nothing of the secret', async () => {
    const before = readdirSync(path.join(home, '.ssh'));
    const akf = path.join(work, 'keys', 'authorized_keys');
    const c = await sshdConfig(`Include ${work}/sshd.d/*.conf`);
    const r = setup(['--authorized-keys-file', akf, '--sshd-dir', path.join(work, 'sshd.d'), '--sshd-config', c.conf]);
    rmSync(c.dir, { recursive: true, force: true });
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(readdirSync(path.join(home, '.ssh')), before);
    assert.equal(readFileSync(path.join(work, 'secret'), 'utf8'), `${SECRET}\n`);
    assert.doesNotMatch(readFileSync(akf, 'utf8'), /SECRETSECRET/);
  });

  it('refuses a keys file inside the home, naming why', () => {
    const r = setup(['--authorized-keys-file', path.join(home, '.ssh', 'authorized_keys'), '--sshd-dir', path.join(work, 'sshd2.d')]);
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /cannot use authorized keys file .*: it is inside the home of tuxsec/);
    assert.equal(readFileSync(path.join(work, 'secret'), 'utf8'), `${SECRET}\n`);
    assert.equal(existsSync(path.join(work, 'sshd2.d')), false);
  });

  it('refuses a keys file that is a symlink', () => {
    const link = path.join(work, 'link-keys');
    symlinkSync(path.join(work, 'secret'), link);
    const r = setup(['--authorized-keys-file', link, '--sshd-dir', path.join(work, 'sshd3.d')]);
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /cannot read .*link-keys: it is a symlink/);
  });
});

describe('ssh-setup refuses paths a user could redirect, and checks its drop-in with sshd', () => {
  let work: string;
  let keys: SshKeys;
  let owned: string;
  let tuxsecUid: number;
  before(async () => {
    const { tuxsec } = await ensureTestUsers();
    tuxsecUid = tuxsec.uid;
    work = mkdtempSync('/run/tst-sshpaths-');
    chmodSync(work, 0o755);
    // A directory tuxsec owns, with a symlink tuxsec planted to a root-only directory.
    owned = path.join(work, 'owned');
    mkdirSync(owned);
    chownSync(owned, tuxsec.uid, tuxsec.gid);
    mkdirSync(path.join(work, 'target', 'sub'), { recursive: true });
    symlinkSync(path.join(work, 'target'), path.join(owned, 'link'));
    keys = makeKeys('tuxsec');
  });
  after(() => {
    rmSync(work, { recursive: true, force: true });
    rmSync(keys.dir, { recursive: true, force: true });
  });

  const setup = (args: string[]) => spawnSync(AGENT, ['ssh-setup', '--keep-shell', ...args], { encoding: 'utf8', timeout: 60_000 });
  const key = () => ['--authorized-key', `${keys.key}.pub`];

  it('refuses a keys file reached through a symlink in a directory tuxsec owns, and writes nothing', () => {
    const r = setup([...key(), '--authorized-keys-file', path.join(owned, 'link', 'sub', 'authorized_keys'), '--sshd-dir', path.join(work, 'd1')]);
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /cannot use authorized keys file .*owned.*: .*(symbolic link|owned by uid)/);
    assert.deepEqual(readdirSync(path.join(work, 'target', 'sub')), []);
    assert.equal(existsSync(path.join(work, 'd1')), false);
  });

  it('refuses a path into the home spelt with // or .., and one with % (sshd expands %h)', () => {
    for (const file of ['/var/lib//tuxsec/keys', '/etc/ssh/../../var/lib/tuxsec/keys', '/etc/ssh/%h/keys']) {
      const r = setup([...key(), '--authorized-keys-file', file, '--sshd-dir', path.join(work, 'd2'), '--dry-run']);
      assert.notEqual(r.status, 0, file);
      assert.match(r.stderr, /cannot use authorized keys file .*(inside the home of tuxsec|not an absolute path of plain characters)/, file);
    }
  });

  it('refuses an sshd directory tuxsec owns', () => {
    const r = setup(['--user-ca', `${keys.ca}.pub`, '--sshd-dir', path.join(owned, 'sshd.d')]);
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, new RegExp(`cannot use sshd directory .*: .* is owned by uid ${tuxsecUid}, not root`));
    assert.equal(existsSync(path.join(owned, 'sshd.d')), false);
  });

  it('wins over a later drop-in (50-site.conf) and replaces the tuxsec.conf of an earlier version', async () => {
    const dir = path.join(work, 'site.d');
    mkdirSync(dir);
    writeFileSync(path.join(dir, '50-site.conf'), 'Match all\n    DisableForwarding no\n    PermitTTY yes\n    AuthorizedKeysFile .ssh/authorized_keys\n');
    writeFileSync(path.join(dir, 'tuxsec.conf'), '# Written by tuxsec-agent ssh-setup: an earlier version\nMatch User tuxsec\n    DisableForwarding yes\n');
    const c = await sshdConfig(`Include ${dir}/*.conf`);
    try {
      const r = setup(['--user-ca', `${keys.ca}.pub`, '--sshd-dir', dir, '--sshd-config', c.conf]);
      assert.equal(r.status, 0, r.stderr);
      assert.equal(existsSync(path.join(dir, 'tuxsec.conf')), false);
      assert.match(r.stdout, /removed .*\/tuxsec\.conf \(written by an earlier version\)/);
      const t = spawnSync('/usr/sbin/sshd', ['-T', '-f', c.conf, '-C', 'user=tuxsec,host=localhost,addr=127.0.0.1'], { encoding: 'utf8', timeout: 30_000 });
      assert.match(t.stdout, /^disableforwarding yes$/m);
      assert.match(t.stdout, /^permittty no$/m);
      assert.match(t.stdout, /^authorizedkeysfile none$/m);
    } finally {
      rmSync(c.dir, { recursive: true, force: true });
    }
  });

  it('puts everything back and says why when sshd would not use its values', async () => {
    const dir = path.join(work, 'early.d');
    mkdirSync(dir);
    // A Match block read before the drop-in: its value is the one sshd keeps.
    const c = await sshdConfig(`Match User tuxsec\n    PermitTTY yes\nMatch all\nInclude ${dir}/*.conf`);
    try {
      const r = setup(['--user-ca', `${keys.ca}.pub`, '--sshd-dir', dir, '--sshd-config', c.conf]);
      assert.notEqual(r.status, 0);
      assert.match(r.stderr, /cannot set up SSH mode: sshd would use "permittty yes" for tuxsec, not "permittty no": another drop-in sets it first, or .* does not include .*; the files are as they were/);
      assert.deepEqual(readdirSync(dir), []);
    } finally {
      rmSync(c.dir, { recursive: true, force: true });
    }
  });
});

describe('user-CA mode reads no keys from the home of tuxsec', () => {
  let m: SshMode;
  let undo = () => {};
  before(async () => {
    m = await startSshMode();
    const d = await makeDotSsh();
    undo = d.undo;
    // What tuxsec could do itself: add a key of its choosing to its own authorized_keys.
    const file = path.join(d.dotSsh, 'authorized_keys');
    writeFileSync(file, readFileSync(`${m.keys.key}.pub`), { mode: 0o600 });
    chownSync(file, d.uid, d.gid);
  });
  after(async () => {
    await m?.stop();
    undo();
  });

  it('a key tuxsec planted in ~/.ssh/authorized_keys gets no login through the CA drop-in', () => {
    const r = ssh(m.ca, m.keys.key, 'tuxsec-cli execute marker touch');
    assert.equal(r.status, 255, r.stdout + r.stderr);
    assert.match(r.stderr, /Permission denied/);
    assert.equal(existsSync(m.writeMarker), false);
  });
});
