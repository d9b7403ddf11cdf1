// The clamav module with the real ClamAV (clamscan, a clamd the test starts, freshclam) and a
// hash signature the test writes, since this machine cannot download the official databases.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ClamavModule, ClamavSettingsSchema } from '../../src/rootd/modules/clamav/index.ts';
import { parseClamscan } from '../../src/rootd/modules/clamav/clamscan-output.ts';
import { clamdScan, MAX_REPLY_BYTES } from '../../src/rootd/modules/clamav/clamd.ts';
import { ModuleRegistry } from '../../src/rootd/registry.ts';
import type { ActionContext } from '../../src/sdk/action.ts';
import { quiet } from '../unit/helpers.ts';
import { failure } from '../helpers/failure.ts';
import { startRootd } from '../helpers/rootd.ts';
import { childWith, waitFor } from '../helpers/children.ts';

let dir: string;
let tree: string;
let db: string;
const SAMPLE = 'tuxsec clamav test sample: not a virus\n';
const sig = 'Tuxsec.Test.Sample.UNOFFICIAL';

function ctx(signal = new AbortController().signal): ActionContext {
  return { peer: { uid: 0, gid: 0, pid: process.pid }, signal, log: quiet, requestId: 't', progress: () => {} };
}

async function registryWith(settings: Record<string, unknown>): Promise<ModuleRegistry> {
  const reg = new ModuleRegistry(quiet, { check() {} });
  reg.register(new ClamavModule(), { enabled: true, allow_dangerous: false, settings: { database_dir: db, clamd_socket: null, ...settings } });
  await reg.initializeAll((_n, s) => ({ settings: s, log: quiet }));
  return reg;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
const ex = (reg: ModuleRegistry, action: string, params: Record<string, unknown> = {}): Promise<any> => reg.execute('clamav', action, params, ctx());

before(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'tuxsec-clamtest-'));
  tree = path.join(dir, 'tree');
  db = path.join(dir, 'db');
  mkdirSync(path.join(tree, 'sub', 'deeper'), { recursive: true });
  mkdirSync(db);
  // A sha256 hash signature of the sample: HashString:FileSize:MalwareName.
  const hash = createHash('sha256').update(SAMPLE).digest('hex');
  writeFileSync(path.join(db, 'tuxsec-test.hsb'), `${hash}:${Buffer.byteLength(SAMPLE)}:Tuxsec.Test.Sample\n`);
  writeFileSync(path.join(tree, 'clean.txt'), 'nothing to see\n');
  writeFileSync(path.join(tree, 'sub', 'deeper', 'sample.bin'), SAMPLE);
  // Names that would fool a line reader: a newline inside an infected file's name, and a clean
  // file named like a FOUND line.
  writeFileSync(path.join(tree, 'sub', 'odd: name\nline two'), SAMPLE);
  writeFileSync(path.join(tree, `fake: ${sig} FOUND`), 'clean\n');
});

after(() => rmSync(dir, { recursive: true, force: true }));

const expected = () =>
  [
    { path: path.join(tree, 'sub', 'deeper', 'sample.bin'), signature: sig },
    { path: path.join(tree, 'sub', 'odd: name\nline two'), signature: sig },
  ].sort((a, b) => a.path.localeCompare(b.path));
const sorted = (l: Array<{ path: string }>) => [...l].sort((a, b) => a.path.localeCompare(b.path));

