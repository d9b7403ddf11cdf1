/**
 * install.sh, setup-system.sh, uninstall.sh, the systemd units and build-deb.sh, run for real:
 * staged with --destdir into a temp root, installed into a throw-away overlay copy of this machine
 * (real useradd, real root daemon, real tuxsec user), and the .deb installed there with dpkg.
 * Needs root.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { cpSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { run } from '../../src/os/exec.ts';
import { parseConfigText } from '../../src/agent/config.ts';
import { validateConfig as validateServerConfig } from '../../src/server/config.ts';
import { Overlay, REPO, snapshotTree } from './overlay.ts';
import { makeCerts } from '../helpers/certs.ts';

const PREFIX = '/usr/lib/tuxsec';
const PROGRAMS = ['tuxsec-rootd', 'tuxsec-cli', 'tuxsec-agent', 'tuxsec-server', 'tuxsec-shell'];
/** Bundled as CommonJS: they start for every SSH-mode call. */
const CJS = new Set(['tuxsec-cli', 'tuxsec-shell']);
const UNITS = ['tuxsec-rootd.service', 'tuxsec-rootd.socket', 'tuxsec-agent.service', 'tuxsec-server.service'];

/** What setup-system.sh must create: the seed's Security section plus our own directories. */
const SYSTEM_ENTRIES = [
  'user - tuxsec tuxsec /var/lib/tuxsec',
  'user - tuxsec-server tuxsec-server /var/lib/tuxsec-server',
  'sys-dir 0750 root tuxsec /etc/tuxsec',
  'sys-dir 0750 root tuxsec /etc/tuxsec/certs',
  'sys-dir 0700 tuxsec tuxsec /etc/tuxsec/credentials',
  'sys-dir 0755 tuxsec tuxsec /var/log/tuxsec',
  'sys-dir 0750 tuxsec tuxsec /var/lib/tuxsec',
  'sys-dir 0750 root root /var/log/tuxsec-rootd',
  'sys-dir 0750 root tuxsec-server /etc/tuxsec-server',
  'sys-dir 0700 tuxsec-server tuxsec-server /var/lib/tuxsec-server',
  'run-dir 0750 root tuxsec /run/tuxsec',
  'run-dir 0700 tuxsec tuxsec /run/tuxsec-shell',
  `config 0640 root root /etc/tuxsec/rootd.yaml ${PREFIX}/examples/rootd.yaml.example`,
  `config 0640 root tuxsec /etc/tuxsec/agent.yaml ${PREFIX}/examples/agent.yaml.example`,
];

/** Files with a mode that matters, beyond "every bundle 0644". */
const KEY_FILES: [string, string][] = [
  ...PROGRAMS.map((p): [string, string] => [`/usr/bin/${p}`, '755']),
  ...PROGRAMS.map((p): [string, string] => [`${PREFIX}/${p}${CJS.has(p) ? '.cjs' : '.js'}`, '644']),
  [`${PREFIX}/sdk.js`, '644'],
  [`${PREFIX}/tuxsec-server-serve.js`, '644'],
  // The web console tuxsec-server serves at / (docs/console.md), precompressed copies beside it.
  [`${PREFIX}/console/index.html`, '644'],
  [`${PREFIX}/console/index.html.br`, '644'],
  [`${PREFIX}/console/index.html.gz`, '644'],
  [`${PREFIX}/tuxsec-cli-doctor.cjs`, '644'],
  [`${PREFIX}/package.json`, '644'],
  [`${PREFIX}/setup-system.sh`, '755'],
  [`${PREFIX}/uninstall.sh`, '755'],
  [`${PREFIX}/MANIFEST`, '644'],
  [`${PREFIX}/examples/agent.yaml.example`, '644'],
  [`${PREFIX}/examples/rootd.yaml.example`, '644'],
  [`${PREFIX}/node_modules/koffi/index.js`, '644'],
  [`${PREFIX}/node_modules/@koromix/koffi-linux-x64/linux_x64/koffi.node`, '644'],
  [`${PREFIX}/node_modules/better-sqlite3/build/Release/better_sqlite3.node`, '644'],
  [`${PREFIX}/node_modules/better-sqlite3/lib/index.js`, '644'],
  [`${PREFIX}/node_modules/bindings/bindings.js`, '644'],
  [`${PREFIX}/node_modules/file-uri-to-path/index.js`, '644'],
  ['/usr/lib/tmpfiles.d/tuxsec.conf', '644'],
  ...UNITS.map((u): [string, string] => [`/usr/lib/systemd/system/${u}`, '644']),
];

async function bash(args: string[], timeoutMs = 120_000) {
  const r = await run('/bin/bash', args, { timeoutMs, cwd: REPO, env: { HOME: '/root' } });
  if (r.code !== 0) throw new Error(`bash ${args.join(' ')} failed (${r.code}):\n${r.stdout}\n${r.stderr}`);
  return r;
}

function hashFiles(files: string[]): string {
  const h = createHash('sha256');
  for (const f of files) h.update(f).update(existsSync(f) ? readFileSync(f) : 'absent');
  return h.digest('hex');
}

