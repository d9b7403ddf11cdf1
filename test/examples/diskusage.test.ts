// The example plugin (examples/diskusage) as its README says to use it: built with its build.mjs,
// installed into a plugins_dir with install(1) as root 0644, enabled in rootd.yaml, called through
// the real tuxsec-rootd and the real tuxsec-cli as the tuxsec user, its long-running scan
// followed and cancelled.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, renameSync, rmSync, statSync, statfsSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { OperationInfo } from '../../src/protocol/messages.ts';
import { cli, startNoWait } from '../helpers/cli.ts';
import { pluginDir, SDK_JS } from '../helpers/plugin.ts';
import { ROOT, startRootd, type RootdHandle } from '../helpers/rootd.ts';
import { ensureTestUsers } from '../helpers/users.ts';
import { waitFor } from '../helpers/procs.ts';

let work: string;
let plugins: string;
let users: Awaited<ReturnType<typeof ensureTestUsers>>;

/** Builds the example against this checkout's SDK and installs it as the README says. */
function buildAndInstall(dir: string): string {
  const built = path.join(work, 'diskusage.mjs');
  const b = spawnSync(process.execPath, [path.join(ROOT, 'examples/diskusage/build.mjs'), '--sdk', SDK_JS, '--out', built], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(b.status, 0, b.stderr);
  const installed = path.join(dir, 'diskusage.mjs');
  const i = spawnSync('/usr/bin/install', ['-o', 'root', '-g', 'root', '-m', '0644', built, installed], { encoding: 'utf8', timeout: 10_000 });
  assert.equal(i.status, 0, i.stderr);
  return installed;
}

const json = (s: string) => JSON.parse(s) as Record<string, unknown>;

before(async () => {
  users = await ensureTestUsers();
  work = mkdtempSync(path.join(tmpdir(), 'tuxsec-du-'));
  plugins = pluginDir();
  buildAndInstall(plugins);
});

after(() => {
  rmSync(work, { recursive: true, force: true });
  rmSync(plugins, { recursive: true, force: true });
});

describe('examples/diskusage through the real rootd and tuxsec-cli', () => {
  let d: RootdHandle;
  let tree: string;
  let big: string;
  before(async () => {
    tree = path.join(work, 'tree');
    mkdirSync(path.join(tree, 'a'), { recursive: true });
    mkdirSync(path.join(tree, 'b'));
    writeFileSync(path.join(tree, 'big'), Buffer.alloc(100_000, 1));
    writeFileSync(path.join(tree, 'a', 'mid'), Buffer.alloc(5_000, 1));
    writeFileSync(path.join(tree, 'a', 'small\nname'), 'ten bytes!');
    // Not followed: a scan of the tree must not count /etc.
    symlinkSync('/etc', path.join(tree, 'b', 'etc'));
    // 20 top-level directories of 10 files: 220 entries, 11 s at 20 entries per second.
    big = path.join(work, 'bigtree');
    for (let i = 0; i < 20; i++) {
      mkdirSync(path.join(big, `d${i}`), { recursive: true });
      for (let j = 0; j < 10; j++) writeFileSync(path.join(big, `d${i}`, `f${j}`), 'x');
    }
    mkdirSync(path.join(tree, 'b', 'mnt'));
    // In a private mount namespace, so the tmpfs below is rootd's alone.
    d = await startRootd({
      wrap: ['/usr/bin/unshare', '-m', '--propagation', 'private', '--'],
      config: {
        plugins_dir: plugins,
        allowed_users: [users.tuxsec.name],
        modules: { diskusage: { settings: { files_per_second: 20 } }, firewalld: { enabled: false } },
      },
    });
    // Another filesystem inside the tree, holding what would be its second largest file: a scan
    // must not enter it (du -x).
    const inNs = (...argv: string[]) => spawnSync('/usr/bin/nsenter', ['-t', String(d.proc.pid), '-m', '--', ...argv], { encoding: 'utf8', timeout: 10_000 });
    const m = inNs('/usr/bin/mount', '-t', 'tmpfs', '-o', 'size=1m', 'tuxsec-du-test', path.join(tree, 'b', 'mnt'));
    assert.equal(m.status, 0, m.stderr);
    const w = inNs('/usr/bin/dd', 'if=/dev/zero', `of=${path.join(tree, 'b', 'mnt', 'other-fs')}`, 'bs=50000', 'count=1', 'status=none');
    assert.equal(w.status, 0, w.stderr);
  });
  after(() => d?.stop());

  it('is installed and loaded from plugins_dir, its actions described with their parameters', async () => {
    const r = await cli(d.socketPath, users.tuxsec, 'installed-modules');
    assert.equal(r.status, 0, r.stderr);
    const details = (json(r.stdout).details as Array<Record<string, unknown>>).find((m) => m.name === 'diskusage');
    assert.deepEqual(details, { name: 'diskusage', source: 'plugin', loaded: true, reason: null, version: '1.0.0', file: path.join(plugins, 'diskusage.mjs') });
    const info = await cli(d.socketPath, users.tuxsec, 'module-info', 'diskusage');
    assert.equal(info.status, 0, info.stderr);
    const caps = json(info.stdout).capabilities as Array<{ name: string; long_running?: unknown; parameters: Array<{ name: string; required: string }> }>;
    assert.deepEqual(caps.map((c) => c.name), ['get_usage', 'scan']);
    assert.deepEqual(caps[1]!.long_running, { timeout_seconds: 3600 });
    assert.deepEqual(caps[1]!.parameters.map((p) => [p.name, p.required]), [['path', 'true'], ['top', 'false']]);
  });

  it('get_usage answers the space of the filesystem holding a path, as statfs gives it', async () => {
    const r = await cli(d.socketPath, users.tuxsec, 'execute', 'diskusage', 'get_usage', '--param', `path=${tree}`);
    assert.equal(r.status, 0, r.stderr);
    const u = json(r.stdout);
    const s = statfsSync(tree);
    assert.equal(u.path, tree);
    assert.equal(u.total_bytes, s.blocks * s.bsize);
    assert.equal(u.inodes_total, s.files);
    assert.ok((u.used_percent as number) > 0 && (u.used_percent as number) <= 100, r.stdout);
    // The 1 MiB tmpfs mounted in rootd's namespace, with its 50,000-byte file.
    const t = json((await cli(d.socketPath, users.tuxsec, 'execute', 'diskusage', 'get_usage', '--param', `path=${path.join(tree, 'b', 'mnt')}`)).stdout);
    assert.equal(t.total_bytes, 1024 * 1024);
    assert.ok((t.used_bytes as number) >= 50_000 && (t.used_bytes as number) < 1024 * 1024, JSON.stringify(t));
  });

  it('scan waits like any action and prints the counts and largest files of exactly the tree, on its filesystem only', async () => {
    const r = await cli(d.socketPath, users.tuxsec, 'execute', 'diskusage', 'scan', '--param', `path=${tree}`, '--param', 'top=2');
    assert.equal(r.status, 0, r.stderr);
    const s = json(r.stdout);
    const blocks = ['', 'a', 'b', 'big', 'a/mid', 'a/small\nname', 'b/etc'].reduce((n, p) => n + (p.endsWith('etc') ? 0 : statSync(path.join(tree, p)).blocks * 512), 0);
    assert.deepEqual(s, {
      path: tree,
      files: 4,
      directories: 3,
      bytes: blocks,
      apparent_bytes: 100_000 + 5_000 + 10 + '/etc'.length,
      largest: [
        { path: path.join(tree, 'big'), bytes: 100_000 },
        { path: path.join(tree, 'a', 'mid'), bytes: 5_000 },
      ],
      other_filesystems: 1,
      errors: 0,
      error_messages: [],
    });
  });

  it('bad parameters are refused naming what was wrong', async () => {
    const cases: Array<[string[], RegExp]> = [
      [['path=relative/dir'], /invalid value "relative\/dir" for parameter "path".*an absolute path/],
      [['path=/', 'top=1000'], /top.*100/],
      [['path=/', 'follow=true'], /unknown parameter "follow"/],
      [[`path=${path.join(tree, 'big')}`], /cannot scan ".*big": not a directory/],
      [[`path=${path.join(tree, 'nope')}`], /cannot scan ".*nope": no such file or directory/],
    ];
    for (const [params, re] of cases) {
      const r = await cli(d.socketPath, users.tuxsec, 'execute', 'diskusage', 'scan', ...params.flatMap((p) => ['--param', p]));
      assert.equal(r.status, 1, `${params.join(' ')}: ${r.stdout}`);
      assert.match(r.stderr, /^Error: /);
      assert.match(r.stderr, re);
    }
  });

  it('a scan of a big tree reports its progress and stops when cancelled', async () => {
    const id = await startNoWait(d.socketPath, users.tuxsec, 'diskusage', 'scan', `path=${big}`);
    let seen: OperationInfo | undefined;
    await waitFor(async () => {
      const r = await cli(d.socketPath, users.tuxsec, 'operation', 'status', id);
      assert.equal(r.status, 0, r.stderr);
      seen = JSON.parse(r.stdout) as OperationInfo;
      return seen.state !== 'running' || (seen.fraction ?? 0) > 0;
    }, 'progress', 60_000);
    assert.equal(seen!.state, 'running', 'still running: 220 entries at 20 per second');
    assert.match(seen!.phase ?? '', /^scanning \d+ files$/);
    assert.ok(seen!.fraction! > 0 && seen!.fraction! < 1, String(seen!.fraction));

    const c = await cli(d.socketPath, users.tuxsec, 'operation', 'cancel', id);
    assert.equal(c.status, 0, c.stderr);
    const st = JSON.parse(c.stdout) as OperationInfo;
    assert.equal(st.state, 'cancelled');
    assert.equal(st.code, 'cancelled');
    const res = await cli(d.socketPath, users.tuxsec, 'operation', 'result', id);
    assert.equal(res.status, 1);
    assert.match(res.stderr, /^Error: operation op-[0-9a-f]{32} \(diskusage scan\) was cancelled by uid \d+\n$/);
  });
  it('a paced scan leaves no abort listener behind per entry it waited for', async () => {
    // 220 entries at 20 per second: nearly every entry waits. Node warns past 10 listeners on one signal.
    const r = await cli(d.socketPath, users.tuxsec, 'execute', 'diskusage', 'scan', '--param', `path=${big}`);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(json(r.stdout).files, 200);
    assert.doesNotMatch(d.log(), /MaxListenersExceededWarning|abort listeners added/);
  });

  it('a directory swapped for a symbolic link while the scan runs is not followed', async () => {
    // swap/a holds 20 small files; outside holds the same names, 10 MB each (sparse). At 20
    // entries per second the scan is inside swap/a when a is renamed and replaced by a link to outside.
    const swap = path.join(work, 'swap');
    const outside = path.join(work, 'outside');
    mkdirSync(path.join(swap, 'a'), { recursive: true });
    mkdirSync(outside);
    for (let i = 0; i < 20; i++) {
      writeFileSync(path.join(swap, 'a', `f${String(i).padStart(2, '0')}`), 'x');
      writeFileSync(path.join(outside, `f${String(i).padStart(2, '0')}`), '');
      truncateSync(path.join(outside, `f${String(i).padStart(2, '0')}`), 10_000_000);
    }
    const id = await startNoWait(d.socketPath, users.tuxsec, 'diskusage', 'scan', `path=${swap}`, 'top=1');
    await new Promise((r) => setTimeout(r, 300));
    renameSync(path.join(swap, 'a'), path.join(swap, 'a-old'));
    symlinkSync(outside, path.join(swap, 'a'));
    let res: Record<string, unknown> | undefined;
    await waitFor(async () => {
      const r = await cli(d.socketPath, users.tuxsec, 'operation', 'result', id);
      if (r.status !== 0) return false;
      res = json(r.stdout);
      return true;
    }, 'scan result', 30_000);
    assert.equal(res!.apparent_bytes, 20, JSON.stringify(res));
    assert.deepEqual(res!.largest, [{ path: path.join(swap, 'a', 'f00'), bytes: 1 }]);
  });
});

describe('examples/diskusage settings', () => {
  it('a bad setting leaves the module unavailable with the reason; rootd runs on', async () => {
    const d = await startRootd({ config: { plugins_dir: plugins, modules: { diskusage: { settings: { files_per_second: -1 } }, firewalld: { enabled: false } } } });
    try {
      const r = await cli(d.socketPath, null, 'installed-modules');
      assert.equal(r.status, 0, r.stderr);
      const m = (json(r.stdout).details as Array<Record<string, unknown>>).find((x) => x.name === 'diskusage')!;
      assert.equal(m.loaded, false);
      assert.match(String(m.reason), /rootd\.yaml modules\.diskusage\.settings.*files_per_second/);
      const ping = await cli(d.socketPath, null, 'execute', 'systeminfo', 'get_hostname');
      assert.equal(ping.status, 0, ping.stderr);
    } finally {
      await d.stop();
    }
  });
});
