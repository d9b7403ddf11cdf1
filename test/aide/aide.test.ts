// The aide module with the real aide (Debian 12's 0.18) over a temporary tree and a small
// configuration the test writes: in-process through ModuleRegistry, and through the real rootd.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, existsSync, mkdirSync, mkdtempSync, rmSync, truncateSync, unlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { AideModule } from '../../src/rootd/modules/aide/index.ts';
import { ModuleRegistry } from '../../src/rootd/registry.ts';
import type { ActionContext } from '../../src/sdk/action.ts';
import { quiet } from '../unit/helpers.ts';
import { startRootd } from '../helpers/rootd.ts';
import { failure } from '../helpers/failure.ts';
import { childWith, waitFor } from '../helpers/children.ts';

let dir: string;
let tree: string;
let reg: ModuleRegistry;
const phases: string[] = [];

function ctx(signal = new AbortController().signal): ActionContext {
  return { peer: { uid: 0, gid: 0, pid: process.pid }, signal, log: quiet, requestId: 't', progress: (phase) => void phases.push(phase) };
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
const ex = (action: string, params: Record<string, unknown> = {}, signal?: AbortSignal): Promise<any> => reg.execute('aide', action, params, ctx(signal));


/** A configuration of aide over `root` with its databases in `db`. */
function writeConfig(file: string, root: string, db: string, rule = 'p+u+g+s+m+sha256'): void {
  writeFileSync(file, [`database_in=file:${db}/aide.db`, `database_out=file:${db}/aide.db.new`, 'gzip_dbout=yes', `${root} ${rule}`, ''].join('\n'));
}

before(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'tuxsec-aidetest-'));
  tree = path.join(dir, 'tree');
  mkdirSync(path.join(tree, 'sub'), { recursive: true });
  mkdirSync(path.join(dir, 'db'));
  writeFileSync(path.join(tree, 'keep'), 'same\n');
  writeFileSync(path.join(tree, 'change me'), 'before\n');
  writeFileSync(path.join(tree, 'sub', 'remove: me\nplease'), 'bye\n');
  writeConfig(path.join(dir, 'aide.conf'), tree, path.join(dir, 'db'));
  // aide keeps times in seconds: files from a past day make every later change visible.
  const past = new Date('2020-01-01T00:00:00Z');
  for (const p of [tree, path.join(tree, 'sub'), path.join(tree, 'keep'), path.join(tree, 'change me'), path.join(tree, 'sub', 'remove: me\nplease')]) utimesSync(p, past, past);
  reg = new ModuleRegistry(quiet, { check() {} });
  reg.register(new AideModule(), {
    enabled: true,
    allow_dangerous: false,
    settings: { config: path.join(dir, 'aide.conf'), report_file: path.join(dir, 'state', 'last.json') },
  });
  return reg.initializeAll((_n, settings) => ({ settings, log: quiet }));
});

after(() => rmSync(dir, { recursive: true, force: true }));