function listFiles(root: string, rel = ''): string[] {
  return readdirSync(path.join(root, rel), { withFileTypes: true }).flatMap((e) => {
    const r = `${rel}/${e.name}`;
    return e.isDirectory() ? listFiles(root, r) : [r];
  });
}

function manifest(root: string): string[] {
  return readFileSync(path.join(root, PREFIX, 'MANIFEST'), 'utf8')
    .split('\n')
    .filter((l) => l && !l.startsWith('#'));
}

describe('install.sh --destdir', () => {
  let stage: string;
  let firstOutput: string;
  const hostFiles = ['/etc/passwd', '/etc/group', '/etc/shadow', '/etc/gshadow'];
  let hostBefore: string;

  before(async () => {
    stage = mkdtempSync(path.join(tmpdir(), 'tuxsec-stage-'));
    hostBefore = hashFiles(hostFiles);
    firstOutput = (await bash(['install.sh', '--destdir', stage, '--no-build'])).stdout;
  });
  after(() => rmSync(stage, { recursive: true, force: true }));

  test('install.sh --destdir stages every file with its mode, owned by root', () => {
    for (const [p, mode] of KEY_FILES) {
      const st = statSync(path.join(stage, p));
      assert.equal((st.mode & 0o7777).toString(8), mode, p);
      assert.equal(st.uid, 0, p);
      assert.equal(st.gid, 0, p);
    }
    const launcher = readFileSync(path.join(stage, '/usr/bin/tuxsec-cli'), 'utf8');
    assert.match(launcher, /^#!\/\S+\/node\n/);
    assert.match(launcher, new RegExp(`require\\('${PREFIX}/tuxsec-cli\\.cjs'\\);`));
    assert.match(readFileSync(path.join(stage, '/usr/bin/tuxsec-shell'), 'utf8'), new RegExp(`require\\('${PREFIX}/tuxsec-shell\\.cjs'\\);`));
    assert.match(readFileSync(path.join(stage, '/usr/bin/tuxsec-rootd'), 'utf8'), new RegExp(`import\\('${PREFIX}/tuxsec-rootd\\.js'\\);`));
    assert.equal(JSON.parse(readFileSync(path.join(stage, PREFIX, 'package.json'), 'utf8')).type, 'module');
    assert.match(firstOutput, /staged into/);
  });

  test('install.sh --destdir lists exactly the staged files in MANIFEST, modes included', () => {
    const lines = manifest(stage);
    const files = lines.filter((l) => l.startsWith('prog-file ')).map((l) => l.split(' '));
    const listed = new Set(files.map((f) => f[4]));
    assert.deepEqual([...listFiles(stage)].sort(), [...listed].sort());
    for (const [, mode, owner, group, p] of files) {
      assert.equal((statSync(path.join(stage, p!)).mode & 0o7777).toString(8), mode!.replace(/^0/, ''), p);
      assert.equal(`${owner}:${group}`, 'root:root', p);
    }
    assert.deepEqual(lines.filter((l) => /^(user|sys-dir|run-dir|config) /.test(l)), SYSTEM_ENTRIES);
  });

  test('install.sh --destdir ships only the runtime files of the native packages', () => {
    const nm = listFiles(path.join(stage, PREFIX, 'node_modules'));
    assert.deepEqual(nm.filter((f) => f.endsWith('.node')).sort(), [
      '/@koromix/koffi-linux-x64/linux_x64/koffi.node',
      '/better-sqlite3/build/Release/better_sqlite3.node',
    ]);
    const packages = readdirSync(path.join(stage, PREFIX, 'node_modules'));
    assert.deepEqual(packages.sort(), ['@koromix', 'better-sqlite3', 'bindings', 'file-uri-to-path', 'koffi']);
    assert.equal(nm.filter((f) => /\.(cc|cpp|c|h|hh|gyp|mk|a|o|ts)$|\/(src|deps|vendor)\/.*\.(c|h)/.test(f) && !f.endsWith('.d.ts')).length, 0);
    assert.ok(!nm.some((f) => f.includes('musl') || f.includes('test_extension')), 'no binaries for other systems or tests');
  });

  test('install.sh --destdir touches no host user, group or system path', () => {
    assert.equal(hashFiles(hostFiles), hostBefore);
    for (const f of readdirSync(stage)) assert.equal(f, 'usr', 'only usr/ staged');
  });

  test('install.sh --destdir twice changes nothing', async () => {
    const before = snapshotTree(stage);
    const out = (await bash(['install.sh', '--destdir', stage, '--no-build'])).stdout;
    assert.match(out, /program files: 0 change\(s\)/);
    assert.deepEqual(snapshotTree(stage), before);
  });

  test('install.sh refuses --no-build without a build and bad prefixes', async () => {
    for (const args of [['--prefix', 'relative/path'], ['--prefix', '/usr/lib/../etc'], ['--prefix', '/a b'], ['--bogus']]) {
      const r = await run('/bin/bash', ['install.sh', '--destdir', stage, ...args], { cwd: REPO, timeoutMs: 30_000 });
      assert.equal(r.code, 1, args.join(' '));
      assert.match(r.stderr, /^install\.sh: cannot /, args.join(' '));
    }
    // A tree without dist/ and node_modules: --no-build must neither build nor run npm.
    const bare = mkdtempSync(path.join(tmpdir(), 'tuxsec-bare-'));
    try {
      for (const f of ['install.sh', 'uninstall.sh', 'package.json', 'packaging', 'docs']) cpSync(path.join(REPO, f), path.join(bare, f), { recursive: true });
      const r = await run('/bin/bash', ['install.sh', '--destdir', path.join(bare, 'stage'), '--no-build'], { cwd: bare, timeoutMs: 30_000 });
      assert.equal(r.code, 1);
      assert.match(r.stderr, /^install\.sh: cannot install: dist\/tuxsec-rootd\.js .* missing and --no-build given/);
      assert.deepEqual(readdirSync(bare).sort(), ['docs', 'install.sh', 'package.json', 'packaging', 'uninstall.sh']);
    } finally {
      rmSync(bare, { recursive: true, force: true });
    }
  });

  test('installed copy runs outside the source tree with its own native packages', async () => {
    // Copied away from /work: node resolves packages upward from the bundle, so nothing of the
    // repository's node_modules can be found from here.
    const away = mkdtempSync(path.join(tmpdir(), 'tuxsec-away-'));
    try {
      const prefix = path.join(away, 'usr/lib/tuxsec');
      cpSync(path.join(stage, PREFIX), prefix, { recursive: true });
      const node = async (args: string[]) => {
        const r = await run(process.execPath, args, { cwd: away, timeoutMs: 30_000 });
        assert.equal(r.code, 0, `node ${args.join(' ')}: ${r.stderr}`);
        return r.stdout.trim();
      };
      const version = JSON.parse(readFileSync(path.join(REPO, 'package.json'), 'utf8')).version as string;
      assert.equal(await node([`${prefix}/tuxsec-cli.cjs`, '--version']), version);
      assert.equal(await node([`${prefix}/tuxsec-rootd.js`, '--version']), version);
      assert.equal(await node([`${prefix}/tuxsec-agent.js`, '--version']), version);
      assert.match(await node([`${prefix}/tuxsec-server.js`, '--help']), /serve/);
      // `serve` loads the server from its own bundle, which imports better-sqlite3 at load time.
      assert.equal(await node(['--input-type=module', '-e', `const m = await import('${prefix}/tuxsec-server-serve.js'); console.log(typeof m.serve)`]), 'function');
      assert.equal(await node(['-e', `const D = require('${prefix}/node_modules/better-sqlite3'); const db = new D(':memory:'); console.log(db.prepare('select 41 + 1 as x').get().x)`]), '42');
      assert.equal(await node(['--input-type=module', '-e', `import k from '${prefix}/node_modules/koffi/index.js'; console.log(k.sizeof('int'))`]), '4');

      // The installed rootd (koffi reads peer credentials) answering the installed cli.
      const sock = path.join(away, 'rootd.sock');
      const cfg = path.join(away, 'rootd.yaml');
      writeFileSync(cfg, `socket: ${sock}\naudit_log: ${away}/audit.log\nallowed_users: [root]\n`);
      const script = `${process.execPath} ${prefix}/tuxsec-rootd.js --config ${cfg} & pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
for i in $(seq 100); do [ -S ${sock} ] && break; sleep 0.1; done
${process.execPath} ${prefix}/tuxsec-cli.cjs --socket ${sock} ping
${process.execPath} ${prefix}/tuxsec-cli.cjs --socket ${sock} execute systeminfo get_hostname
${process.execPath} ${prefix}/tuxsec-cli.cjs --socket ${sock} doctor --json --rootd-config ${cfg} --agent-config ${away}/none.yaml
kill $pid; wait $pid`;
      const r = await run('/bin/bash', ['-c', script], { cwd: away, timeoutMs: 30_000 });
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /^pong from /m);
      assert.match(r.stdout, /hostname/);
      // doctor, from its own bundle beside the CLI's.
      assert.match(r.stdout, /"name": "rootd",\n\s+"ok": true/);
    } finally {
      rmSync(away, { recursive: true, force: true });
    }
  });
  test('install.sh removes what an older version installed and this one does not, and only that', async () => {
    const m = path.join(stage, PREFIX, 'MANIFEST');
    const old = readFileSync(m, 'utf8');
    writeFileSync(path.join(stage, PREFIX, 'old-module.js'), 'x');
    writeFileSync(path.join(stage, 'victim'), 'not ours');
    writeFileSync(m, `${old}prog-file 0644 root root ${PREFIX}/old-module.js\nprog-file 0644 root root /victim\n`);
    const out = (await bash(['install.sh', '--destdir', stage, '--no-build'])).stdout;
    assert.match(out, new RegExp(`^removed ${PREFIX}/old-module\\.js \\(no longer part of TuxSec\\)$`, 'm'));
    assert.ok(!existsSync(path.join(stage, PREFIX, 'old-module.js')));
    assert.equal(readFileSync(path.join(stage, 'victim'), 'utf8'), 'not ours');
    assert.equal(readFileSync(m, 'utf8'), old);
    rmSync(path.join(stage, 'victim'));
  });
});

