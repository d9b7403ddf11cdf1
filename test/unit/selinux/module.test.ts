// The selinux module in-process through ModuleRegistry, with the program runner injected: it
// records each argument array and answers with canned output, because this host's kernel runs
// without SELinux (setsebool and restorecon cannot act here) and a unit test changes no policy
// store. The real programs run in test/selinux/. The kernel's selinuxfs is stood in for by a
// directory of plain files where a test needs SELinux "enabled".
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { SelinuxModule } from '../../../src/rootd/modules/selinux/index.ts';
import { ModuleRegistry, DEFAULT_MODULE_CONFIG } from '../../../src/rootd/registry.ts';
import { makeAccessPolicy } from '../../../src/rootd/access.ts';
import type { RunOptions, RunResult } from '../../../src/os/exec.ts';
import { TuxsecError } from '../../../src/protocol/errors.ts';
import { ctxFor, quiet } from '../helpers.ts';
import { failure } from '../../helpers/failure.ts';

interface Call {
  file: string;
  args: readonly string[];
  opts: RunOptions | undefined;
}

const BOOLEANS = 'httpd_can_network_connect      (off  ,  off)  Allow httpd to can network connect\nftpd_full_access               (on   ,   on)  Allow ftpd to full access\n';
const FCONTEXTS =
  '/srv/www(/.*)?                                     all files          system_u:object_r:httpd_sys_content_t:s0 \n' +
  '/\\.journal                                         all files          <<None>>\n' +
  '/etc/cron\\.((daily)|(weekly)|(monthly))/freeradius regular file       system_u:object_r:radiusd_exec_t:s0 \n' +
  '/bin = /usr/bin\n';
const PORTS = 'http_port_t                    tcp      8991, 80, 443, 8000-8010\nhttp_port_t                    udp      80\nssh_port_t                     tcp      22\n';

function ok(stdout = ''): RunResult {
  return { code: 0, signal: null, stdout, stderr: '', truncated: false, timedOut: false };
}

let dir: string;
let root: string;

before(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'tuxsec-selinux-unit-'));
  root = path.join(dir, 'root');
  mkdirSync(path.join(root, 'proc'), { recursive: true });
  writeFileSync(path.join(root, 'proc', 'cmdline'), 'console=ttyS0 quiet\n');
  writeFileSync(path.join(root, 'proc', 'filesystems'), 'nodev\tsysfs\nnodev\tproc\n\text4\n');
});
after(() => rmSync(dir, { recursive: true, force: true }));

/** A module over a fake host: `enabled` makes a selinuxfs stand-in with enforce = 0. */
async function setup(o: { enabled?: boolean; answer?: (c: Call) => RunResult; settings?: Record<string, unknown>; programs?: boolean; allowDangerous?: boolean } = {}) {
  const host = mkdtempSync(path.join(dir, 'host-'));
  const selinuxfs = path.join(host, 'selinuxfs');
  if (o.enabled) {
    mkdirSync(selinuxfs);
    writeFileSync(path.join(selinuxfs, 'enforce'), '0');
    writeFileSync(path.join(selinuxfs, 'policyvers'), '33');
    writeFileSync(path.join(selinuxfs, 'mls'), '1');
  }
  const config = path.join(host, 'config');
  writeFileSync(config, '# This file controls the state of SELinux on the system.\nSELINUX=permissive\n# SELINUX=enforcing\nSELINUXTYPE=default\n\nSETLOCALDEFS=0\n', { mode: 0o644 });
  const calls: Call[] = [];
  const mod = new SelinuxModule({
    run: async (file, args, opts) => {
      const c = { file, args, opts };
      calls.push(c);
      return o.answer ? o.answer(c) : ok();
    },
    exists: (f) => (o.programs === false ? false : f.startsWith('/usr/sbin/')),
    paths: { selinuxfs, proc: path.join(root, 'proc') },
  });
  const reg = new ModuleRegistry(quiet, makeAccessPolicy(() => ({ allowedUids: new Set([1000]), readOnlyUids: new Set([1001]) })));
  reg.register(mod, { ...DEFAULT_MODULE_CONFIG, allow_dangerous: o.allowDangerous ?? true });
  await reg.initializeAll(() => ({ settings: { config, ...o.settings }, log: quiet }), (m, ctx) => m.initialize(ctx));
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  const ex = (action: string, params: Record<string, unknown> = {}, uid = 0): Promise<any> => reg.execute('selinux', action, params, ctxFor(uid));
  return { mod, reg, ex, calls, config, selinuxfs };
}

