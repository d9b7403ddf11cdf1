/**
 * Attacks on rootd's socket by a real member of the socket group (`tuxsec-test-member`): the
 * directory that holds the socket decides who can replace it, and what root chowns at start.
 */
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, linkSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { CLI_JS, ROOTD_JS, startRootd } from '../helpers/rootd.ts';
import { asUser, ensureTestUsers } from '../helpers/users.ts';
import { oneShot } from '../helpers/raw.ts';
import type { UserEntry } from '../../src/os/users.ts';

/**
 * The member's racer: every new socket inode that shows up at the path gets a symlink to the
 * target renamed over it at once, aiming between rootd's bind() and its chown/chmod of the
 * path. Runs until the stop file appears; prints what its renames met.
 */
const RACER = `
const fs = require('fs');
const [sock, target, work, stopFile] = process.argv.slice(1);
const link = work + '/l';
const seen = new Set();
const out = { attempts: 0, swapped: 0, errors: {} };
// The link is made ahead so that only the rename stands between seeing the socket and the swap.
const arm = () => { try { fs.symlinkSync(target, link); } catch {} };
arm();
for (let i = 0; ; i++) {
  if ((i & 1023) === 0 && fs.existsSync(stopFile)) break;
  let st;
  try { st = fs.lstatSync(sock, { throwIfNoEntry: false }); } catch { continue; } // EACCES while rootd makes the directory
  if (st === undefined || !st.isSocket() || seen.has(st.ino)) continue;
  seen.add(st.ino);
  out.attempts++;
  try { fs.renameSync(link, sock); out.swapped++; } catch (e) { out.errors[e.code] = (out.errors[e.code] || 0) + 1; }
  arm();
}
process.stdout.write(JSON.stringify(out));
`;

function runAs(user: UserEntry, script: string, ...args: string[]) {
  const [f, argv] = asUser(user, process.execPath, ['-e', script, ...args]);
  return spawnSync(f, argv, { encoding: 'utf8', timeout: 30_000 });
}

/** A root-owned 0755 scratch directory under /tmp the member can traverse. */
function scratch(prefix: string): string {
  const dir = mkdtempSync(path.join(tmpdir(), prefix));
  chmodSync(dir, 0o755);
  return dir;
}

function startRaw(args: string[], env: NodeJS.ProcessEnv = process.env): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [ROOTD_JS, ...args], { stdio: ['ignore', 'ignore', 'pipe'], env });
    let stderr = '';
    p.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
    const t = setTimeout(() => process.kill(p.pid!, 'SIGKILL'), 30_000);
    p.once('exit', (code) => {
      clearTimeout(t);
      resolve({ code, stderr });
    });
  });
}

