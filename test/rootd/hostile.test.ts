import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startRootd } from '../helpers/rootd.ts';
import { pluginDir, writePlugin } from '../helpers/plugin.ts';
import { connectRaw, oneShot } from '../helpers/raw.ts';

describe('rootd hostile peers', () => {
  it('rootd survives peers that hang up while being refused for max_connections', async () => {
    const d = await startRootd({ config: { max_connections: 1 } });
    try {
      // The one slot: retried until the readiness probe's connection has been let go.
      let held = await connectRaw(d.socketPath);
      for (let i = 0; ; i++) {
        held.write('{"type":"ping","request_id":"h0","data":{}}\n');
        const res = await held.next(1).catch(() => []);
        if (res[0]?.type === 'success') break;
        held.close();
        assert.ok(i < 50, 'no connection slot became free');
        await new Promise((r) => setTimeout(r, 50));
        held = await connectRaw(d.socketPath);
      }
      // Each extra connection is refused with an error line; these peers reset at once.
      for (let round = 0; round < 20; round++) {
        await Promise.all(
          Array.from({ length: 50 }, () => new Promise<void>((resolve) => {
            const s = net.createConnection(d.socketPath);
            s.on('error', () => resolve());
            s.on('connect', () => {
              s.destroy();
              resolve();
            });
          })),
        );
      }
      await new Promise((r) => setTimeout(r, 200));
      assert.equal(d.proc.exitCode, null, `rootd exited: ${d.log().slice(-2000)}`);
      held.write('{"type":"ping","request_id":"h1","data":{}}\n');
      const [res] = await held.next(1);
      assert.equal(res!.type, 'success');
      held.close();
    } finally {
      await d.stop();
    }
  });

  it('rootd keeps a refused secret parameter value out of the audit and daemon logs', async () => {
    const plugins = pluginDir();
    writePlugin(plugins, {
      name: 'secretmod',
      description: 'takes a secret',
      actions: `[
      defineAction({ name: 'login', description: 'log in', access: 'read',
        params: Params({ user: Type.String(), api_key: Type.String({ pattern: '^[a-z]{1,8}$' }),
          opts: Type.Optional(Type.Object({ password: Type.String({ pattern: '^[a-z]{1,8}$' }) })) }),
        handler: () => ({ ok: true }) }),
    ]`,
    });
    const d = await startRootd({ config: { plugins_dir: plugins } });
    try {
      const secret = 'Hunter2-TOPSECRET-1';
      const nested = 'Hunter2-TOPSECRET-2';
      const a = await oneShot(d.socketPath, JSON.stringify({ type: 'execute_command', request_id: 's1', data: { module: 'secretmod', action: 'login', parameters: { user: 'x', api_key: secret } } }));
      assert.equal(a.type, 'error');
      assert.equal((a.data as { code: string }).code, 'invalid-params');
      assert.match((a.data as { error: string }).error, /parameter "api_key"/);
      const b = await oneShot(d.socketPath, JSON.stringify({ type: 'execute_command', request_id: 's2', data: { module: 'secretmod', action: 'login', parameters: { user: 'x', api_key: 'abc', opts: { password: nested } } } }));
      assert.equal((b.data as { code: string }).code, 'invalid-params');
      const deadline = Date.now() + 5000;
      let audit = '';
      while (Date.now() < deadline) {
        audit = existsSync(d.auditPath) ? readFileSync(d.auditPath, 'utf8') : '';
        if (audit.includes('"s1"') && audit.includes('"s2"')) break;
        await new Promise((r) => setTimeout(r, 50));
      }
      assert.ok(audit.includes('"s1"') && audit.includes('"s2"'), 'both requests audited');
      for (const s of [secret, nested]) {
        assert.ok(!audit.includes(s), `secret in the audit log: ${audit}`);
        assert.ok(!d.log().includes(s), 'secret in the daemon log');
      }
    } finally {
      await d.stop();
      rmSync(plugins, { recursive: true, force: true });
    }
  });

  it('rootd keeps serving when its audit log cannot be written (disk full)', async () => {
    // A 64 KiB tmpfs, filled up: every audit write fails with ENOSPC.
    const mnt = mkdtempSync(path.join(tmpdir(), 'tsa-'));
    chmodSync(mnt, 0o755);
    const m = spawnSync('/usr/bin/mount', ['-t', 'tmpfs', '-o', 'size=64k,mode=0755', 'tmpfs', mnt], { encoding: 'utf8' });
    assert.equal(m.status, 0, m.stderr);
    let d: Awaited<ReturnType<typeof startRootd>> | null = null;
    try {
      d = await startRootd({ config: { audit_log: path.join(mnt, 'audit.log') } });
      spawnSync('/usr/bin/dd', ['if=/dev/zero', `of=${path.join(mnt, 'fill')}`, 'bs=4k'], { encoding: 'utf8' });
      const big = 'x'.repeat(200);
      for (let i = 0; i < 200; i++) {
        await oneShot(d.socketPath, JSON.stringify({ type: 'execute_command', request_id: `f${i}-${big}`, data: { module: 'systeminfo', action: 'get_hostname' } })).catch(() => null);
        if (d.proc.exitCode !== null) break;
      }
      await new Promise((r) => setTimeout(r, 200));
      assert.equal(d.proc.exitCode, null, `rootd exited: ${d.log().slice(-1500)}`);
      const res = await oneShot(d.socketPath, JSON.stringify({ type: 'execute_command', request_id: 'after', data: { module: 'systeminfo', action: 'get_hostname' } }));
      assert.equal(res.type, 'success');
      const stopping = d;
      d = null;
      assert.equal(await stopping.stop(), 0, 'stops cleanly on SIGTERM');
    } finally {
      await d?.stop();
      spawnSync('/usr/bin/umount', [mnt]);
      rmSync(mnt, { recursive: true, force: true });
    }
  });

  it('rootd keeps serving when its log file cannot be written (disk full)', async () => {
    const mnt = mkdtempSync(path.join(tmpdir(), 'tsl-'));
    chmodSync(mnt, 0o755);
    const m = spawnSync('/usr/bin/mount', ['-t', 'tmpfs', '-o', 'size=64k,mode=0755', 'tmpfs', mnt], { encoding: 'utf8' });
    assert.equal(m.status, 0, m.stderr);
    let d: Awaited<ReturnType<typeof startRootd>> | null = null;
    try {
      d = await startRootd({ config: { log_file: path.join(mnt, 'rootd.log'), max_message_bytes: 1024 } });
      spawnSync('/usr/bin/dd', ['if=/dev/zero', `of=${path.join(mnt, 'fill')}`, 'bs=4k'], { encoding: 'utf8' });
      // Each over-long line is logged as a warning.
      for (let i = 0; i < 100; i++) {
        const c = await connectRaw(d.socketPath);
        c.write('x'.repeat(2048) + '\n');
        const answered = await c.next(1, 3000).then(() => true, () => false);
        c.close();
        if (!answered || d.proc.exitCode !== null) break;
      }
      await new Promise((r) => setTimeout(r, 200));
      assert.equal(d.proc.exitCode, null, `rootd exited: ${d.log().slice(-1500)}`);
      const res = await oneShot(d.socketPath, JSON.stringify({ type: 'ping', request_id: 'after', data: {} }));
      assert.equal(res.type, 'success');
      assert.match(d.log(), /cannot write log file .*; logging to stderr until SIGHUP/);
      const stopping = d;
      d = null;
      assert.equal(await stopping.stop(), 0, 'stops cleanly on SIGTERM');
    } finally {
      await d?.stop();
      spawnSync('/usr/bin/umount', [mnt]);
      rmSync(mnt, { recursive: true, force: true });
    }
  });

  it('rootd refuses a plugins directory inside a directory other users can change', async () => {
    // Root-owned plugins directory and plugin, but its parent is writable by anyone (not sticky):
    // another user could rename it away and put a symbolic link in its place.
    const parent = mkdtempSync(path.join(tmpdir(), 'tsq-'));
    chmodSync(parent, 0o777);
    const plugins = path.join(parent, 'plugins');
    mkdirSync(plugins, { mode: 0o755 });
    writePlugin(plugins, { name: 'swapmod', description: 'must not load', actions: '[]' });
    const d = await startRootd({ config: { plugins_dir: plugins } });
    try {
      const res = await oneShot(d.socketPath, JSON.stringify({ type: 'list_modules', request_id: 'l', data: {} }));
      const data = res.data as { modules: string[]; unavailable: Array<{ name: string }> };
      assert.ok(!data.modules.includes('swapmod') && !data.unavailable.some((u) => u.name === 'swapmod'), JSON.stringify(data));
      assert.match(d.log(), /other users can change; no plugin loaded/);
    } finally {
      await d.stop();
      rmSync(parent, { recursive: true, force: true });
    }
  });
});