/** Answers semanage listings by subcommand; everything else succeeds silently. */
function listings(c: Call): RunResult {
  if (c.args.includes('-l')) return ok(c.args[0] === 'boolean' ? BOOLEANS : c.args[0] === 'fcontext' ? FCONTEXTS : PORTS);
  return ok();
}

describe('selinux availability', () => {
  it('get_status on a kernel without SELinux says disabled and why, with the config and the store', async () => {
    const { ex, config } = await setup();
    const s = await ex('get_status');
    assert.equal(s.enabled, false);
    assert.equal(s.mode, 'disabled');
    assert.match(s.reason, /^SELinux is disabled in the kernel \(no selinuxfs in \/proc\/filesystems/);
    assert.deepEqual(s.config, { path: config, exists: true, mode: 'permissive', policy_type: 'default' });
    assert.equal(s.policy_type, 'default');
    assert.equal(s.available.runtime, false);
    assert.equal(s.available.persistent_mode, true);
    assert.deepEqual(s.programs, { semanage: true, setsebool: true, restorecon: true });
  });

  it('the reason names selinux=0 on the kernel command line when it is there', async () => {
    writeFileSync(path.join(root, 'proc', 'cmdline'), 'quiet selinux=0 ro\n');
    try {
      const { ex } = await setup();
      assert.match((await ex('get_enforce')).reason, /selinux=0 on the kernel command line/);
    } finally {
      writeFileSync(path.join(root, 'proc', 'cmdline'), 'console=ttyS0 quiet\n');
    }
  });

  it('the reason says selinuxfs is not mounted when the kernel has it but no policy is loaded', async () => {
    writeFileSync(path.join(root, 'proc', 'filesystems'), 'nodev\tsysfs\nnodev\tselinuxfs\n');
    try {
      const { ex, selinuxfs } = await setup();
      assert.equal((await ex('get_status')).reason, `SELinux is disabled in the kernel (selinuxfs is not mounted at ${selinuxfs}: no policy is loaded)`);
    } finally {
      writeFileSync(path.join(root, 'proc', 'filesystems'), 'nodev\tsysfs\nnodev\tproc\n\text4\n');
    }
  });

  it('get_status with a selinuxfs reads the mode, policy version and MLS', async () => {
    const { ex } = await setup({ enabled: true });
    const s = await ex('get_status');
    assert.equal(s.enabled, true);
    assert.equal(s.mode, 'permissive');
    assert.equal(s.policy_version, 33);
    assert.equal(s.mls, true);
    assert.equal(s.reason, null);
  });

  it('initialize refuses a host with no SELinux at all, and unknown or bad settings', async () => {
    const none = new SelinuxModule({ exists: () => false, paths: { selinuxfs: path.join(dir, 'none'), proc: path.join(root, 'proc') } });
    const [ok1, why] = await none.initialize({ settings: { config: path.join(dir, 'missing') }, log: quiet });
    assert.equal(ok1, false);
    assert.match(why!, /^SELinux is not installed: SELinux is disabled in the kernel/);
    const m = new SelinuxModule({ exists: () => true, paths: { selinuxfs: path.join(dir, 'none'), proc: path.join(root, 'proc') } });
    assert.deepEqual(await m.initialize({ settings: { stor: 'x' }, log: quiet }), [false, 'unknown setting modules.selinux.settings.stor (known: config, store)']);
    assert.match((await m.initialize({ settings: { config: 'relative/config' }, log: quiet }))[1]!, /settings\.config: expected an absolute path/);
    assert.match((await m.initialize({ settings: { store: '../etc' }, log: quiet }))[1]!, /settings\.store: expected a policy store name/);
  });

  it('runtime actions are refused with service-unavailable saying why; nothing is run', async () => {
    const { ex, calls } = await setup({ answer: listings });
    for (const [action, params, what] of [
      ['set_enforce', { mode: 'enforcing' }, 'cannot set the SELinux mode at runtime: SELinux is disabled in the kernel'],
      ['set_boolean', { name: 'httpd_can_network_connect', value: true }, 'cannot set SELinux boolean "httpd_can_network_connect" at runtime: SELinux is disabled in the kernel'],
      ['restorecon', { path: '/srv/www', recursive: true }, 'cannot restore SELinux labels: SELinux is disabled in the kernel'],
    ] as const) {
      const e = await failure(ex(action, params));
      assert.equal(e.code, 'service-unavailable', action);
      assert.ok(e.message.startsWith(what), e.message);
    }
    assert.deepEqual(calls, []);
  });

  it('store actions say which package is missing when semanage is not installed', async () => {
    const { ex } = await setup({ programs: false });
    const e = await failure(ex('list_ports'));
    assert.equal(e.code, 'service-unavailable');
    assert.equal(e.message, 'cannot list SELinux port labels: semanage is not installed (/usr/sbin/semanage; Debian package policycoreutils-python-utils)');
  });
});

describe('selinux validation', () => {
  // Each row: action, parameters, the parameter the error must name.
  const bad: Array<[string, Record<string, unknown>, string]> = [
    ['get_boolean', { name: '-P' }, 'name'],
    ['get_boolean', { name: 'a b' }, 'name'],
    ['get_boolean', { name: 'x'.repeat(200) }, 'name'],
    ['set_boolean', { name: 'httpd_can_network_connect', value: 'on' }, 'value'],
    ['set_boolean', { name: 'ok', value: true, persistent: 1 }, 'persistent'],
    ['add_port', { type: 'http_port_t', port: '0', protocol: 'tcp' }, 'port'],
    ['add_port', { type: 'http_port_t', port: '65536', protocol: 'tcp' }, 'port'],
    ['add_port', { type: 'http_port_t', port: '90-80', protocol: 'tcp' }, 'port'],
    ['add_port', { type: 'http_port_t', port: '-1', protocol: 'tcp' }, 'port'],
    ['add_port', { type: 'http_port_t', port: '80', protocol: 'icmp' }, 'protocol'],
    ['add_port', { type: '--help', port: '80', protocol: 'tcp' }, 'type'],
    ['add_port', { type: 'http_port_t;rm', port: '80', protocol: 'tcp' }, 'type'],
    ['delete_port', { port: '80/tcp', protocol: 'tcp' }, 'port'],
    ['list_ports', { port: 70000 }, 'port'],
    ['add_file_context', { spec: 'srv/www', type: 'httpd_sys_content_t' }, 'spec'],
    ['add_file_context', { spec: '/srv/a b', type: 'httpd_sys_content_t' }, 'spec'],
    ['add_file_context', { spec: '/srv/a\u0000b', type: 'httpd_sys_content_t' }, 'spec'],
    ['add_file_context', { spec: `/${'a'.repeat(1024)}`, type: 'httpd_sys_content_t' }, 'spec'],
    ['add_file_context', { spec: '/srv/www', type: 'system_u:object_r:x_t' }, 'type'],
    ['add_file_context', { spec: '/srv/www', type: 'httpd_sys_content_t', ftype: 'x' }, 'ftype'],
    ['add_file_context', { spec: '/srv/www', type: 'httpd_sys_content_t', range: 's0 -r' }, 'range'],
    ['delete_file_context', { spec: '-d' }, 'spec'],
    ['restorecon', { path: 'relative' }, 'path'],
    ['restorecon', { path: '/srv/../etc' }, 'path'],
    ['restorecon', { path: '/srv//www' }, 'path'],
    ['restorecon', { path: '/srv/\nwww' }, 'path'],
    ['set_enforce', { mode: 'on' }, 'mode'],
    ['set_enforce', { mode: 'disabled' }, 'mode'],
    ['set_enforce', { mode: 'enforcing', runtime: false }, 'runtime'],
    ['list_booleans', { limit: 0 }, 'limit'],
    ['list_file_contexts', { filter: '' }, 'filter'],
    ['get_status', { verbose: true }, 'verbose'],
  ];
  for (const [action, params, param] of bad) {
    it(`${action} refuses ${JSON.stringify(params).slice(0, 60)} naming "${param}", running nothing`, async () => {
      const { ex, calls } = await setup({ enabled: true, answer: listings });
      const e = await failure(ex(action, params));
      assert.equal(e.code, 'invalid-params');
      assert.equal(e.details?.parameter, param, e.message);
      assert.match(e.message, new RegExp(`"${param}"`));
      assert.deepEqual(calls, []);
    });
  }

  it('access classes: reads are read, changes are write, set_enforce dangerous, and a read-only user cannot change', async () => {
    const { mod, ex } = await setup({ answer: listings });
    assert.equal(mod.actions.get('set_enforce')!.access, 'dangerous');
    const writes = new Set(['set_boolean', 'add_file_context', 'delete_file_context', 'add_port', 'delete_port', 'restorecon']);
    for (const [name, a] of mod.actions) if (name !== 'set_enforce') assert.equal(a.access, writes.has(name) ? 'write' : 'read', name);
    assert.equal((await failure(ex('add_port', { type: 'http_port_t', port: '81', protocol: 'tcp' }, 1001))).code, 'permission-denied');
    assert.equal((await ex('list_ports', {}, 1001)).total, 3);
  });
});

describe('selinux set_enforce without allow_dangerous', () => {
  it('is refused for the allowed user and root alike: permissive switches mandatory access control off', async () => {
    const { ex, config } = await setup({ enabled: true, answer: listings, allowDangerous: false });
    const before = readFileSync(config, 'utf8');
    for (const uid of [1000, 0]) {
      const e = await failure(ex('set_enforce', { mode: 'permissive', runtime: false, persistent: true }, uid));
      assert.equal(e.code, 'permission-denied', e.message);
      assert.match(e.message, /^cannot run selinux set_enforce: it is in the dangerous class; set modules\.selinux\.allow_dangerous: true/);
    }
    assert.equal(readFileSync(config, 'utf8'), before);
  });
});

describe('selinux argument arrays', () => {
  it('store changes pass -S STORE, options, then "--" and the value', async () => {
    const { ex, calls } = await setup({ answer: listings, settings: { store: 'tuxsec-test' } });
    await ex('add_file_context', { spec: '/srv/www(/.*)?', type: 'httpd_sys_content_t', ftype: 'd', range: 's0' });
    await ex('delete_file_context', { spec: '/srv/www(/.*)?' });
    await ex('add_port', { type: 'http_port_t', port: '08080-08090', protocol: 'sctp' });
    await ex('delete_port', { port: '8080', protocol: 'dccp' });
    await ex('set_boolean', { name: 'httpd_can_network_connect', value: true, persistent: true });
    await ex('list_file_contexts', { local_only: true });
    assert.deepEqual(
      calls.map((c) => [c.file, ...c.args]),
      [
        ['/usr/sbin/semanage', 'fcontext', '-S', 'tuxsec-test', '-a', '-t', 'httpd_sys_content_t', '-f', 'd', '-r', 's0', '--', '/srv/www(/.*)?'],
        ['/usr/sbin/semanage', 'fcontext', '-S', 'tuxsec-test', '-d', '--', '/srv/www(/.*)?'],
        ['/usr/sbin/semanage', 'port', '-S', 'tuxsec-test', '-a', '-t', 'http_port_t', '-p', 'sctp', '--', '8080-8090'],
        ['/usr/sbin/semanage', 'port', '-S', 'tuxsec-test', '-d', '-p', 'dccp', '--', '8080'],
        ['/usr/sbin/semanage', 'boolean', '-S', 'tuxsec-test', '-l', '-n'],
        ['/usr/sbin/semanage', 'boolean', '-S', 'tuxsec-test', '-m', '--on', '--', 'httpd_can_network_connect'],
        ['/usr/sbin/semanage', 'fcontext', '-S', 'tuxsec-test', '-l', '-n', '-C'],
      ],
    );
    for (const c of calls) assert.ok(c.opts?.timeoutMs && c.opts.maxOutputBytes, 'every run has a timeout and an output cap');
  });

  it('without a store setting semanage uses its own; runtime booleans go through setsebool; restorecon gets the signal', async () => {
    const { mod, reg, ex, calls } = await setup({ enabled: true, answer: listings });
    await ex('set_boolean', { name: 'httpd_can_network_connect', value: true });
    const progress: Array<[string, number | undefined]> = [];
    const ctl = new AbortController();
    const ctx = { ...ctxFor(0, ctl.signal), progress: (ph: string, f?: number) => void progress.push([ph, f]) };
    await reg.execute('selinux', 'restorecon', { path: '/srv/www', recursive: true, dry_run: true, force: true }, ctx);
    await ex('restorecon', { path: '/' });
    assert.deepEqual(
      calls.map((c) => [c.file, ...c.args]),
      [
        ['/usr/sbin/semanage', 'boolean', '-l', '-n'],
        ['/usr/sbin/setsebool', '--', 'httpd_can_network_connect', 'on'],
        ['/usr/sbin/restorecon', '-v', '-R', '-n', '-F', '--', '/srv/www'],
        ['/usr/sbin/restorecon', '-v', '--', '/'],
      ],
    );
    assert.equal(calls[2]!.opts?.signal, ctl.signal, 'cancelling the operation kills restorecon');
    assert.deepEqual(progress, [['relabeling', undefined], ['done', 1]]);
    // Long-running: started as an operation once issue 10's runner lands, with its own timeout.
    assert.ok((mod.actions.get('restorecon')?.longRunning?.timeoutSeconds ?? 0) > 3600);
  });

  it('set_boolean to the value it has runs nothing and answers changed: false', async () => {
    const { ex, calls } = await setup({ enabled: true, answer: listings });
    const r = await ex('set_boolean', { name: 'ftpd_full_access', value: true, persistent: true });
    assert.equal(r.changed, false);
    assert.deepEqual(calls.map((c) => c.args.join(' ')), ['boolean -l -n']);
    assert.equal((await failure(ex('get_boolean', { name: 'no_such_bool' }))).code, 'not-found');
  });
});

describe('selinux results and failures', () => {
  it('listings are parsed: booleans, file contexts with <<None>> and equivalences, ports filtered by type, protocol and port', async () => {
    const { ex } = await setup({ answer: listings });
    const b = await ex('list_booleans', { filter: 'ftpd' });
    assert.deepEqual(b.booleans, [{ name: 'ftpd_full_access', state: true, default: true, description: 'Allow ftpd to full access' }]);
    assert.equal(b.runtime, false);
    const f = await ex('list_file_contexts');
    assert.deepEqual(f.file_contexts[1], { spec: '/\\.journal', ftype: 'a', ftype_name: 'all files', context: null, type: null });
    assert.deepEqual(f.file_contexts[2].ftype, 'f');
    assert.equal(f.file_contexts[0].type, 'httpd_sys_content_t');
    assert.deepEqual(f.equivalences, [{ spec: '/bin', equal: '/usr/bin' }]);
    const p = await ex('list_ports', { port: 8005, protocol: 'tcp' });
    assert.deepEqual(p.ports, [{ type: 'http_port_t', protocol: 'tcp', ports: ['8991', '80', '443', '8000-8010'] }]);
    assert.equal((await ex('list_ports', { type: 'ssh_port_t' })).total, 1);
    const limited = await ex('list_ports', { limit: 1 });
    assert.equal(limited.ports.length, 1);
    assert.equal(limited.truncated, true);
  });

  it('semanage refusals map to stable codes with its reason, bounded', async () => {
    const answers: Record<string, string> = {
      add: 'libsemanage.add_user: user sddm not in password file\nValueError: Port tcp/8991 already defined\n',
      del: 'ValueError: Port tcp/80 is defined in policy, cannot be deleted\n',
      fc: 'ValueError: Type bogus_t is invalid, must be a file or device type\n',
      gone: `ValueError: File context for /nope is not defined${'x'.repeat(1000)}\n`,
    };
    let next = '';
    const { ex } = await setup({ answer: (c) => (c.args.includes('-l') ? listings(c) : { ...ok(), code: 1, stderr: answers[next]! }) });
    next = 'add';
    let e = await failure(ex('add_port', { type: 'http_port_t', port: '8991', protocol: 'tcp' }));
    assert.deepEqual([e.code, e.message], ['conflict', 'cannot add SELinux port label 8991/tcp: Port tcp/8991 already defined']);
    next = 'del';
    e = await failure(ex('delete_port', { port: '80', protocol: 'tcp' }));
    assert.equal(e.code, 'conflict');
    next = 'fc';
    e = await failure(ex('add_file_context', { spec: '/srv/x', type: 'bogus_t' }));
    assert.deepEqual([e.code, e.details?.parameter], ['invalid-params', 'type']);
    next = 'gone';
    e = await failure(ex('delete_file_context', { spec: '/nope' }));
    assert.equal(e.code, 'not-found');
    assert.ok(e.message.length < 400, 'the program\'s text is cut');
  });

  it('a run that times out answers timeout', async () => {
    const { ex } = await setup({ answer: () => ({ ...ok(), code: null, signal: 'SIGKILL', timedOut: true }) });
    assert.equal((await failure(ex('list_booleans'))).code, 'timeout');
  });

  it('restorecon reports each relabeled file and the count', async () => {
    const www = mkdtempSync(path.join(dir, 'www-'));
    writeFileSync(path.join(www, 'a'), '');
    writeFileSync(path.join(www, 'b c'), '');
    const out = `Would relabel ${www}/a from system_u:object_r:var_t:s0 to system_u:object_r:httpd_sys_content_t:s0\nWould relabel ${www}/b c from system_u:object_r:var_t:s0 to system_u:object_r:httpd_sys_content_t:s0\n`;
    const { ex } = await setup({ enabled: true, answer: () => ok(out) });
    const r = await ex('restorecon', { path: www, recursive: true, dry_run: true });
    assert.equal(r.relabeled_count, 2);
    assert.deepEqual(r.relabeled[1], { path: `${www}/b c`, from: 'system_u:object_r:var_t:s0', to: 'system_u:object_r:httpd_sys_content_t:s0' });
    assert.equal(r.truncated, false);
    assert.equal(r.unparsed_lines, 0);
  });

  it('restorecon: a file name holding a newline and a fake "Relabeled" line is read as the one file it is', async () => {
    // Real files under the tree, and restorecon's answer as it prints them (each path as it is).
    const www = mkdtempSync(path.join(dir, 'www-'));
    const CTX = 'from system_u:object_r:var_t:s0 to system_u:object_r:httpd_sys_content_t:s0';
    writeFileSync(path.join(www, 'index.html'), '');
    writeFileSync(path.join(www, 'secret'), '');
    // A name cannot hold "/": its fake line names a relative path...
    const flat = `${www}/x\nRelabeled secret from system_u:object_r:shadow_t:s0 to system_u:object_r:httpd_sys_content_t:s0\ny`;
    writeFileSync(flat, '');
    // ...but a directory named "d\nRelabeled " with the tree's path below it fakes a line of a real file.
    const deep = `${www}/d\nRelabeled ${www}/secret from system_u:object_r:shadow_t:s0 to system_u:object_r:httpd_sys_content_t:s0\nz`;
    mkdirSync(path.dirname(deep), { recursive: true });
    writeFileSync(deep, '');
    const out = [`${www}/index.html`, flat, deep].map((p) => `Relabeled ${p} ${CTX}\n`).join('') + `Relabeled /etc/shadow ${CTX}\n`;
    const { ex } = await setup({ enabled: true, answer: () => ok(out) });
    const r = await ex('restorecon', { path: www, recursive: true });
    const to = 'system_u:object_r:httpd_sys_content_t:s0';
    assert.deepEqual(r.relabeled, [
      { path: `${www}/index.html`, from: 'system_u:object_r:var_t:s0', to },
      { path: flat, from: 'system_u:object_r:var_t:s0', to },
      { path: deep, from: 'system_u:object_r:var_t:s0', to },
    ]);
    assert.equal(r.relabeled_count, 3);
    // The line naming a file outside the tree is not taken as a record.
    assert.equal(r.unparsed_lines, 1);
  });
});

describe('selinux set_enforce', () => {
  it('persistent only rewrites the SELINUX= line atomically, keeping every other byte, the mode and the owner', async () => {
    const { ex, config, calls } = await setup();
    chmodSync(config, 0o640);
    const before = readFileSync(config, 'utf8');
    const r = await ex('set_enforce', { mode: 'enforcing', runtime: false, persistent: true });
    assert.deepEqual(r, { mode: 'enforcing', changed: true, runtime: null, persistent: { changed: true, before: 'permissive', config } });
    assert.equal(readFileSync(config, 'utf8'), before.replace('\nSELINUX=permissive\n', '\nSELINUX=enforcing\n'));
    assert.equal(statSync(config).mode & 0o777, 0o640);
    assert.equal((await ex('get_enforce')).config_mode, 'enforcing');
    const again = await ex('set_enforce', { mode: 'enforcing', runtime: false, persistent: true });
    assert.equal(again.changed, false);
    await ex('set_enforce', { mode: 'disabled', runtime: false, persistent: true });
    assert.match(readFileSync(config, 'utf8'), /\nSELINUX=disabled\n# SELINUX=enforcing\nSELINUXTYPE=default\n/);
    assert.deepEqual(calls, []);
  });

  it('a config without SELINUX= gets the line appended; a symlink or a missing file is refused unchanged', async () => {
    const { ex, config } = await setup();
    writeFileSync(config, 'SELINUXTYPE=default');
    await ex('set_enforce', { mode: 'permissive', runtime: false, persistent: true });
    assert.equal(readFileSync(config, 'utf8'), 'SELINUXTYPE=default\nSELINUX=permissive\n');
    const target = path.join(path.dirname(config), 'target');
    writeFileSync(target, 'SELINUX=enforcing\n');
    rmSync(config);
    symlinkSync(target, config);
    assert.equal((await failure(ex('set_enforce', { mode: 'permissive', runtime: false, persistent: true }))).code, 'conflict');
    assert.equal(readFileSync(target, 'utf8'), 'SELINUX=enforcing\n');
    rmSync(config);
    const e = await failure(ex('set_enforce', { mode: 'permissive', runtime: false, persistent: true }));
    assert.equal(e.code, 'not-found');
  });

  it('runtime writes the kernel enforce file; with persistent both change, and a failed runtime write puts the config back', async () => {
    const { ex, config, selinuxfs } = await setup({ enabled: true });
    const before = readFileSync(config, 'utf8');
    const r = await ex('set_enforce', { mode: 'enforcing' });
    assert.deepEqual(r.runtime, { changed: true, before: 'permissive' });
    assert.equal(readFileSync(path.join(selinuxfs, 'enforce'), 'utf8'), '1');
    assert.equal(readFileSync(config, 'utf8'), before, 'runtime only leaves the config alone');
    writeFileSync(path.join(selinuxfs, 'enforce'), '1');
    // The kernel refusing the write; root writes a read-only file, so a directory stands in for it.
    rmSync(path.join(selinuxfs, 'enforce'));
    mkdirSync(path.join(selinuxfs, 'enforce'));
    writeFileSync(path.join(selinuxfs, 'enforce', 'x'), '');
    const e = await failure(ex('set_enforce', { mode: 'permissive', persistent: true }));
    assert.ok(['action-failed', 'service-unavailable'].includes(e.code), e.message);
    assert.equal(readFileSync(config, 'utf8'), before, 'the config file is as it was');
  });
});

describe('selinux restorecon cancelled', () => {
  it('aborting the operation kills the running program and answers with the abort reason', async () => {
    // A real child stands in for restorecon (it cannot act without SELinux in the kernel):
    // "cat -v -- /dev/zero" takes restorecon's argument shape and runs until killed.
    const host = mkdtempSync(path.join(dir, 'cancel-'));
    mkdirSync(path.join(host, 'selinuxfs'));
    writeFileSync(path.join(host, 'selinuxfs', 'enforce'), '1');
    const { run } = await import('../../../src/os/exec.ts');
    const mod = new SelinuxModule({ run, programs: { restorecon: '/usr/bin/cat' }, paths: { selinuxfs: path.join(host, 'selinuxfs'), proc: path.join(root, 'proc') } });
    await mod.initialize({ settings: {}, log: quiet });
    const ctl = new AbortController();
    const children = () =>
      readdirSync('/proc')
        .filter((n) => /^[0-9]+$/.test(n))
        .filter((n) => {
          try {
            return readFileSync(`/proc/${n}/cmdline`, 'utf8') === '/usr/bin/cat\0-v\0--\0/dev/zero\0' && readFileSync(`/proc/${n}/stat`, 'utf8').split(') ')[1]!.split(' ')[1] === String(process.pid);
          } catch {
            return false;
          }
        });
    const p = mod.executeCommand({ action: 'restorecon', parameters: { path: '/dev/zero' } }, ctxFor(0, ctl.signal));
    for (let i = 0; i < 200 && children().length === 0; i++) await new Promise((r) => setTimeout(r, 25));
    assert.equal(children().length, 1, 'the stand-in is running');
    const reason = new TuxsecError('interrupted', 'operation cancelled by uid 0');
    ctl.abort(reason);
    assert.equal(await failure(p), reason);
    for (let i = 0; i < 200 && children().length > 0; i++) await new Promise((r) => setTimeout(r, 25));
    assert.deepEqual(children(), [], 'the program is gone');
  });
});
