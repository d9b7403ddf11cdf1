import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startRootd, ROOTD_JS, CLI_JS, type RootdHandle } from '../helpers/rootd.ts';
import { pluginDir, writePlugin, writePluginSource } from '../helpers/plugin.ts';
import { connectRaw, oneShot } from '../helpers/raw.ts';
import { ensureTestUsers, asUser } from '../helpers/users.ts';

/** Writes the test plugins into a root-owned 0755 directory. */
function writePlugins(): string {
  const dir = pluginDir();
  writePlugin(dir, {
    name: 'testmod',
    actions: `[
      defineAction({ name: 'echo', description: 'echo text', access: 'read',
        params: Params({ text: Type.String({ pattern: '^[a-z]{1,10}$', description: 'lower-case letters' }) }),
        handler: (p) => ({ text: p.text }) }),
      defineAction({ name: 'sleep', description: 'sleep', access: 'write',
        params: Params({ ms: Type.Integer({ minimum: 0, maximum: 60000 }) }),
        handler: (p, ctx) => new Promise((res, rej) => { const t = setTimeout(() => res({ slept: p.ms }), p.ms); ctx.signal.addEventListener('abort', () => { clearTimeout(t); rej(new Error('aborted')); }); }) }),
      defineAction({ name: 'boom', description: 'dangerous', access: 'dangerous', params: Params({}), handler: () => ({ boom: true }) }),
    ]`,
  });
  writePluginSource(
    dir,
    'seedmod.mjs',
    `export default class SeedModule {
  get name() { return 'seedmod'; }
  get version() { return '0.1'; }
  get description() { return 'seed-style hand-written module'; }
  getCapabilities() { return [{ name: 'my_action', description: 'Perform an action', parameters: [{ name: 'param1', type: 'string', description: 'Parameter 1', required: 'true' }] }]; }
  initialize() { return [true, null]; }
  shutdown() {}
  async executeCommand(command) {
    if (command.action === 'my_action') return { success: true, data: { result: 'OK', got: command.parameters.param1 } };
    return { success: false, error: 'Unknown action' };
  }
}
`,
  );
  writePluginSource(
    dir,
    'failmod.mjs',
    `export default class FailModule {
  get name() { return 'failmod'; }
  get version() { return '0.1'; }
  get description() { return 'never available'; }
  getCapabilities() { return []; }
  async initialize() { return [false, 'the widget is not installed']; }
  async executeCommand() { return { success: true }; }
}
`,
  );
  writePluginSource(dir, 'evil.mjs', `throw new Error('must never load');\n`, 0o666);
  return dir;
}

function cli(socketPath: string, ...args: string[]) {
  return spawnSync(process.execPath, [CLI_JS, '--socket', socketPath, ...args], { encoding: 'utf8', timeout: 20_000 });
}

