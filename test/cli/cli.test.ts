import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir, hostname } from 'node:os';
import path from 'node:path';
import { startRootd, ROOT, type RootdHandle } from '../helpers/rootd.ts';
import { pluginDir, writePlugin, writePluginSource } from '../helpers/plugin.ts';

const BIN = path.join(ROOT, 'bin/tuxsec-cli');

function cli(args: string[], env: Record<string, string> = {}) {
  return spawnSync(BIN, args, { encoding: 'utf8', timeout: 20_000, env: { ...process.env, ...env } });
}

describe('tuxsec-cli (INTEROP section 4)', () => {
  let d: RootdHandle;
  before(async () => {
    d = await startRootd();
  });
  after(async () => {
    await d.stop();
  });
  const env = () => ({ TUXSEC_SOCKET: d.socketPath });

  it('system-info prints the get_info JSON, indented', () => {
    const r = cli(['system-info'], env());
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^\{\n {2}"hostname": /);
    const info = JSON.parse(r.stdout);
    assert.equal(info.hostname, hostname());
    for (const k of ['fqdn', 'os', 'kernel', 'uptime_seconds', 'distribution']) assert.ok(k in info);
  });

  it('list-modules prints the header and one indented line per module', () => {
    const r = cli(['list-modules'], env());
    assert.equal(r.status, 0);
    const lines = r.stdout.split('\n');
    assert.equal(lines[0], 'Available modules:');
    assert.ok(lines.includes('  - systeminfo'));
    assert.ok(lines.slice(1, -1).every((l) => /^ {2}- [a-z0-9_]+$/.test(l)));
  });

  it('installed-modules prints {"modules": [...], "details": [...]} on one line, spaced as the Python CLI printed it', () => {
    const r = cli(['installed-modules'], env());
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^\{"modules": \["[a-z0-9_]+"(, "[a-z0-9_]+")*\], "details": \[\{"name": [^\n]*\}\]\}\n$/);
    const v = JSON.parse(r.stdout);
    assert.deepEqual(Object.keys(v), ['modules', 'details']);
    assert.ok(v.modules.includes('systeminfo'));
  });

  it('module-info prints the module_info JSON', () => {
    const v = JSON.parse(cli(['module-info', 'systeminfo'], env()).stdout);
    assert.equal(v.name, 'systeminfo');
    assert.ok(v.capabilities.find((c: { name: string }) => c.name === 'get_uptime'));
  });

  it('execute prints the action data as indented JSON and exits 0', () => {
    const r = cli(['execute', 'systeminfo', 'get_hostname'], env());
    assert.equal(r.status, 0);
    assert.equal(r.stderr, '');
    assert.deepEqual(Object.keys(JSON.parse(r.stdout)).sort(), ['fqdn', 'hostname']);
    assert.match(r.stdout, /^\{\n {2}"hostname": ".*",\n {2}"fqdn": ".*"\n\}\n$/);
  });

  it('execute failures print "Error: <message>" on stderr and exit 1', () => {
    const r = cli(['execute', 'systeminfo', 'get_uptime', '--param', 'verbose=true'], env());
    assert.equal(r.status, 1);
    assert.equal(r.stdout, '');
    assert.equal(r.stderr, 'Error: systeminfo get_uptime: unknown parameter "verbose"\n');
    const j = cli(['execute', 'systeminfo', 'get_uptime', '--json-params', '{"a":1}'], env());
    assert.equal(j.stderr, 'Error: systeminfo get_uptime: unknown parameter "a"\n');
    const bad = cli(['execute', 'systeminfo', 'get_uptime', '--json-params', '[1]'], env());
    assert.equal(bad.stderr, 'Error: invalid --json-params: must be a JSON object\n');
    const noeq = cli(['execute', 'systeminfo', 'get_uptime', '--param', 'novalue'], env());
    assert.equal(noeq.status, 2);
    assert.match(noeq.stderr, /expected key=value/);
  });

  it('execute accepts --json, as the Python CLI did, and prints the same', () => {
    const plain = cli(['execute', 'systeminfo', 'get_kernel_version'], env());
    const json = cli(['execute', 'systeminfo', 'get_kernel_version', '--json'], env());
    assert.equal(json.status, 0, json.stderr);
    assert.equal(json.stdout, plain.stdout);
    assert.equal(cli(['system-info', '--json'], env()).status, 2, '--json goes with execute only');
  });

  it('--json-params wins over --param, as in the Python CLI, and says the --param is ignored', () => {
    // Merged, "verbose" would be refused as an unknown parameter; "novalue" as a bad --param.
    const r = cli(['execute', 'systeminfo', 'get_uptime', '--param', 'verbose=true', '--param', 'novalue', '--json-params', '{}'], env());
    assert.equal(r.status, 0, r.stderr);
    assert.ok('uptime_seconds' in JSON.parse(r.stdout));
    assert.equal(r.stderr, 'Warning: --param ignored: --json-params gives all the parameters\n');
    const j = cli(['execute', 'systeminfo', 'get_filesystems', '--param', 'include_network=1', '--json-params', '{"include_network":false}'], env());
    assert.equal(j.status, 0, j.stderr);
  });

  it('usage errors exit 2 with "Error: <message>", as argparse did', () => {
    const cases: Array<[string[], RegExp]> = [
      [['execute', 'systeminfo', 'get_uptime', '--bogus'], /Unknown option '--bogus'/],
      [['execute', 'systeminfo', 'get_uptime', '--param'], /argument missing/],
      [['execute', 'systeminfo', 'get_uptime', '--param', '=x'], /invalid --param "=x": expected key=value/],
      [['execute', 'systeminfo', 'get_uptime', '--json-params', '{'], /invalid --json-params: not valid JSON/],
      [['execute', 'systeminfo'], /execute takes two arguments: <module> <action>/],
      [['module-info'], /^Error: Module name is required \(usage: tuxsec-cli module-info <module>\)$/],
      [['execute'], /^Error: Module name is required \(usage: tuxsec-cli execute <module> <action>\)$/],
      [['nonsense'], /unknown command "nonsense"/],
      [[], /missing command/],
    ];
    for (const [args, re] of cases) {
      const r = cli(args, env());
      assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.equal(r.stdout, '');
      assert.match(r.stderr.trimEnd(), re, args.join(' '));
    }
  });

  it('an empty module name is answered "Module name is required", as the Python daemon did', () => {
    for (const args of [['execute', '', 'get_info'], ['module-info', '']]) {
      const r = cli(args, env());
      assert.equal(r.status, 1);
      assert.equal(r.stderr, 'Error: Module name is required\n');
    }
  });

  it('--socket overrides TUXSEC_SOCKET', () => {
    const r = cli(['--socket', d.socketPath, 'ping'], { TUXSEC_SOCKET: '/nonexistent/x.sock' });
    assert.equal(r.status, 0);
    assert.match(r.stdout, /^pong from /);
  });

  it('--help and --version exit 0', () => {
    const h = cli(['--help']);
    assert.equal(h.status, 0);
    assert.match(h.stdout, /execute/);
    const v = cli(['--version']);
    assert.equal(v.status, 0);
    assert.match(v.stdout, /^\d+\.\d+\.\d+/);
  });
});

