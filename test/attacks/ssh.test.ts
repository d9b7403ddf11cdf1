/**
 * SSH mode's restricted shell against command lines a stolen server key would send. Each would
 * create a marker file if anything ran it; each must be refused with a non-zero exit and leave
 * no marker. Through a real sshd, both the authorized_keys `command=` path and the user-CA
 * ForceCommand path. (A naive shell, `exec /bin/sh -c "$SSH_ORIGINAL_COMMAND"`, fails every case:
 * run with TUXSEC_SHELL_UNDER_TEST=<that script>.)
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ssh, startSshMode, type SshMode } from '../helpers/sshd.ts';

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
    it(`an interactive login gets no shell (${via})`, () => {
      const r = via === 'command=' ? ssh(m.keyed, m.keys.key, '') : ssh(m.ca, m.keys.certKey, '');
      assert.notEqual(r.status, 0);
      assert.match(r.stderr, /cannot start an interactive session/);
    });
  }
});
