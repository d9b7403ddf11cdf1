// The selinux module in a real tuxsec-rootd, driven over its socket, with Debian's real SELinux
// programs on this host, whose kernel runs without SELinux. Policy store changes go to a store
// the test copies from the system's ("tuxsec-test-PID" under /var/lib/selinux and /etc/selinux,
// selected with semanage -S through the module's `store` setting) and removes afterwards; the
// system's own store is checked unchanged. SELINUX= is edited in a temporary config file.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startRootd, CLI_JS, type RootdHandle } from '../helpers/rootd.ts';
import { ensureTestUsers, asUser } from '../helpers/users.ts';
import { failure } from '../helpers/failure.ts';

const STORE = `tuxsec-test-${process.pid}`;
// libsemanage builds a commit under final/STORE before it moves it into /etc/selinux/STORE.
const STORE_DIRS = [path.join('/var/lib/selinux', STORE), path.join('/etc/selinux', STORE), path.join('/var/lib/selinux/final', STORE)];
const SYSTEM_DIRS = ['/var/lib/selinux/default', '/etc/selinux/default'];
const ready = existsSync('/usr/sbin/semanage') && SYSTEM_DIRS.every((d) => existsSync(d));
const skip = ready ? false : 'needs Debian\'s policycoreutils-python-utils and selinux-policy-default (scripts/test-deps.sh)';

/** A digest of every file's path and content under `dirs`: the system store must not move. */
function digest(dirs: string[]): string {
  const h = createHash('sha256');
  const walk = (d: string): void => {
    for (const n of readdirSync(d).sort()) {
      const p = path.join(d, n);
      const st = statSync(p);
      h.update(`${p}\0${st.mode}\0`);
      if (st.isDirectory()) walk(p);
      else if (st.isFile()) h.update(readFileSync(p));
    }
  };
  for (const d of dirs) walk(d);
  return h.digest('hex');
}

/** semanage on the test store, to check what the module did with a second opinion. */
function semanage(...args: string[]): string {
  const r = spawnSync('/usr/sbin/semanage', [args[0]!, '-S', STORE, ...args.slice(1)], { encoding: 'utf8', timeout: 120_000 });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout;
}