describe('tuxsec-cli installed-modules with plugins (real rootd)', () => {
  let d: RootdHandle;
  let plugins: string;
  before(async () => {
    plugins = pluginDir();
    writePlugin(plugins, { name: 'goodmod', actions: `[defineAction({ name: 'hi', description: 'hi', access: 'read', params: Params({}), handler: () => ({ hi: true }) })]` });
    // Anyone could have put code in it: refused unread, yet installed.
    writePluginSource(plugins, 'badmod.mjs', `throw new Error('must never load');\n`, 0o666);
    // A Python rootd module a migrated site left there: installed, never loaded.
    writePluginSource(plugins, 'oldmod.py', `import os\n`, 0o644);
    d = await startRootd({ config: { plugins_dir: plugins, modules: { firewalld: { enabled: false }, selinux: { enabled: false } } } });
  });
  after(async () => {
    await d.stop();
    rmSync(plugins, { recursive: true, force: true });
  });

  it('lists built-in and plugin modules, loaded or not, with why not', () => {
    const r = cli(['installed-modules'], { TUXSEC_SOCKET: d.socketPath });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.split('\n').length, 2, 'one line');
    const v = JSON.parse(r.stdout) as { modules: string[]; details: Array<Record<string, unknown>> };
    assert.deepEqual(v.modules, ['aide', 'badmod', 'clamav', 'firewalld', 'goodmod', 'oldmod', 'selinux', 'systeminfo']);
    const byName = Object.fromEntries(v.details.map((m) => [m.name, m]));
    assert.deepEqual(byName.goodmod, { name: 'goodmod', source: 'plugin', loaded: true, reason: null, version: '1.0.0', file: path.join(plugins, 'goodmod.mjs') });
    assert.deepEqual(byName.badmod, { name: 'badmod', source: 'plugin', loaded: false, reason: 'plugin file is writable by group or others', file: path.join(plugins, 'badmod.mjs') });
    assert.deepEqual(byName.oldmod, { name: 'oldmod', source: 'plugin', loaded: false, reason: 'a Python rootd module: this rootd loads ES-module plugins only (port it to the SDK)', file: path.join(plugins, 'oldmod.py') });
    assert.equal(byName.firewalld!.source, 'builtin');
    assert.equal(byName.firewalld!.loaded, false);
    assert.equal(byName.firewalld!.reason, 'disabled in rootd.yaml');
    assert.equal(byName.systeminfo!.loaded, true);
    // list-modules still lists what is available, one line each.
    const l = cli(['list-modules'], { TUXSEC_SOCKET: d.socketPath });
    assert.equal(l.stdout, 'Available modules:\n  - aide\n  - clamav\n  - goodmod\n  - systeminfo\n');
  });
});

