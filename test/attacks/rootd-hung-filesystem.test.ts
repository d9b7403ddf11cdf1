// A hung filesystem must cost rootd neither its libuv pool nor other requests.
//
// The hung filesystem is real: a FUSE mount whose /dev/fuse connection this test holds
// open and never answers, so the kernel blocks every statfs on it. It is mounted only
// inside a private mount namespace that rootd is started in, so nothing else on the
// machine can trip over it; closing the connection and the namespace's end remove it.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { startRootd } from '../helpers/rootd.ts';
import { RootdClient } from '../../src/client/rootd-client.ts';

const haveFuse = existsSync('/dev/fuse') && existsSync('/usr/bin/unshare') && existsSync('/usr/bin/nsenter');

function mountHung(pid: number, fuseFd: number, type: string, dir: string): void {
  mkdirSync(dir, { recursive: true });
  // mount -i: straight to mount(2), no helper; fd=3 is the connection passed below.
  const r = spawnSync(
    '/usr/bin/nsenter',
    ['-t', String(pid), '-m', '--', '/usr/bin/mount', '-i', '-t', type, '-o', 'fd=3,rootmode=40000,user_id=0,group_id=0', 'hung', dir],
    { stdio: ['ignore', 'pipe', 'pipe', fuseFd], timeout: 10_000, encoding: 'utf8' },
  );
  assert.equal(r.status, 0, `cannot mount ${type} on ${dir}: ${r.stderr}`);
}

async function timed<T>(p: Promise<T>): Promise<{ ms: number; value: T }> {
  const t = performance.now();
  const value = await p;
  return { ms: performance.now() - t, value };
}

type Fs = { mountpoint: string; status: string; total_bytes: number | null };

describe('rootd and a hung filesystem', { skip: !haveFuse && 'needs /dev/fuse, unshare and nsenter' }, () => {
  it('a hung mount costs neither the libuv pool nor other requests: concurrent filesystem calls, ping, get_hostname and audit writes all answer', async () => {
    const d = await startRootd({ wrap: ['/usr/bin/unshare', '-m', '--propagation', 'private', '--'] });
    const fds = [openSync('/dev/fuse', 'r+'), openSync('/dev/fuse', 'r+')];
    const clients: RootdClient[] = [];
    const client = () => {
      const c = new RootdClient({ socketPath: d.socketPath, timeoutMs: 60_000 });
      clients.push(c);
      return c;
    };
    const hung = path.join(d.dir, 'hung');
    const hungNet = path.join(d.dir, 'hung-sshfs');
    try {
      // Warm the name cache first: get_hostname is then a pure in-memory answer.
      await d.client.execute('systeminfo', 'get_hostname');
      mountHung(d.proc.pid!, fds[0]!, 'fuse.hung', hung);
      mountHung(d.proc.pid!, fds[1]!, 'fuse.sshfs', hungNet);

      for (const wave of [1, 2, 3]) {
        const calls = Array.from({ length: 8 }, (_, i) =>
          timed(client().execute('systeminfo', i % 2 ? 'get_inventory' : 'get_filesystems') as Promise<{ filesystems: Fs[] }>),
        );
        // Others asked while the filesystem calls are waiting on the hung mount.
        await new Promise((r) => setTimeout(r, 300));
        const ping = await timed(client().ping());
        const host = await timed(client().execute('systeminfo', 'get_hostname'));
        assert.ok(ping.ms < 3000, `wave ${wave}: ping took ${Math.round(ping.ms)} ms`);
        assert.ok(host.ms < 3000, `wave ${wave}: get_hostname took ${Math.round(host.ms)} ms`);
        const results = await Promise.all(calls);
        for (const r of results) {
          assert.ok(r.ms < 15_000, `wave ${wave}: a filesystem call took ${Math.round(r.ms)} ms`);
          const byMount = new Map(r.value.filesystems.map((f) => [f.mountpoint, f]));
          assert.equal(byMount.get(hung)?.status, 'timeout', JSON.stringify(byMount.get(hung)));
          assert.equal(byMount.get(hung)?.total_bytes, null);
          // A network filesystem is not asked at all unless the caller wants it.
          assert.equal(byMount.get(hungNet)?.status, 'skipped', JSON.stringify(byMount.get(hungNet)));
          // The healthy filesystems still report their usage.
          assert.equal(byMount.get('/')?.status, 'ok', JSON.stringify(byMount.get('/')));
          assert.ok((byMount.get('/')?.total_bytes ?? 0) > 0);
        }
      }
      // Asked for, the network filesystem is probed and reported as not answering.
      const net = (await client().execute('systeminfo', 'get_filesystems', { include_network: true })) as { filesystems: Fs[] };
      assert.equal(net.filesystems.find((f) => f.mountpoint === hungNet)?.status, 'timeout');
      // Every request above reached the audit log, so its writes were not stuck behind the mount.
      const deadline = Date.now() + 15_000;
      let count = 0;
      for (;;) {
        const text = existsSync(d.auditPath) ? readFileSync(d.auditPath, 'utf8') : '';
        count = text.split('\n').filter((l) => l.includes('"get_filesystems"') || l.includes('"get_inventory"')).length;
        if (count >= 25 || Date.now() > deadline) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      assert.equal(count, 25, 'audit records of the filesystem calls');
      assert.equal(d.proc.exitCode, null, `rootd exited: ${d.log().slice(-2000)}`);
    } finally {
      for (const c of clients) c.close();
      spawnSync('/usr/bin/nsenter', ['-t', String(d.proc.pid), '-m', '--', '/usr/bin/umount', '-l', hung], { timeout: 10_000 });
      spawnSync('/usr/bin/nsenter', ['-t', String(d.proc.pid), '-m', '--', '/usr/bin/umount', '-l', hungNet], { timeout: 10_000 });
      // Closing the connections aborts them: anything still waiting on the mounts fails at once.
      for (const fd of fds) closeSync(fd);
      await d.stop();
    }
  });
});
