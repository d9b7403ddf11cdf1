/**
 * ssh-setup runs as root; the tuxsec user's home belongs to tuxsec. A symlink planted at
 * ~tuxsec/.ssh/authorized_keys must not make root read a root-only file into anything tuxsec
 * can read, and root writes nothing under that home.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { ROOT } from '../helpers/rootd.ts';
import { ensureTestUsers } from '../helpers/users.ts';
import { makeKeys, type SshKeys } from '../helpers/sshd.ts';

const AGENT = path.join(ROOT, 'bin/tuxsec-agent');
const SECRET = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAISECRETSECRET root-only-secret-line';

describe('ssh-setup never reads or writes in the tuxsec home as root', () => {
  let home: string;
  let createdHome = false;
  let work: string;
  let keys: SshKeys;
  before(async () => {
    const { tuxsec } = await ensureTestUsers();
    home = tuxsec.home;
    if (!existsSync(home)) {
      mkdirSync(home, { mode: 0o750 });
      chownSync(home, tuxsec.uid, tuxsec.gid);
      createdHome = true;
    }
    const ssh = path.join(home, '.ssh');
    assert.equal(existsSync(ssh), false, `${ssh} exists already: not touching it`);
    mkdirSync(ssh, { mode: 0o700 });
    chownSync(ssh, tuxsec.uid, tuxsec.gid);
    work = mkdtempSync('/run/tst-sshsetup-');
    writeFileSync(path.join(work, 'secret'), `${SECRET}\n`, { mode: 0o600 });
    // What tuxsec itself could do in its own home: point the keys file at a root-only file.
    symlinkSync(path.join(work, 'secret'), path.join(ssh, 'authorized_keys'));
    keys = makeKeys('tuxsec');
  });
  after(() => {
    rmSync(path.join(home, '.ssh'), { recursive: true, force: true });
    if (createdHome) rmSync(home, { recursive: true, force: true });
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

  it('a real setup writes nothing under the home and copies nothing of the secret', () => {
    const before = readdirSync(path.join(home, '.ssh'));
    const akf = path.join(work, 'keys', 'authorized_keys');
    const r = setup(['--authorized-keys-file', akf, '--sshd-dir', path.join(work, 'sshd.d')]);
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