describe('example configs', () => {
  test('example configs pass the programs own validation', async () => {
    const agent = parseConfigText(readFileSync(path.join(REPO, 'packaging/agent.yaml.example'), 'utf8'), 'agent.yaml.example');
    assert.equal(agent.mode, 'pull');
    assert.equal(agent.state_dir, '/var/lib/tuxsec');
    for (const k of ['mode', 'server_url', 'agent_id', 'api_key', 'poll_interval', 'listen_host', 'listen_port', 'ssl_cert', 'ssl_key', 'ca_cert', 'log_level', 'log_file']) {
      // Push mode's keys are there commented out: set in pull mode, they would be warned about.
      const prefix = k === 'listen_host' || k === 'listen_port' ? '#' : '';
      assert.match(readFileSync(path.join(REPO, 'packaging/agent.yaml.example'), 'utf8'), new RegExp(`^${prefix}${k}:`, 'm'), `seed key ${k}`);
    }
    const { parse } = await import('yaml');
    const server = validateServerConfig(parse(readFileSync(path.join(REPO, 'packaging/server.yaml.example'), 'utf8')), '/etc/tuxsec-server/server.yaml', () => 'x'.repeat(32));
    assert.equal(server.database, '/var/lib/tuxsec-server/server.db');
    const r = await run(process.execPath, [path.join(REPO, 'dist/tuxsec-rootd.js'), '--check-config', '--config', path.join(REPO, 'packaging/rootd.yaml.example')], { timeoutMs: 30_000 });
    assert.equal(r.code, 0, r.stderr);
  });
});

