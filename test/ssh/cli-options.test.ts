/**
 * tuxsec-shell picks rootd's socket itself: tuxsec-cli options naming a socket or a config are
 * refused, and TUXSEC_SOCKET from the environment is never used (the real shell, run directly).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it, before, after } from 'node:test';
import { ROOT } from '../helpers/rootd.ts';

const SHELL = path.join(ROOT, 'bin/tuxsec-shell');

function runShell(args: string[], env: Record<string, string>): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(SHELL, args, { env: { PATH: '/usr/bin:/bin', ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    p.stderr.on('data', (c: Buffer) => (stderr = (stderr + c.toString()).slice(-8192)));
    const t = setTimeout(() => p.kill('SIGKILL'), 60_000);
    p.on('close', (code) => (clearTimeout(t), resolve({ code, stderr })));
  });
}

describe('tuxsec-shell and where tuxsec-cli connects', () => {
  let dir: string;
  let conf: string;
  let bait: string;
  let server: net.Server;
  let connections = 0;
  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'tshopt-'));
    conf = path.join(dir, 'shell.yaml');
    writeFileSync(conf, `read_only: false\nsessions_dir: ${dir}/sessions\n`, { mode: 0o644 });
    // A socket the environment points at: anything connecting to it is the bug.
    bait = path.join(dir, 'bait.sock');
    server = net.createServer((s) => {
      connections++;
      s.destroy();
    });
    await new Promise<void>((r) => server.listen(bait, r));
  });
  after(async () => {
    await new Promise((r) => server.close(r));
    rmSync(dir, { recursive: true, force: true });
  });

  for (const opt of [['--rootd-config', '/tmp/evil.yaml'], ['--rootd-config=/tmp/evil.yaml'], ['--agent-config', '/tmp/evil.yaml'], ['--agent-config=/tmp/evil.yaml'], ['--socket=/tmp/x.sock'], ['-s', '/tmp/x.sock']]) {
    it(`refuses tuxsec-cli ${opt.join(' ')}`, async () => {
      const r = await runShell(['--config', conf, '-c', `tuxsec-cli ${opt.join(' ')} ping`], {});
      assert.equal(r.code, 126, r.stderr);
      assert.match(r.stderr, /^tuxsec-shell: cannot run command: option "--?[a-z-]+.*" is not allowed over SSH/);
    });
  }

  for (const line of ['tuxsec-cli ping', 'systemctl is-active tuxsec-rootd']) {
    it(`ignores TUXSEC_SOCKET for ${line}`, async () => {
      await runShell(['--config', conf, '-c', line], { TUXSEC_SOCKET: bait });
      assert.equal(connections, 0, 'connected to the socket TUXSEC_SOCKET named');
    });
  }
});