describe('rootd with plugins, limits and policy', () => {
  let d: RootdHandle;
  let plugins: string;
  let users: Awaited<ReturnType<typeof ensureTestUsers>>;
  before(async () => {
    users = await ensureTestUsers();
    plugins = writePlugins();
    d = await startRootd({
      config: {
        plugins_dir: plugins,
        request_timeout: 1,
        read_only_users: [users.member.name],
        modules: { testmod: { enabled: true }, firewalld: { enabled: false }, selinux: { enabled: false } },
      },
    });
  });
  after(async () => {
    await d.stop();
    rmSync(plugins, { recursive: true, force: true });
  });

  it('loads safe plugins, refuses a world-writable one, and lists a failed module with its reason', async () => {
    const r = await oneShot(d.socketPath, JSON.stringify({ type: 'list_modules', request_id: 'l', data: {} }));
    const data = r.data as { modules: string[]; unavailable: Array<{ name: string; reason: string }> };
    assert.deepEqual(data.modules, ['aide', 'clamav', 'seedmod', 'systeminfo', 'testmod']);
    assert.deepEqual(data.unavailable, [
      { name: 'failmod', state: 'unavailable', reason: 'the widget is not installed' },
      { name: 'firewalld', state: 'disabled', reason: 'disabled in rootd.yaml' },
      { name: 'selinux', state: 'disabled', reason: 'disabled in rootd.yaml' },
    ]);
    assert.match(d.log(), /evil\.mjs.*writable by group or others/);
    const c = cli(d.socketPath, 'execute', 'failmod', 'x');
    assert.equal(c.status, 1);
    assert.equal(c.stderr, 'Error: Module not found: failmod (the module is installed but not available: the widget is not installed)\n');
  });

  it('validates declared parameters before the plugin runs', () => {
    assert.equal(cli(d.socketPath, 'execute', 'testmod', 'echo', '--param', 'text=hello').stdout, '{\n  "text": "hello"\n}\n');
    const bad = cli(d.socketPath, 'execute', 'testmod', 'echo', '--param', 'text=Hello;reboot');
    assert.equal(bad.status, 1);
    assert.match(bad.stderr, /^Error: testmod echo: invalid value "Hello;reboot" for parameter "text"/);
    const missing = cli(d.socketPath, 'execute', 'testmod', 'echo');
    assert.match(missing.stderr, /missing required parameter "text"/);
  });

  it('serves a seed-style module, validating its declared parameters', () => {
    const ok = cli(d.socketPath, 'execute', 'seedmod', 'my_action', '--param', 'param1=x');
    assert.equal(ok.status, 0, ok.stderr);
    assert.deepEqual(JSON.parse(ok.stdout), { result: 'OK', got: 'x' });
    assert.match(cli(d.socketPath, 'execute', 'seedmod', 'my_action').stderr, /missing required parameter "param1"/);
  });

  it('coerces CLI values to the declared type', () => {
    // "123" parses as a JSON number; the declared type is string, so it is converted back.
    const r = cli(d.socketPath, 'execute', 'seedmod', 'my_action', '--param', 'param1=123');
    assert.deepEqual(JSON.parse(r.stdout), { result: 'OK', got: '123' });
  });

  it('refuses the dangerous class, naming the setting that allows it', () => {
    const r = cli(d.socketPath, 'execute', 'testmod', 'boom');
    assert.equal(r.status, 1);
    assert.match(r.stderr, /dangerous class; set modules\.testmod\.allow_dangerous: true in rootd\.yaml/);
  });

  it('times an action out, aborts it, and answers the next request', async () => {
    const c = await connectRaw(d.socketPath);
    c.write(JSON.stringify({ type: 'execute_command', request_id: 'slow', data: { module: 'testmod', action: 'sleep', parameters: { ms: 5000 } } }) + '\n');
    c.write(JSON.stringify({ type: 'ping', request_id: 'fast', data: {} }) + '\n');
    const [first, second] = await c.next(2, 5000);
    assert.equal(first!.request_id, 'fast', 'ping is not held behind the slow action');
    assert.equal(second!.request_id, 'slow');
    assert.equal((second!.data as { code: string }).code, 'timeout');
    c.close();
  });

  it('serves read actions only to read_only_users', () => {
    const run = (...a: string[]) => {
      const [f, argv] = asUser(users.member, process.execPath, [CLI_JS, '--socket', d.socketPath, ...a]);
      return spawnSync(f, argv, { encoding: 'utf8', timeout: 20_000 });
    };
    assert.equal(run('execute', 'testmod', 'echo', '--param', 'text=hi').status, 0);
    const w = run('execute', 'testmod', 'sleep', '--param', 'ms=1');
    assert.equal(w.status, 1);
    assert.match(w.stderr, /may not run write actions/);
  });

  it('SIGTERM answers what is in flight, then removes the socket', async () => {
    const e = await startRootd({ config: { plugins_dir: plugins, request_timeout: 10 } });
    const c = await connectRaw(e.socketPath);
    c.write(JSON.stringify({ type: 'execute_command', request_id: 'inflight', data: { module: 'testmod', action: 'sleep', parameters: { ms: 400 } } }) + '\n');
    await new Promise((r) => setTimeout(r, 100));
    e.signal('SIGTERM');
    const [res] = await c.next(1, 5000);
    assert.equal(res!.type, 'success');
    const socketPath = e.socketPath;
    assert.equal(await e.stop(), 0);
    assert.equal(existsSync(socketPath), false);
  });
});