describe('aide module', () => {
  test('declares check, init and update long-running; status and config read, the rest write', () => {
    const m = new AideModule();
    const of = (n: string) => m.actions.get(n)!;
    for (const n of ['init', 'check', 'update']) assert.ok((of(n).longRunning?.timeoutSeconds ?? 0) >= 3600, n);
    for (const n of ['get_status', 'get_config']) assert.equal(of(n).access, 'read', n);
    // check holds the one aide slot for hours and, like last_report, gives every file's old and new
    // hashes: a read_only user must neither block init/update nor read them.
    for (const n of ['init', 'update', 'check', 'last_report']) assert.equal(of(n).access, 'write', n);
  });

  test('get_status before init: installed, version, no database yet', async () => {
    const s = await ex('get_status');
    assert.equal(s.installed, true);
    assert.match(s.version, /^0\.1[89]/);
    assert.equal(s.config_error, null);
    assert.deepEqual(s.database, { path: path.join(dir, 'db', 'aide.db'), present: false, size: null, modified: null, age_seconds: null });
    assert.equal(s.last_check, null);
    const e = await failure(ex('check'));
    assert.equal(e.code, 'not-found');
    assert.match(e.message, /no aide database at .*run aide init first/);
  });

  test('init, then a changed, an added and a removed file: check reports exactly those; update; clean again', async () => {
    phases.length = 0;
    const init = await ex('init');
    assert.equal(init.database, path.join(dir, 'db', 'aide.db'));
    assert.ok(init.size > 0);
    assert.ok(!existsSync(path.join(dir, 'db', 'aide.db.new')), 'the new database was moved in place');
    assert.deepEqual(phases, ['reading configuration', 'building database', 'installing database']);
    const st = await ex('get_status');
    assert.equal(st.database.present, true);
    assert.equal(st.database.size, init.size);
    assert.ok(st.database.age_seconds >= 0 && st.database.age_seconds < 600);

    const clean = await ex('check');
    assert.equal(clean.clean, true);
    assert.deepEqual([clean.added, clean.removed, clean.changed], [[], [], []]);

    appendFileSync(path.join(tree, 'change me'), 'after\n');
    // A name with a newline and a colon: the text report could not tell it from two entries.
    const added = path.join(tree, 'sub', 'new\nfile: x');
    writeFileSync(added, 'new\n');
    unlinkSync(path.join(tree, 'sub', 'remove: me\nplease'));
    phases.length = 0;
    const r = await ex('check');
    assert.deepEqual(phases, ['reading configuration', 'checking files', 'reading report']);
    assert.equal(r.clean, false);
    assert.equal(r.action, 'check');
    assert.deepEqual(r.added, [added]);
    assert.deepEqual(r.removed, [path.join(tree, 'sub', 'remove: me\nplease')]);
    // The directory holding the added and the removed file changed too (its mtime).
    const file = r.changed.find((c: { path: string }) => c.path === path.join(tree, 'change me'));
    assert.ok(file, JSON.stringify(r.changed));
    assert.deepEqual([...file.attributes].sort(), ['modify_time', 'sha256', 'size']);
    assert.deepEqual(file.details.size, { old: 7, new: 13 });
    assert.equal(file.details.modify_time.old, '2020-01-01 00:00:00 +0000');
    assert.deepEqual(r.changed.map((c: { path: string }) => c.path).sort(), [path.join(tree, 'change me'), path.join(tree, 'sub')].sort());
    assert.deepEqual(r.changed.find((c: { path: string }) => c.path === path.join(tree, 'sub')).attributes, ['modify_time']);
    assert.deepEqual(r.summary, { total: 5, added: 1, removed: 1, changed: 2 });
    assert.equal(r.truncated, false);

    const last = await ex('last_report');
    assert.deepEqual(last.report, r);
    const status = await ex('get_status');
    assert.deepEqual(status.last_check, { action: 'check', finished_at: r.finished_at, clean: false, summary: r.summary });

    const u = await ex('update');
    assert.equal(u.action, 'update');
    assert.deepEqual(u.added, [added]);
    assert.equal(u.database.database, path.join(dir, 'db', 'aide.db'));
    const again = await ex('check');
    assert.equal(again.clean, true, JSON.stringify(again));
    assert.deepEqual(again.summary, { total: 5, added: 0, removed: 0, changed: 0 });
  });

  test('get_config names the settings and the databases aide resolved', async () => {
    const c = await ex('get_config');
    assert.equal(c.config, path.join(dir, 'aide.conf'));
    assert.equal(c.binary, '/usr/bin/aide');
    assert.equal(c.config_valid, true);
    assert.equal(c.database_in, `file:${path.join(dir, 'db', 'aide.db')}`);
    assert.equal(c.database_out, `file:${path.join(dir, 'db', 'aide.db.new')}`);
  });

  test('a configuration aide refuses: the actions say why', async () => {
    const bad = path.join(dir, 'bad.conf');
    writeFileSync(bad, 'database_in=file:/nonexistent/aide.db\nthis_is_no_option=1\n');
    const r = new ModuleRegistry(quiet, { check() {} });
    r.register(new AideModule(), { enabled: true, allow_dangerous: false, settings: { config: bad, report_file: path.join(dir, 'state', 'bad.json') } });
    await r.initializeAll((_n, settings) => ({ settings, log: quiet }));
    const e = await failure(r.execute('aide', 'init', {}, ctx()));
    assert.equal(e.code, 'action-failed');
    assert.match(e.message, /cannot initialize the aide database: aide refuses its configuration .*unknown config option: 'this_is_no_option'/);
  });

  test('unavailable with the reason when aide is missing or a setting is wrong', async () => {
    assert.deepEqual(await new AideModule().initialize({ settings: { binary: '/nonexistent/aide' }, log: quiet }), [
      false,
      'aide is not installed (/nonexistent/aide not found; apt install aide)',
    ]);
    const [ok, why] = await new AideModule().initialize({ settings: { config: 'relative.conf' }, log: quiet });
    assert.equal(ok, false);
    assert.match(why!, /modules\.aide\.settings: key "config": "relative\.conf" is invalid/);
    const [ok2, why2] = await new AideModule().initialize({ settings: { databse: '/x' }, log: quiet });
    assert.equal(ok2, false);
    assert.match(why2!, /unknown key "databse"/);
  });

  test('parameters are refused: the actions take none', async () => {
    const e = await failure(ex('check', { path: '/etc' }));
    assert.equal(e.code, 'invalid-params');
    assert.match(e.message, /aide check: unknown parameter "path"/);
  });

  test('a check cancelled mid-run leaves no aide process', async () => {
    // A large file aide must hash with every algorithm it has: seconds of work on any machine.
    const big = path.join(dir, 'big');
    mkdirSync(path.join(big, 'db'), { recursive: true });
    writeFileSync(path.join(big, 'small'), 'x');
    const conf = path.join(big, 'aide.conf');
    writeConfig(conf, big, path.join(big, 'db'), 'p+s+sha512+whirlpool+gost+tiger+rmd160+haval+sha256+md5');
    const r = new ModuleRegistry(quiet, { check() {} });
    r.register(new AideModule(), { enabled: true, allow_dangerous: false, settings: { config: conf, report_file: path.join(big, 'last.json') } });
    await r.initializeAll((_n, settings) => ({ settings, log: quiet }));
    await r.execute('aide', 'init', {}, ctx());
    writeFileSync(path.join(big, 'huge'), '');
    truncateSync(path.join(big, 'huge'), 8 * 1024 ** 3);
    const ac = new AbortController();
    const run = failure(r.execute('aide', 'check', {}, ctx(ac.signal)));
    const pid = await waitFor(() => childWith(conf), 60_000);
    ac.abort();
    const e = await run;
    assert.equal(e.code, 'interrupted');
    assert.match(e.message, /cannot check files with aide: cancelled/);
    await waitFor(() => !existsSync(`/proc/${pid}`) || undefined, 10_000);
    assert.equal(childWith(conf), undefined);
    // The next check may run: the module is not left thinking one is in progress.
    const s = await r.execute('aide', 'get_status', {}, ctx());
    assert.equal((s as { running: unknown }).running, null);
  });

  test('through the real rootd: get_status and check answer', async () => {
    const rd = await startRootd({ config: { modules: { aide: { settings: { config: path.join(dir, 'aide.conf'), report_file: path.join(dir, 'state', 'rootd.json') } } } } });
    try {
      const info = (await rd.client.moduleInfo('aide')) as unknown as { capabilities: Array<{ name: string; access: string }> };
      assert.deepEqual(info.capabilities.map((c) => `${c.name}:${c.access}`).sort(), [
        'check:write',
        'get_config:read',
        'get_status:read',
        'init:write',
        'last_report:write',
        'update:write',
      ]);
      const s = (await rd.client.execute('aide', 'get_status')) as { installed: boolean; database: { present: boolean } };
      assert.equal(s.installed, true);
      assert.equal(s.database.present, true);
      const c = (await rd.client.execute('aide', 'check')) as { clean: boolean };
      assert.equal(c.clean, true, JSON.stringify(c));
    } finally {
      await rd.stop();
    }
  });
});