describe('selinux module in rootd on a host without SELinux in the kernel', { skip }, () => {
  let d: RootdHandle;
  let dir: string;
  let config: string;
  let systemBefore: string;
  let users: Awaited<ReturnType<typeof ensureTestUsers>>;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  const ex = async (action: string, params: Record<string, unknown> = {}): Promise<any> => d.client.execute('selinux', action, params, { timeoutMs: 600_000 });

  before(async () => {
    systemBefore = digest(SYSTEM_DIRS);
    cpSync(SYSTEM_DIRS[0]!, STORE_DIRS[0]!, { recursive: true, preserveTimestamps: true });
    cpSync(SYSTEM_DIRS[1]!, STORE_DIRS[1]!, { recursive: true, preserveTimestamps: true });
    dir = mkdtempSync(path.join(tmpdir(), 'tuxsec-selinux-'));
    config = path.join(dir, 'config');
    writeFileSync(config, '# SELinux at boot\nSELINUX=disabled\nSELINUXTYPE=default\n', { mode: 0o644 });
    users = await ensureTestUsers();
    d = await startRootd({
      config: {
        allowed_users: ['tuxsec'],
        read_only_users: ['tuxsec-test-member'],
        request_timeout: 600,
        modules: { selinux: { enabled: true, allow_dangerous: true, settings: { config, store: STORE } } },
      },
    });
  });
  after(async () => {
    await d?.stop();
    for (const s of STORE_DIRS) rmSync(s, { recursive: true, force: true });
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('get_status says SELinux is disabled in the kernel and why, and that the policy store is served', async () => {
    const s = await ex('get_status');
    assert.equal(s.enabled, false);
    assert.equal(s.mode, 'disabled');
    assert.match(s.reason, /^SELinux is disabled in the kernel \(/);
    assert.equal(s.policy_type, 'default');
    assert.equal(s.policy_file_version, 33, 'Debian 12\'s policy.33');
    assert.deepEqual(s.store, { name: STORE, present: true });
    assert.deepEqual(s.available, { runtime: false, policy_store: true, persistent_mode: true });
  });

  it('runtime changes are refused with service-unavailable and the reason; the config file is untouched', async () => {
    const before = readFileSync(config, 'utf8');
    const e = await failure(ex('set_enforce', { mode: 'permissive', persistent: true }));
    assert.equal(e.code, 'service-unavailable');
    assert.match(e.message, /^cannot set the SELinux mode at runtime: SELinux is disabled in the kernel .*pass runtime: false and persistent: true/);
    assert.equal(readFileSync(config, 'utf8'), before);
    assert.equal((await failure(ex('restorecon', { path: dir }))).code, 'service-unavailable');
    assert.equal((await failure(ex('set_boolean', { name: 'httpd_can_network_connect', value: true }))).code, 'service-unavailable');
  });

  it('set_enforce persistent-only edits SELINUX= in the configured file', async () => {
    const r = await ex('set_enforce', { mode: 'permissive', runtime: false, persistent: true });
    assert.equal(r.changed, true);
    assert.equal(readFileSync(config, 'utf8'), '# SELinux at boot\nSELINUX=permissive\nSELINUXTYPE=default\n');
    assert.equal((await ex('get_enforce')).config_mode, 'permissive');
  });

  it('a bad parameter is refused naming it, through the socket', async () => {
    const e = await failure(ex('add_port', { type: 'http_port_t', port: '8080;id', protocol: 'tcp' }));
    assert.equal(e.code, 'invalid-params');
    assert.match(e.message, /"port"/);
  });

  it('port labels: add, listed by semanage itself, refused twice with conflict, deleted', async () => {
    const added = await ex('add_port', { type: 'http_port_t', port: '18991', protocol: 'tcp' });
    assert.deepEqual(added, { type: 'http_port_t', port: '18991', protocol: 'tcp', changed: true });
    assert.match(semanage('port', '-l', '-C'), /^http_port_t\s+tcp\s+18991$/m);
    const listed = await ex('list_ports', { local_only: true });
    assert.deepEqual(listed.ports, [{ type: 'http_port_t', protocol: 'tcp', ports: ['18991'] }]);
    assert.ok((await ex('list_ports', { port: 18991, protocol: 'tcp' })).ports.some((p: { type: string }) => p.type === 'http_port_t'));
    assert.equal((await failure(ex('add_port', { type: 'http_port_t', port: '18991', protocol: 'tcp' }))).code, 'conflict');
    assert.equal((await failure(ex('delete_port', { port: '80', protocol: 'tcp' }))).code, 'conflict', 'a port of the policy itself cannot be deleted');
    await ex('delete_port', { port: '18991', protocol: 'tcp' });
    assert.doesNotMatch(semanage('port', '-l', '-C'), /18991/);
  });

  it('file contexts: add, listed, an unknown type refused naming "type", deleted', async () => {
    await ex('add_file_context', { spec: '/srv/tuxsec-test(/.*)?', type: 'httpd_sys_content_t', ftype: 'a' });
    const local = await ex('list_file_contexts', { local_only: true });
    assert.deepEqual(local.file_contexts, [
      { spec: '/srv/tuxsec-test(/.*)?', ftype: 'a', ftype_name: 'all files', context: 'system_u:object_r:httpd_sys_content_t:s0', type: 'httpd_sys_content_t' },
    ]);
    assert.match(readFileSync(path.join(STORE_DIRS[1]!, 'contexts/files/file_contexts.local'), 'utf8'), /^\/srv\/tuxsec-test\(\/\.\*\)\?\s+system_u:object_r:httpd_sys_content_t:s0$/m);
    const all = await ex('list_file_contexts', { filter: '/etc/selinux(' });
    assert.equal(all.file_contexts[0].type, 'selinux_config_t');
    const e = await failure(ex('add_file_context', { spec: '/srv/tuxsec-x', type: 'no_such_type_t' }));
    assert.deepEqual([e.code, e.details?.parameter], ['invalid-params', 'type']);
    await ex('delete_file_context', { spec: '/srv/tuxsec-test(/.*)?' });
    assert.equal((await ex('list_file_contexts', { local_only: true })).total, 0);
    assert.equal((await failure(ex('delete_file_context', { spec: '/srv/tuxsec-test(/.*)?' }))).code, 'not-found');
  });

  it('booleans: listed with descriptions, set persistently in the store without the kernel', async () => {
    const b = await ex('get_boolean', { name: 'httpd_can_network_connect' });
    assert.equal(b.default, false);
    assert.match(b.description, /httpd/);
    const r = await ex('set_boolean', { name: 'httpd_can_network_connect', value: true, persistent: true });
    assert.equal(r.changed, true);
    assert.match(semanage('boolean', '-l', '-C'), /^httpd_can_network_connect\s+\(on\s*,\s*on\)/m);
    assert.equal((await ex('get_boolean', { name: 'httpd_can_network_connect' })).default, true);
    assert.equal((await failure(ex('set_boolean', { name: 'no_such_boolean_x', value: true, persistent: true }))).code, 'not-found');
    assert.ok((await ex('list_booleans')).total > 100);
  });

  it('a read-only user lists but cannot change; the tuxsec user can change', () => {
    const cli = (user: typeof users.tuxsec, ...args: string[]) => {
      const [file, argv] = asUser(user, process.execPath, [CLI_JS, '--socket', d.socketPath, ...args]);
      return spawnSync(file, argv, { encoding: 'utf8', timeout: 300_000 });
    };
    const listed = cli(users.member, 'execute', 'selinux', 'get_enforce');
    assert.equal(listed.status, 0, listed.stderr);
    const refused = cli(users.member, 'execute', 'selinux', 'set_enforce', '-p', 'mode=enforcing', '-p', 'runtime=false', '-p', 'persistent=true');
    assert.equal(refused.status, 1);
    assert.match(refused.stderr, /may not run dangerous actions/);
    assert.match(readFileSync(config, 'utf8'), /^SELINUX=permissive$/m);
    const done = cli(users.tuxsec, 'execute', 'selinux', 'set_enforce', '-p', 'mode=enforcing', '-p', 'runtime=false', '-p', 'persistent=true');
    assert.equal(done.status, 0, done.stderr);
    assert.match(readFileSync(config, 'utf8'), /^SELINUX=enforcing$/m);
  });

  it('the system\'s own policy store is unchanged', () => {
    assert.equal(digest(SYSTEM_DIRS), systemBefore);
  });
});