describe('install.sh into a fresh system', () => {
  let ovl: Overlay;
  let firstRun: string;

  before(async () => {
    ovl = new Overlay();
    // A fresh machine: no tuxsec users or directories from other tests on this host.
    await ovl.must(`for u in tuxsec-test-member tuxsec-test-outsider tuxsec tuxsec-server; do userdel "$u" 2>/dev/null || true; done
for g in tuxsec tuxsec-server; do groupdel "$g" 2>/dev/null || true; done
rm -rf /etc/tuxsec /etc/tuxsec-server /var/log/tuxsec /var/log/tuxsec-rootd /var/lib/tuxsec /var/lib/tuxsec-server /run/tuxsec
! getent passwd tuxsec`);
    firstRun = await ovl.must('cd /tmp && bash /src/install.sh --no-build');
  });
  after(() => ovl.remove());

  test('install.sh creates the tuxsec user without a login shell', async () => {
    const pw = (await ovl.must('getent passwd tuxsec')).trim().split(':');
    assert.equal(pw[6], '/usr/sbin/nologin');
    assert.equal(pw[5], '/var/lib/tuxsec');
    assert.ok(Number(pw[2]) < 1000, `system uid, got ${pw[2]}`);
    assert.match(await ovl.must('id -gn tuxsec'), /^tuxsec$/m);
    assert.equal((await ovl.must('getent passwd tuxsec-server')).trim().split(':')[6], '/usr/sbin/nologin');
    assert.match(firstRun, /created user tuxsec \(/);
  });

  test('install.sh gives every directory and config its owner and mode', async () => {
    const paths = SYSTEM_ENTRIES.filter((l) => !l.startsWith('user')).map((l) => l.split(' '));
    const out = await ovl.must(`stat -c '%n %a %U %G' ${paths.map((p) => p[4]).join(' ')}`);
    const expected = paths.map(([, mode, owner, group, p]) => `${p} ${mode!.replace(/^0/, '')} ${owner} ${group}`);
    assert.deepEqual(out.trim().split('\n'), expected);
    const prog = await ovl.must(`stat -c '%n %a %U %G' /usr/bin/tuxsec-rootd ${PREFIX} ${PREFIX}/tuxsec-rootd.js`);
    assert.deepEqual(prog.trim().split('\n'), ['/usr/bin/tuxsec-rootd 755 root root', `${PREFIX} 755 root root`, `${PREFIX}/tuxsec-rootd.js 644 root root`]);
    assert.match(firstRun, /systemd is not running here/);
  });

  test('install.sh refuses a node binary that someone other than root can change', async () => {
    const r = await ovl.sh(`mkdir -p /opt/usernode && cp /usr/bin/node /opt/usernode/node && chown nobody /opt/usernode/node
bash /src/install.sh --no-build --node /opt/usernode/node; echo "rc=$?"
chown root /opt/usernode/node && chmod 0777 /opt/usernode
bash /src/install.sh --no-build --node /opt/usernode/node; echo "rc=$?"
rm -rf /opt/usernode`);
    assert.equal(r.stdout.match(/^rc=1$/gm)?.length, 2, r.stdout + r.stderr);
    assert.match(r.stderr, /cannot use node "\/opt\/usernode\/node": \/opt\/usernode\/node is not owned by root/);
    assert.match(r.stderr, /cannot use node "\/opt\/usernode\/node": \/opt\/usernode is not owned by root or is writable by others/);
  });

  test('installed tuxsec-rootd serves the tuxsec user and refuses others', async () => {
    const out = await ovl.must(`set -e
tuxsec-rootd --check-config
tuxsec-rootd 2>/tmp/rootd.log & pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
for i in $(seq 100); do [ -S /run/tuxsec/rootd.sock ] && break; sleep 0.1; done
stat -c 'socket %a %U %G' /run/tuxsec/rootd.sock
runuser -u tuxsec -- tuxsec-cli ping
runuser -u tuxsec -- tuxsec-cli execute systeminfo get_hostname
if runuser -u nobody -- tuxsec-cli ping 2>/tmp/nobody.err; then echo "nobody got in"; fi
echo "nobody: $(cat /tmp/nobody.err)"
kill $pid; wait $pid || true
stat -c 'audit %a %U %s' /var/log/tuxsec-rootd/audit.log`);
    assert.match(out, /^config \/etc\/tuxsec\/rootd\.yaml is valid$/m);
    assert.match(out, /^socket 660 root tuxsec$/m);
    assert.match(out, /^pong from \/var\/run\/tuxsec\/rootd\.sock/m);
    assert.match(out, /hostname/);
    assert.doesNotMatch(out, /nobody got in/);
    assert.match(out, /^nobody: .*(denied|permission|EACCES)/im);
    const audit = /^audit (\d+) (\S+) (\d+)$/m.exec(out);
    assert.ok(audit, out);
    assert.equal(audit[1], '600');
    assert.equal(audit[2], 'root');
    assert.ok(Number(audit[3]) > 0, 'audit lines written');
    // Clean up what the daemon wrote so the next test starts from the installed state only.
    await ovl.must('rm -f /tmp/rootd.log /tmp/nobody.err');
  });

  test('installed tuxsec-rootd takes over a socket-activated listener (LISTEN_FDS)', async () => {
    // systemd is not PID 1 here; systemd-socket-activate hands over the socket the same way
    // tuxsec-rootd.socket does. The launcher must exec node itself so LISTEN_PID matches.
    const out = await ovl.must(`systemd-socket-activate -l /run/tuxsec/rootd.sock /usr/bin/tuxsec-rootd 2>/tmp/sa.log & sa=$!
trap 'kill $sa 2>/dev/null || true; rm -f /tmp/sa.log /run/tuxsec/rootd.sock' EXIT
for i in $(seq 100); do [ -S /run/tuxsec/rootd.sock ] && break; sleep 0.1; done
# What SocketGroup=tuxsec and SocketMode=0660 do in the unit.
chgrp tuxsec /run/tuxsec/rootd.sock && chmod 0660 /run/tuxsec/rootd.sock
runuser -u tuxsec -- tuxsec-cli ping
runuser -u tuxsec -- tuxsec-cli ping
grep -o '"socket":"[^"]*"' /tmp/sa.log`);
    assert.equal(out.match(/^pong from /gm)?.length, 2, out);
    assert.match(out, /"socket":"fd 3 \(systemd\)"/);
  });

  test('an upgrade over a group-writable /run/tuxsec (0770, as before) makes it 0750', async () => {
    const out = await ovl.must(`chmod 0770 /run/tuxsec
cd /tmp && bash /src/install.sh --no-build
stat -c 'rundir %a %U %G' /run/tuxsec`);
    assert.match(out, /fixed \/run\/tuxsec: was 770 root tuxsec, now 750 root:tuxsec/);
    assert.match(out, /^rundir 750 root tuxsec$/m);
  });

  test('install.sh twice changes nothing and keeps an edited config', async () => {
    await ovl.must("echo '# operator edit' >> /etc/tuxsec/agent.yaml");
    const before = ovl.snapshot();
    const out = await ovl.must('cd /tmp && bash /src/install.sh --no-build');
    assert.match(out, /program files: 0 change\(s\)/);
    assert.match(out, /nothing to change/);
    assert.deepEqual(ovl.snapshot(), before);
    assert.match(await ovl.must('tail -1 /etc/tuxsec/agent.yaml'), /^# operator edit$/m);
  });

  test('systemd units pass systemd-analyze verify against the installed programs', async () => {
    // systemd is not PID 1 here; verify loads the units offline and checks their commands exist.
    const r = await ovl.sh(`systemd-analyze verify ${UNITS.map((u) => `/usr/lib/systemd/system/${u}`).join(' ')}`);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr.trim(), '');
    const sec = await ovl.must(UNITS.filter((u) => u.endsWith('.service')).map((u) => `systemd-analyze security --offline=true --no-pager /usr/lib/systemd/system/${u} | tail -1`).join('\n'));
    const score = (u: string) => Number(new RegExp(`exposure level for ${u}: ([0-9.]+)`).exec(sec)?.[1]);
    // The same limits as test/install/units.test.ts, on the installed copies.
    assert.ok(score('tuxsec-agent.service') <= 1.5, sec);
    assert.ok(score('tuxsec-server.service') <= 1.5, sec);
    assert.ok(score('tuxsec-rootd.service') <= 2.5, sec);
  });

  test('uninstall.sh removes program files and keeps configs unless --purge', async () => {
    const out = await ovl.must(`bash ${PREFIX}/uninstall.sh 2>&1
for p in /usr/bin/tuxsec-cli ${PREFIX} /usr/lib/systemd/system/tuxsec-rootd.service /usr/lib/tmpfiles.d/tuxsec.conf /etc/tuxsec/agent.yaml /etc/tuxsec/rootd.yaml /var/lib/tuxsec; do
  [ -e "$p" ] && echo "present $p" || echo "absent $p"
done
bash /src/install.sh --no-build >/dev/null
bash /src/uninstall.sh --purge 2>&1
for p in /usr/bin/tuxsec-cli /etc/tuxsec /var/lib/tuxsec /var/log/tuxsec /run/tuxsec; do
  [ -e "$p" ] && echo "present2 $p" || echo "absent2 $p"
done
getent passwd tuxsec >/dev/null && echo "user kept"`);
    for (const p of ['/usr/bin/tuxsec-cli', PREFIX, '/usr/lib/systemd/system/tuxsec-rootd.service', '/usr/lib/tmpfiles.d/tuxsec.conf']) assert.match(out, new RegExp(`^absent ${p}$`, 'm'));
    for (const p of ['/etc/tuxsec/agent.yaml', '/etc/tuxsec/rootd.yaml', '/var/lib/tuxsec']) assert.match(out, new RegExp(`^present ${p}$`, 'm'));
    for (const p of ['/usr/bin/tuxsec-cli', '/etc/tuxsec', '/var/lib/tuxsec', '/var/log/tuxsec', '/run/tuxsec']) assert.match(out, new RegExp(`^absent2 ${p}$`, 'm'));
    assert.match(out, /^user kept$/m);
    assert.doesNotMatch(out, /did not put there/);
  });
});

describe('installed units under systemd', () => {
  // systemd is not PID 1 on this machine: the overlay copy boots its own systemd in a container
  // (systemd-nspawn, private network) into a target holding only sysinit, basic and the check.
  let ovl: Overlay;
  let out: string;

  before(async () => {
    ovl = new Overlay();
    const certs = await makeCerts(path.join(ovl.dir, 'certs'), { hosts: ['127.0.0.1'] });
    await ovl.must(`set -e
for u in tuxsec-test-member tuxsec-test-outsider tuxsec tuxsec-server; do userdel "$u" 2>/dev/null || true; done
for g in tuxsec tuxsec-server; do groupdel "$g" 2>/dev/null || true; done
rm -rf /etc/tuxsec /etc/tuxsec-server /var/log/tuxsec /var/log/tuxsec-rootd /var/lib/tuxsec /var/lib/tuxsec-server /run/tuxsec
cd /tmp && bash /src/install.sh --no-build >/dev/null
install -m 0644 ${certs.ca} /etc/tuxsec/certs/ca.crt
install -m 0644 ${certs.ca} /etc/tuxsec-server/ca.crt
install -m 0644 ${certs.serverCert} /etc/tuxsec-server/server.crt
install -m 0640 -g tuxsec-server ${certs.serverKey} /etc/tuxsec-server/server.key
install -m 0640 -g tuxsec-server /dev/null /etc/tuxsec-server/admin_token
echo admin-token-0123456789abcdef > /etc/tuxsec-server/admin_token
{ sed 's#^listen: .*#listen: 127.0.0.1:8443#' ${PREFIX}/examples/server.yaml.example
  printf 'server_url: https://127.0.0.1:8443\\nca_cert: /etc/tuxsec-server/ca.crt\\n'; } > /etc/tuxsec-server/server.yaml
chmod 0640 /etc/tuxsec-server/server.yaml && chgrp tuxsec-server /etc/tuxsec-server/server.yaml
sed -i 's#^server_url: .*#server_url: https://127.0.0.1:8443#; s#^ca_cert: .*#ca_cert: /etc/tuxsec/certs/ca.crt#; s#^poll_interval: .*#poll_interval: 1#' /etc/tuxsec/agent.yaml
# As the docs say; offline, this only makes the [Install] symlinks (sockets.target wants the socket).
systemctl enable tuxsec-rootd.socket tuxsec-rootd.service tuxsec-agent.service 2>&1`);
    const boot = await ovl.boot(`S="--config /etc/tuxsec-server/server.yaml"
json() { node -p "JSON.parse(require('fs').readFileSync(0, 'utf8'))$1"; }
stat -c 'rundir %a %U %G' /run/tuxsec
stat -c 'socket %a %U %G' /run/tuxsec/rootd.sock
echo "rootd before: $(systemctl is-active tuxsec-rootd.service)"
runuser -u tuxsec -- tuxsec-cli ping
echo "rootd after: $(systemctl is-active tuxsec-rootd.service)"
systemctl restart tuxsec-rootd.service
runuser -u tuxsec -- tuxsec-cli ping
systemctl start tuxsec-server.service
for i in $(seq 100); do tuxsec-server agents list $S >/dev/null 2>&1 && break; sleep 0.2; done
TOKEN=$(tuxsec-server token create $S --json | json .token)
printf '%s\\n' "$TOKEN" | tuxsec-agent register --server https://127.0.0.1:8443 --token-file -
stat -c 'agentconf %a %U %G' /etc/tuxsec/agent.yaml
stat -c 'apikey %a %U %G' /etc/tuxsec/credentials/api_key
echo "keyinconf $(grep -c '^api_key: null' /etc/tuxsec/agent.yaml)"
AGENT=$(tuxsec-server agents list $S --json | json .agents[0].id)
systemctl start tuxsec-agent.service
echo "job1 $(tuxsec-server jobs submit "$AGENT" systeminfo get_hostname --wait 30 $S --json | json .job.status)"
# The api_key as a systemd credential through the shipped drop-in; register's file taken away.
install -m 0600 /etc/tuxsec/credentials/api_key /etc/tuxsec/api_key && rm /etc/tuxsec/credentials/api_key
install -D -m 0644 ${PREFIX}/examples/tuxsec-agent-api-key.conf /etc/systemd/system/tuxsec-agent.service.d/api-key.conf
systemctl daemon-reload && systemctl restart tuxsec-agent.service
echo "job2 $(tuxsec-server jobs submit "$AGENT" systeminfo get_hostname --wait 30 $S --json | json .job.status)"
# An older version's layout, the api_key in agent.yaml: setup-system.sh (install.sh, postinst) moves it out.
K=$(cat /etc/tuxsec/api_key)
rm /etc/systemd/system/tuxsec-agent.service.d/api-key.conf /etc/tuxsec/api_key && systemctl daemon-reload
sed -i "s/^api_key: .*/api_key: $K/" /etc/tuxsec/agent.yaml
${PREFIX}/setup-system.sh | sed 's/^/setup: /'
echo "migrated $(grep -c "$K" /etc/tuxsec/agent.yaml || true) $(stat -c '%a %U %G' /etc/tuxsec/agent.yaml /etc/tuxsec/credentials/api_key | tr '\\n' ' ')"
systemctl restart tuxsec-agent.service
echo "job3 $(tuxsec-server jobs submit "$AGENT" systeminfo get_hostname --wait 30 $S --json | json .job.status)"
echo "active agent=$(systemctl is-active tuxsec-agent.service) rootd=$(systemctl is-active tuxsec-rootd.service) server=$(systemctl is-active tuxsec-server.service)"
stat -c 'db %a %U %G' /var/lib/tuxsec-server/server.db
echo "signals: $(journalctl --no-pager -o cat -u tuxsec-agent.service -u tuxsec-server.service -u tuxsec-rootd.service | grep -c 'status=31/SYS')"
journalctl --no-pager -o cat -u tuxsec-agent.service | tail -5 | sed 's/^/agent-log: /'
echo "rootd-socket: $(journalctl --no-pager -o cat -u tuxsec-rootd.service | grep -o '"socket":"fd 3 (systemd)"' | head -1)"
# What the sandboxed rootd still reaches: /proc, the interfaces, and firewalld over D-Bus (in
# the container's own network namespace).
runuser -u tuxsec -- tuxsec-cli execute systeminfo get_info >/dev/null && echo "get_info ok"
systemctl start firewalld.service
for i in $(seq 50); do runuser -u tuxsec -- tuxsec-cli execute firewalld get_default_zone >/tmp/fw.out 2>&1 && break; sleep 0.2; done
echo "firewalld: $(tr -d '\n' </tmp/fw.out | head -c 200)"
systemctl stop firewalld.service
# Without the socket unit, rootd makes /run/tuxsec and its socket itself (CAP_CHOWN), through
# the /var/run -> /run link of its default path.
systemctl stop tuxsec-agent.service tuxsec-rootd.service tuxsec-rootd.socket
rm -rf /run/tuxsec
systemctl mask --runtime tuxsec-rootd.socket >/dev/null 2>&1
systemctl start tuxsec-rootd.service
for i in $(seq 100); do [ -S /run/tuxsec/rootd.sock ] && break; sleep 0.1; done
stat -c 'own-rundir %a %U %G' /run/tuxsec
stat -c 'own-socket %a %U %G' /run/tuxsec/rootd.sock
runuser -u tuxsec -- tuxsec-cli ping | sed 's/^/own-/'
echo done`);
    out = boot.output;
    assert.match(out, /^done$/m, `check did not finish:\n${out}\n${boot.console}`);
  });
  after(() => ovl.remove());

  test('tuxsec-rootd.socket creates the socket and starts tuxsec-rootd on the first connection', () => {
    assert.match(out, /^rundir 750 root tuxsec$/m);
    assert.match(out, /^socket 660 root tuxsec$/m);
    assert.match(out, /^rootd before: inactive$/m);
    assert.match(out, /^rootd after: active$/m);
    assert.equal(out.match(/^pong from /gm)?.length, 2, 'answers again after a restart');
    assert.match(out, /^rootd-socket: "socket":"fd 3 \(systemd\)"$/m);
  });

  test('tuxsec-server and tuxsec-agent run sandboxed and complete jobs through tuxsec-rootd', () => {
    assert.match(out, /^registered as agent /m);
    assert.match(out, /^agentconf 640 root tuxsec$/m);
    assert.match(out, /^apikey 600 tuxsec tuxsec$/m, 'the api_key in a file only tuxsec reads');
    assert.match(out, /^keyinconf 1$/m, 'agent.yaml keeps api_key: null');
    assert.match(out, /^job1 completed$/m);
    assert.match(out, /^active agent=active rootd=active server=active$/m);
    assert.match(out, /^db 600 tuxsec-server tuxsec-server$/m);
    assert.match(out, /^signals: 0$/m, 'no process killed by the system call filter');
  });

  test('the sandboxed tuxsec-rootd reads the system and reaches firewalld over D-Bus', () => {
    assert.match(out, /^get_info ok$/m);
    assert.match(out, /^firewalld: .*public/m);
  });

  test('without the socket unit, the sandboxed tuxsec-rootd creates /run/tuxsec 0750 and its socket 0660 root:tuxsec', () => {
    assert.match(out, /^own-rundir 750 root tuxsec$/m);
    assert.match(out, /^own-socket 660 root tuxsec$/m);
    assert.match(out, /^own-pong from \/var\/run\/tuxsec\/rootd\.sock/m);
  });

  test('the api-key drop-in passes the api_key as a systemd credential', () => {
    assert.match(out, /^job2 completed$/m);
  });

  test('setup-system.sh moves an api_key an older version left in agent.yaml to the credentials file, and the agent still runs jobs', () => {
    assert.match(out, /^setup: +moved the api_key from \/etc\/tuxsec\/agent\.yaml to \/etc\/tuxsec\/credentials\/api_key$/m);
    assert.match(out, /^migrated 0 640 root tuxsec 600 tuxsec tuxsec $/m);
    assert.match(out, /^job3 completed$/m);
  });
});

describe('packaging/build-deb.sh', () => {
  let out: string;
  let deb: string;
  let buildOutput: string;

  before(async () => {
    out = mkdtempSync(path.join(tmpdir(), 'tuxsec-deb-'));
    buildOutput = (await bash(['packaging/build-deb.sh', '--out', out, '--no-build'])).stdout;
    deb = path.join(out, readdirSync(out).find((f) => f.endsWith('.deb'))!);
  });
  after(() => rmSync(out, { recursive: true, force: true }));

  test('build-deb.sh builds a package depending on nodejs 20 with root-owned program files', async () => {
    const info = (await run('/usr/bin/dpkg-deb', ['-I', deb])).stdout;
    assert.match(info, /^ Package: tuxsec$/m);
    assert.match(info, /^ Depends: nodejs \(>= 20\)/m);
    assert.match(info, /^ Architecture: amd64$/m);
    assert.match(info, /postinst/);
    const size = Number(/^ Installed-Size: (\d+)$/m.exec(info)?.[1]);
    assert.ok(size > 1000 && size < 20_000, `installed size ${size} KiB`);
    assert.match(buildOutput, new RegExp(`installed size ${size} KiB`));
    const list = (await run('/usr/bin/dpkg-deb', ['-c', deb])).stdout.trim().split('\n');
    assert.ok(list.every((l) => l.split(/\s+/)[1] === 'root/root'), 'every entry root/root');
    const names = list.map((l) => l.split(/\s+/).slice(5).join(' '));
    for (const p of [...KEY_FILES.map(([f]) => f).filter((f) => !f.endsWith('uninstall.sh'))]) assert.ok(names.includes(`.${p}`), p);
    assert.ok(!names.some((n) => n.startsWith('./etc/')), 'no conffiles: configs are created by postinst when absent');
    assert.ok(!names.some((n) => n.endsWith('uninstall.sh')), 'dpkg uninstalls, not uninstall.sh');
  });

  test('the .deb installs with dpkg, creates the user in postinst and purges cleanly', async () => {
    const ovl = new Overlay();
    try {
      const r = await ovl.must(`set -e
for u in tuxsec-test-member tuxsec-test-outsider tuxsec tuxsec-server; do userdel "$u" 2>/dev/null || true; done
for g in tuxsec tuxsec-server; do groupdel "$g" 2>/dev/null || true; done
rm -rf /etc/tuxsec /etc/tuxsec-server /var/log/tuxsec /var/log/tuxsec-rootd /var/lib/tuxsec /var/lib/tuxsec-server /run/tuxsec
dpkg -i ${deb}
echo "shell $(getent passwd tuxsec | cut -d: -f7)"
stat -c 'conf %n %a %U %G' /etc/tuxsec/agent.yaml /etc/tuxsec/rootd.yaml /run/tuxsec
echo "version $(tuxsec-cli --version)"
dpkg --purge tuxsec
for p in /usr/bin/tuxsec-cli ${PREFIX} /etc/tuxsec /var/lib/tuxsec; do [ -e "$p" ] && echo "present $p" || echo "absent $p"; done`);
      assert.match(r, /^shell \/usr\/sbin\/nologin$/m);
      assert.match(r, /^conf \/etc\/tuxsec\/agent\.yaml 640 root tuxsec$/m);
      assert.match(r, /^conf \/etc\/tuxsec\/rootd\.yaml 640 root root$/m);
      assert.match(r, /^conf \/run\/tuxsec 750 root tuxsec$/m);
      assert.match(r, /^version \d+\.\d+\.\d+$/m);
      for (const p of ['/usr/bin/tuxsec-cli', PREFIX, '/etc/tuxsec', '/var/lib/tuxsec']) assert.match(r, new RegExp(`^absent ${p}$`, 'm'));
    } finally {
      ovl.remove();
    }
  });
});