describe('attacks on the socket by a member of the socket group', () => {
  let users: Awaited<ReturnType<typeof ensureTestUsers>>;
  before(async () => {
    users = await ensureTestUsers();
  });

  it('a symlink raced over the socket path while rootd starts never makes root chown or chmod its target', async () => {
    const base = scratch('tsx-');
    const sock = path.join(base, 'run', 'rootd.sock');
    const target = path.join(base, 'secret');
    writeFileSync(target, 'root only\n', { mode: 0o600 });
    chmodSync(target, 0o600);
    const work = path.join(base, 'm');
    mkdirSync(work, { mode: 0o700 });
    chownSync(work, users.member.uid, users.member.gid);
    const stopFile = path.join(base, 'stop');
    const [f, argv] = asUser(users.member, process.execPath, ['-e', RACER, sock, target, work, stopFile]);
    const racer = spawn(f, argv, { stdio: ['ignore', 'pipe', 'inherit'] });
    let report = '';
    racer.stdout!.on('data', (c: Buffer) => (report += c.toString()));
    const racerDone = new Promise((r) => racer.once('exit', r));
    const before = statSync(target);
    let started = 0;
    const failures: string[] = [];
    try {
      for (let i = 0; i < 30; i++) {
        try {
          const d = await startRootd({ config: { socket: sock }, timeoutMs: 10_000 });
          started++;
          await d.stop();
        } catch (e) {
          failures.push((e as Error).message.slice(0, 300));
        }
        const now = statSync(target);
        if (now.mode !== before.mode || now.uid !== before.uid || now.gid !== before.gid) break;
      }
    } finally {
      writeFileSync(stopFile, '');
      const kill = setTimeout(() => process.kill(racer.pid!, 'SIGKILL'), 10_000);
      await racerDone;
      clearTimeout(kill);
    }
    const after = statSync(target);
    const raced = JSON.parse(report || '{}') as { attempts?: number; swapped?: number; errors?: Record<string, number> };
    rmSync(base, { recursive: true, force: true });
    assert.deepEqual(
      { mode: (after.mode & 0o7777).toString(8), uid: after.uid, gid: after.gid },
      { mode: (before.mode & 0o7777).toString(8), uid: before.uid, gid: before.gid },
      `root changed the symlink's target (racer: ${report})`,
    );
    assert.equal(raced.swapped, 0, `the member replaced the socket: ${report}`);
    assert.ok((raced.attempts ?? 0) > 0, `the racer saw the sockets: ${report}`);
    assert.equal(raced.errors?.EACCES, raced.attempts, `every rename was refused with EACCES: ${report}`);
    assert.equal(started, 30, `every start succeeded: ${failures.join('\n')}`);
  });

  it('a member can neither unlink the socket nor put its own in its place', async () => {
    const d = await startRootd();
    try {
      const script = `
        const fs = require('fs'), net = require('net');
        const [sock, work] = process.argv.slice(1);
        const out = {};
        try { fs.unlinkSync(sock); out.unlink = 'ok'; } catch (e) { out.unlink = e.code; }
        const own = work + '/own.sock';
        const srv = net.createServer((c) => c.end('{"type":"success","request_id":"x","data":{"pong":true}}\\n'));
        srv.listen(own, () => {
          try { fs.renameSync(own, sock); out.rename = 'ok'; } catch (e) { out.rename = e.code; }
          srv.close();
          process.stdout.write(JSON.stringify(out));
        });`;
      const work = path.join(d.dir, 'm');
      mkdirSync(work, { mode: 0o700 });
      chownSync(work, users.member.uid, users.member.gid);
      const r = runAs(users.member, script, d.socketPath, work);
      assert.deepEqual(JSON.parse(r.stdout || '{}'), { unlink: 'EACCES', rename: 'EACCES' }, r.stderr);
      // root's ping still reaches rootd itself.
      const st = lstatSync(d.socketPath);
      assert.ok(st.isSocket());
      assert.equal(st.uid, 0);
      const ping = spawnSync(process.execPath, [CLI_JS, '--socket', d.socketPath, 'ping'], { encoding: 'utf8', timeout: 20_000 });
      assert.equal(ping.status, 0, ping.stderr);
    } finally {
      await d.stop();
    }
  });

  it('a socket directory left group-writable (0770 root:tuxsec) is repaired to 0750 at start, with a warning naming it', async () => {
    const base = scratch('tsy-');
    const dir = path.join(base, 'run');
    mkdirSync(dir);
    chownSync(dir, 0, users.tuxsecGid);
    chmodSync(dir, 0o770);
    const d = await startRootd({ config: { socket: path.join(dir, 'rootd.sock') } });
    try {
      const st = statSync(dir);
      assert.equal((st.mode & 0o7777).toString(8), '750');
      assert.equal(st.uid, 0);
      assert.equal(st.gid, users.tuxsecGid);
      assert.ok(d.log().includes(`socket directory ${dir} was writable by group or others (mode 0770)`), d.log());
      const sock = statSync(path.join(dir, 'rootd.sock'));
      assert.equal((sock.mode & 0o777).toString(8), '660');
      assert.equal(sock.gid, users.tuxsecGid);
    } finally {
      await d.stop();
      rmSync(base, { recursive: true, force: true });
    }
  });

  /** Mode, owner and group of a path, and of every entry in it when it is a directory. */
  function modes(p: string): Record<string, string> {
    const one = (f: string) => {
      const st = lstatSync(f);
      return `${(st.mode & 0o7777).toString(8)} ${st.uid}:${st.gid}`;
    };
    const out: Record<string, string> = { '.': one(p) };
    for (const name of readdirSync(p)) out[name] = one(path.join(p, name));
    return out;
  }

  for (const [what, mode, group] of [
    ['a shared sticky directory like /tmp (1777 root:root)', 0o1777, 'root'],
    ['a root-owned 0770 root:tuxsec directory', 0o770, 'tuxsec'],
    ['a root-owned world-writable directory that is not sticky (0777)', 0o777, 'root'],
  ] as const) {
    it(`${what} holding other files is left as it is (mode, owner, files) and refused, naming it`, async () => {
      const base = scratch('tsy-');
      const dir = path.join(base, 'shared');
      mkdirSync(dir);
      chownSync(dir, 0, group === 'root' ? 0 : users.tuxsecGid);
      chmodSync(dir, mode);
      writeFileSync(path.join(dir, 'root-file'), 'root\n', { mode: 0o644 });
      writeFileSync(path.join(dir, 'member-file'), 'member\n', { mode: 0o600 });
      chownSync(path.join(dir, 'member-file'), users.member.uid, users.member.gid);
      mkdirSync(path.join(dir, 'a-dir'), { mode: 0o700 });
      const before = modes(dir);
      writeFileSync(path.join(base, 'rootd.yaml'), 'audit_log: null\n');
      const r = await startRaw(['--config', path.join(base, 'rootd.yaml'), '--socket', path.join(dir, 'x.sock')]);
      const after = modes(dir);
      rmSync(base, { recursive: true, force: true });
      assert.deepEqual(after, before, `rootd changed the directory or its files: ${r.stderr}`);
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, new RegExp(`cannot use socket directory ${dir}: `));
    });
  }

  it('a socket directory rootd creates is 0750 root:tuxsec; one only root can write, holding other files, is used as it is', async () => {
    const base = scratch('tsy-');
    const made = path.join(base, 'made');
    const d = await startRootd({ config: { socket: path.join(made, 'rootd.sock') } });
    try {
      const st = statSync(made);
      assert.deepEqual([(st.mode & 0o7777).toString(8), st.uid, st.gid], ['750', 0, users.tuxsecGid]);
    } finally {
      await d.stop();
    }
    const run = path.join(base, 'run');
    mkdirSync(run);
    chmodSync(run, 0o755);
    writeFileSync(path.join(run, 'other.pid'), '1\n', { mode: 0o644 });
    const before = modes(run);
    const e = await startRootd({ config: { socket: path.join(run, 'rootd.sock') } });
    try {
      const sock = lstatSync(path.join(run, 'rootd.sock'));
      assert.deepEqual([(sock.mode & 0o777).toString(8), sock.uid, sock.gid], ['660', 0, users.tuxsecGid]);
      const { ['rootd.sock']: _, ...rest } = modes(run);
      assert.deepEqual(rest, before, 'the directory and its files are as they were');
    } finally {
      await e.stop();
      rmSync(base, { recursive: true, force: true });
    }
  });

  it("a member's own socket, bound while the directory was group-writable, is removed at start and rootd answers instead", async () => {
    const base = scratch('tsy-');
    const dir = path.join(base, 'run');
    mkdirSync(dir);
    chownSync(dir, 0, users.tuxsecGid);
    chmodSync(dir, 0o770);
    const sock = path.join(dir, 'rootd.sock');
    // The impostor answers every line with a pong that says where it came from.
    const impostor = `require('net').createServer((c) => { c.on('error', () => {}); c.on('data', () => c.end('{"type":"success","request_id":"x","data":{"pong":true,"impostor":true}}\\n')); })
      .listen(process.argv[1], () => { require('fs').chmodSync(process.argv[1], 0o666); console.log('up'); });`;
    const [f, argv] = asUser(users.member, process.execPath, ['-e', impostor, sock]);
    const imp = spawn(f, argv, { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise((r) => imp.stdout!.once('data', r));
    try {
      const d = await startRootd({ config: { socket: sock } });
      try {
        const r = await oneShot(sock, JSON.stringify({ type: 'ping', request_id: 'p', data: {} }));
        assert.deepEqual(r, { type: 'success', request_id: 'p', data: { pong: true } });
        assert.equal(lstatSync(sock).uid, 0);
        assert.ok(d.log().includes(`removed ${sock}: a socket of uid ${users.member.uid}, not of root`), d.log());
      } finally {
        await d.stop();
      }
    } finally {
      process.kill(imp.pid!, 'SIGKILL');
      rmSync(base, { recursive: true, force: true });
    }
  });

  for (const [what, mode, owner] of [
    ['0777 and owned by the member', 0o777, 'member'],
    ['0770 and owned by the member', 0o770, 'member'],
    ['world-writable and sticky, like /tmp', 0o1777, 'root'],
  ] as const) {
    it(`rootd refuses a socket directory ${what}, naming it`, async () => {
      const base = scratch('tsy-');
      const dir = path.join(base, 'run');
      mkdirSync(dir);
      chownSync(dir, owner === 'member' ? users.member.uid : 0, users.tuxsecGid);
      chmodSync(dir, mode);
      writeFileSync(path.join(base, 'rootd.yaml'), 'audit_log: null\n');
      const r = await startRaw(['--config', path.join(base, 'rootd.yaml'), '--socket', path.join(dir, 'rootd.sock')]);
      const st = statSync(dir);
      rmSync(base, { recursive: true, force: true });
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, new RegExp(`cannot use socket directory ${dir}: `));
      assert.equal(st.mode & 0o7777, mode, 'left as it was');
    });
  }

  it('rootd refuses a socket directory inside a directory the group can write, naming that directory', async () => {
    const base = scratch('tsy-');
    const parent = path.join(base, 'p');
    mkdirSync(parent);
    chownSync(parent, 0, users.tuxsecGid);
    chmodSync(parent, 0o770);
    writeFileSync(path.join(base, 'rootd.yaml'), 'audit_log: null\n');
    const r = await startRaw(['--config', path.join(base, 'rootd.yaml'), '--socket', path.join(parent, 'run', 'rootd.sock')]);
    rmSync(base, { recursive: true, force: true });
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, new RegExp(`cannot use socket directory ${parent}/run: ${parent} is writable by group or others`));
  });

  it('rootd refuses a socket directory reached through a link into a directory the member owns, naming it', async () => {
    const base = scratch('tsy-');
    const theirs = path.join(base, 'theirs');
    mkdirSync(theirs, { mode: 0o755 });
    chownSync(theirs, users.member.uid, users.member.gid);
    symlinkSync(theirs, path.join(base, 'link'));
    writeFileSync(path.join(base, 'rootd.yaml'), 'audit_log: null\n');
    const r = await startRaw(['--config', path.join(base, 'rootd.yaml'), '--socket', path.join(base, 'link', 'run', 'rootd.sock')]);
    rmSync(base, { recursive: true, force: true });
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, new RegExp(`cannot use socket directory ${base}/link/run: ${theirs} is owned by uid ${users.member.uid}, not root`));
  });

  /**
   * rootd under systemd-socket-activate, its socket in a directory left 0770 root:tuxsec (the old
   * layout). rootd starts on the first connection; `stop` ends it and removes everything.
   */
  async function activated() {
    const base = scratch('tsy-');
    const dir = path.join(base, 'run');
    mkdirSync(dir);
    chownSync(dir, 0, users.tuxsecGid);
    chmodSync(dir, 0o770);
    const sock = path.join(dir, 'rootd.sock');
    writeFileSync(path.join(base, 'rootd.yaml'), 'audit_log: null\n');
    const act = spawn('/usr/bin/systemd-socket-activate', ['-l', sock, '--', process.execPath, ROOTD_JS, '--config', path.join(base, 'rootd.yaml')], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let err = '';
    act.stderr!.on('data', (c: Buffer) => (err += c.toString()));
    for (let i = 0; i < 200 && !existsSync(sock); i++) await new Promise((r) => setTimeout(r, 50));
    return {
      base,
      dir,
      sock,
      err: () => err,
      async stop() {
        process.kill(act.pid!, 'SIGTERM');
        await new Promise((r) => act.once('exit', r));
        rmSync(base, { recursive: true, force: true });
      },
    };
  }

  it('under socket activation a group-writable socket directory is repaired too', async () => {
    const a = await activated();
    try {
      // The first connection starts rootd; it repairs the directory before it answers.
      const r = await oneShot(a.sock, JSON.stringify({ type: 'ping', request_id: 'sd', data: {} }));
      assert.deepEqual(r.data, { pong: true });
      assert.equal((statSync(a.dir).mode & 0o7777).toString(8), '750', a.err());
      assert.ok(a.err().includes(`socket directory ${a.dir} was writable by group or others (mode 0770)`), a.err());
    } finally {
      await a.stop();
    }
  });

  it("under socket activation, a member's socket put in place of the one systemd bound (before an upgrade) never answers root", async () => {
    const a = await activated();
    let fake: ReturnType<typeof spawn> | null = null;
    try {
      // A second name for systemd's socket, so the test can still start rootd through it.
      const alias = path.join(a.base, 'alias.sock');
      linkSync(a.sock, alias);
      // The member unlinks systemd's socket and binds an impostor that answers every request.
      const [f, argv] = asUser(users.member, process.execPath, [
        '-e',
        `const fs=require('fs'),net=require('net');fs.unlinkSync(process.argv[1]);
         net.createServer(c=>c.on('data',()=>c.end('{"type":"success","request_id":"sd","data":{"pong":"impostor"}}\\n'))).listen(process.argv[1],()=>process.stdout.write('up'));`,
        a.sock,
      ]);
      fake = spawn(f, argv, { stdio: ['ignore', 'pipe', 'inherit'] });
      await new Promise<void>((r) => fake!.stdout!.once('data', () => r()));
      assert.equal(lstatSync(a.sock).uid, users.member.uid, 'the impostor is in place');
      // The first connection (through the second name) starts rootd with systemd's socket.
      const trigger = (await import('node:net')).createConnection(alias);
      trigger.on('error', () => {});
      for (let i = 0; i < 300 && !(existsSync(a.sock) && lstatSync(a.sock).uid === 0); i++) await new Promise((r) => setTimeout(r, 50));
      trigger.destroy();
      const r = await oneShot(a.sock, JSON.stringify({ type: 'ping', request_id: 'sd', data: {} }));
      assert.deepEqual(r.data, { pong: true }, 'root reached rootd, not the impostor');
      assert.equal(lstatSync(a.sock).uid, 0);
      assert.match(a.err(), /no longer reachable at .*a socket of uid \d+, not of root, is there/);
    } finally {
      if (fake?.pid) process.kill(fake.pid, 'SIGKILL');
      await a.stop();
    }
  });
});
