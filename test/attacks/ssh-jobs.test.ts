/**
 * SSH mode's job form under attack, through real sshds: parameters written to break out of the
 * quoting, ids that no quoting can carry, and a hostile host answering tuxsec-server's transport
 * (an sshd whose forced command prints what the test chose, as a host at the agent's address
 * could once the pinned key is its own).
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { readJournal } from '../agent/harness.ts';
import { makeKeys, startSshd, startSshMode, type SshdHandle, type SshKeys, type SshMode } from '../helpers/sshd.ts';
import { DeliveryError } from '../../src/server/delivery/transport.ts';
import { SshTransport } from '../../src/server/delivery/ssh.ts';

describe('SSH-mode jobs: injection through parameters and ids (real sshd, tuxsec-shell)', () => {
  let m: SshMode;
  let t: SshTransport;
  const signal = new AbortController().signal;
  before(async () => {
    m = await startSshMode();
    t = new SshTransport(
      { host: '127.0.0.1', port: m.keyed.port, user: 'tuxsec', knownHost: readFileSync(m.keyed.knownHosts, 'utf8') },
      { identityFile: m.keys.key, stateDir: path.join(m.work, 'server'), timeoutMs: 120_000 },
    );
  });
  after(async () => {
    await t?.close();
    await m?.stop();
  });

  it('a parameter written to end the quoting and run a command arrives as one value and runs nothing', async () => {
    const marker = path.join(m.work, 'injected');
    const attempts = [
      `'; touch ${marker}; echo '`,
      `'"'"'; touch ${marker} #`,
      `$(touch ${marker})`,
      `\`touch ${marker}\``,
      `x' && touch ${marker} && '`,
      `a\\'; touch ${marker}`,
    ];
    for (const [i, rule] of attempts.entries()) {
      const r = await t.execute({ id: `inject-${process.pid}-${i}`, module: 'marker', action: 'echo', params: { rule } }, signal);
      assert.equal(r.status, 'completed', r.error);
      assert.deepEqual(r.output, { rule });
    }
    assert.equal(existsSync(marker), false);
  });

  it('an id or a name with a control character is refused before ssh runs, not retried', async () => {
    const journal = readJournal(m.agent).length;
    for (const job of [
      { id: 'a\0b', module: 'marker', action: 'look', params: {} },
      { id: 'a\nb', module: 'marker', action: 'look', params: {} },
    ]) {
      await assert.rejects(t.execute(job, signal), (e: DeliveryError) => e.retryable === false && /cannot quote ".*" for tuxsec-shell: it holds control character 0x0[0a]/.test(e.message));
    }
    // A newline inside a parameter is JSON-escaped on the way: it arrives as itself.
    const r = await t.execute({ id: `nl-${process.pid}`, module: 'marker', action: 'echo', params: { rule: 'a\nb\0c\x7f' } }, signal);
    assert.deepEqual(r.output, { rule: 'a\nb\0c\x7f' });
    assert.equal(readJournal(m.agent).length, journal + 2);
  });

  it('parameters too large for the command line are refused before ssh runs, not retried', async () => {
    await assert.rejects(
      t.execute({ id: `big-${process.pid}`, module: 'marker', action: 'echo', params: { rule: 'x'.repeat(70_000) } }, signal),
      (e: DeliveryError) => e.retryable === false && /its command line is \d+ bytes, more than 65536/.test(e.message),
    );
  });
});

describe('SshTransport refuses what a hostile host answers (real sshd, forced command chosen by the test)', () => {
  let d: SshdHandle;
  let work: string;
  let keys: SshKeys;
  let t: SshTransport;
  const signal = new AbortController().signal;
  const job = { id: 'hostile-1', module: 'systeminfo', action: 'get_hostname', params: {} };
  before(async () => {
    // root with a forced command: the tuxsec user's login shell would be tuxsec-shell.
    keys = makeKeys('root');
    work = mkdtempSync('/run/tst-hostile-');
    chmodSync(work, 0o755);
    writeFileSync(path.join(work, 'keys'), readFileSync(`${keys.key}.pub`), { mode: 0o600 });
    const script = path.join(work, 'answer.sh');
    writeFileSync(script, `#!/bin/sh\ncat ${work}/stdout\ncat ${work}/stderr >&2\nexit "$(cat ${work}/code)"\n`, { mode: 0o755 });
    d = await startSshd(`AllowUsers root\nPermitRootLogin prohibit-password\nAuthorizedKeysFile ${work}/keys\nForceCommand ${script}`);
    t = new SshTransport(
      { host: '127.0.0.1', port: d.port, user: 'root', knownHost: readFileSync(d.knownHosts, 'utf8') },
      { identityFile: keys.key, stateDir: path.join(work, 'server'), timeoutMs: 60_000 },
    );
  });
  after(async () => {
    await t?.close();
    await d?.stop();
    if (keys) rmSync(keys.dir, { recursive: true, force: true });
    if (work) rmSync(work, { recursive: true, force: true });
  });

  function answer(stdout: string | Buffer, code = 0, stderr = ''): void {
    writeFileSync(path.join(work, 'stdout'), stdout);
    writeFileSync(path.join(work, 'stderr'), stderr);
    writeFileSync(path.join(work, 'code'), String(code));
  }
  const good = { command_id: 'hostile-1', success: true, output: { hostname: 'h' }, status: 'completed', started_at: 't0', finished_at: 't1', duration_ms: 1 };
  const cases: Array<[string, () => void, RegExp, boolean]> = [
    ['more than 1 MiB', () => answer(Buffer.alloc(2 * 1024 * 1024, 0x61)), /the answer is larger than 1048576 bytes/, false],
    ['not JSON', () => answer('Hello\n'), /the answer is not JSON \("Hello"\)/, false],
    ['two lines', () => answer(`${JSON.stringify(good)}\n${JSON.stringify(good)}\n`), /the answer is not one JSON result/, false],
    ['nested 100 deep', () => answer('['.repeat(100) + ']'.repeat(100)), /the answer is not one JSON result/, false],
    ['the result of another job', () => answer(JSON.stringify({ ...good, command_id: 'other' })), /the answer is the result of another job \("other"\)/, false],
    ['an unknown status', () => answer(JSON.stringify({ ...good, status: 'pwned' })), /cannot read the result: "status": expected "completed" or "failed" or "interrupted", got "pwned"/, false],
    ['a polluting key', () => answer(JSON.stringify({ ...good, output: { constructor: { prototype: { x: 1 } } } })), /forbidden key "output\.constructor\.prototype"/, false],
    ['exit 126 with terminal escapes', () => answer('', 126, 'tuxsec-shell: no\x1b]0;owned\x07 way\n'), /refused by tuxsec-shell: no\\x1b\]0;owned\\x07 way$/, false],
    ['exit 75', () => answer('', 75, 'tuxsec-shell: busy\n'), /: busy$/, true],
    ['exit 3', () => answer('', 3), /exit status 3: \(nothing on stderr\)/, false],
  ];
  for (const [what, arrange, re, retryable] of cases) {
    it(`an answer ${what} is refused${retryable ? ' (retryable)' : ', not retried'}`, async () => {
      arrange();
      await assert.rejects(t.execute(job, signal), (e: DeliveryError) => {
        assert.ok(e instanceof DeliveryError);
        assert.match(e.message, re);
        assert.equal(e.retryable, retryable);
        return true;
      });
    });
  }

  it('a well-formed answer is taken (the cases above fail on their flaw alone)', async () => {
    answer(JSON.stringify(good) + '\n');
    assert.deepEqual(await t.execute(job, signal), { commandId: 'hostile-1', success: true, output: { hostname: 'h' }, status: 'completed', started_at: 't0', finished_at: 't1', duration_ms: 1 });
  });
});