describe('rootd start-up', () => {
  it('refuses to start as a non-root user without --dev', async () => {
    const { tuxsec } = await ensureTestUsers();
    const [f, argv] = asUser(tuxsec, process.execPath, [ROOTD_JS, '--socket', '/tmp/never/rootd.sock']);
    const r = spawnSync(f, argv, { encoding: 'utf8', timeout: 20_000 });
    assert.equal(r.status, 1);
    assert.match(r.stderr, /must run as root/);
  });

  it('--dev runs as a non-root user, in a socket directory that user owns (0750)', async () => {
    const { tuxsec } = await ensureTestUsers();
    const base = mkdtempSync(path.join(tmpdir(), 'tsd-'));
    chownSync(base, tuxsec.uid, tuxsec.gid);
    const sock = path.join(base, 'run', 'rootd.sock');
    writeFileSync(path.join(base, 'rootd.yaml'), `audit_log: ${base}/audit.log\n`);
    chownSync(path.join(base, 'rootd.yaml'), tuxsec.uid, tuxsec.gid);
    const [f, argv] = asUser(tuxsec, process.execPath, [ROOTD_JS, '--dev', '--config', path.join(base, 'rootd.yaml'), '--socket', sock]);
    const p = spawn(f, argv, { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    p.stderr!.on('data', (c: Buffer) => (err += c.toString()));
    try {
      for (let i = 0; i < 300 && !existsSync(sock); i++) await new Promise((r) => setTimeout(r, 50));
      const [cf, cargv] = asUser(tuxsec, process.execPath, [CLI_JS, '--socket', sock, 'ping']);
      const r = spawnSync(cf, cargv, { encoding: 'utf8', timeout: 20_000 });
      assert.equal(r.status, 0, `${r.stderr}\n${err}`);
      const st = statSync(path.dirname(sock));
      assert.equal(st.uid, tuxsec.uid);
      assert.equal((st.mode & 0o7777).toString(8), '750');
    } finally {
      process.kill(p.pid!, 'SIGTERM');
      await new Promise((r) => p.once('exit', r));
      rmSync(base, { recursive: true, force: true });
    }
  });

  for (const [name, yaml, re] of [
    ['an unknown key', 'sokcet: /tmp/x\n', /unknown key "sokcet"/],
    ['a bad value', 'request_timeout: soon\n', /key "request_timeout"/],
    ['a nested unknown key', 'modules:\n  systeminfo:\n    enabeld: true\n', /unknown key "modules\.systeminfo\.enabeld"/],
    ['a relative socket path', 'socket: run/rootd.sock\n', /key "socket"/],
    ['invalid YAML', 'socket: [\n', /cannot load config .*: invalid YAML/],
  ] as const) {
    it(`stops on ${name} with a message naming it`, () => {
      const dir = mkdtempSync(path.join(tmpdir(), 'tsc-'));
      writeFileSync(path.join(dir, 'rootd.yaml'), yaml);
      const r = spawnSync(process.execPath, [ROOTD_JS, '--config', path.join(dir, 'rootd.yaml'), '--check-config'], { encoding: 'utf8' });
      rmSync(dir, { recursive: true });
      assert.equal(r.status, 1);
      assert.match(r.stderr, re);
    });
  }

  it('refuses an audit log in a directory the tuxsec user controls, or behind a symbolic link', async () => {
    const { tuxsec } = await ensureTestUsers();
    const dir = mkdtempSync(path.join(tmpdir(), 'tsq-'));
    chmodSync(dir, 0o755);
    const userDir = path.join(dir, 'user-owned');
    mkdirSync(userDir);
    (await import('node:fs')).chownSync(userDir, tuxsec.uid, tuxsec.gid);
    const target = path.join(dir, 'target');
    writeFileSync(target, '');
    const rootDir = path.join(dir, 'root-owned');
    mkdirSync(rootDir, { mode: 0o750 });
    symlinkSync(target, path.join(rootDir, 'audit.log'));
    try {
      for (const [audit, re] of [
        [path.join(userDir, 'audit.log'), /user-owned is owned by uid/],
        [path.join(rootDir, 'audit.log'), /audit\.log is a symbolic link/],
      ] as const) {
        writeFileSync(path.join(dir, 'rootd.yaml'), `audit_log: ${audit}\nsocket: ${dir}/run/rootd.sock\n`);
        const r = spawnSync(process.execPath, [ROOTD_JS, '--config', path.join(dir, 'rootd.yaml')], { encoding: 'utf8', timeout: 20_000 });
        assert.equal(r.status, 1);
        assert.match(r.stderr, /cannot open audit log/);
        assert.match(r.stderr, re);
      }
      assert.equal((await import('node:fs')).readFileSync(target, 'utf8'), '', 'the link target was never written');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('SIGHUP reopens the log file and the audit log after rotation', async () => {
    const logDir = mkdtempSync(path.join(tmpdir(), 'tsh-'));
    const logFile = path.join(logDir, 'rootd.log');
    const d = await startRootd({ config: { log_file: logFile, audit_log: path.join(logDir, 'audit.log') } });
    try {
      const fs = await import('node:fs');
      const waitFor = async (f: string, re: RegExp) => {
        for (let i = 0; i < 100; i++) {
          if (fs.existsSync(f) && re.test(fs.readFileSync(f, 'utf8'))) return;
          await new Promise((r) => setTimeout(r, 50));
        }
        assert.fail(`${f} never matched ${re}`);
      };
      await waitFor(logFile, /tuxsec-rootd ready/);
      fs.renameSync(logFile, `${logFile}.1`);
      fs.renameSync(path.join(logDir, 'audit.log'), path.join(logDir, 'audit.log.1'));
      d.signal('SIGHUP');
      await waitFor(logFile, /configuration reloaded/);
      await oneShot(d.socketPath, JSON.stringify({ type: 'execute_command', request_id: 'rot', data: { module: 'systeminfo', action: 'get_uptime' } }));
      await waitFor(path.join(logDir, 'audit.log'), /"request_id":"rot"/);
      assert.ok(!fs.readFileSync(`${logFile}.1`, 'utf8').includes('configuration reloaded'));
    } finally {
      await d.stop();
      rmSync(logDir, { recursive: true, force: true });
    }
  });

  it('replaces a stale socket and refuses to steal a live one', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'tss-'));
    const sock = path.join(dir, 'run', 'rootd.sock');
    mkdirSync(path.dirname(sock));
    // A listener that dies by SIGKILL leaves its socket file behind.
    const child = spawn(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(sock)}, () => console.log('up'))`], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise((r) => child.stdout!.once('data', r));
    process.kill(child.pid!, 'SIGKILL');
    await new Promise((r) => child.once('exit', r));
    assert.ok(existsSync(sock));
    const a = await startRootd({ config: { socket: sock } });
    try {
      const r = await oneShot(sock, JSON.stringify({ type: 'ping', request_id: 's', data: {} }));
      assert.equal(r.type, 'success');
      const second = spawnSync(process.execPath, [ROOTD_JS, '--config', a.configPath], { encoding: 'utf8', timeout: 20_000 });
      assert.equal(second.status, 1);
      assert.match(second.stderr, /another tuxsec-rootd is answering/);
    } finally {
      await a.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses a socket directory that is a symbolic link', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'tsl-'));
    mkdirSync(path.join(dir, 'real'));
    symlinkSync(path.join(dir, 'real'), path.join(dir, 'link'));
    writeFileSync(path.join(dir, 'rootd.yaml'), `audit_log: null\n`);
    const r = spawnSync(process.execPath, [ROOTD_JS, '--socket', path.join(dir, 'link', 'rootd.sock'), '--config', path.join(dir, 'rootd.yaml')], { encoding: 'utf8', timeout: 20_000 });
    rmSync(dir, { recursive: true });
    assert.equal(r.status, 1);
    assert.match(r.stderr, /is a symbolic link/);
  });

  it('follows a root-owned link above the socket directory, as in the default /var/run/tuxsec', async () => {
    const base = mkdtempSync(path.join(tmpdir(), 'tsv-'));
    chmodSync(base, 0o755);
    mkdirSync(path.join(base, 'run'), { mode: 0o755 });
    symlinkSync('run', path.join(base, 'varrun'));
    const d = await startRootd({ config: { socket: path.join(base, 'varrun', 'tuxsec', 'rootd.sock') } });
    try {
      const st = statSync(path.join(base, 'run', 'tuxsec'));
      assert.equal((st.mode & 0o7777).toString(8), '750');
    } finally {
      await d.stop();
      rmSync(base, { recursive: true, force: true });
    }
  });

  it('takes a listening socket from systemd socket activation (LISTEN_FDS)', async () => {
    await ensureTestUsers();
    const dir = mkdtempSync(path.join(tmpdir(), 'tsa-'));
    const sock = path.join(dir, 'rootd.sock');
    writeFileSync(path.join(dir, 'rootd.yaml'), `audit_log: ${dir}/audit.log\n`);
    const act = spawn('/usr/bin/systemd-socket-activate', ['-l', sock, '--', process.execPath, ROOTD_JS, '--config', path.join(dir, 'rootd.yaml')], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let err = '';
    act.stderr!.on('data', (c) => (err += c));
    try {
      for (let i = 0; i < 100 && !existsSync(sock); i++) await new Promise((r) => setTimeout(r, 50));
      const r = await oneShot(sock, JSON.stringify({ type: 'ping', request_id: 'sd', data: {} }));
      assert.deepEqual(r.data, { pong: true });
      assert.match(err, /fd 3 \(systemd\)/);
    } finally {
      process.kill(act.pid!, 'SIGTERM');
      await new Promise((r) => act.once('exit', r));
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('limits requests per uid', async () => {
    const d = await startRootd({ config: { rate_limit: { requests_per_second: 1, burst: 3 } } });
    try {
      const c = await connectRaw(d.socketPath);
      // The readiness ping took one token.
      c.write(Array.from({ length: 10 }, (_, i) => JSON.stringify({ type: 'ping', request_id: `r${i}`, data: {} })).join('\n') + '\n');
      const res = await c.next(10);
      const limited = res.filter((r) => (r.data as { code?: string }).code === 'rate-limited').length;
      assert.ok(limited >= 6 && limited <= 8, `${limited} of 10 rate-limited`);
      c.close();
    } finally {
      await d.stop();
    }
  });

  it('caps concurrent connections', async () => {
    const d = await startRootd({ config: { max_connections: 2 } });
    try {
      const a = await connectRaw(d.socketPath);
      const b = await connectRaw(d.socketPath);
      a.write('{"type":"ping","request_id":"a","data":{}}\n');
      b.write('{"type":"ping","request_id":"b","data":{}}\n');
      await a.next(1);
      await b.next(1);
      const c = await connectRaw(d.socketPath);
      const [res] = await c.next(1);
      assert.equal((res!.data as { code: string }).code, 'rate-limited');
      assert.match((res!.data as { error: string }).error, /max_connections 2/);
      a.close();
      b.close();
      c.close();
    } finally {
      await d.stop();
    }
  });
});