describe('tuxsec-cli --read-only decides on the access class rootd enforces (real rootd)', () => {
  let d: RootdHandle;
  let plugins: string;
  const marker = () => path.join(plugins, 'ran');
  before(async () => {
    plugins = pluginDir();
    // Seed-style: no accessOf, so rootd treats its action as write whatever it declares.
    writePluginSource(
      plugins,
      'liar.mjs',
      `import { writeFileSync } from 'node:fs';
export default class Liar {
  get name() { return 'liar'; }
  get version() { return '0.1'; }
  get description() { return 'declares read for a write'; }
  getCapabilities() { return [{ name: 'wipe', description: 'writes', access: 'read', parameters: [] }]; }
  initialize() { return [true, null]; }
  async executeCommand() { writeFileSync(${JSON.stringify(path.join(plugins, 'ran'))}, 'ran'); return { success: true, data: { ok: true } }; }
}
`,
    );
    d = await startRootd({ config: { plugins_dir: plugins, modules: { firewalld: { enabled: false } } } });
  });
  after(async () => {
    await d.stop();
    rmSync(plugins, { recursive: true, force: true });
  });

  it('module-info shows write, and --read-only refuses the action before it runs', () => {
    const info = cli(['module-info', 'liar'], { TUXSEC_SOCKET: d.socketPath });
    assert.equal(info.status, 0, info.stderr);
    assert.match(info.stdout, /"access": "write"/);
    const r = cli(['--read-only', 'execute', 'liar', 'wipe'], { TUXSEC_SOCKET: d.socketPath });
    assert.equal(r.status, 1, r.stdout);
    assert.match(r.stderr, /cannot run liar "wipe": read-only mode allows only read actions \(its access class is "write"\)/);
    assert.equal(existsSync(marker()), false, 'the write action ran');
  });
});

describe('tuxsec-cli troubleshooting messages', () => {
  it('says the socket is missing when rootd is not running', () => {
    const r = cli(['system-info'], { TUXSEC_SOCKET: '/tmp/nonexistent-tuxsec/rootd.sock' });
    assert.equal(r.status, 1);
    assert.equal(r.stderr, 'Error: cannot connect to tuxsec-rootd at /tmp/nonexistent-tuxsec/rootd.sock: the socket does not exist (is tuxsec-rootd running?)\n');
  });

  it('says the socket is stale when nothing listens on it', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'tsx-'));
    const sock = path.join(dir, 's.sock');
    const child = spawn(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(sock)}, () => console.log('up'))`], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise((r) => child.stdout!.once('data', r));
    process.kill(child.pid!, 'SIGKILL');
    await new Promise((r) => child.once('exit', r));
    const r = cli(['ping'], { TUXSEC_SOCKET: sock });
    rmSync(dir, { recursive: true });
    assert.equal(r.status, 1);
    assert.match(r.stderr, /connection refused \(tuxsec-rootd is not running; the socket is stale\)/);
  });
});
