/**
 * SSH mode's restricted shell against command lines a stolen server key would send. Each would
 * create a marker file if anything ran it; each must be refused with a non-zero exit and leave
 * no marker. Through a real sshd, both the authorized_keys `command=` path and the user-CA
 * ForceCommand path. (A naive shell, `exec /bin/sh -c "$SSH_ORIGINAL_COMMAND"`, fails every case:
 * run with TUXSEC_SHELL_UNDER_TEST=<that script>.)
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { appendFileSync, chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { SSH, SSH_ENV, SSH_KEYGEN, ssh, sshArgs, startSshMode, type SshdHandle, type SshMode } from '../helpers/sshd.ts';
import { RootdClient } from '../../src/client/rootd-client.ts';

describe('tuxsec-shell refuses everything but tuxsec-cli and the probes (real sshd)', () => {
  let m: SshMode;
  let dir: string;
  before(async () => {
    m = await startSshMode();
    // Writable by tuxsec, so a command that did run would leave its marker.
    dir = mkdtempSync(path.join(tmpdir(), 'tsm-'));
    chmodSync(dir, 0o1777);
  });
  after(async () => {
    await m?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const cases: Array<[string, (marker: string) => string]> = [
    ['a program other than tuxsec-cli', (f) => `touch ${f}`],
    ['id', () => 'id'],
    ['a command after ;', (f) => `tuxsec-cli system-info; touch ${f}`],
    ['$(...)', (f) => `tuxsec-cli execute $(touch ${f}) x`],
    ['backquotes', (f) => `tuxsec-cli execute \`touch ${f}\` x`],
    ['a pipe', (f) => `tuxsec-cli system-info | tee ${f}`],
    ['&&', (f) => `tuxsec-cli system-info && touch ${f}`],
    ['a redirection', (f) => `tuxsec-cli system-info > ${f}`],
    ['a newline', (f) => `tuxsec-cli system-info\ntouch ${f}`],
    ['$ inside double quotes', (f) => `tuxsec-cli execute "$(touch ${f})" x`],
    ['sh', (f) => `sh -c 'touch ${f}'`],
    ['an absolute path to another program', (f) => `/usr/bin/touch ${f}`],
    ['a 100 KiB command line', (f) => `touch ${f} ${'a'.repeat(100 * 1024)}`],
    ['the probe prefix followed by a command', (f) => `echo "test"; touch ${f}`],
    ['tuxsec-cli with its socket pointed elsewhere', (f) => `tuxsec-cli --socket ${f} ping`],
  ];
  let n = 0;
  for (const via of ['command=', 'ForceCommand'] as const) {
    for (const [name, line] of cases) {
      it(`refuses ${name} (${via}) and nothing runs`, () => {
        const marker = path.join(dir, `marker-${n++}`);
        const r = via === 'command=' ? ssh(m.keyed, m.keys.key, line(marker)) : ssh(m.ca, m.keys.certKey, line(marker));
        assert.notEqual(r.status, 0, `exit 0 for ${JSON.stringify(line(marker).slice(0, 100))}: ${r.stdout.slice(0, 300)}`);
        assert.match(r.stderr, /tuxsec-shell: cannot/);
        assert.doesNotMatch(r.stdout, /uid=/);
        assert.equal(existsSync(marker), false, 'the command ran');
      });
    }
    it(`refuses tuxsec-cli doctor, which reads agent.yaml and contacts the server (${via})`, () => {
      const r = via === 'command=' ? ssh(m.keyed, m.keys.key, 'tuxsec-cli doctor --json') : ssh(m.ca, m.keys.certKey, 'tuxsec-cli doctor');
      assert.equal(r.status, 126, r.stdout.slice(0, 300));
      assert.match(r.stderr, /^tuxsec-shell: cannot run tuxsec-cli "doctor" over SSH: only system-info, list-modules, installed-modules, module-info, execute, ping$/m);
      assert.equal(r.stdout, '');
    });
    it(`an interactive login gets no shell (${via})`, () => {
      const r = via === 'command=' ? ssh(m.keyed, m.keys.key, '') : ssh(m.ca, m.keys.certKey, '');
      assert.notEqual(r.status, 0);
      assert.match(r.stderr, /cannot start an interactive session/);
    });
  }
});

describe('no tunnel to rootd through SSH mode, whatever a key line says (real sshd)', () => {
  let m: SshMode;
  let bare: string;
  before(async () => {
    m = await startSshMode();
    // A key line with no options at all, as an admin might add by hand: the drop-in must hold anyway.
    bare = `${m.keys.dir}/bare`;
    spawnSync(SSH_KEYGEN, ['-q', '-t', 'ed25519', '-N', '', '-C', 'bare', '-f', bare], { timeout: 30_000 });
    appendFileSync(`${m.work}/authorized_keys`, readFileSync(`${bare}.pub`, 'utf8'));
  });
  after(async () => {
    await m?.stop();
  });

  /** `ssh -N -L local:rootd.sock`, then a ping through the local end; resolves whether rootd answered. */
  async function pingThroughTunnel(d: SshdHandle, identity: string): Promise<boolean> {
    const local = `${m.work}/fwd-${Math.random().toString(36).slice(2)}.sock`;
    const p = spawn(SSH, [...sshArgs(d, identity, 'tuxsec', 'INFO'), '-N', '-L', `${local}:${m.rootd.socketPath}`], { env: SSH_ENV, stdio: 'ignore' });
    try {
      const deadline = Date.now() + 30_000;
      while (!existsSync(local)) {
        // ssh listens locally only once logged in: no socket means the test proves nothing.
        if (p.exitCode !== null || Date.now() > deadline) throw new Error(`ssh -L did not log in and listen (exit ${p.exitCode}): ${d.log().slice(-1500)}`);
        await new Promise((r) => setTimeout(r, 50));
      }
      const client = new RootdClient({ socketPath: local, timeoutMs: 10_000 });
      try {
        return await client.ping().then(
          () => true,
          () => false,
        );
      } finally {
        client.close();
      }
    } finally {
      if (p.exitCode === null) p.kill('SIGTERM');
    }
  }

  for (const [name, key] of [['the ssh-setup key', () => m.keys.key], ['a key line without options', () => bare]] as const) {
    it(`ssh -N -L to rootd's socket gets no answer (${name})`, async () => {
      assert.equal(await pingThroughTunnel(m.keyed, key()), false, 'rootd answered through the tunnel');
    });
    it(`ssh -W to a loopback port is refused (${name})`, () => {
      const r = spawnSync(SSH, [...sshArgs(m.keyed, key()), '-W', `127.0.0.1:${m.keyed.port}`], { encoding: 'utf8', input: '', timeout: 60_000, env: SSH_ENV });
      assert.doesNotMatch(r.stdout, /^SSH-2\.0-/);
      assert.notEqual(r.status, 0);
    });
  }

  it('a certificate from a CA trusted site-wide gets no login where keys are the way in (AuthenticationMethods, TrustedUserCAKeys none)', () => {
    // startSshMode's key-mode sshd trusts the test CA globally, as a site-wide TrustedUserCAKeys would.
    const r = ssh(m.keyed, m.keys.certKey, 'tuxsec-cli execute marker touch');
    assert.equal(r.status, 255, r.stdout + r.stderr);
    assert.match(r.stderr, /Permission denied/);
    assert.equal(existsSync(m.writeMarker), false);
  });

  it('a key a site-wide AuthorizedKeysCommand serves gets no login (AuthorizedKeysCommand none)', () => {
    const akc = `${m.keys.dir}/akc`;
    spawnSync(SSH_KEYGEN, ['-q', '-t', 'ed25519', '-N', '', '-C', 'akc', '-f', akc], { timeout: 30_000 });
    writeFileSync(`${m.work}/akc-keys`, readFileSync(`${akc}.pub`), { mode: 0o644 });
    const r = ssh(m.keyed, akc, 'tuxsec-cli execute marker touch');
    assert.equal(r.status, 255, r.stdout + r.stderr);
    assert.match(r.stderr, /Permission denied/);
    assert.equal(existsSync(m.writeMarker), false);
  });

  it('a key line without options still runs only tuxsec-shell', () => {
    const r = ssh(m.keyed, bare, 'id');
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /tuxsec-shell: cannot/);
    assert.doesNotMatch(r.stdout, /uid=/);
  });

  it('through the CA drop-in too: ssh -N -L to rootd gets no answer', async () => {
    assert.equal(await pingThroughTunnel(m.ca, m.keys.certKey), false);
  });
});