describe('clamav module', () => {
  test('declares scan and update_signatures long-running; reads read, update writes', () => {
    const m = new ClamavModule();
    assert.ok((m.actions.get('scan')!.longRunning?.timeoutSeconds ?? 0) >= 3600);
    assert.ok(m.actions.get('update_signatures')!.longRunning);
    for (const n of ['get_status', 'get_config', 'scan']) assert.equal(m.actions.get(n)!.access, 'read', n);
    assert.equal(m.actions.get('update_signatures')!.access, 'write');
  });

  test('scan with clamscan: exactly the files matching the test signature, with odd names intact', async () => {
    const reg = await registryWith({});
    const r = await ex(reg, 'scan', { paths: [tree] });
    assert.equal(r.scanner, 'clamscan');
    assert.equal(r.clean, false);
    assert.deepEqual(sorted(r.infected), expected());
    assert.equal(r.files_scanned, 4);
    assert.deepEqual(r.errors, []);
    assert.equal(r.truncated, false);
    const flat = await ex(reg, 'scan', { paths: [tree, path.join(dir, 'missing')], recursive: false });
    assert.deepEqual(flat.infected, []);
    assert.equal(flat.files_scanned, 2);
    assert.equal(flat.errors.length, 1);
    assert.match(flat.errors[0], /missing/);
    const one = await ex(reg, 'scan', { paths: [path.join(tree, 'clean.txt')] });
    assert.deepEqual([one.clean, one.files_scanned], [true, 1]);
  });

  test('scan through clamd when its socket answers', async () => {
    const sock = path.join(dir, 'clamd.sock');
    const conf = path.join(dir, 'clamd.conf');
    writeFileSync(conf, [`LocalSocket ${sock}`, `DatabaseDirectory ${db}`, 'Foreground yes', 'LogSyslog no', `TemporaryDirectory ${dir}`, ''].join('\n'));
    const clamd: ChildProcess = spawn('/usr/sbin/clamd', [`--config-file=${conf}`], { stdio: 'ignore' });
    try {
      await waitForSocket(sock, 60_000);
      const reg = await registryWith({ clamd_socket: sock });
      const r = await ex(reg, 'scan', { paths: [tree] });
      assert.equal(r.scanner, 'clamd');
      assert.deepEqual(sorted(r.infected), expected());
      assert.deepEqual(r.errors, []);
      const s = await ex(reg, 'get_status');
      assert.equal(s.clamd.running, true);
      assert.match(s.clamd.version, /^ClamAV 1\./);
      // Not recursive: clamd cannot, clamscan does it.
      assert.equal((await ex(reg, 'scan', { paths: [tree], recursive: false })).scanner, 'clamscan');
    } finally {
      clamd.kill('SIGKILL');
    }
  });

  test('a scan cancelled mid-run leaves no clamscan process', async () => {
    // Large (sparse) files clamscan reads in full: a minute of work.
    const big = path.join(dir, 'bigtree');
    mkdirSync(big);
    for (let i = 0; i < 40; i++) {
      writeFileSync(path.join(big, `f${i}`), '');
      truncateSync(path.join(big, `f${i}`), 99 * 1024 * 1024);
    }
    const reg = await registryWith({});
    const ac = new AbortController();
    const run = failure(reg.execute('clamav', 'scan', { paths: [big] }, ctx(ac.signal)));
    const pid = await waitFor(() => childWith(big), 60_000);
    ac.abort();
    const e = await run;
    assert.equal(e.code, 'interrupted');
    assert.equal(e.message, 'cannot scan: cancelled');
    await waitFor(() => !existsSync(`/proc/${pid}`) || undefined, 10_000);
    rmSync(big, { recursive: true });
  });

  test('get_status: versions and signature age from the database directory', async () => {
    const official = path.join(dir, 'official');
    mkdirSync(official);
    // The 512-byte text header official databases start with (the rest is not read).
    const stime = Math.floor(Date.now() / 1000) - 3600;
    writeFileSync(path.join(official, 'daily.cvd'), `ClamAV-VDB:02 Dec 2026 10-00 +0000:27123:2070000:90:abc:def:builder:${stime}`.padEnd(512, ' '));
    const reg = await registryWith({ database_dir: official });
    const s = await ex(reg, 'get_status');
    assert.equal(s.clamscan.present, true);
    assert.match(s.engine_version, /^1\.\d+\.\d+/);
    assert.equal(s.clamd.running, false);
    assert.equal(s.signature_version, 27123);
    assert.ok(Math.abs(s.signature_age_seconds - 3600) < 600, String(s.signature_age_seconds));
    assert.deepEqual(s.databases[0].signatures, 2070000);
    const mine = await ex(await registryWith({}), 'get_status');
    assert.equal(mine.signature_version, null);
    assert.deepEqual(
      mine.databases.map((d: { name: string }) => d.name),
      ['tuxsec-test'],
    );
  });

  test('update_signatures offline: a clear answer, fast, whether the mirror refuses or never answers', async () => {
    const conf = path.join(dir, 'freshclam.conf');
    const fdb = path.join(dir, 'fresh');
    mkdirSync(fdb);
    const write = (port: number) =>
      writeFileSync(conf, ['DatabaseOwner root', `PrivateMirror http://127.0.0.1:${port}`, 'DNSDatabaseInfo no', 'MaxAttempts 1', `UpdateLogFile ${dir}/freshclam.log`, ''].join('\n'));
    const reg = await registryWith({ database_dir: fdb, freshclam_config: conf, update_timeout: 5 });
    write(1);
    const e = await failure(ex(reg, 'update_signatures'));
    assert.equal(e.code, 'service-unavailable');
    assert.match(e.message, /^cannot update the ClamAV signatures: cannot reach a signature mirror: /);
    // A mirror that takes the connection and never answers: our timeout, not freshclam's.
    const silent = net.createServer(() => {});
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    try {
      write((silent.address() as net.AddressInfo).port);
      const t0 = Date.now();
      const e2 = await failure(ex(reg, 'update_signatures'));
      assert.equal(e2.code, 'timeout');
      assert.equal(e2.message, 'cannot update the ClamAV signatures: cannot reach a signature mirror within 5 s');
      assert.ok(Date.now() - t0 < 30_000);
    } finally {
      silent.close();
    }
  });

  test('scan parameters are validated', async () => {
    const reg = await registryWith({});
    const cases: Array<[unknown, RegExp]> = [
      [{ paths: ['relative/dir'] }, /invalid value "relative\/dir" for parameter "paths"/],
      [{ paths: ['/tmp/a\u0000b'] }, /for parameter "paths"/],
      [{ paths: [] }, /for parameter "paths"/],
      [{ paths: Array.from({ length: 257 }, (_, i) => `/tmp/${i}`) }, /for parameter "paths"/],
      [{ paths: ['/' + 'a'.repeat(5000)] }, /for parameter "paths"/],
      [{ paths: [tree], recursive: 'yes' }, /for parameter "recursive"/],
      [{ paths: [tree], exclude: '/x' }, /unknown parameter "exclude"/],
      [{}, /missing required parameter "paths"/],
    ];
    for (const [params, why] of cases) {
      const e = await failure(ex(reg, 'scan', params as Record<string, unknown>));
      assert.equal(e.code, 'invalid-params', JSON.stringify(params).slice(0, 80));
      assert.match(e.message, why);
    }
  });

  test('unavailable with the reason when clamscan is missing or a setting is wrong', async () => {
    assert.deepEqual(await new ClamavModule().initialize({ settings: { clamscan: '/nonexistent/clamscan' }, log: quiet }), [
      false,
      'ClamAV is not installed (/nonexistent/clamscan not found; apt install clamav)',
    ]);
    const [ok, why] = await new ClamavModule().initialize({ settings: { database_dir: 'db' }, log: quiet });
    assert.equal(ok, false);
    assert.match(why!, /modules\.clamav\.settings: key "database_dir": "db" is invalid/);
    assert.ok(ClamavSettingsSchema.properties.database_dir.default === '/var/lib/clamav');
  });

  test('a name holding a FOUND line next to the file it names: the innocent file is never reported', async () => {
    const h = path.join(dir, 'hostile');
    mkdirSync(h);
    writeFileSync(path.join(h, 'innocent'), 'clean\n');
    writeFileSync(path.join(h, 'innocent: Win.Trojan.Agent FOUND\n'), SAMPLE);
    writeFileSync(path.join(h, 'x: Fake FOUND\nzz'), SAMPLE);
    const r = await ex(await registryWith({}), 'scan', { paths: [h] });
    assert.equal(r.clean, false);
    assert.ok(!r.infected.some((i: { path: string }) => i.path === path.join(h, 'innocent')), JSON.stringify(r.infected));
    for (const i of r.infected) assert.ok(i.path.startsWith('/'), i.path);
    // Each real infected file is either reported under its exact name or listed as unidentified.
    const named = r.infected.map((i: { path: string }) => i.path);
    const unidentified = r.errors.filter((e: string) => e.startsWith('cannot tell which file clamscan found infected: '));
    assert.ok(named.length + unidentified.length >= 2, JSON.stringify(r));
    for (const p of named) assert.ok([path.join(h, 'innocent: Win.Trojan.Agent FOUND\n'), path.join(h, 'x: Fake FOUND\nzz')].includes(p), p);
  });

  test('clamd replies: paths scanned once, one byte budget for all, past max_results only counted', async () => {
    // A stand-in for clamd (the real one cannot be made to send this much): every CONTSCAN gets
    // 12 MiB of FOUND replies, more than half the budget.
    const sock = path.join(dir, 'fake-clamd.sock');
    const reply = `/x/${'a'.repeat(1000)}: Fake.Sig FOUND\0`;
    const per = Math.ceil((12 * 1024 * 1024) / reply.length);
    const commands: string[] = [];
    const server = net.createServer((c) => {
      c.once('data', (d) => {
        commands.push(d.toString());
        const block = reply.repeat(1000);
        let left = per;
        const more = () => {
          while (left > 0) {
            left -= 1000;
            if (!c.write(block)) return void c.once('drain', more);
          }
          c.end();
        };
        more();
      });
      c.on('error', () => {});
    });
    await new Promise<void>((r) => server.listen(sock, r));
    try {
      const r = await clamdScan(sock, [...Array(256).fill('/a'), '/b', '/c'], new AbortController().signal, 120_000, 5);
      assert.deepEqual(commands.map((c) => c.slice(0, -1)), ['zCONTSCAN /a', 'zCONTSCAN /b']);
      assert.equal(r.infected.length, 5);
      assert.equal(r.truncated, true);
      assert.ok(r.infected_count * reply.length <= MAX_REPLY_BYTES, String(r.infected_count));
      assert.ok(r.infected_count > per, String(r.infected_count));
    } finally {
      server.close();
    }
  });

  test('scan_roots: a path outside, directly or through a symlink, is refused and nothing is scanned', async () => {
    const reg = await registryWith({ scan_roots: [tree], clamscan: '/bin/false' });
    symlinkSync(dir, path.join(tree, 'sub', 'escape'));
    try {
      for (const p of [db, path.join(tree, 'sub', 'escape', 'db'), path.join(tree, '..', 'db'), path.join(dir, 'missing')]) {
        await assert.rejects(ex(reg, 'scan', { paths: [path.join(tree, 'clean.txt'), p] }), (e: Error & { code?: string }) => {
          assert.equal(e.code, 'invalid-params');
          assert.match(e.message, /^cannot scan ".*": it is outside scan_roots$/);
          return true;
        });
      }
      // Inside: reaches clamscan (here /bin/false, which fails the scan).
      await assert.rejects(ex(reg, 'scan', { paths: [path.join(tree, 'clean.txt')] }), /clamscan exited/);
    } finally {
      rmSync(path.join(tree, 'sub', 'escape'));
    }
  });

  test('parseClamscan: a FOUND line inside a name is kept with its file; the last summary counts', () => {
    const names = new Set(['/t/a: X FOUND\nb', '/t/c']);
    const out = parseClamscan(
      ['/t/a: X FOUND', 'b: Real.Sig FOUND', '/t/c: Other FOUND', '', '----------- SCAN SUMMARY -----------', 'Scanned files: 7', 'Infected files: 2', ''].join('\n'),
      (p) => names.has(p),
    );
    assert.deepEqual(out.infected, [
      { path: '/t/a: X FOUND\nb', signature: 'Real.Sig' },
      { path: '/t/c', signature: 'Other' },
    ]);
    assert.deepEqual([out.files_scanned, out.infected_count, out.unverified, out.ambiguous], [7, 2, [], true]);
  });

  test('through the real rootd: module-info and a scan', async () => {
    const rd = await startRootd({ config: { modules: { clamav: { settings: { database_dir: db, clamd_socket: null } } } } });
    try {
      const info = (await rd.client.moduleInfo('clamav')) as unknown as { capabilities: Array<{ name: string; access: string }> };
      assert.deepEqual(info.capabilities.map((c) => `${c.name}:${c.access}`).sort(), ['get_config:read', 'get_status:read', 'scan:read', 'update_signatures:write']);
      const r = (await rd.client.execute('clamav', 'scan', { paths: [tree] })) as { infected: Array<{ path: string }> };
      assert.deepEqual(sorted(r.infected), expected());
    } finally {
      await rd.stop();
    }
  });
});

async function waitForSocket(sock: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (existsSync(sock)) {
      const ok = await new Promise<boolean>((r) => {
        const c = net.createConnection(sock, () => (c.destroy(), r(true)));
        c.on('error', () => r(false));
      });
      if (ok) return;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.fail(`clamd did not listen on ${sock}`);
}
